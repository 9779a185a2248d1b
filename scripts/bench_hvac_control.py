"""Every controller that is not learned, on every HVAC plant: the tuned rule baselines, the oracle
MPC (the bound) and the realistic MPC, with return, gap to the oracle, KPIs and compute.

Plants: ``smoothrl/HVAC-v0`` (modulating heat pump, ``office_1zone_denver``),
``smoothrl/HVACDiscrete-v0`` (the same office, on/off), ``smoothrl/HVACMultiZone-v0`` (5-zone
office in Chicago), and ``smoothrl/EPlus-v0`` (EnergyPlus's reference small office in Denver,
where the realistic MPC believes in the RC model calibrated to it, ``office_5zone_denver_eplus``,
and the oracle cannot exist: EnergyPlus's state is not an RC state). Every controller plays the
same distinct test weeks from the same initial temperatures (seed 10000); the rule baselines run
with the parameters tuned on each building's training weeks (``baselines/``). Trained runs given
with ``--runs`` are evaluated on their own env beside them. Budget: all 13 test weeks
(``--quick``: 2 weeks). ``python scripts/bench_hvac_control.py [--quick] [--episodes N] [--runs RUN ...]``
writes results/bench_hvac_control.json.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from benchlib import run_jobs, save_results, study_args, table
from rich.console import Console

#: plant -> (env id, env kwargs, controllers)
PLANTS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "HVAC-v0": ("smoothrl/HVAC-v0", {}, ("thermostat", "pi", "mpc-oracle", "mpc-realistic")),
    "HVACDiscrete-v0": ("smoothrl/HVACDiscrete-v0", {}, ("thermostat", "mpc-oracle", "mpc-realistic")),
    "HVACMultiZone-v0": ("smoothrl/HVACMultiZone-v0", {}, ("thermostat", "pi", "mpc-oracle", "mpc-realistic")),
    "EPlus-v0": ("smoothrl/EPlus-v0", {}, ("thermostat", "pi", "mpc-realistic")),
}
KEYS = (
    "mean_return",
    "tdis_tot",
    "ener_tot",
    "cost_tot",
    "switches_per_day",
    "jerk_rms",
    "ms_per_decision",
    "ms_per_solve",
    "episode_returns",
    "episode_start_days",
    "tuned",
)
SEED = 10_000


@dataclass(frozen=True)
class Evaluation:
    key: tuple
    plant: str
    controller: str
    episodes: int
    run: str | None = None


def evaluate_one(job: Evaluation) -> dict[str, Any]:
    """One controller (or run) on one plant's test weeks."""
    from smoothrl.run.evaluation import evaluate, evaluate_controller

    env_id, kwargs, _ = PLANTS[job.plant]
    if job.run is not None:
        summary, _ = evaluate(job.run, episodes=job.episodes, seed=SEED)
    else:
        summary, _ = evaluate_controller(job.controller, env_id, kwargs, job.episodes, SEED)
    return {k: summary[k] for k in KEYS if k in summary}


def _runs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="*", default=[], help="trained run directories to put beside them")
    parser.add_argument("--plants", nargs="*", default=list(PLANTS), choices=list(PLANTS), help="plants to run")


def main() -> None:
    args = study_args(
        __doc__, "bench_hvac_control", episodes=(13, 2), workers=2, quick="2 test weeks per plant", extra=_runs
    )
    console = Console(width=200)
    jobs = [Evaluation((plant, name), plant, name, args.episodes) for plant in args.plants for name in PLANTS[plant][2]]
    if args.runs:
        from smoothrl.run.build import read_config

        by_env = {env_id: plant for plant, (env_id, _, _) in PLANTS.items()}
        for run in args.runs:
            env_id = read_config(run).env
            if env_id in by_env and by_env[env_id] in args.plants:
                jobs.append(Evaluation((by_env[env_id], run), by_env[env_id], run, args.episodes, run))
    jobs.sort(key=lambda j: not j.controller.startswith("mpc"))  # the long ones first
    done = run_jobs(jobs, args.workers, console, fn=evaluate_one, backend=args.backend, address=args.address)
    results: dict[str, dict[str, Any]] = {}
    tables = []
    for plant in args.plants:
        rows = {key[1]: value for key, value in done.items() if key[0] == plant}
        oracle = rows.get("mpc-oracle", {}).get("mean_return")
        rule = next((n for n in ("pi", "thermostat") if n in rows), None)
        for name, row in rows.items():
            if oracle is not None:
                row["oracle_gap"] = (oracle - row["mean_return"]) / abs(oracle)
            if rule is not None and name != rule:
                mine, theirs = row["episode_returns"], rows[rule]["episode_returns"]
                row["weeks_won_vs_" + rule] = int(sum(a > b for a, b in zip(mine, theirs, strict=True)))
        results[plant] = rows
        columns = ["controller", "return", "gap to oracle", f"weeks won vs {rule}", "tdis K h", "kWh/m2",
                   "$/m2", "switches/day", "jerk RMS", "ms/decision"]  # fmt: skip
        tables.append(
            table(
                f"{plant} ({PLANTS[plant][0]}): {args.episodes} distinct test weeks, seed {SEED}",
                columns,
                [
                    [
                        name,
                        f"{r['mean_return']:.3f}",
                        "-" if "oracle_gap" not in r else f"{r['oracle_gap']:.0%}",
                        "-"
                        if name == rule
                        else f"{r.get('weeks_won_vs_' + str(rule), '-')}/{len(r['episode_returns'])}",
                        f"{r['tdis_tot']:.3g}",
                        f"{r['ener_tot']:.3g}",
                        f"{r['cost_tot']:.3g}",
                        f"{r['switches_per_day']:.3g}",
                        f"{r['jerk_rms']:.3g}",
                        f"{r.get('ms_per_decision', float('nan')):.3g}",
                    ]
                    for name, r in rows.items()
                ],
            )
        )
    command = "python scripts/bench_hvac_control.py" + (" --quick" if args.quick else "")
    settings = {"command": command, "episodes": args.episodes, "seed": SEED, "runs": args.runs}
    save_results({"settings": settings, "results": results}, args.out, tables, console)


if __name__ == "__main__":
    main()
