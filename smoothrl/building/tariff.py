"""Electricity tariffs: the price at each step of the year."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class TariffSpec(BaseModel):
    """
    Electricity price ($/kWh).

    ``constant``: ``price``. ``time_of_use``: ``peak`` on weekdays in ``peak_hours``, ``mid`` in
    ``mid_hours``, ``off_peak`` otherwise. ``dynamic``: a synthetic day-ahead-like profile
    (morning and evening peaks, higher when the outdoor temperature is far from 15 degC);
    deterministic, not market data.

    :param kind: tariff type
    :param price: constant price
    :param off_peak: time-of-use off-peak price
    :param mid: time-of-use mid-peak price
    :param peak: time-of-use peak price
    :param mid_hours: [start, end) hours of mid-peak
    :param peak_hours: [start, end) hours of peak
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["constant", "time_of_use", "dynamic"] = "time_of_use"
    price: float = Field(0.15, ge=0)
    off_peak: float = Field(0.12, ge=0)
    mid: float = Field(0.18, ge=0)
    peak: float = Field(0.35, ge=0)
    mid_hours: tuple[float, float] = (7.0, 16.0)
    peak_hours: tuple[float, float] = (16.0, 21.0)


def in_hours(hour: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """:return: whether each ``hour`` is in the ``[start, end)`` window"""
    return (hour >= window[0]) & (hour < window[1])


def price(tariff: TariffSpec, cal: dict[str, np.ndarray], t_out: np.ndarray) -> np.ndarray:
    """
    Electricity price at each step ($/kWh).

    :param tariff: the tariff
    :param cal: ``hour`` and ``weekday`` per step (:func:`smoothrl.building.calendar.calendar`)
    :param t_out: outdoor temperature at each step
    :return: the price
    """
    t = tariff
    hour = cal["hour"]
    weekday = cal["weekday"] < 5
    if t.kind == "constant":
        return np.full(len(hour), t.price)
    if t.kind == "time_of_use":
        p = np.full(len(hour), t.off_peak)
        p = np.where(weekday & in_hours(hour, t.mid_hours), t.mid, p)
        return np.where(weekday & in_hours(hour, t.peak_hours), t.peak, p)
    shape = 0.08 * np.exp(-(((hour - 8.0) / 1.5) ** 2)) + 0.15 * np.exp(-(((hour - 18.5) / 2.0) ** 2))
    demand = 0.004 * np.abs(t_out - 15.0)
    return np.maximum(0.03, (0.10 + shape + demand) * np.where(weekday, 1.0, 0.8))
