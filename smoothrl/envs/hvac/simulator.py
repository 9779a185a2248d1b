"""The batched HVAC simulator: many buildings of one type stepped together with numpy.

Both the gymnasium env (a batch of one) and the vector env use it, so they compute the same
thing. Buildings share the spec (and so the discretized thermal model) and differ in their
episode start day and state.
"""

from __future__ import annotations

import numpy as np

from smoothrl.building.calendar import TIME_FEATURES
from smoothrl.building.exogenous import ExogenousYear
from smoothrl.building.weather import read_epw
from smoothrl.envs.hvac import kernels
from smoothrl.envs.hvac.plant import HeatPumps
from smoothrl.envs.hvac.schedules import profiles
from smoothrl.envs.hvac.spec import FACADE_NAMES, HVACSpec
from smoothrl.envs.hvac.thermal import ThermalModel
from smoothrl.errors import SmoothRLError

#: Shares of the gains reaching the air node (the rest reaches the mass node).
INTERNAL_TO_AIR = 0.5
SOLAR_TO_AIR = 0.1
#: Weeks of the weather year are split into train and test: every fourth week is a test week.
TEST_WEEK_EVERY = 4
SPLITS = ("train", "test")


def split_start_days(split: str, episode_days: int) -> np.ndarray:
    """
    Days an episode may start on so that it stays inside one week of its split.

    Weeks 0..51 of the year; week ``w`` is a test week when ``w % 4 == 3`` (13 weeks spread over
    the seasons), a train week otherwise (39 weeks). Train and test days never overlap.

    :param split: ``"train"`` or ``"test"``
    :param episode_days: 1 to 7
    :return: day-of-year indices (0-based)
    """
    weeks = np.arange(52)
    test = weeks % TEST_WEEK_EVERY == TEST_WEEK_EVERY - 1
    chosen = weeks[test] if split == "test" else weeks[~test]
    return (chosen[:, None] * 7 + np.arange(7 - episode_days + 1)[None, :]).ravel()


def spread_order(n: int) -> np.ndarray:
    """
    An order of ``n`` items on a circle in which every prefix is spread out: item 0 first, then
    each next item is the one farthest from those already taken (ties: the earliest). The first
    ``k`` of ``n`` test weeks in this order cover the year's seasons, not one month.

    :param n: number of items
    :return: a permutation of ``range(n)``
    """
    order = [0] if n else []
    dist = np.full(n, np.inf)
    for _ in range(n - 1):
        last = order[-1]
        gap = np.abs(np.arange(n) - last)
        dist = np.minimum(dist, np.minimum(gap, n - gap))
        dist[order] = -1.0
        order.append(int(np.argmax(dist)))
    return np.array(order, dtype=np.int64)


