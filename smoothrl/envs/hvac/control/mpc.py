"""Economic model predictive control of the HVAC envs, on the RC model, solved with cvxpy.

Every re-solve minimizes, over the horizon, exactly the env's reward terms: energy cost
(price x electric energy) plus ``comfort_weight`` x discomfort (K h outside the band, the
trapezoid over each step, as the env integrates it), subject to the RC network's dynamics
(:class:`~smoothrl.envs.hvac.thermal.ThermalModel`, exactly discretized) and the plant's limits.

How the heat pump is approximated so that the problem stays convex:

- heating and cooling fractions are two variables in ``[0, 1]`` per zone and step, their sum at
  most 1; the heating capacity is derated at each step's (forecast) outdoor temperature;
- the COP at each step is taken at the zone temperature of the previous solve's plan (at the
  measured temperature on the first solve), so the compressor's power is linear in the
  fraction; the fan's cube is replaced by the largest of its tangents at ``FAN_TANGENTS``
  (exact there, at most 3% of the fan's full power under it between), so every re-solve is a
  linear program;
- the lowest running fraction (``min_modulation``, or one stage) and the minimum on/off times
  are not in the problem: the first planned fraction is rounded to the nearest level the plant
  can run (off, ``min_modulation..1``, or a stage), and the plant's own protection holds the
  minimum times; the next solve starts from what actually happened. (Planning the first hour in
  what the plant runs, a mixed-integer program, and carrying the rounding error into the next
  step were both tried on the test weeks: neither did better, and the mixed-integer solves took
  seven times as long.) So that a rounded-off
  fraction does not leave the zone just outside the band, the plan keeps ``band_margin`` K
  inside it (a back-off; the discomfort it prices is counted from the narrowed band). The
  default, 0.5 K, did best of 0.5, 0.8 and 1.1 K for both variants on four training weeks of
  ``smoothrl/HVAC-v0``.

Two variants:

- **oracle** reads the simulator's full state (air and mass temperatures) and its exact
  exogenous inputs (perfect forecasts): the bound every other controller is measured against;
- **realistic** measures only the zone air temperatures and estimates the mass temperatures
  with a Kalman filter on its own RC model (:class:`.estimator.RCKalmanFilter`), forecasts
  weather with a weather service's error (:class:`.forecast.ForecastError`), and may believe
  in another RC model than the plant's (``model_preset``: the calibrated RC model when the
  plant is EnergyPlus). It reads the building's clock (the step of the year), as a building
  controller has a clock.
"""

from __future__ import annotations

import math
import time
from typing import Any

import cvxpy as cp
import numpy as np

from smoothrl.envs.hvac import kernels
from smoothrl.envs.hvac.control.estimator import RCKalmanFilter
from smoothrl.envs.hvac.control.forecast import ForecastError
from smoothrl.envs.hvac.env import ActionCodec
from smoothrl.envs.hvac.simulator import INTERNAL_TO_AIR, SOLAR_TO_AIR, HVACSimulator
from smoothrl.envs.hvac.spec import HVACSpec, load_spec
from smoothrl.errors import SmoothRLError

#: running fractions where the fan's cube is exact in the plan (between them, a tangent just under it)
FAN_TANGENTS = (0.2, 0.4, 0.6, 0.8, 1.0)


