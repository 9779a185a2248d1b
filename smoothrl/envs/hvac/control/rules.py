"""Rule-based HVAC controllers as a building automation system runs them: a thermostat and a PI
loop per zone, each with an occupancy setback and an adaptive optimal start.

Both read the zone temperatures, the clock and the occupancy from the (unnormalized)
observation and know the building's schedule and comfort band from the env's spec, as a
building management system knows its own. Setpoints:

- occupied: heating to ``low + margin``, cooling to ``high - margin`` of the occupied band;
- unoccupied (setback): heating to ``setback_heat``, cooling to ``setback_cool`` (inside the
  unoccupied band);
- optimal start (ASHRAE 90.1 6.4.3.3.3): the occupied setpoints start early, as soon as the
  hours to the next occupancy fall below ``(setpoint gap) / rate + lead_bias_h``; the rate
  (K/h) adapts after each warm-up or cool-down to the one the zone achieved
  (``rate += adapt * (achieved - rate)``).

The PI gains are derived from the zone's thermal network (:func:`stable_gain`) so that the
loop is stable at the env's step; ``gain`` scales them. :mod:`smoothrl.envs.hvac.control.tuning`
tunes every parameter on the training weeks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smoothrl.checks import Range, check_number
from smoothrl.envs.hvac.control.occupancy import OCCUPIED, clock_from_obs, hours_to_occupancy
from smoothrl.envs.hvac.env import ActionCodec
from smoothrl.envs.hvac.spec import HVACSpec
from smoothrl.envs.hvac.thermal import ThermalModel
from smoothrl.errors import SmoothRLError


def stable_gain(spec: HVACSpec) -> np.ndarray:
    """
    The largest stable proportional gain of each zone's loop at the env's step, 1/K.

    Over one step the zone air answers the heat pump as a first-order lag: the air node's
    conductances ``H`` (to outdoors, to its mass and to the other zones) and capacity ``C_a``
    give ``y' = a y + (1 - a) G u`` with ``a = exp(-dt H / C_a)`` and ``G = Q / H`` (K at full
    output, ``Q`` the heating capacity). Proportional control ``u = -kp y`` puts the closed
    loop's pole at ``a - (1 - a) G kp``, inside the unit circle while
    ``kp < (1 + a) / ((1 - a) G)``. (The mass node is far slower; the integral term handles it.)

    :param spec: the HVAC spec
    :return: the stability limit of each zone, ``(Z,)``
    """
    model = ThermalModel.from_spec(spec)
    z = len(spec.zones)
    conductance = -model.a[np.arange(z), np.arange(z)] * model.capacity[:z]  # H of each air node, W/K
    a = np.exp(-model.dt * conductance / model.capacity[:z])
    g = spec.plant.heating_capacity / conductance
    return (1 + a) / ((1 - a) * g)


class _ScheduledController:
    """
    Setpoints with setback and adaptive optimal start; per-episode state.

    :param spec: the env's spec
    :param discrete: whether the env takes staged (discrete) actions
    :param margin: K inside the occupied band of each setpoint
    :param setback_heat: unoccupied heating setpoint, degC (default: the unoccupied band's low + margin)
    :param setback_cool: unoccupied cooling setpoint, degC (default: the unoccupied band's high - margin)
    :param heat_rate: K/h the zone is expected to warm at during an optimal start
    :param cool_rate: K/h it is expected to cool at during an optimal cool-down
    :param lead_bias_h: hours added to every optimal-start lead
    :param max_lead_h: the longest optimal-start lead, h
    :param adapt: how far each achieved warm-up rate moves the expected rate (0: fixed)
    """

    def __init__(
        self,
        spec: HVACSpec,
        discrete: bool,
        margin: float = 0.5,
        setback_heat: float | None = None,
        setback_cool: float | None = None,
        heat_rate: float = 1.0,
        cool_rate: float = 1.0,
        lead_bias_h: float = 0.0,
        max_lead_h: float = 8.0,
        adapt: float = 0.0,
    ) -> None:
        self.spec, self.discrete = spec, discrete
        self.zones = len(spec.zones)
        self.stages = spec.plant.stages
        self.codec = ActionCodec(self.zones, discrete, self.stages)
        self.dt_h = spec.step_minutes / 60.0
        occ, unocc = spec.comfort.occupied, spec.comfort.unoccupied
        self.margin = _check("margin", margin, 0.0, (occ[1] - occ[0]) / 2)
        heat_default, cool_default = unocc[0] + margin, unocc[1] - margin
        self.setback_heat = _check(
            "setback_heat", heat_default if setback_heat is None else setback_heat, unocc[0], occ[0] + margin
        )
        self.setback_cool = _check(
            "setback_cool", cool_default if setback_cool is None else setback_cool, occ[1] - margin, unocc[1]
        )
        self.heat_rate0 = _check("heat_rate", heat_rate, 0.01, 100.0)
        self.cool_rate0 = _check("cool_rate", cool_rate, 0.01, 100.0)
        self.lead_bias_h = _check("lead_bias_h", lead_bias_h, 0.0, 24.0)
        self.max_lead_h = _check("max_lead_h", max_lead_h, 0.0, 48.0)
        self.adapt = _check("adapt", adapt, 0.0, 1.0)
        self._batch = -1

    def _initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """:return: the per-episode state of ``batch`` buildings (subclasses add theirs)"""
        z = self.zones
        return {
            "heat_rate": np.full((batch, z), self.heat_rate0),  # expected optimal-start rates, K/h
            "cool_rate": np.full((batch, z), self.cool_rate0),
            "recovery": np.zeros((batch, z), dtype=np.int64),  # 1 warming up, -1 cooling down, 0 none
            "recovery_start": np.zeros((batch, z)),  # zone temperature when it began
            "recovery_steps": np.zeros((batch, z)),
            "was_occupied": np.zeros((batch, 1), dtype=bool),
        }

    def _episode_starts(self, batch: int, episode_start: Any) -> None:
        """Reset the state of the buildings that start an episode (all of them on the first call)."""
        if batch != self._batch:
            self._batch, self.state = batch, self._initial_state(batch)
            return
        if episode_start is None:
            return
        starts = np.asarray(episode_start, dtype=bool).reshape(batch)
        if starts.any():
            for key, value in self._initial_state(batch).items():
                self.state[key][starts] = value[starts]

    def setpoints(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """
        The heating and cooling setpoints now, with setback and optimal start (and the adaptation
        of the expected rates at each occupancy start).

        :param obs: unnormalized observations ``(batch, obs_dim)``
        :return: heating and cooling setpoints ``(batch, Z)``
        """
        z = self.zones
        t = obs[:, :z]
        occupied = obs[:, z + OCCUPIED : z + OCCUPIED + 1] > 0.5
        occ = self.spec.comfort.occupied
        heat_occ, cool_occ = occ[0] + self.margin, occ[1] - self.margin
        hour, weekday = clock_from_obs(obs, z)
        ahead = hours_to_occupancy(hour, weekday, self.spec.schedule)[:, None]
        # occupancy starts now: learn the rate the finished warm-up (cool-down) achieved
        arrived = occupied & ~self.state["was_occupied"]
        st = self.state
        recovery = st["recovery"]
        for sign, rates in ((1, st["heat_rate"]), (-1, st["cool_rate"])):
            done = arrived & (recovery == sign) & (st["recovery_steps"] >= 2)
            achieved = sign * (t - st["recovery_start"]) / np.maximum(st["recovery_steps"] * self.dt_h, 1e-9)
            update = done & (achieved > 0)
            rates[update] += self.adapt * (np.clip(achieved, 0.05, 50.0)[update] - rates[update])
        recovery[np.broadcast_to(arrived, recovery.shape)] = 0
        st["was_occupied"] = occupied
        lead_heat = np.minimum(np.maximum(heat_occ - t, 0.0) / st["heat_rate"] + self.lead_bias_h, self.max_lead_h)
        lead_cool = np.minimum(np.maximum(t - cool_occ, 0.0) / st["cool_rate"] + self.lead_bias_h, self.max_lead_h)
        warm = ~occupied & (ahead <= lead_heat) & (t < heat_occ)
        cool = ~occupied & (ahead <= lead_cool) & (t > cool_occ)
        for sign, now in ((1, warm), (-1, cool)):
            begins = now & (recovery != sign)
            recovery[begins] = sign
            st["recovery_start"][begins] = t[begins]
            st["recovery_steps"][begins] = 0.0
        st["recovery_steps"] += (recovery != 0) & ~occupied
        heat_sp = np.where(occupied | (recovery == 1), heat_occ, self.setback_heat)
        cool_sp = np.where(occupied | (recovery == -1), cool_occ, self.setback_cool)
        return heat_sp, cool_sp

    def _signals(self, t: np.ndarray, heat_sp: np.ndarray, cool_sp: np.ndarray) -> np.ndarray:
        """
        :param t: zone temperatures ``(batch, Z)``
        :param heat_sp: heating setpoints now
        :param cool_sp: cooling setpoints now
        :return: the heat-pump signals in ``[-1, 1]`` (and the controller's state updated)
        """
        raise NotImplementedError

    def predict(
        self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        """
        :param obs: unnormalized HVAC observations ``(batch, obs_dim)``
        :param state: unused (SB3's signature)
        :param episode_start: which buildings start an episode (their state is reset)
        :param deterministic: unused (the controller is deterministic)
        :return: the env's actions, and ``None``
        """
        obs = np.atleast_2d(obs)
        self._episode_starts(len(obs), episode_start)
        heat_sp, cool_sp = self.setpoints(obs)
        return self.codec.encode(self._signals(obs[:, : self.zones], heat_sp, cool_sp)), None


class Thermostat(_ScheduledController):
    """
    Bang-bang thermostat with a deadband, per zone: heating starts below the heating setpoint
    and stops ``deadband`` above it; cooling starts above the cooling setpoint and stops
    ``deadband`` below it. Full capacity (top stage) when on. Setpoints as the module says.

    :param spec: the env's spec
    :param discrete: whether the env takes staged (discrete) actions
    :param deadband: hysteresis, K
    :param output: the fraction of capacity it runs at when on (rounded up to a stage on a staged plant)
    :param kwargs: setpoint parameters (see :class:`_ScheduledController`)
    """

    def __init__(
        self, spec: HVACSpec, discrete: bool, deadband: float = 1.0, output: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(spec, discrete, **kwargs)
        self.deadband = _check("deadband", deadband, 0.0, 10.0)
        lowest = 1.0 / spec.plant.stages if discrete else spec.plant.min_modulation
        self.output = _check("output", output, lowest, 1.0)
        if discrete:
            self.output = float(np.ceil(self.output * self.stages - 1e-9)) / self.stages

    def _initial_state(self, batch: int) -> dict[str, np.ndarray]:
        return {**super()._initial_state(batch), "mode": np.zeros((batch, self.zones))}

    def _signals(self, t: np.ndarray, heat_sp: np.ndarray, cool_sp: np.ndarray) -> np.ndarray:
        mode = self.state["mode"]
        mode = np.where(t < heat_sp, 1.0, np.where((mode > 0) & (t > heat_sp + self.deadband), 0.0, mode))
        mode = np.where(t > cool_sp, -1.0, np.where((mode < 0) & (t < cool_sp - self.deadband), 0.0, mode))
        self.state["mode"] = mode
        return mode * self.output


class PIController(_ScheduledController):
    """
    Two PI loops per zone on the modulating heat pump, to the heating and the cooling setpoint;
    the output is heating minus cooling, in ``[-1, 1]``. Gains: ``kp = gain x`` the zone's
    stability limit (:func:`stable_gain`), ``ki = kp / ti_h``. Anti-windup: the integral stops
    growing while the output is saturated.

    :param spec: the env's spec
    :param discrete: must be ``False`` (the PI controller needs a modulating plant)
    :param gain: proportional gain as a fraction of the stability limit, in (0, 1)
    :param ti_h: integral time, h
    :param kwargs: setpoint parameters (see :class:`_ScheduledController`)
    """

    def __init__(self, spec: HVACSpec, discrete: bool, gain: float = 0.5, ti_h: float = 2.0, **kwargs: Any) -> None:
        if discrete:
            raise SmoothRLError(
                "the pi controller needs the modulating plant; use @controller thermostat on a staged (Discrete) env"
            )
        super().__init__(spec, discrete, **kwargs)
        self.gain = _check("gain", gain, 1e-3, 0.999)
        self.ti_h = _check("ti_h", ti_h, 0.05, 100.0)
        self.kp = self.gain * stable_gain(spec)
        self.ki = self.kp / self.ti_h

    def _initial_state(self, batch: int) -> dict[str, np.ndarray]:
        return {**super()._initial_state(batch), "integral": np.zeros((batch, 2, self.zones))}

    def _signals(self, t: np.ndarray, heat_sp: np.ndarray, cool_sp: np.ndarray) -> np.ndarray:
        errors = np.stack([heat_sp - t, t - cool_sp], axis=1)  # heating, cooling
        integral = self.state["integral"]
        raw = self.kp * errors + self.ki * integral
        out = np.clip(raw, 0.0, 1.0)
        growing = ((out >= 1.0) & (errors > 0)) | ((out <= 0.0) & (errors < 0))
        integral = np.where(growing, integral, integral + errors * self.dt_h)
        self.state["integral"] = np.clip(integral, -1.0 / self.ki, 1.0 / self.ki)  # never more than full output
        return out[:, 0] - out[:, 1]


def _check(name: str, value: Any, low: float, high: float) -> float:
    """:return: ``value`` as a float, or a one-line error naming the parameter and its range"""
    return check_number(f"controller parameter {name}", value, Range(low, high))
