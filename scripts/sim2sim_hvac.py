"""Sim-to-sim: PPO trained on the RC model calibrated to EnergyPlus, evaluated on both simulators.

PPO (the ``smoothrl/HVACMultiZone-v0`` preset) trains on the calibrated five-zone office
(``office_5zone_denver_eplus``) without and with the loss-form order-1 action-smoothness term
(weight 1.0, the smooth-control study's best setting); each policy is then evaluated on the 13
test weeks of the RC model and on the same 13 weeks in EnergyPlus (``smoothrl/EPlus-v0``, the
reference small office on the same weather), beside the thermostat baseline run on each. Reported:
return, KPIs and smoothness per simulator, and how much of the RC advantage over the thermostat
survives on EnergyPlus. Budget: 300000 steps per policy, seed 0 (``--quick``: 20000 steps, 2 weeks).
``python scripts/sim2sim_hvac.py [--quick] [--timesteps N] [--seeds N]`` writes results/sim2sim_hvac.json.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import run_jobs, save_results, study_args, table
from rich.console import Console

PRESET = "office_5zone_denver_eplus"
RC, EPLUS = "smoothrl/HVACMultiZone-v0", "smoothrl/EPlus-v0"
KEYS = ("mean_return", "tdis_tot", "ener_tot", "cost_tot", "switches_per_day", "jerk_rms", "continuity_cost")
VARIANTS = {"plain": (), "smooth (order 1, w 1.0)": ("action_reg={order: 1, weight: 1.0}",)}


@dataclass(frozen=True)
class Policy:
    key: tuple
    overrides: tuple[str, ...]
    timesteps: int
    seed: int
    episodes: int
    folder: str


def train_and_evaluate(job: Policy) -> dict[str, Any]:
    """Train on the calibrated RC model, then evaluate on the RC test weeks and on EnergyPlus's."""
    from smoothrl.run.evaluation import evaluate
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train

    config = resolve_config(
        "ppo", RC, None, [f"env_kwargs={{preset: {PRESET}}}", *job.overrides], seed=job.seed, n_timesteps=job.timesteps
    )
    run = train(config, Path(job.folder) / f"{job.key[0].split()[0]}_{job.seed}", progress_bar=False)
    out = {}
    for name, env_id, kwargs in (("rc", None, None), ("eplus", EPLUS, {"preset": PRESET})):
        summary, _ = evaluate(run, episodes=job.episodes, env_id=env_id, env_kwargs=kwargs)
        out[name] = {k: summary[k] for k in KEYS}
    return out


def baselines(episodes: int) -> dict[str, dict[str, float]]:
    from smoothrl.run.build import EVAL_SEED_OFFSET
    from smoothrl.run.evaluation import evaluate_controller

    out = {}
    for name, env_id in (("rc", RC), ("eplus", EPLUS)):
        summary, _ = evaluate_controller("thermostat", env_id, {"preset": PRESET}, episodes, EVAL_SEED_OFFSET)
        out[name] = {k: summary[k] for k in KEYS}
    return out


def main() -> None:
    args = study_args(
        __doc__, "sim2sim_hvac", seeds=(1, 1), timesteps=(300_000, 20_000), episodes=(13, 2), workers=2,
        quick="20000 steps, 2 test weeks",
    )  # fmt: skip
    console = Console()
    with tempfile.TemporaryDirectory(prefix="sim2sim-") as tmp:
        jobs = [
            Policy((label, seed), overrides, args.timesteps, seed, args.episodes, tmp)
            for label, overrides in VARIANTS.items()
            for seed in range(args.seeds)
        ]
        done = run_jobs(jobs, args.workers, console, fn=train_and_evaluate, backend=args.backend, address=args.address)
    thermostat = baselines(args.episodes)
    rows: dict[str, dict[str, dict[str, float]]] = {"thermostat (baseline)": thermostat}
    for label in VARIANTS:
        per_seed = [done[(label, s)] for s in range(args.seeds)]
        rows[label] = {sim: {k: float(np.mean([p[sim][k] for p in per_seed])) for k in KEYS} for sim in ("rc", "eplus")}
    survival = {}
    for label in VARIANTS:
        for key in ("mean_return", "tdis_tot", "cost_tot"):
            gain_rc = rows[label]["rc"][key] - thermostat["rc"][key]
            gain_ep = rows[label]["eplus"][key] - thermostat["eplus"][key]
            survival[f"{label}: {key}"] = {"rc_gain": gain_rc, "eplus_gain": gain_ep,
                                           "kept": gain_ep / gain_rc if gain_rc else None}  # fmt: skip
    shown = table(
        f"PPO trained on {PRESET} ({args.timesteps} steps, {args.seeds} seed(s)), "
        f"{args.episodes} test weeks per simulator",
        ["policy", "sim", *KEYS],
        [[label, sim, *(f"{rows[label][sim][k]:.3g}" for k in KEYS)] for label in rows for sim in ("rc", "eplus")],
    )
    kept = table(
        "what of the RC advantage over the thermostat survives on EnergyPlus",
        ["policy: metric", "gain on RC", "gain on EnergyPlus", "kept"],
        [
            [k, f"{v['rc_gain']:.3g}", f"{v['eplus_gain']:.3g}", "-" if v["kept"] is None else f"{v['kept']:.2f}"]
            for k, v in survival.items()
        ],
    )
    command = "python scripts/sim2sim_hvac.py" + (" --quick" if args.quick else "")
    save_results(
        {
            "settings": {
                "command": command,
                "preset": PRESET,
                "timesteps": args.timesteps,
                "seeds": args.seeds,
                "episodes": args.episodes,
            },  # fmt: skip
            "results": rows,
            "advantage_kept": survival,
        },
        args.out,
        [shown, kept],
        console,
    )


if __name__ == "__main__":
    main()
