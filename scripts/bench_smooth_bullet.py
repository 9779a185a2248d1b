"""Exploration and smoothness on PyBullet: Gaussian noise vs gSDE, gSDE's sampling interval, jerk penalty.

PPO with one common, fast configuration on every task (8 envs, 256 steps, batch 256, 5 epochs,
lr 3e-4, 64x64 networks, VecNormalize, log_std_init -1), so that only exploration differs:

- ``gaussian``: SB3's default diagonal Gaussian (``use_sde=false``);
- ``gsde f=N``: gSDE with ``sde_sample_freq`` N in {1, 4, 16, 64, -1 (once per rollout)};
- ``gsde f=4 + jerk``: gSDE f=4 plus a third-order ``action_reg`` loss term (weight 0.1).

Reported per variant (mean over seeds): the deterministic policy's return and smoothness on 10
evaluation episodes, and the continuity cost of the *exploring* actions during training (the
last ``smoothness/continuity_cost`` logged), which is what the sampling interval trades against
return.

Budget: ``--quick`` 1 seed x 30k steps per run (about 5 minutes); default 3 seeds x 100k steps
per run on InvertedPendulumSwingupBulletEnv-v0 and ReacherBulletEnv-v0 (about 25 minutes on
2 cores). Writes ``results/bench_smooth_bullet.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from smoothrl.benchmark import BULLET_PPO_COMMON
from smoothrl.config import resolve_config
from smoothrl.metrics import mean_report
from smoothrl.plotting import read_scalars
from smoothrl.rundir import atomic_write_json
from smoothrl.training import evaluate, train

TASKS = ("InvertedPendulumSwingupBulletEnv-v0", "ReacherBulletEnv-v0")
COMMON = [*BULLET_PPO_COMMON, "eval_freq=0"]
VARIANTS = {
    "gaussian": ["use_sde=false"],
    "gsde f=1": ["use_sde=true", "sde_sample_freq=1"],
    "gsde f=4": ["use_sde=true", "sde_sample_freq=4"],
    "gsde f=16": ["use_sde=true", "sde_sample_freq=16"],
    "gsde f=64": ["use_sde=true", "sde_sample_freq=64"],
    "gsde f=-1": ["use_sde=true", "sde_sample_freq=-1"],
    "gsde f=4 + jerk": ["use_sde=true", "sde_sample_freq=4", "action_reg.order=3", "action_reg.weight=0.1"],
}
KEYS = ("mean_return", "continuity_cost", "jerk_rms", "sm", "train_continuity_cost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed x 30k steps per run")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per variant (default 3, quick 1)")
    parser.add_argument("--timesteps", type=int, default=None, help="steps per run (default 100k, quick 30k)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    parser.add_argument("--out", type=Path, default=Path("results/bench_smooth_bullet.json"))
    args = parser.parse_args()
    seeds = args.seeds or (1 if args.quick else 3)
    steps = args.timesteps or (30_000 if args.quick else 100_000)
    console = Console(width=150)
    results: dict = {
        "settings": {
            "algo": "ppo",
            "common": COMMON,
            "seeds": seeds,
            "timesteps": steps,
            "episodes": args.episodes,
            "eval_seed": "run seed + 10000",
        },
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        task_bar = progress.add_task("training", total=len(TASKS) * len(VARIANTS) * seeds)
        for env_id in TASKS:
            rows = {}
            for name, extra in VARIANTS.items():
                per_seed = []
                for seed in range(seeds):
                    config = resolve_config(
                        "ppo",
                        env_id,
                        overrides=COMMON + extra + [f"eval_episodes={args.episodes}"],
                        n_timesteps=steps,
                        seed=seed,
                    )
                    run = train(config, Path(tmp) / f"{env_id}_{name.replace(' ', '_')}_{seed}", progress_bar=False)
                    summary, _ = evaluate(run, episodes=args.episodes)
                    _, train_cc = read_scalars(run, "smoothness/continuity_cost")
                    summary["train_continuity_cost"] = float(train_cc[-1]) if len(train_cc) else float("nan")
                    per_seed.append({k: summary[k] for k in KEYS})
                    progress.advance(task_bar)
                rows[name] = mean_report(per_seed)  # key-wise mean over seeds
                rows[name]["mean_return_std"] = float(np.std([s["mean_return"] for s in per_seed]))
                rows[name]["per_seed"] = per_seed
            results["tasks"][env_id] = rows
    atomic_write_json(args.out, results)

    for env_id, rows in results["tasks"].items():
        table = Table(title=f"{env_id}: PPO {steps:,} steps x {seeds} seed(s), {args.episodes} eval episodes")
        for col in ("variant", "return", "eval cont. cost x100", "eval jerk RMS", "eval Sm", "train cont. cost x100"):
            table.add_column(col, justify="right")
        for name, row in rows.items():
            table.add_row(
                name,
                f"{row['mean_return']:.1f} ± {row['mean_return_std']:.1f}",
                f"{row['continuity_cost']:.3f}",
                f"{row['jerk_rms']:.4f}",
                f"{row['sm']:.5f}",
                f"{row['train_continuity_cost']:.3f}",
            )
        console.print(table)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
