"""Fit the RC simulator's five-zone office to EnergyPlus's reference small office in the same climate.

Excitation: both simulators get the same heat-pump signals (per zone, piecewise constant over 3-12
hour blocks: off, heating or cooling at 30-100%, seeded), EnergyPlus through ``smoothrl/EPlus-v0``
(its building, smoothrl's plant), the RC model through ``smoothrl/HVACMultiZone-v0``'s simulator
started from EnergyPlus's temperatures. The RC preset's parameters are scaled by seven factors
(envelope conductance, infiltration, air capacity, thermal mass, internal gains, solar gains,
interzone conductance), fitted with ``scipy.optimize.least_squares`` (trust region, bounds 0.2-5)
on the zone temperatures of two fitting weeks (winter and summer), then checked on a held-out week
(spring) it never saw. Writes the fitted preset to ``envs/<preset>_eplus.yaml`` and
``results/calibrate_rc.json``; ``--quick`` fits on one week with fewer evaluations.
``python scripts/calibrate_rc.py [--quick] [--preset office_5zone_denver]``
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import yaml
from benchlib import save_results, study_args, table
from rich.console import Console
from scipy.optimize import least_squares

from smoothrl.envs.eplus.calibration import HELD_OUT_DAY, eplus_trajectory, excitation, rc_trajectory, rmse
from smoothrl.envs.hvac.spec import HVACSpec, load_spec
from smoothrl.presets import preset_dir

#: (day of year of the week's Monday-ish start, label); fitting weeks, then the held-out one
FIT_WEEKS = ((14, "winter"), (196, "summer"))
HELD_OUT = (HELD_OUT_DAY, "spring")
FACTORS = ("envelope", "infiltration", "air_capacity", "mass", "gains", "solar", "interzone")


def scaled(base: dict, theta: np.ndarray) -> dict:
    """The preset with every fitted factor applied (validated: a physically impossible one fails)."""
    f = dict(zip(FACTORS, theta, strict=True))
    raw = copy.deepcopy(base)
    for zone in raw["zones"]:
        zone["ua_opaque"] *= f["envelope"]
        zone["ua_window"] *= f["envelope"]
        zone["ach"] = zone.get("ach", 0.5) * f["infiltration"]
        zone["air_capacity_factor"] = zone.get("air_capacity_factor", 5.0) * f["air_capacity"]
        zone["shgc"] = min(zone.get("shgc", 0.6) * f["solar"], 1.0)
        zone["mass_factor"] = zone.get("mass_factor", 1.0) * f["mass"]
    raw["interzone"] = [[i, j, w * f["interzone"]] for i, j, w in raw.get("interzone", [])]
    schedule = raw.setdefault("schedule", {})
    schedule["gains_occupied"] = schedule.get("gains_occupied", 20.0) * f["gains"]
    schedule["gains_unoccupied"] = schedule.get("gains_unoccupied", 2.0) * f["gains"]
    return raw


def rc_week(raw: dict, day: int, first: np.ndarray, signals: np.ndarray) -> np.ndarray:
    """The RC model's trajectory for a scaled preset (validated: an impossible one raises)."""
    return rc_trajectory(HVACSpec.model_validate(raw), day, first, signals)


def main() -> None:
    args = study_args(
        __doc__,
        "calibrate_rc",
        quick="one fitting week, at most 40 evaluations",
        extra=lambda p: p.add_argument("--preset", default="office_5zone_denver"),
    )
    console = Console()
    base_spec = load_spec(args.preset, args.preset)
    base = base_spec.model_dump(mode="json")
    steps = base_spec.episode_days * 24 * 60 // base_spec.step_minutes
    weeks = FIT_WEEKS[:1] if args.quick else FIT_WEEKS
    start = time.perf_counter()
    data = {}
    for day, label in (*weeks, HELD_OUT):
        signals = excitation(steps, len(base_spec.zones), seed=day)  # the week's own signals
        data[label] = (day, signals, *eplus_trajectory(args.preset, day, signals))
    eplus_seconds = time.perf_counter() - start

    def residuals(log_theta: np.ndarray) -> np.ndarray:
        raw = scaled(base, np.exp(log_theta))
        try:
            return np.concatenate(
                [(rc_week(raw, d, f, s) - t).ravel() for label, (d, s, f, t) in data.items() if label != HELD_OUT[1]]
            )
        except Exception:  # an impossible parameter set (e.g. a conductance above its mass coupling)
            return np.full(sum(t.size for label, (_, _, _, t) in data.items() if label != HELD_OUT[1]), 50.0)

    x0 = np.zeros(len(FACTORS))
    before = {label: rmse(rc_week(scaled(base, np.exp(x0)), d, f, s), t) for label, (d, s, f, t) in data.items()}
    fit = least_squares(
        residuals, x0, bounds=(np.log(0.2), np.log(5.0)), diff_step=1e-2, max_nfev=40 if args.quick else 150
    )
    theta = np.exp(fit.x)
    raw = scaled(base, theta)
    after = {label: rmse(rc_week(raw, d, f, s), t) for label, (d, s, f, t) in data.items()}
    name = f"{args.preset}_eplus"
    raw["name"] = name
    raw["description"] = (
        f"{args.preset} fitted to EnergyPlus's reference small office on the same weather "
        f"(scripts/calibrate_rc.py: factors {dict(zip(FACTORS, np.round(theta, 3).tolist(), strict=True))}; "
        f"zone-temperature RMSE on the held-out {HELD_OUT[1]} week {after[HELD_OUT[1]]:.2f} K, "
        f"{before[HELD_OUT[1]]:.2f} K before the fit)."
    )
    out = preset_dir("envs") / f"{name}.yaml"
    if not args.quick:
        fitted = HVACSpec.model_validate(raw).model_dump(mode="json", exclude_defaults=True)
        out.write_text(yaml.safe_dump(fitted, sort_keys=False, width=100))
    rows = [[label, f"{before[label]:.2f}", f"{after[label]:.2f}"] for label in data]
    save_results(
        {
            "settings": {
                "command": "python scripts/calibrate_rc.py" + (" --quick" if args.quick else ""),
                "preset": args.preset,
                "fit_weeks": [w[1] for w in weeks],
                "held_out": HELD_OUT[1],
                "evaluations": int(fit.nfev),
                "energyplus_seconds": eplus_seconds,
            },
            "factors": dict(zip(FACTORS, theta.tolist(), strict=True)),
            "rmse_before_K": before,
            "rmse_after_K": after,
            "preset_written": None if args.quick else str(Path("envs") / out.name),
        },
        args.out,
        [table(f"zone-temperature RMSE, RC vs EnergyPlus ({args.preset})", ["week", "before (K)", "fitted (K)"], rows)],
        console,
    )


if __name__ == "__main__":
    main()
