"""A plain smoothrl algorithm costs what SB3's costs: steps/s of smoothrl's PPO, SAC and TD3 with
every extension off against the SB3 class, side by side in one run, and PPO with
``diagnostics=True`` (the optional ratio and gradient diagnostics) for what they cost.

Budget: PPO on ``smoothrl/HVAC-v0`` with its preset (64 buildings, so that gradient updates
dominate), SAC/TD3 on Pendulum-v1 with their smoke presets; ``--repeats`` alternating runs per
variant (default 3, quick 1) of ``--timesteps`` steps each; seed 0. The ratio to SB3 measured in
the same run is what counts. Writes ``results/bench_plain_cost.json``.
"""

from __future__ import annotations

import statistics
import time

import stable_baselines3 as sb3
import torch as th
from benchlib import save_results, study_args, table
from rich.console import Console

from smoothrl.run.build import make_env, model_kwargs
from smoothrl.run.overrides import resolve_config

#: name -> (algo, env, preset, overrides, compared with)
VARIANTS = {
    "PPO (SB3)": ("ppo", "smoothrl/HVAC-v0", None, ["n_envs=64"], None),
    "PPO (smoothrl, plain)": ("ppo", "smoothrl/HVAC-v0", None, ["n_envs=64"], "PPO (SB3)"),
    "PPO (smoothrl, diagnostics)": ("ppo", "smoothrl/HVAC-v0", None, ["n_envs=64", "diagnostics=true"], "PPO (SB3)"),
    "SAC (SB3)": ("sac", "Pendulum-v1", "smoke", ["learning_starts=100"], None),
    "SAC (smoothrl, plain)": ("sac", "Pendulum-v1", "smoke", ["learning_starts=100"], "SAC (SB3)"),
    "TD3 (SB3)": ("td3", "Pendulum-v1", "smoke", ["learning_starts=100"], None),
    "TD3 (smoothrl, plain)": ("td3", "Pendulum-v1", "smoke", ["learning_starts=100"], "TD3 (SB3)"),
}


def steps_per_second(name: str, timesteps: int) -> float:
    algo, env_id, preset, overrides, _ = VARIANTS[name]
    config = resolve_config(algo, env_id, preset, overrides, seed=0)
    env = make_env(config)
    kwargs = model_kwargs(config, env)
    if name.endswith("(SB3)"):
        kwargs.pop("diagnostics", None)
        cls = getattr(sb3, algo.upper())
    else:
        cls = config.entry.cls
    model = cls(config.policy, env, seed=0, device="cpu", **kwargs)
    start = time.perf_counter()
    model.learn(timesteps)
    return timesteps / (time.perf_counter() - start)


def main() -> None:
    args = study_args(
        __doc__,
        "bench_plain_cost",
        timesteps=(32_768, 16_384),
        quick="1 repeat of 16k steps",
        extra=lambda p: p.add_argument("--repeats", type=int, default=None, help="alternating runs per variant"),
    )
    repeats = args.repeats or (1 if args.quick else 3)
    th.set_num_threads(1)
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(repeats):
        for name in VARIANTS:
            steps = args.timesteps if VARIANTS[name][0] == "ppo" else args.timesteps // 16
            rates[name].append(steps_per_second(name, steps))
    rows = {}
    for name, values in rates.items():
        reference = VARIANTS[name][4]
        median = statistics.median(values)
        ratio = median / statistics.median(rates[reference]) if reference else 1.0
        rows[name] = {"steps_per_s": median, "ratio_to_sb3": ratio, "runs": values}
    results = {"settings": {"repeats": repeats, "timesteps_ppo": args.timesteps, "threads": 1, "seed": 0}, "rows": rows}
    cells = ((name, f"{row['steps_per_s']:,.0f}", f"{row['ratio_to_sb3']:.3f}") for name, row in rows.items())
    title = f"steps/s, median of {repeats} alternating run(s), 1 thread"
    save_results(results, args.out, [table(title, ("variant", "steps/s", "x SB3"), cells)], Console(width=120))


if __name__ == "__main__":
    main()
