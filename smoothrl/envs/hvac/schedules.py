"""Year-long profiles at the control step: occupancy, internal gains and the comfort band (how
the building is used), beside the exogenous year (:mod:`smoothrl.building.exogenous`)."""

from __future__ import annotations

import numpy as np

from smoothrl.building.exogenous import ExogenousYear
from smoothrl.building.tariff import in_hours
from smoothrl.envs.hvac.spec import HVACSpec


def occupancy(spec: HVACSpec, cal: dict[str, np.ndarray]) -> np.ndarray:
    """
    :param spec: the HVAC spec
    :param cal: from :func:`smoothrl.building.calendar.calendar`
    :return: 1.0 where the building is occupied, else 0.0
    """
    weekend = cal["weekday"] >= 5
    if spec.schedule.kind == "office":
        occupied = ~weekend & in_hours(cal["hour"], spec.schedule.occupied_hours)
    else:
        occupied = weekend | ~in_hours(cal["hour"], spec.schedule.away_hours)
    return occupied.astype(np.float64)


def profiles(spec: HVACSpec, year: ExogenousYear) -> dict[str, np.ndarray]:
    """
    Everything the simulator reads per step, for the whole year.

    :param spec: the HVAC spec
    :param year: the exogenous year at the spec's step
    :return: ``hour``, ``weekday``, ``occupied``, ``gains`` (W/m2), ``comfort_low``,
        ``comfort_high`` (degC), ``price`` ($/kWh), and the resampled weather arrays
    """
    cal = year.cal
    occ = occupancy(spec, cal)
    sched, comfort = spec.schedule, spec.comfort
    return {
        **year.weather,
        "hour": cal["hour"],
        "weekday": cal["weekday"].astype(np.float64),
        "occupied": occ,
        "gains": np.where(occ > 0, sched.gains_occupied, sched.gains_unoccupied),
        "comfort_low": np.where(occ > 0, comfort.occupied[0], comfort.unoccupied[0]),
        "comfort_high": np.where(occ > 0, comfort.occupied[1], comfort.unoccupied[1]),
        "price": year.columns["price"],
    }
