"""Wall time of one 8-trial sweep: sequential, a local pool of 2, a local Ray instance, a two-node Ray cluster.

The sweep: PPO on Pendulum-v1 (the `smoke` preset), plain vs the order-1 action-smoothness loss,
4 seeds each (8 trials), 20000 steps per trial (``--quick``: 4096), 2 evaluation episodes. The
same trials run four ways, each into a fresh folder: ``--backend local --max-parallel 1``
(sequential), ``--backend local --max-parallel 2``, ``--backend ray --max-parallel 2`` (a local
Ray instance started by the sweep) and ``--backend ray --address`` on a real cluster of two
1-CPU nodes on loopback (``ray start --head`` + a worker). Reported: wall time, its ratio to the
sequential run (measured in the same run of this script), the time inside the trials, Ray's
overhead per trial (the extra wall time over the local pool with the same parallelism, per
trial) and whether every backend gave the same numbers.
``python scripts/bench_sweep.py [--quick]`` writes results/bench_sweep.json.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml
from benchlib import loopback_cluster, save_results, study_args, table
from rich.console import Console

from smoothrl.experiments.sweep import load_sweep, sweep


def main() -> None:
    args = study_args(__doc__, "bench_sweep", timesteps=(20_000, 4096), quick="4096 steps per trial")
    console = Console()
    data = {
        "name": "bench",
        "base": {"algo": "ppo", "env": "Pendulum-v1", "preset": "smoke", "timesteps": args.timesteps, "episodes": 2},
        "variants": [{"name": "plain"}, {"name": "smooth", "set": {"action_reg": {"order": 1, "weight": 1.0}}}],
        "seeds": 4,
        "metrics": ["return", "jerk_rms"],
        "resources": {"cpu": 1},
    }
    rows, numbers = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        spec = load_sweep(path)
        runs = [
            ("sequential (local, 1 at a time)", {"backend": "local", "max_parallel": 1}),
            ("local pool, 2 workers", {"backend": "local", "max_parallel": 2}),
            ("Ray, local instance, 2 at a time", {"backend": "ray", "max_parallel": 2}),
            ("Ray cluster: head + worker, 1 CPU each", {"backend": "ray", "max_parallel": 2, "cluster": True}),
        ]
        for i, (label, how) in enumerate(runs):
            out = Path(tmp) / f"run{i}"
            console.print(f"{label} ...")
            if how.pop("cluster", False):
                with loopback_cluster(nodes=2, cpus_per_node=1) as address:
                    start = time.perf_counter()
                    result = sweep(spec, out, address=address, **how)
                    wall = time.perf_counter() - start
            else:
                start = time.perf_counter()
                result = sweep(spec, out, **how)
                wall = time.perf_counter() - start
            ok = [r for r in result.records if r.get("status") == "ok"]
            rows[label] = {
                "wall_s": wall,
                "trials_ok": len(ok),
                "inside_trials_s": sum(r["seconds"] for r in ok),
                "nodes": len({r["node"] for r in ok}),
            }
            numbers[label] = sorted((r["variant"], r["seed"], r["mean_return"], r["jerk_rms"]) for r in ok)
    reference = rows[runs[0][0]]["wall_s"]
    local2 = rows[runs[1][0]]["wall_s"]
    for label, row in rows.items():
        row["ratio_to_sequential"] = row["wall_s"] / reference
        row["overhead_per_trial_s"] = (row["wall_s"] - local2) / 8 if "Ray" in label else None
    same = all(n == numbers[runs[0][0]] for n in numbers.values())
    shown = table(
        f"8-trial sweep (PPO Pendulum-v1 smoke, {args.timesteps} steps, 2 variants x 4 seeds); same numbers: {same}",
        ["run", "wall s", "x sequential", "s inside trials", "nodes", "Ray overhead s/trial"],
        [
            [
                label,
                f"{row['wall_s']:.1f}",
                f"{row['ratio_to_sequential']:.2f}",
                f"{row['inside_trials_s']:.1f}",
                str(row["nodes"]),
                "-" if row["overhead_per_trial_s"] is None else f"{row['overhead_per_trial_s']:.1f}",
            ]
            for label, row in rows.items()
        ],
    )
    command = "python scripts/bench_sweep.py" + (" --quick" if args.quick else "")
    save_results(
        {
            "settings": {"command": command, "timesteps": args.timesteps, "trials": 8},
            "runs": rows,
            "same_numbers": same,
        },
        args.out,
        [shown],
        console,
    )


if __name__ == "__main__":
    main()
