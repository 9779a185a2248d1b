"""What smoothrl's extensions cost: CPU-time steps/s of every algorithm with its extensions off
and with each one on, against SB3's own class and against the same smoothrl algorithm with the
extension off, measured side by side in one run.

The machine is shared and its speed drifts by tens of percent within minutes, so variants are
compared in pairs: every variant of an algorithm is built once and then trained in short chunks,
one chunk of each variant per round (the order rotating between rounds); the ratio of two
variants is the median over rounds of their chunk rates in the same round.

Budget: Pendulum-v1 (CartPole-v1 for DQN) with each algorithm's ``smoke`` preset, one torch
thread, ``--rounds`` rounds (default 12, quick 4) of one chunk per variant: PPO/A2C two rollouts,
off-policy algorithms 256 steps after a 300-step warm-up (``learning_starts=100``, so that
gradient steps dominate); seed 0. CPU time (``time.process_time``). Writes
``results/bench_overhead.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import stable_baselines3 as sb3
import torch as th
from benchlib import save_results, study_args, table
from rich.console import Console

from smoothrl.run.build import make_env, model_kwargs
from smoothrl.run.overrides import resolve_config

ORDER1 = "action_reg={order: 1, weight: 0.1}"
ORDER3 = "action_reg={order: 3, weight: 0.1}"

#: the variants every actor-critic algorithm has: SB3's class, smoothrl's with nothing on, the loss terms
BASE = {"SB3": [], "off": [], "action_reg order 1": [ORDER1], "action_reg order 3": [ORDER3]}
GSDE = {"gSDE": ["use_sde=true"], "SB3 gSDE": ["use_sde=true"]}
COLORED = {"colored noise": ["noise_type=colored", "noise_beta=1.0"]}

#: algo -> env, then variant -> overrides (``SB3 ...``: SB3's class; the rest smoothrl's)
ALGOS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "ppo": ("Pendulum-v1", {**BASE, **GSDE, "smoothness_reward order 3": ["smoothness_reward={3: 0.05}"]}),
    "a2c": ("Pendulum-v1", BASE),
    "sac": ("Pendulum-v1", {**BASE, **GSDE, **COLORED}),
    "td3": ("Pendulum-v1", {**BASE, "gSDE (smoothrl only)": ["use_sde=true"], **COLORED}),
    "dqn": ("CartPole-v1", {"SB3": [], "off": []}),
}
OFF_POLICY = ("sac", "td3", "dqn")


def build(algo: str, variant: str):  # noqa: ANN201  (an SB3 algorithm)
    """:return: the variant's model, warmed up (first rollout collected, replay buffer past learning_starts)"""
    env_id, variants = ALGOS[algo]
    overrides = list(variants[variant]) + (["learning_starts=100"] if algo in OFF_POLICY else [])
    config = resolve_config(algo, env_id, "smoke", overrides, seed=0)
    env = make_env(config)
    kwargs = model_kwargs(config, env)
    cls = getattr(sb3, algo.upper()) if variant.startswith("SB3") else config.entry.cls
    model = cls(config.policy, env, seed=0, device="cpu", **kwargs)
    model.learn(chunk_steps(model, algo))
    return model


def chunk_steps(model, algo: str) -> int:  # noqa: ANN001
    """:return: steps per chunk: two rollouts (on-policy), 256 steps (off-policy)"""
    if algo in OFF_POLICY:
        return 256
    return 2 * model.n_steps * model.n_envs


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=None, help="rounds of one chunk per variant")
    parser.add_argument("--algos", nargs="+", choices=list(ALGOS), default=list(ALGOS), help="algorithms to measure")


def main() -> None:
    args = study_args(
        __doc__,
        "bench_overhead",
        quick="4 rounds",
        extra=add_options,
    )
    rounds = args.rounds or (4 if args.quick else 12)
    th.set_num_threads(1)
    rows = {}
    for algo in args.algos:
        _, variants = ALGOS[algo]
        models = {variant: build(algo, variant) for variant in variants}
        rates: dict[str, list[float]] = {variant: [] for variant in variants}
        names = list(variants)
        for r in range(rounds):
            for variant in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
                model = models[variant]
                steps = chunk_steps(model, algo)
                start = time.process_time()
                model.learn(steps, reset_num_timesteps=False)
                rates[variant].append(steps / (time.process_time() - start))
        for variant, values in rates.items():

            def paired(reference: str, values: list[float] = values, rates: dict = rates) -> float:
                return statistics.median(v / w for v, w in zip(values, rates[reference], strict=True))

            rows[f"{algo} {variant}"] = {
                "algo": algo,
                "variant": variant,
                "steps_per_cpu_s": statistics.median(values),
                "ratio_to_sb3": paired("SB3"),
                "ratio_to_off": paired("off"),
                "ratio_to_sb3_same_setting": paired("SB3 gSDE") if variant == "gSDE" else None,
                "rates": values,
            }
        for model in models.values():
            model.get_env().close()
    settings = {"rounds": rounds, "algos": args.algos, "threads": 1, "seed": 0, "clock": "process_time"}
    results = {"settings": settings, "rows": rows}
    cells = (
        (
            row["algo"],
            row["variant"],
            f"{row['steps_per_cpu_s']:,.0f}",
            f"{row['ratio_to_sb3']:.3f}",
            f"{row['ratio_to_off']:.3f}",
            "" if row["ratio_to_sb3_same_setting"] is None else f"{row['ratio_to_sb3_same_setting']:.3f}",
        )
        for row in rows.values()
    )
    title = f"CPU-time steps/s (median) and paired ratios over {rounds} rounds, 1 thread"
    header = ("algo", "variant", "steps/s", "x SB3", "x smoothrl off", "x SB3, same setting")
    save_results(results, args.out, [table(title, header, cells)], Console(width=130))


if __name__ == "__main__":
    main()
