"""``smoothrl/PerformativeHVAC-v0``: an office whose occupants respond to the comfort the deployed
thermostat policy gave them.

Response model (documented in the README): during a deployment every copy of the env records,
over the occupied hours, how far the zone air was below the comfort band (cold, K h) and above it
(warm, K h). After the deployment the occupants change their habits for the next one:

- when it was cold they bring portable heaters: an extra internal gain during occupied hours of
  ``HEATER_W_M2 * h`` W/m2 with ``h = min(1, sensitivity * cold_K)``, ``cold_K`` the mean deficit
  over the occupied hours (K);
- when it was warm they lower the blinds: solar gains are cut by ``BLINDS_MAX * b`` with
  ``b = min(1, sensitivity * warm_K)``.

``sensitivity`` (1/K) plays the part of the gridworld's beta: 0 is a non-reactive building, large
values an all-or-nothing response. ``adaptation`` ``w`` in ``(0, 1]`` moves the habits gradually,
``(h, b) <- (1 - w) (h, b) + w (h, b)_target``. The heaters' electricity is the occupants', not the
HVAC plant's: it is not in ``ener_tot``; their heat is in the zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from smoothrl.envs.hvac.env import HVACEnv
from smoothrl.envs.hvac.simulator import INTERNAL_TO_AIR, SOLAR_TO_AIR
from smoothrl.performative.protocol import merge_experience

#: a 750 W heater per 150 m2 of office
HEATER_W_M2 = 5.0
#: the share of the solar gains lowered blinds keep out
BLINDS_MAX = 0.8
#: zone temperature bins (degC) and action bins of the visitation histogram
TEMPERATURE_BINS = np.arange(10.0, 34.0, 1.0)
ACTION_BINS = 10


class PerformativeHVACEnv(HVACEnv):
    """
    The HVAC env (``smoothrl/HVAC-v0``'s building, modulating plant) with reactive occupants.

    :param sensitivity: occupants' response per K of mean discomfort (1/K), >= 0
    :param adaptation: ``w`` in ``(0, 1]``
    :param kwargs: as for :class:`~smoothrl.envs.hvac.env.HVACEnv` (preset, split, overrides)
    """

    def __init__(self, sensitivity: float = 1.0, adaptation: float = 1.0, **kwargs: Any) -> None:
        if not (isinstance(sensitivity, int | float) and np.isfinite(sensitivity) and sensitivity >= 0):
            raise ValueError(f"sensitivity must be a finite number >= 0, got {sensitivity!r}")
        if not (isinstance(adaptation, int | float) and 0 < adaptation <= 1):
            raise ValueError(f"adaptation must be in (0, 1], got {adaptation!r}")
        super().__init__(**kwargs)
        self.sensitivity, self.adaptation = float(sensitivity), float(adaptation)
        sim = self.sim
        self._occupied = sim.profiles["occupied"]
        self._internal = sim.profiles["gains"][:, None] * sim.area[None, :]
        self._solar = sim.solar.T
        self.habits = np.zeros(2)  # heater use h, blinds b
        self._apply()
        self._record = self._empty_record()

    def _empty_record(self) -> dict[str, Any]:
        return {
            "cold_kh": 0.0,
            "warm_kh": 0.0,
            "occupied_h": 0.0,
            "visits": np.zeros((len(TEMPERATURE_BINS) + 1, ACTION_BINS)),
        }

    def _apply(self) -> None:
        """Rebuild the simulator's exogenous inputs for the current habits."""
        sim, (heater, blinds) = self.sim, self.habits
        internal = self._internal + (HEATER_W_M2 * heater * self._occupied)[:, None] * sim.area[None, :]
        solar = self._solar * (1.0 - BLINDS_MAX * blinds)
        z = sim.z
        sim.exo_inputs[:, 1 : 1 + z] = INTERNAL_TO_AIR * internal + SOLAR_TO_AIR * solar
        sim.exo_inputs[:, 1 + z :] = (1 - INTERNAL_TO_AIR) * internal + (1 - SOLAR_TO_AIR) * solar

    def step(self, action: Any):
        k = int(self.sim.k[0])
        obs, reward, terminated, truncated, info = super().step(action)
        low, high, _ = self.sim.exo_band[k]
        if self._occupied[k] > 0:
            t = float(np.mean(self.sim.t_zone[0]))
            dt = self.sim.dt_h
            self._record["cold_kh"] += max(low - t, 0.0) * dt
            self._record["warm_kh"] += max(t - high, 0.0) * dt
            self._record["occupied_h"] += dt
        t_bin = int(np.searchsorted(TEMPERATURE_BINS, float(np.mean(self.sim.t_zone[0]))))
        a_unit = (float(np.clip(np.mean(np.asarray(action, dtype=np.float64)), -1, 1)) + 1) / 2
        self._record["visits"][t_bin, min(int(a_unit * ACTION_BINS), ACTION_BINS - 1)] += 1
        info["occupant_heater_w_m2"] = HEATER_W_M2 * float(self.habits[0])
        info["occupant_blinds"] = BLINDS_MAX * float(self.habits[1])
        return obs, reward, terminated, truncated, info

    # the performative protocol
    def respond(self, policy: Any = None, experience: Sequence[Mapping[str, Any]] | None = None) -> dict[str, float]:
        """
        :param policy: unused: occupants respond to the comfort they had, recorded in ``experience``
        :param experience: the records of every copy during the deployment (default: this copy's)
        :return: the new heater use and blinds, and the mean cold/warm discomfort they respond to
        """
        merged = merge_experience(experience if experience is not None else [self.experience()])
        hours = float(merged.get("occupied_h", 0.0))
        cold = float(merged.get("cold_kh", 0.0)) / hours if hours > 0 else 0.0
        warm = float(merged.get("warm_kh", 0.0)) / hours if hours > 0 else 0.0
        if hours > 0:
            target = np.minimum(1.0, self.sensitivity * np.array([cold, warm]))
            self.set_dynamics((1.0 - self.adaptation) * self.habits + self.adaptation * target)
        else:
            self.set_dynamics(self.habits)
        return {
            "cold_k": cold,
            "warm_k": warm,
            "heater_w_m2": HEATER_W_M2 * float(self.habits[0]),
            "blinds": BLINDS_MAX * float(self.habits[1]),
        }

    def get_dynamics(self) -> np.ndarray:
        """:return: the habits ``(heater use, blinds)`` in ``[0, 1]``"""
        return self.habits.copy()

    def set_dynamics(self, dynamics: Any) -> None:
        """Set the habits and start a new record (a new deployment)."""
        habits = np.asarray(dynamics, dtype=np.float64)
        if habits.shape != (2,) or not np.all((habits >= 0) & (habits <= 1)):
            raise ValueError(f"HVAC occupant habits are two numbers in [0, 1], got {dynamics!r}")
        self.habits = habits.copy()
        self._apply()
        self._record = self._empty_record()

    def experience(self) -> dict[str, Any]:
        """:return: occupied-hours discomfort (K h), occupied hours, and the (temperature, action) visits"""
        return {key: (value.copy() if isinstance(value, np.ndarray) else value) for key, value in self._record.items()}