class _Plan:
    """The convex program of one building type and horizon, built once (cvxpy parameters)."""

    def __init__(self, sim: HVACSimulator, horizon: int, solver: str) -> None:
        z, n, h = sim.z, 2 * sim.z, horizon
        model = sim.thermal
        self.z, self.h, self.solver = z, h, solver
        self.x0 = cp.Parameter(n)
        self.exo = cp.Parameter((n, h))  # B_d u of the exogenous inputs, per step
        self.cap_heat = cp.Parameter((z, h), nonneg=True)  # W at full heating
        self.w_heat = cp.Parameter((z, h), nonneg=True)  # $ at full heating (compressor)
        self.w_cool = cp.Parameter((z, h), nonneg=True)
        self.w_fan = cp.Parameter((z, h), nonneg=True)  # $ at full airflow
        self.low = cp.Parameter((z, h))
        self.high = cp.Parameter((z, h))
        self.heat = cp.Variable((z, h), nonneg=True)
        self.cool = cp.Variable((z, h), nonneg=True)
        self.x = cp.Variable((n, h + 1))
        start = cp.Variable((z, h), nonneg=True)  # K outside the band at each step's start
        end = cp.Variable((z, h), nonneg=True)  # and at its end
        fan = cp.Variable((z, h), nonneg=True)  # the fan's power as a fraction of its full power
        q = cp.multiply(self.cap_heat, self.heat) - sim.spec.plant.cooling_capacity * self.cool
        air = self.x[:z]
        constraints = [
            self.x[:, 0] == self.x0,
            self.x[:, 1:] == model.ad @ self.x[:, :-1] + model.bd[:, 1 : 1 + z] @ q + self.exo,
            self.heat + self.cool <= 1,
            start >= self.low - air[:, :-1],
            start >= air[:, :-1] - self.high,
            end >= self.low - air[:, 1:],
            end >= air[:, 1:] - self.high,
        ]
        # fan affinity (power ~ airflow cubed) under its tangents: a linear program, exact at the tangent points
        for a in FAN_TANGENTS:
            constraints.append(fan >= 3 * a**2 * (self.heat + self.cool) - 2 * a**3)
        weight = sim.spec.comfort_weight * 0.5 * sim.dt_h
        cost = (
            cp.sum(cp.multiply(self.w_heat, self.heat))
            + cp.sum(cp.multiply(self.w_cool, self.cool))
            + cp.sum(cp.multiply(self.w_fan, fan))
            + weight * (cp.sum(start) + cp.sum(end))
        )
        self.problem = cp.Problem(cp.Minimize(cost), constraints)

    def solve(self) -> tuple[np.ndarray, np.ndarray]:
        """:return: the planned signals ``(Z, H)`` (heating minus cooling) and zone temperatures ``(Z, H + 1)``"""
        try:
            self.problem.solve(solver=self.solver)
        except cp.SolverError as e:
            raise SmoothRLError(
                f"the MPC's solver {self.solver} failed ({e}); pass @set controller.solver=CLARABEL or HIGHS"
            ) from None
        if self.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SmoothRLError(f"the MPC's problem is {self.problem.status}; check the building preset")
        return self.heat.value - self.cool.value, self.x.value[: self.z]


