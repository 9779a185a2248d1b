"""Do action-derivative penalties make HVAC control smooth at little cost? Both forms, PPO.

Trains PPO on ``smoothrl/HVAC-v0`` (modulating heat pump) and ``smoothrl/HVACDiscrete-v0``
(on/off heat pump) with no penalty and with a 1st-, 2nd- or 3rd-order action penalty, in both
forms: reward shaping (``smoothness_reward``: the penalty on the actions sent, history in the
observation) and a policy-loss term (``action_reg``: the penalty on the policy's deterministic
action along consecutive rollout states). Every run is evaluated on the test weeks and
compared with the thermostat and PI baselines. The claim under test (published for HVAC):
third-order (jerk) penalties give the smoothest control and cut equipment switching by about
60% while the return stays competitive.

Penalty weights: ``w_j = w * 2 / ||c_j||^2`` with ``c_j`` the coefficients of the order-j
difference (``||c||^2`` = 2, 6, 20), so every order costs the same on white-noise actions
(otherwise jerk would simply be a 10x stronger penalty than velocity). ``w`` is
``--weight`` (reward form, in reward units) and ``--loss-weight`` (loss form).

Budget: ``--quick`` 1 seed x 150k steps per run (about 5 minutes in all); default 3 seeds x
300k steps (about 30 minutes on 2 cores). Evaluation: 10 deterministic test episodes (weeks),
seed 10000. Writes ``results/bench_smooth_hvac.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
from math import comb
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from smoothrl.config import resolve_config
from smoothrl.metrics import mean_report
from smoothrl.rundir import atomic_write_json
from smoothrl.training import evaluate, evaluate_controller, train

ENVS = ("smoothrl/HVAC-v0", "smoothrl/HVACDiscrete-v0")
#: name -> (form, order)
VARIANTS = {
    "none": (None, None),
    "reward order 1": ("reward", 1),
    "reward order 2": ("reward", 2),
    "reward order 3 (jerk)": ("reward", 3),
    "loss order 1": ("loss", 1),
    "loss order 2": ("loss", 2),
    "loss order 3 (jerk)": ("loss", 3),
}
KEYS = (
    "mean_return",
    "switches_per_day",
    "atvl_tot",
    "jerk_rms",
    "continuity_cost",
    "tdis_tot",
    "ener_tot",
    "cost_tot",
)


def weight(order: int, base: float) -> float:
    """Weight of an order so that white-noise actions cost the same at every order."""
    norm = sum(comb(order, i) ** 2 for i in range(order + 1))
    return base * 2.0 / norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed x 150k steps per run")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per variant (default 3, quick 1)")
    parser.add_argument("--timesteps", type=int, default=None, help="steps per run (default 300k, quick 150k)")
    parser.add_argument("--weight", type=float, default=0.05, help="reward-form base weight w (default 0.05)")
    parser.add_argument("--loss-weight", type=float, default=1.0, help="loss-form base weight (default 1.0)")
    parser.add_argument("--episodes", type=int, default=10, help="test episodes per evaluation")
    parser.add_argument("--out", type=Path, default=Path("results/bench_smooth_hvac.json"))
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    steps = args.timesteps or (150_000 if args.quick else 300_000)
    console = Console(width=150)
    results: dict = {
        "settings": {
            "algo": "ppo",
            "seeds": seeds,
            "timesteps": steps,
            "reward_weight": args.weight,
            "loss_weight": args.loss_weight,
            "episodes": args.episodes,
            "eval_seed": 10_000,
            "split": "test",
        },
        "envs": {},
    }
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        task = progress.add_task("training", total=len(ENVS) * len(VARIANTS) * seeds)
        for env_id in ENVS:
            rows: dict[str, dict] = {}
            for name, (form, order) in VARIANTS.items():
                per_seed = []
                for seed in range(seeds):
                    overrides = ["eval_freq=0", f"eval_episodes={args.episodes}"]
                    if form == "reward":
                        overrides.append(f"smoothness_reward.{order}={weight(order, args.weight)}")
                    elif form == "loss":
                        overrides.append(f"action_reg.temporal={{{order}: {weight(order, args.loss_weight)}}}")
                    config = resolve_config("ppo", env_id, overrides=overrides, n_timesteps=steps, seed=seed)
                    run = train(
                        config, Path(tmp) / f"{env_id.replace('/', '_')}_{form}{order}_{seed}", progress_bar=False
                    )
                    summary, _ = evaluate(run, episodes=args.episodes)
                    per_seed.append({k: summary[k] for k in KEYS})
                    progress.advance(task)
                rows[name] = mean_report(per_seed)  # key-wise mean over seeds
                rows[name].update({f"{k}_std": float(np.std([s[k] for s in per_seed])) for k in KEYS})
                rows[name]["per_seed"] = per_seed
            for controller in ("thermostat", "pi"):
                if controller == "pi" and "Discrete" in env_id:
                    continue
                summary, _ = evaluate_controller(controller, env_id, episodes=args.episodes)
                rows[controller] = {k: summary[k] for k in KEYS}
            base = rows["none"]["switches_per_day"]
            for row in rows.values():
                row["switching_change_vs_none"] = row["switches_per_day"] / base - 1.0 if base > 0 else float("nan")
            results["envs"][env_id] = rows
    atomic_write_json(args.out, results)

    for env_id, rows in results["envs"].items():
        table = Table(title=f"{env_id}: PPO {steps:,} steps x {seeds} seed(s), {args.episodes} test weeks")
        for col in ("variant", "return", "switches/day", "vs none", "atvl", "jerk RMS", "tdis K h", "kWh/m2", "$/m2"):
            table.add_column(col, justify="right")
        for name, row in rows.items():
            table.add_row(
                name,
                f"{row['mean_return']:.2f}",
                f"{row['switches_per_day']:.2f}",
                f"{100 * row['switching_change_vs_none']:+.0f}%",
                f"{row['atvl_tot']:.1f}",
                f"{row['jerk_rms']:.3f}",
                f"{row['tdis_tot']:.2f}",
                f"{row['ener_tot']:.3f}",
                f"{row['cost_tot']:.3f}",
            )
        console.print(table)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
