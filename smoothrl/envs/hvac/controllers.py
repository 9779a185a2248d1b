"""Rule-based HVAC baselines, with SB3's ``predict`` signature so every evaluation path runs them.

Both read the zone temperatures and the occupancy from the (unnormalized) observation and
track the comfort band of the env's spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smoothrl.envs.hvac.spec import HVACSpec
from smoothrl.errors import SmoothRLError


class _BandController:
    """Shared parts: the comfort band at the current occupancy, and per-episode state resets."""

    def __init__(self, spec: HVACSpec, discrete: bool) -> None:
        self.spec, self.discrete = spec, discrete
        self.zones = len(spec.zones)
        self.occupied_index = self.zones + 6  # see HVACSimulator.obs_names
        self.stages = spec.plant.stages
        self._state: np.ndarray | None = None

    def band(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        occupied = obs[:, self.occupied_index : self.occupied_index + 1] > 0.5
        c = self.spec.comfort
        return np.where(occupied, c.occupied[0], c.unoccupied[0]), np.where(occupied, c.occupied[1], c.unoccupied[1])

    def _reset_where(self, episode_start: np.ndarray | None, batch: int) -> None:
        if self._state is None or self._state.shape[0] != batch:
            self._state = np.zeros((batch, self.zones))
        if episode_start is not None:
            self._state[np.asarray(episode_start, dtype=bool)] = 0.0

    def _encode(self, signal: np.ndarray) -> np.ndarray:
        """Signals in {-1, 0, 1} (or [-1, 1]) to the env's action format."""
        if not self.discrete:
            return signal.astype(np.float32)
        idx = np.where(signal > 0, self.stages, np.where(signal < 0, 2 * self.stages, 0))
        return idx[:, 0] if self.zones == 1 else idx


class Thermostat(_BandController):
    """
    Bang-bang thermostat with a deadband, per zone: heating starts below ``low + margin`` and
    stops above ``low + margin + deadband``; cooling starts above ``high - margin`` and stops
    below ``high - margin - deadband``. Full capacity (top stage) when on.

    :param spec: the env's spec
    :param discrete: whether the env takes staged (discrete) actions
    :param margin: K inside the comfort band where the thermostat switches on
    :param deadband: hysteresis, K
    """

    def __init__(self, spec: HVACSpec, discrete: bool, margin: float = 0.5, deadband: float = 1.0) -> None:
        super().__init__(spec, discrete)
        self.margin, self.deadband = margin, deadband

    def predict(
        self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        obs = np.atleast_2d(obs)
        self._reset_where(episode_start, len(obs))
        mode = self._state
        t = obs[:, : self.zones]
        low, high = self.band(obs)
        heat_on, heat_off = low + self.margin, low + self.margin + self.deadband
        cool_on, cool_off = high - self.margin, high - self.margin - self.deadband
        mode = np.where(t < heat_on, 1.0, np.where((mode > 0) & (t > heat_off), 0.0, mode))
        mode = np.where(t > cool_on, -1.0, np.where((mode < 0) & (t < cool_off), 0.0, mode))
        self._state = mode
        return self._encode(mode), None


class PIController(_BandController):
    """
    Two PI loops per zone on the modulating heat pump: heating to ``low + margin``, cooling to
    ``high - margin``; the output is heating minus cooling, in ``[-1, 1]``. Anti-windup: the
    integral stops growing while the output is saturated.

    :param spec: the env's spec
    :param discrete: must be ``False`` (the PI controller needs a modulating plant)
    :param kp: proportional gain, 1/K
    :param ki: integral gain, 1/(K h)
    :param margin: K inside the comfort band of each setpoint
    """

    def __init__(self, spec: HVACSpec, discrete: bool, kp: float = 0.5, ki: float = 0.5, margin: float = 0.5) -> None:
        if discrete:
            raise SmoothRLError(
                "the pi controller needs the modulating plant; use --controller thermostat on smoothrl/HVACDiscrete-v0"
            )
        super().__init__(spec, discrete)
        self.kp, self.ki, self.margin = kp, ki, margin
        self.dt_h = spec.step_minutes / 60.0
        self._integral: np.ndarray | None = None

    def predict(
        self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        obs = np.atleast_2d(obs)
        fresh = self._integral is None or self._integral.shape[0] != len(obs)
        if fresh:
            self._integral = np.zeros((len(obs), 2, self.zones))
        if episode_start is not None:
            self._integral[np.asarray(episode_start, dtype=bool)] = 0.0
        t = obs[:, : self.zones]
        low, high = self.band(obs)
        errors = np.stack([low + self.margin - t, t - (high - self.margin)], axis=1)  # heating, cooling
        raw = self.kp * errors + self.ki * self._integral
        out = np.clip(raw, 0.0, 1.0)
        growing = ((out >= 1.0) & (errors > 0)) | ((out <= 0.0) & (errors < 0))
        self._integral = np.where(growing, self._integral, self._integral + errors * self.dt_h)
        self._integral = np.clip(self._integral, -4.0, 4.0)
        return (out[:, 0] - out[:, 1]).astype(np.float32), None


CONTROLLERS = {"thermostat": Thermostat, "pi": PIController}


def make_controller(name: str, spec: HVACSpec, discrete: bool) -> Thermostat | PIController:
    """
    :param name: ``"thermostat"`` or ``"pi"``
    :param spec: the env's spec
    :param discrete: whether the env takes staged actions
    :return: the controller
    :raises SmoothRLError: for an unknown name
    """
    if name not in CONTROLLERS:
        raise SmoothRLError(f"unknown controller '{name}'; choose one of: {', '.join(CONTROLLERS)}")
    return CONTROLLERS[name](spec, discrete)
