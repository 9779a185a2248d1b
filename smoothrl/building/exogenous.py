"""A year of exogenous observations at the control step: weather, time features and price, now
and ahead (forecasts). The HVAC simulator builds its observation tables from it, and a
building controller computes the same channels from the same weather file and tariff.

Forecasts are perfect (the weather file's own values ``h`` hours ahead, wrapping at the year's
end), as in BOPTEST's forecast interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smoothrl.building.calendar import TIME_FEATURES, calendar, time_features
from smoothrl.building.tariff import TariffSpec, price
from smoothrl.building.weather import Weather

#: channels an :class:`ExogenousYear` holds (a forecast of any of them is ``NAME`` ``h`` hours ahead)
CHANNELS = ("t_out", "ghi_kw", *TIME_FEATURES, "price")


@dataclass(frozen=True)
class ExogenousYear:
    """
    :param step_minutes: the control step
    :param weather: the resampled weather (:meth:`Weather.resample`)
    :param cal: the calendar (:func:`smoothrl.building.calendar.calendar`)
    :param columns: :data:`CHANNELS` -> one value per step of the year
    """

    step_minutes: int
    weather: dict[str, np.ndarray]
    cal: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]

    @classmethod
    def build(cls, weather: Weather, step_minutes: int, tariff: TariffSpec) -> ExogenousYear:
        """
        :param weather: the year's weather
        :param step_minutes: the control step
        :param tariff: the electricity tariff
        :return: the year's tables
        """
        resampled = weather.resample(step_minutes)
        n = len(resampled["t_out"])
        cal = calendar(n, step_minutes, weather.start_weekday)
        columns = {
            "t_out": resampled["t_out"],
            "ghi_kw": resampled["ghi"] / 1000.0,
            **time_features(cal["hour"], cal["weekday"]),
            "price": price(tariff, cal, resampled["t_out"]),
        }
        return cls(step_minutes, resampled, cal, columns)

    @property
    def steps(self) -> int:
        """Steps in the year."""
        return len(self.columns["t_out"])

    def offset(self, hours: float) -> int:
        """:return: the number of steps ``hours`` ahead (rounded, as the simulator's forecasts)"""
        return round(hours * (60 / self.step_minutes))

    def ahead(self, name: str, hours: tuple[float, ...]) -> np.ndarray:
        """
        :param name: one of :data:`CHANNELS`
        :param hours: forecast horizons
        :return: ``(steps, len(hours))``: the value ``h`` hours after each step
        """
        offsets = np.array([self.offset(h) for h in hours], dtype=int)
        ahead = (np.arange(self.steps)[:, None] + offsets[None, :]) % self.steps
        return self.columns[name][ahead]

    def value(self, name: str, step: int, hours: float = 0.0) -> float:
        """
        :param name: one of :data:`CHANNELS`
        :param step: the step of the year (wraps)
        :param hours: how far ahead
        :return: the value ``hours`` after step ``step``
        """
        return float(self.columns[name][(step + self.offset(hours)) % self.steps])
