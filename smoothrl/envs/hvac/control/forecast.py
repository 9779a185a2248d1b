"""Forecasts with the error a weather service has, for the realistic MPC.

Noise model: the outdoor temperature forecast's error is a random walk over the lead time, so
its standard deviation grows as ``t_out_std_24h * sqrt(lead / 24 h)`` (2 K a day ahead: the
order of a day-ahead forecast's error at an airport station); the solar forecast is the true
irradiance times ``(1 + e)``, ``e`` a random walk reaching ``solar_std_24h`` a day ahead,
never below zero. Each re-solve draws a fresh forecast, as a forecast issued at that time.
Prices (a published tariff) and occupancy (the building's schedule) are known.
"""

from __future__ import annotations

import math

import numpy as np

from smoothrl.errors import SmoothRLError


class ForecastError:
    """
    :param t_out_std_24h: std of the outdoor temperature forecast's error a day ahead, K
    :param solar_std_24h: relative std of the solar forecast's error a day ahead
    :param seed: seed of the errors
    """

    def __init__(self, t_out_std_24h: float = 2.0, solar_std_24h: float = 0.3, seed: int = 0) -> None:
        for name, value in (("t_out_std_24h", t_out_std_24h), ("solar_std_24h", solar_std_24h)):
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 20):
                raise SmoothRLError(f"forecast error {name} must be a number in [0, 20], got {value!r}")
        self.t_out_std_24h, self.solar_std_24h = float(t_out_std_24h), float(solar_std_24h)
        self.rng = np.random.default_rng(seed)

    def sample(self, steps: int, step_hours: float) -> tuple[np.ndarray, np.ndarray]:
        """
        :param steps: forecast steps (step 0 is now: no error)
        :param step_hours: hours per step
        :return: the additive outdoor temperature error (K) and the multiplicative solar error, ``(steps,)`` each
        """
        scale = math.sqrt(step_hours / 24.0)
        walks = np.cumsum(self.rng.standard_normal((2, steps)) * scale, axis=1)
        walks -= walks[:, :1]  # no error now
        return self.t_out_std_24h * walks[0], self.solar_std_24h * walks[1]
