"""PPO trust-region modes side by side: clip, none, pspo, pspo_clip, spo, and pspo with target_kl.

Every mode runs with the same hyperparameters (the task's preset or the common config below)
on three continuous tasks:

- ``Pendulum-v1``: rl-zoo3's tuned PPO preset (gSDE, 4 envs, 1024 steps, 10 epochs);
- ``InvertedPendulumSwingupBulletEnv-v0``: one fast common config (8 envs x 256 steps, batch 256,
  5 epochs, lr 3e-4, 64x64, VecNormalize, gSDE with ``sde_sample_freq`` 4, ``log_std_init`` -1;
  the same as ``bench_smooth_bullet.py``);
- ``smoothrl/HVAC-v0``: smoothrl's HVAC preset (16 envs x 256 steps, batch 256, 10 epochs).

``pspo_alpha`` is 0.1 (the published value), ``clip_range`` the preset's (0.2, also SPO's eps),
``target_kl`` 0.02 for the ``pspo + target_kl`` variant. Reported per task and mode: the
deterministic policy's return on 10 evaluation episodes (mean over seeds and its 95% Student-t
interval), the mean approx KL per update, mean max |r - 1| per update, the mean policy-gradient
norm, and the evaluation smoothness metrics. A mode "wins" only where its interval clears every
other mode's mean; otherwise the table says which modes are indistinguishable from the best.

Budget: default 3 seeds x (Pendulum 100k, Swingup 100k, HVAC 200k) steps, 2 workers (about
25 minutes on 2 cores); ``--quick`` 1 seed x 20k steps per run (a few minutes). Writes
``results/bench_ratio.json`` and prints a table.
"""

from __future__ import annotations

import numpy as np
from benchlib import (
    BULLET_PPO_COMMON,
    Job,
    run_jobs,
    save_results,
    seed_summary,
    study_args,
    t_interval,
    table,
)
from rich.console import Console

BULLET_COMMON = (*BULLET_PPO_COMMON, "use_sde=true", "sde_sample_freq=4")
#: task -> (common overrides, default budget)
TASKS: dict[str, tuple[tuple[str, ...], int]] = {
    "Pendulum-v1": ((), 100_000),
    "InvertedPendulumSwingupBulletEnv-v0": (BULLET_COMMON, 100_000),
    "smoothrl/HVAC-v0": ((), 200_000),
}
VARIANTS: dict[str, tuple[str, ...]] = {
    "clip": ("ratio=clip",),
    "none": ("ratio=none",),
    "pspo": ("ratio=pspo", "pspo_alpha=0.1"),
    "pspo_clip": ("ratio=pspo_clip", "pspo_alpha=0.1"),
    "spo": ("ratio=spo",),
    "pspo + target_kl": ("ratio=pspo", "pspo_alpha=0.1", "target_kl=0.02"),
}
COLUMNS = ("mode", "return (95% CI)", "approx KL", "max |r-1|", "pg grad norm", "cont. cost x100", "jerk RMS", "Sm")
SUMMARY_KEYS = ("mean_return", "continuity_cost", "jerk_rms", "sm")
SCALARS = {
    "approx_kl": ("train/approx_kl", "mean"),
    "ratio_dev_max": ("train/ratio_dev_max", "mean"),
    "pg_grad_norm": ("train/pg_grad_norm", "mean"),
}


def verdict(rows: dict[str, dict]) -> str:
    """Which mode wins on return, or which are indistinguishable from the best (95% intervals)."""
    best = max(rows, key=lambda name: rows[name]["mean_return"])
    low = rows[best]["mean_return"] - rows[best]["return_ci95"]
    if np.isnan(low):
        return f"best mean: {best} (one seed: no interval)"
    # a mode is tied with the best when the best's interval does not clear its mean
    tied = [name for name, row in rows.items() if name != best and row["mean_return"] >= low]
    if not tied:
        return f"{best} wins (its 95% interval clears every other mode)"
    return f"no clear winner: best mean {best}, indistinguishable from {', '.join(tied)}"


def main() -> None:
    args = study_args(
        __doc__,
        "bench_ratio",
        seeds=(3, 1),
        timesteps=(None, 20_000),
        episodes=(10, 10),
        workers=2,
        quick="1 seed x 20k steps per run",
    )
    seeds = args.seeds
    console = Console(width=160)
    budgets = {task: args.timesteps or steps for task, (_, steps) in TASKS.items()}
    jobs = [
        Job(
            key=(task, name, seed),
            algo="ppo",
            env=task,
            overrides=(*common, *extra, "diagnostics=true"),  # logs pg_grad_norm and ratio_dev_max
            timesteps=budgets[task],
            seed=seed,
            episodes=args.episodes,
            summary_keys=SUMMARY_KEYS,
            scalars=SCALARS,
        )
        for task, (common, _) in TASKS.items()
        for name, extra in VARIANTS.items()
        for seed in range(seeds)
    ]
    done = run_jobs(jobs, args.workers, console, backend=args.backend, address=args.address)

    results: dict = {
        "settings": {
            "algo": "ppo",
            "tasks": {task: {"overrides": list(c), "timesteps": budgets[task]} for task, (c, _) in TASKS.items()},
            "variants": {name: list(extra) for name, extra in VARIANTS.items()},
            "seeds": seeds,
            "episodes": args.episodes,
            "eval_seed": "run seed + 10000",
            "interval": "95% Student-t over seeds",
        },
        "tasks": {},
        "verdicts": {},
    }
    for task in TASKS:
        rows = {}
        for name in VARIANTS:
            row = seed_summary([done[(task, name, seed)] for seed in range(seeds)])
            row["mean_return"], row["return_ci95"] = t_interval([s["mean_return"] for s in row["per_seed"]])
            rows[name] = row
        results["tasks"][task] = rows
        results["verdicts"][task] = verdict(rows)
    tables = [
        table(
            f"{task}: PPO {budgets[task]:,} steps x {seeds} seed(s), {args.episodes} eval episodes; "
            f"{results['verdicts'][task]}",
            COLUMNS,
            (
                (
                    name,
                    f"{row['mean_return']:.1f} ± {row['return_ci95']:.1f}",
                    f"{row['approx_kl']:.4f}",
                    f"{row['ratio_dev_max']:.3f}",
                    f"{row['pg_grad_norm']:.3f}",
                    f"{row['continuity_cost']:.3f}",
                    f"{row['jerk_rms']:.4f}",
                    f"{row['sm']:.5f}",
                )
                for name, row in rows.items()
            ),
        )
        for task, rows in results["tasks"].items()
    ]
    save_results(results, args.out, tables, console)


if __name__ == "__main__":
    main()
