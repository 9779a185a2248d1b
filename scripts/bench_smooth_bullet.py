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
2 cores); seeds 0..n-1, evaluation seed + 10000; ``--workers`` parallel processes. Writes
``results/bench_smooth_bullet.json`` and prints a table.
"""

from __future__ import annotations

from benchlib import BULLET_PPO_COMMON, Job, run_jobs, save_results, seed_summary, study_args, table
from rich.console import Console

TASKS = ("InvertedPendulumSwingupBulletEnv-v0", "ReacherBulletEnv-v0")
COMMON = list(BULLET_PPO_COMMON)
VARIANTS = {
    "gaussian": ["use_sde=false"],
    "gsde f=1": ["use_sde=true", "sde_sample_freq=1"],
    "gsde f=4": ["use_sde=true", "sde_sample_freq=4"],
    "gsde f=16": ["use_sde=true", "sde_sample_freq=16"],
    "gsde f=64": ["use_sde=true", "sde_sample_freq=64"],
    "gsde f=-1": ["use_sde=true", "sde_sample_freq=-1"],
    "gsde f=4 + jerk": ["use_sde=true", "sde_sample_freq=4", "action_reg.order=3", "action_reg.weight=0.1"],
}
KEYS = ("mean_return", "continuity_cost", "jerk_rms", "sm")
#: the exploring actions' smoothness: the last value training logged
SCALARS = {"train_continuity_cost": ("smoothness/continuity_cost", "last")}
COLUMNS = ("variant", "return", "eval cont. cost x100", "eval jerk RMS", "eval Sm", "train cont. cost x100")


def main() -> None:
    args = study_args(
        __doc__, "bench_smooth_bullet", seeds=(3, 1), timesteps=(100_000, 30_000), episodes=(10, 10), workers=2
    )
    console = Console(width=150)
    jobs = [
        Job((env_id, name, seed), "ppo", env_id, (*COMMON, *extra), args.timesteps, seed, args.episodes, KEYS, SCALARS)
        for env_id in TASKS
        for name, extra in VARIANTS.items()
        for seed in range(args.seeds)
    ]
    done = run_jobs(jobs, args.workers, console, backend=args.backend, address=args.address)
    results: dict = {
        "settings": {
            "algo": "ppo",
            "common": COMMON,
            "seeds": args.seeds,
            "timesteps": args.timesteps,
            "episodes": args.episodes,
            "eval_seed": "run seed + 10000",
        },
        "tasks": {
            env_id: {
                name: seed_summary([done[(env_id, name, s)] for s in range(args.seeds)], ["mean_return"])
                for name in VARIANTS
            }
            for env_id in TASKS
        },
    }
    tables = [
        table(
            f"{env_id}: PPO {args.timesteps:,} steps x {args.seeds} seed(s), {args.episodes} eval episodes",
            COLUMNS,
            (
                (
                    name,
                    f"{row['mean_return']:.1f} ± {row['mean_return_std']:.1f}",
                    f"{row['continuity_cost']:.3f}",
                    f"{row['jerk_rms']:.4f}",
                    f"{row['sm']:.5f}",
                    f"{row['train_continuity_cost']:.3f}",
                )
                for name, row in rows.items()
            ),
        )
        for env_id, rows in results["tasks"].items()
    ]
    save_results(results, args.out, tables, console)


if __name__ == "__main__":
    main()
