"""What a building automation system knows of its own schedule: the time read from an HVAC
observation, and the hours until the building is next occupied (for the optimal start)."""

from __future__ import annotations

import numpy as np

from smoothrl.envs.hvac.spec import ScheduleSpec

#: positions after the zone temperatures in an HVAC observation (see ``HVACSimulator.obs_names``)
TOD_SIN, TOD_COS, DOW_SIN, DOW_COS, OCCUPIED = 2, 3, 4, 5, 6


def clock_from_obs(obs: np.ndarray, zones: int) -> tuple[np.ndarray, np.ndarray]:
    """
    :param obs: unnormalized HVAC observations ``(batch, obs_dim)``
    :param zones: zones of the building
    :return: the hour of the day (0..24) and the weekday (0 = Monday) of each observation
    """
    tod = np.arctan2(obs[:, zones + TOD_SIN], obs[:, zones + TOD_COS]) % (2 * np.pi)
    hour = tod * 24.0 / (2 * np.pi)
    dow = np.arctan2(obs[:, zones + DOW_SIN], obs[:, zones + DOW_COS]) % (2 * np.pi)
    weekday = np.round(dow * 7.0 / (2 * np.pi) - hour / 24.0).astype(np.int64) % 7
    return hour, weekday


def hours_to_occupancy(hour: np.ndarray, weekday: np.ndarray, schedule: ScheduleSpec) -> np.ndarray:
    """
    Hours until the next occupied period starts (0 while occupied).

    :param hour: hour of the day, 0..24
    :param weekday: 0 = Monday
    :param schedule: the building's schedule
    :return: hours, shaped like ``hour``
    """
    hour = np.asarray(hour, dtype=np.float64)
    weekday = np.asarray(weekday, dtype=np.int64)
    out = np.full(hour.shape, np.inf)
    if schedule.kind == "office":
        start, end = schedule.occupied_hours
        occupied = (weekday < 5) & (hour >= start) & (hour < end)
        for d in range(8):
            day = (weekday + d) % 7
            ahead = d * 24.0 + start - hour
            ok = (day < 5) & (ahead >= 0) & np.isinf(out)
            out = np.where(ok, ahead, out)
    else:
        start, end = schedule.away_hours
        occupied = (weekday >= 5) | (hour < start) | (hour >= end)
        out = np.where(occupied, 0.0, end - hour)
    return np.where(occupied, 0.0, out)