class EconomicMPC:
    """
    Economic MPC with SB3's ``predict``, on the buildings of an HVAC simulator.

    :param sim: the env's simulator (``env.sim``): its clock always, its full state too for the oracle
    :param oracle: perfect state and forecasts (the bound) instead of estimation and forecast errors
    :param horizon_h: prediction horizon, h
    :param resolve_steps: re-solve every this many control steps (between, the plan is followed)
    :param model_preset: the RC preset the realistic MPC believes in (default: the plant's own spec)
    :param forecast_error: the realistic MPC's forecast errors (default: :class:`ForecastError` with ``seed``)
    :param seed: seed of the forecast errors
    :param band_margin: K the plan keeps inside the comfort band (see the module)
    :param solver: a cvxpy solver for linear programs (``CLARABEL`` and ``HIGHS`` ship with cvxpy)
    """

    def __init__(
        self,
        sim: HVACSimulator,
        oracle: bool = True,
        horizon_h: float = 24.0,
        resolve_steps: int = 1,
        model_preset: str | None = None,
        forecast_error: ForecastError | None = None,
        seed: int = 0,
        band_margin: float = 0.5,
        solver: str = "CLARABEL",
    ) -> None:
        if not (isinstance(horizon_h, int | float) and math.isfinite(horizon_h) and 0 < horizon_h <= 168):
            raise SmoothRLError(f"mpc horizon_h must be in (0, 168] hours, got {horizon_h!r}")
        if isinstance(resolve_steps, bool) or not isinstance(resolve_steps, int) or resolve_steps < 1:
            raise SmoothRLError(f"mpc resolve_steps must be an integer >= 1, got {resolve_steps!r}")
        comfort = sim.spec.comfort
        widest = min(comfort.occupied[1] - comfort.occupied[0], comfort.unoccupied[1] - comfort.unoccupied[0]) / 2
        if not (isinstance(band_margin, int | float) and math.isfinite(band_margin) and 0 <= band_margin < widest):
            raise SmoothRLError(f"mpc band_margin must be in [0, {widest:g}) K, got {band_margin!r}")
        self.band_margin = float(band_margin)
        if oracle and model_preset is not None:
            raise SmoothRLError("the oracle MPC uses the plant's own model; model_preset is for the realistic MPC")
        self.sim, self.oracle = sim, oracle
        self.horizon = max(1, round(horizon_h * sim.steps_per_hour))
        self.resolve_steps = resolve_steps
        if oracle:
            self.model = sim
        else:
            spec: HVACSpec = sim.spec if model_preset is None else load_spec(model_preset, model_preset)
            if len(spec.zones) != sim.z or spec.step_minutes != sim.spec.step_minutes:
                raise SmoothRLError(
                    f"the MPC's model {spec.name} has {len(spec.zones)} zones at {spec.step_minutes} min, the plant "
                    f"{sim.z} at {sim.spec.step_minutes} min; give a model_preset of the same building"
                )
            self.model = HVACSimulator(spec, 1, sim.discrete, sim.split)
        self.forecast = None if oracle else (forecast_error or ForecastError(seed=seed))
        self.plan = _Plan(self.model, self.horizon, solver)
        pp = self.model.plant.params
        self.pp = pp
        self.min_fraction = self.model.plant.min_fraction
        self.stages = sim.spec.plant.stages
        self.codec = ActionCodec(sim.z, sim.discrete, self.stages)
        self.filters: list[RCKalmanFilter] = []
        self._plans: list[tuple[np.ndarray, np.ndarray, int] | None] = []
        self._last: list[tuple[int, float] | None] = []
        self.solve_seconds: list[float] = []

    # --- what the controller knows ---------------------------------------------------------

    def _window(self, k: int, steps: int) -> np.ndarray:
        return (k + np.arange(steps)) % self.model.n_year

    def _exogenous(self, k: int, t_out_now: float) -> tuple[np.ndarray, np.ndarray]:
        """:return: the exogenous inputs over the horizon ``(H, 1 + 2Z)`` and the forecast outdoor temperature"""
        m, idx = self.model, self._window(k, self.horizon)
        if self.forecast is None:
            u = m.exo_inputs[idx]
            return u, u[:, 0]
        err_t, err_s = self.forecast.sample(self.horizon, m.dt_h)
        t_out = m.exo_inputs[idx, 0] + err_t
        t_out[0] = t_out_now  # measured
        internal = m.profiles["gains"][idx, None] * m.area[None, :]
        solar = m.solar.T[idx] * np.maximum(1.0 + err_s, 0.0)[:, None]
        u = np.concatenate(
            [
                t_out[:, None],
                INTERNAL_TO_AIR * internal + SOLAR_TO_AIR * solar,
                (1 - INTERNAL_TO_AIR) * internal + (1 - SOLAR_TO_AIR) * solar,
            ],
            axis=1,
        )
        return u, t_out

    def _state(self, b: int, obs: np.ndarray, start: bool) -> np.ndarray:
        """The state the plan starts from: the simulator's (oracle) or the Kalman filter's estimate."""
        z = self.sim.z
        if self.oracle:
            return self.sim.x[b].copy()
        t_air = obs[:z].astype(np.float64)
        kf = self.filters[b]
        last = self._last[b]
        if start or last is None:
            kf.start(t_air)
            return kf.x.copy()
        k_prev, t_out_prev = last
        u = self.model.exo_inputs[k_prev % self.model.n_year].copy()
        u[0] = t_out_prev
        signal = obs[-2 * z : -z].astype(np.float64)  # what the plant delivered over the last step
        cap = kernels.heating_capacity(self.pp, t_out_prev)
        u[1 : 1 + z] += np.where(signal > 0, signal * cap, signal * self.sim.spec.plant.cooling_capacity)
        return kf.update(u, t_air)

    # --- deciding ---------------------------------------------------------------------------

    def _solve(
        self, k: int, x0: np.ndarray, t_out_now: float, guess: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        m, p, z = self.model, self.plan, self.sim.z
        u, t_out = self._exogenous(k, t_out_now)
        band = m.exo_band[self._window(k, self.horizon)]
        t_zone = np.repeat(x0[None, :z], self.horizon, axis=0) if guess is None else guess.T[: self.horizon]
        plant, outdoors = m.plant, t_out[:, None]
        cop_h = plant.cop(np.ones(t_zone.shape, dtype=np.int64), t_zone, outdoors)
        cop_c = plant.cop(-np.ones(t_zone.shape, dtype=np.int64), t_zone, outdoors)
        cap, _ = plant.capacity(t_out)
        money = band[:, 2] * m.dt_h / 1000.0  # $ per W over a step
        p.x0.value = x0
        p.exo.value = m.thermal.bd @ u.T
        p.cap_heat.value = np.repeat(cap[None, :], z, axis=0)
        p.w_heat.value = (money * cap)[None, :] / cop_h.T
        p.w_cool.value = (money * m.spec.plant.cooling_capacity)[None, :] / cop_c.T
        p.w_fan.value = np.repeat((money * m.spec.plant.fan_power)[None, :], z, axis=0)
        p.low.value = np.repeat(band[None, :, 0] + self.band_margin, z, axis=0)
        p.high.value = np.repeat(band[None, :, 1] - self.band_margin, z, axis=0)
        began = time.perf_counter()
        signals, temps = p.solve()
        self.solve_seconds.append(time.perf_counter() - began)
        return signals, temps

    def _round(self, signal: np.ndarray) -> np.ndarray:
        """The nearest level the plant can run: off, ``min_fraction..1`` (modulating) or a stage."""
        size, sign = np.abs(signal), np.sign(signal)
        size = np.clip(size, 0.0, 1.0)
        if self.sim.discrete:
            return sign * np.round(np.clip(size, 0, 1) * self.stages) / self.stages
        low = self.min_fraction
        return sign * np.where(size < low / 2, 0.0, np.clip(size, low, 1.0))

    def predict(
        self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        """
        :param obs: unnormalized observations of the simulator's buildings ``(batch, obs_dim)``
        :param state: unused (SB3's signature)
        :param episode_start: which buildings start an episode
        :param deterministic: unused (the MPC is deterministic given its forecasts)
        :return: the actions, and ``None``
        """
        obs = np.atleast_2d(obs)
        batch, z = len(obs), self.sim.z
        if batch != self.sim.batch:
            raise SmoothRLError(f"the MPC controls the env's {self.sim.batch} buildings, got {batch} observations")
        if len(self._plans) != batch:
            self.filters = [RCKalmanFilter(self.model.thermal) for _ in range(batch)]
            self._plans, self._last = [None] * batch, [None] * batch
            episode_start = np.ones(batch, dtype=bool)
        starts = np.zeros(batch, dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        out = np.zeros((batch, z))
        for b in range(batch):
            k = int(self.sim.k[b])
            t_out_now = float(obs[b, z])
            x0 = self._state(b, obs[b], bool(starts[b]))
            plan = None if starts[b] else self._plans[b]
            if plan is None or plan[2] >= self.resolve_steps:
                guess = None
                if plan is not None:  # the last plan's temperatures from now on, held at its end
                    ahead = plan[1][:, plan[2] :]
                    guess = np.concatenate([ahead, np.repeat(ahead[:, -1:], self.horizon - ahead.shape[1] + 1, 1)], 1)
                signals, temps = self._solve(k, x0, t_out_now, guess)
                plan = (signals, temps, 0)
            out[b] = self._round(plan[0][:, min(plan[2], self.horizon - 1)])
            self._plans[b] = (plan[0], plan[1], plan[2] + 1)
            self._last[b] = (k, t_out_now)
        return self.codec.encode(out), None

    @property
    def ms_per_solve(self) -> float:
        """Mean wall time of a solve so far, ms (``nan`` before the first)."""
        return 1000.0 * float(np.mean(self.solve_seconds)) if self.solve_seconds else float("nan")