class HVACSimulator:
    """
    ``batch`` buildings described by ``spec``.

    :param spec: the HVAC spec
    :param batch: number of buildings
    :param discrete: staged compressors instead of modulating ones
    :param split: ``"train"`` or ``"test"`` days
    :param in_order: episodes start on the split's days one after the other (in
        :func:`spread_order`, never the same day twice until all have been played), instead of on
        random days; how evaluation plays every controller on the same distinct weeks
    """

    def __init__(
        self, spec: HVACSpec, batch: int, discrete: bool, split: str = "train", in_order: bool = False
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.spec, self.batch, self.discrete, self.split = spec, batch, discrete, split
        self.in_order = in_order
        self.z = len(spec.zones)
        weather = read_epw(spec.weather)
        self.year = ExogenousYear.build(weather, spec.step_minutes, spec.tariff)
        self.profiles = profiles(spec, self.year)
        self.n_year = len(self.profiles["t_out"])
        self.steps_per_day = 24 * 60 // spec.step_minutes
        self.steps_per_hour = 60 / spec.step_minutes
        self.episode_steps = spec.episode_days * self.steps_per_day
        self.dt_h = spec.step_minutes / 60.0
        self.thermal = ThermalModel.from_spec(spec)
        self.plant = HeatPumps(spec.plant, batch, self.z, spec.step_minutes, discrete)
        self.area = np.array([zn.floor_area for zn in spec.zones])
        window = np.array([[zn.window_area.get(f, 0.0) * zn.shgc for f in FACADE_NAMES] for zn in spec.zones])
        self.solar = window @ self.profiles["facade"]  # (Z, n_year) W into each zone
        self.start_days = split_start_days(split, spec.episode_days)
        self.day_order = self.start_days[spread_order(len(self.start_days))]
        self.episodes_started = 0  # episodes started since the last restart_order() (in_order)
        self.episode_start_day = np.zeros(batch, dtype=np.int64)
        self._tables()
        self.x = np.zeros((batch, 2 * self.z))
        self.k = np.zeros(batch, dtype=np.int64)
        self.t = np.zeros(batch, dtype=np.int64)
        self.kpi = np.zeros((batch, 8))  # accumulators, columns kernels.K_*
        self.last_inputs = np.zeros((batch, 1 + 2 * self.z))  # u of the last step
        self._out = {name: np.zeros(batch) for name in ("reward", "power_kw", "cost", "discomfort_kh")}
        self._heat = np.zeros((batch, self.z))
        self.obs_names = self._obs_names()
        self.obs_units = self._obs_units()

    def _tables(self) -> None:
        """Everything exogenous, per step of the year, so a step only indexes rows."""
        p, year = self.profiles, self.year
        hours = tuple(self.spec.forecast_hours)
        now = [year.columns[name] for name in ("t_out", "ghi_kw", *TIME_FEATURES)]
        self.exo_obs = np.concatenate(
            [
                np.stack([*now, p["occupied"], p["price"]], axis=1),
                *(year.ahead(name, hours) for name in self.spec.forecast),
            ],
            axis=1,
        )
        internal = p["gains"][:, None] * self.area[None, :]
        solar = self.solar.T
        self.exo_inputs = np.concatenate(
            [
                p["t_out"][:, None],
                INTERNAL_TO_AIR * internal + SOLAR_TO_AIR * solar,
                (1 - INTERNAL_TO_AIR) * internal + (1 - SOLAR_TO_AIR) * solar,
            ],
            axis=1,
        )  # u without the HVAC heat: (n_year, 1 + 2Z)
        self.exo_band = np.stack([p["comfort_low"], p["comfort_high"], p["price"]], axis=1)

    def _obs_names(self) -> list[str]:
        zones = [zn.name for zn in self.spec.zones]
        return (
            [f"t_zone[{n}]" for n in zones]
            + ["t_out", "ghi_kw", *TIME_FEATURES, "occupied", "price"]
            + [f"{name}_in_{h:g}h" for name in self.spec.forecast for h in self.spec.forecast_hours]
            + [f"hvac_signal[{n}]" for n in zones]
            + [f"hvac_locked[{n}]" for n in zones]
        )

    def _obs_units(self) -> list[str]:
        """The unit of each observation channel, as ``obs_names`` lays them out (``1``: dimensionless)."""
        base = {"t_out": "degC", "ghi_kw": "kW/m2", "occupied": "1", "price": "$/kWh"}
        z = self.z
        forecast = [base[name] for name in self.spec.forecast for _ in self.spec.forecast_hours]
        return (
            ["degC"] * z + ["degC", "kW/m2", *("1" for _ in TIME_FEATURES), "1", "$/kWh"] + forecast + ["1"] * (2 * z)
        )

    @property
    def t_zone(self) -> np.ndarray:
        """Zone air temperatures ``(batch, Z)``."""
        return self.x[:, : self.z]

    @property
    def distinct_episodes(self) -> int:
        """How many distinct episodes the split holds (start days; 13 test weeks for week-long episodes)."""
        return len(self.start_days)

    def restart_order(self) -> None:
        """Start the in-order sequence of days again from its first day (on a reseed)."""
        self.episodes_started = 0

    def reset(self, mask: np.ndarray, rngs: list[np.random.Generator], start_day: int | None = None) -> None:
        """
        Start new episodes in the masked buildings: a random day of the split (the next day of
        ``day_order`` when ``in_order``; or ``start_day``), random initial temperatures (air and
        mass equal), plant off.

        :param mask: ``(batch,)`` bool
        :param rngs: one generator per building
        :param start_day: day of the year (0-based) to start on instead of a random day of the split
        """
        if start_day is not None and not 0 <= start_day <= 365 - self.spec.episode_days:
            raise SmoothRLError(f"start_day must be in 0..{365 - self.spec.episode_days}, got {start_day}")
        low, high = self.spec.initial_temperature
        for i in np.flatnonzero(mask):
            rng = rngs[i]
            if start_day is not None:
                day = start_day
            elif self.in_order:
                day = int(self.day_order[self.episodes_started % len(self.day_order)])
                self.episodes_started += 1
            else:
                day = int(rng.choice(self.start_days))
            self.episode_start_day[i] = day
            self.k[i] = day * self.steps_per_day
            self.x[i] = rng.uniform(low, high)
        self.t[mask] = 0
        self.plant.reset(mask)
        self.kpi[mask] = 0.0

    def observation(self) -> np.ndarray:
        """:return: observations ``(batch, obs_dim)``, float32, laid out as ``obs_names``"""
        plant = self.plant
        return np.concatenate(
            [self.t_zone, self.exo_obs[self.k], plant.signal, plant.locked()], axis=1, dtype=np.float32
        )

    def step(self, request: np.ndarray, clipped: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """
        Advance every building by one control step.

        :param request: HVAC signals ``(batch, Z)`` in ``[-1, 1]``
        :param clipped: ``(batch,)`` how many action entries were clipped into bounds this step
        :return: ``reward`` ``(batch,)``, ``truncated`` ``(batch,)`` and per-step values (``power_kw``,
            ``cost``, ``discomfort_kh``, ``heat`` per zone in W)
        """
        plant, out = self.plant, self._out
        kernels.step(
            self.x,
            self.k,
            np.asarray(request, dtype=np.float64),
            np.asarray(clipped, dtype=np.float64),
            plant.mode,
            plant.level,
            plant.timer,
            plant.signal,
            self.exo_inputs,
            self.exo_band,
            self.thermal.ad,
            self.thermal.bd,
            plant.params,
            self.dt_h,
            self.spec.comfort_weight,
            self.kpi,
            out["reward"],
            out["power_kw"],
            out["cost"],
            out["discomfort_kh"],
            self._heat,
            self.last_inputs,
        )
        self.t += 1
        values = {name: out[name].copy() for name in ("power_kw", "cost", "discomfort_kh")}  # buffers are reused
        values["heat"] = self._heat.copy()
        return out["reward"].copy(), self.t >= self.episode_steps, values

    def kpis(self, i: int) -> dict[str, float]:
        """
        The KPIs of building ``i`` over its episode so far (BOPTEST definitions).

        :param i: building index
        :return: ``tdis_tot`` (K h per zone), ``ener_tot`` (kWh/m2), ``cost_tot`` ($/m2),
            ``pele_tot`` (peak electric power, kW/m2), ``switches_per_day`` (on/off transitions
            per compressor per day), ``min_onoff_violations_requested`` (switches the protection
            refused), ``atvl_tot`` (actuator travel, normalized units), ``actions_clipped``
        """
        kpi, area = self.kpi[i], self.spec.floor_area
        days = max(int(self.t[i]), 1) * self.dt_h / 24.0
        return {
            "tdis_tot": float(kpi[kernels.K_TDIS] / self.z),
            "ener_tot": float(kpi[kernels.K_ENERGY] / area),
            "cost_tot": float(kpi[kernels.K_COST] / area),
            "pele_tot": float(kpi[kernels.K_PEAK] / area),
            "switches_per_day": float(kpi[kernels.K_SWITCHES] / self.z / days),
            "min_onoff_violations_requested": float(kpi[kernels.K_REFUSED]),
            "atvl_tot": float(kpi[kernels.K_ATVL]),
            "actions_clipped": float(kpi[kernels.K_CLIPPED]),
        }
