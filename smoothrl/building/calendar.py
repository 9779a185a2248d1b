"""The year's calendar at the control step, and the time-of-day / day-of-week features."""

from __future__ import annotations

import numpy as np

#: time features of an HVAC observation, in the simulator's order
TIME_FEATURES = ("tod_sin", "tod_cos", "dow_sin", "dow_cos")


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


def time_features(hour: np.ndarray | float, weekday: np.ndarray | float) -> dict[str, np.ndarray]:
    """
    Time of day and day of week as points on the unit circle (a week is one turn of ``dow``).

    :param hour: hour of the day, 0..24
    :param weekday: weekday (0 = Monday)
    :return: :data:`TIME_FEATURES` -> values, shaped like ``hour``
    """
    tod = 2 * np.pi * np.asarray(hour, dtype=np.float64) / 24.0
    dow = 2 * np.pi * (np.asarray(weekday, dtype=np.float64) + np.asarray(hour, dtype=np.float64) / 24.0) / 7.0
    return {"tod_sin": np.sin(tod), "tod_cos": np.cos(tod), "dow_sin": np.sin(dow), "dow_cos": np.cos(dow)}


def clock(seconds: float, weekday_jan1: int) -> tuple[float, int]:
    """
    :param seconds: seconds since January 1st, 00:00
    :param weekday_jan1: the weekday of January 1st (0 = Monday)
    :return: the hour of the day (0..24) and the weekday
    """
    day = int(seconds // 86_400)
    return (seconds % 86_400) / 3600.0, (weekday_jan1 + day) % 7
