"""Year-long profiles at the control step: occupancy, internal gains, comfort band, price."""

from __future__ import annotations

import numpy as np

from smoothrl.envs.hvac.spec import HVACSpec


def calendar(n_steps: int, step_minutes: int, start_weekday: int) -> dict[str, np.ndarray]:
    """
    :param n_steps: steps in the year
    :param step_minutes: control step
    :param start_weekday: weekday of January 1st (0 = Monday)
    :return: ``hour`` (0..24, float), ``day`` (day of year from 0), ``weekday`` (0 = Monday)
    """
    minutes = np.arange(n_steps) * step_minutes
    day = minutes // (24 * 60)
    return {"hour": (minutes % (24 * 60)) / 60.0, "day": day, "weekday": (start_weekday + day) % 7}


def _in_hours(hour: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    return (hour >= window[0]) & (hour < window[1])


def occupancy(spec: HVACSpec, cal: dict[str, np.ndarray]) -> np.ndarray:
    """
    :param spec: the HVAC spec
    :param cal: from :func:`calendar`
    :return: 1.0 where the building is occupied, else 0.0
    """
    weekend = cal["weekday"] >= 5
    if spec.schedule.kind == "office":
        occupied = ~weekend & _in_hours(cal["hour"], spec.schedule.occupied_hours)
    else:
        occupied = weekend | ~_in_hours(cal["hour"], spec.schedule.away_hours)
    return occupied.astype(np.float64)


def price(spec: HVACSpec, cal: dict[str, np.ndarray], t_out: np.ndarray) -> np.ndarray:
    """
    Electricity price at each step ($/kWh); see :class:`~smoothrl.envs.hvac.spec.TariffSpec`.

    :param spec: the HVAC spec
    :param cal: from :func:`calendar`
    :param t_out: outdoor temperature at each step
    :return: the price
    """
    t = spec.tariff
    hour = cal["hour"]
    weekday = cal["weekday"] < 5
    if t.kind == "constant":
        return np.full(len(hour), t.price)
    if t.kind == "time_of_use":
        p = np.full(len(hour), t.off_peak)
        p = np.where(weekday & _in_hours(hour, t.mid_hours), t.mid, p)
        return np.where(weekday & _in_hours(hour, t.peak_hours), t.peak, p)
    shape = 0.08 * np.exp(-(((hour - 8.0) / 1.5) ** 2)) + 0.15 * np.exp(-(((hour - 18.5) / 2.0) ** 2))
    demand = 0.004 * np.abs(t_out - 15.0)
    return np.maximum(0.03, (0.10 + shape + demand) * np.where(weekday, 1.0, 0.8))


def profiles(spec: HVACSpec, weather: dict[str, np.ndarray], start_weekday: int) -> dict[str, np.ndarray]:
    """
    Everything the simulator reads per step, for the whole year.

    :param spec: the HVAC spec
    :param weather: resampled weather (``Weather.resample``)
    :param start_weekday: weekday of January 1st
    :return: ``hour``, ``weekday``, ``occupied``, ``gains`` (W/m2), ``comfort_low``,
        ``comfort_high`` (degC), ``price`` ($/kWh), and the weather arrays
    """
    n = len(weather["t_out"])
    cal = calendar(n, spec.step_minutes, start_weekday)
    occ = occupancy(spec, cal)
    sched, comfort = spec.schedule, spec.comfort
    return {
        **weather,
        "hour": cal["hour"],
        "weekday": cal["weekday"].astype(np.float64),
        "occupied": occ,
        "gains": np.where(occ > 0, sched.gains_occupied, sched.gains_unoccupied),
        "comfort_low": np.where(occ > 0, comfort.occupied[0], comfort.unoccupied[0]),
        "comfort_high": np.where(occ > 0, comfort.occupied[1], comfort.unoccupied[1]),
        "price": price(spec, cal, weather["t_out"]),
    }
