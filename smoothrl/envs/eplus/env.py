"""``smoothrl/EPlus-v0`` and ``smoothrl/EPlusDiscrete-v0``: the HVAC env's interface on EnergyPlus.

The building is EnergyPlus's (a DOE/ASHRAE reference model shipped by ``pyenergyplus-lbnl``); the
plant, the calendar, the tariff, the comfort band, the observation layout, the reward and the KPIs
are the RC simulator's, from the same preset: a policy trained on ``smoothrl/HVACMultiZone-v0``
(or any 5-zone preset) runs here unchanged. Per step: the plant answers the action (heat-pump
signals with compressor protection), its heat at the step's start temperatures goes into the
EnergyPlus zones for one timestep, and the zone temperatures EnergyPlus computes come back. The
outdoor and exogenous observations come from the same weather file EnergyPlus reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from smoothrl.building.weather import resolve_weather
from smoothrl.envs.eplus.cosim import EnergyPlusRun, prepare_idf
from smoothrl.envs.hvac import kernels
from smoothrl.envs.hvac.env import _build, _observation_space
from smoothrl.envs.hvac.spec import load_spec
from smoothrl.envs.keys import KPI_INFO_KEY, START_DAY_INFO_KEY
from smoothrl.errors import SmoothRLError

DEFAULT_PRESET = "office_5zone_denver"
#: the name field of every ``Zone`` object of an IDF
_ZONE = re.compile(r"^\s*Zone\s*,\s*([^,;!\n]+)", re.M | re.I)
#: the small office's zones, as the RC presets name them, in the DOE reference models' names
SMALL_OFFICE_ZONES = {
    "core": "Core_ZN",
    "south": "Perimeter_ZN_1",
    "east": "Perimeter_ZN_2",
    "north": "Perimeter_ZN_3",
    "west": "Perimeter_ZN_4",
}
#: weather file -> the reference small office of that climate (shipped by pyenergyplus-lbnl)
SMALL_OFFICE_MODELS = {
    "USA_CO_Denver-Aurora-Buckley.AFB.724695_TMY3": "ASHRAE901_OfficeSmall_STD2019_Denver",
    "USA_IL_Chicago-OHare.Intl.AP.725300_TMY3": "RefBldgSmallOfficeNew2004_Chicago",
}


def model_path(name: str) -> Path:
    """
    :param name: a model shipped by pyenergyplus-lbnl (file name without ``.idf``) or an IDF path
    :return: the IDF file
    :raises SmoothRLError: when it does not exist
    """
    path = Path(name)
    if path.suffix.lower() == ".idf":
        if not path.is_file():
            raise SmoothRLError(f"EnergyPlus model {path} not found; give an existing .idf file")
        return path
    import pyenergyplus

    shipped = Path(pyenergyplus.__file__).resolve().parent / "data" / "model"
    candidate = shipped / f"{name}.idf"
    if not candidate.is_file():
        names = sorted(p.stem for p in shipped.glob("*.idf"))
        raise SmoothRLError(f"no EnergyPlus model {name!r}; give an .idf path or one of: {', '.join(names)}")
    return candidate


class EPlusEnv(gym.Env):
    """
    :param preset: an HVAC preset with the model's zones (default ``office_5zone_denver``)
    :param discrete: staged compressors (discrete actions)
    :param split: ``"train"`` or ``"test"`` weeks
    :param in_order: play the split's weeks in order, each once (what evaluation does)
    :param model: the EnergyPlus model (default: the reference small office of the preset's climate)
    :param zone_map: preset zone name -> EnergyPlus zone name (default: the small office's)
    :param render_mode: accepted for gymnasium's API; the env does not render
    :param overrides: HVAC spec fields to replace, as for ``smoothrl/HVAC-v0``
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        preset: str | None = None,
        discrete: bool = False,
        split: str = "train",
        in_order: bool = False,
        model: str | None = None,
        zone_map: dict[str, str] | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.render_mode = render_mode
        spec = load_spec(preset, DEFAULT_PRESET, **overrides)
        self.sim, self.codec = _build(None, discrete, split, 1, spec, {}, in_order)
        self.action_space = self.codec.space
        self.observation_space = _observation_space(self.sim)
        mapping = zone_map or SMALL_OFFICE_ZONES
        missing = [z.name for z in spec.zones if z.name not in mapping]
        if missing:
            raise SmoothRLError(f"zones {missing} of the preset have no EnergyPlus zone; give env_kwargs.zone_map")
        self.eplus_zones = [mapping[z.name] for z in spec.zones]
        weather_name = Path(str(spec.weather)).name.removesuffix(".epw")
        if model is None and weather_name not in SMALL_OFFICE_MODELS:
            raise SmoothRLError(
                f"no reference small office for the weather {weather_name}; give env_kwargs.model (a shipped model "
                f"name or an .idf path) or use a preset on the weather of {', '.join(SMALL_OFFICE_MODELS)}"
            )
        self.model = model_path(model or SMALL_OFFICE_MODELS[weather_name])
        self.idf = self.model.read_text(errors="replace")
        known = {name.strip().upper(): name.strip() for name in _ZONE.findall(self.idf)}
        absent = [z for z in self.eplus_zones if z.upper() not in known]
        if absent:
            raise SmoothRLError(
                f"the EnergyPlus model {self.model.name} has no zone {', '.join(absent)}; its zones are "
                f"{', '.join(known.values())}: fix env_kwargs.zone_map"
            )
        self.weather = resolve_weather(spec.weather)
        self._rngs = [np.random.default_rng()]
        self._run: EnergyPlusRun | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rngs = [np.random.default_rng(seed)]
            self.sim.restart_order()
        self._stop()
        sim = self.sim
        sim.reset(np.ones(1, dtype=bool), self._rngs, (options or {}).get("start_day"))
        day = int(sim.k[0]) // sim.steps_per_day
        weekday = int(sim.year.cal["weekday"][sim.k[0]])
        idf = prepare_idf(self.idf, self.eplus_zones, day, sim.spec.episode_days, weekday, sim.spec.step_minutes)
        self._run = EnergyPlusRun(idf, self.weather, self.eplus_zones)
        t_zone = self._run.first()
        sim.x[0, : sim.z] = t_zone
        sim.x[0, sim.z :] = t_zone
        return sim.observation()[0], {}

    def step(self, action: Any):
        if self._run is None:
            raise SmoothRLError("call reset() before step()")
        sim, plant = self.sim, self.sim.plant
        signal, clipped, _ = self.codec.decode(np.asarray(action)[None, ...])
        k = int(sim.k[0])
        t_out = sim.exo_inputs[k, 0]
        before = plant.signal.copy()
        changes = plant.apply(signal)
        t0 = sim.t_zone[0].copy()
        power = plant.power(t0[None, :], np.array([t_out]))
        t1 = self._run.step(power["heat"][0])
        low, high, price = sim.exo_band[k]
        dev = sum(kernels.band_deviation(low, high, a, b) for a, b in zip(t0, t1, strict=True))
        travel = float(np.abs(plant.signal - before).sum()) / sim.z
        reward, power_kw, cost, discomfort = kernels.account(
            sim.kpi[0],
            dev,
            float(power["electric"].sum()),
            price,
            sim.dt_h,
            sim.spec.comfort_weight,
            float(changes["switched"].sum()),
            float(changes["refused"].sum()),
            travel,
            float(clipped[0]),
        )
        sim.x[0, : sim.z] = t1
        sim.x[0, sim.z :] = t1
        sim.k[0] = (k + 1) % sim.n_year
        sim.t[0] += 1
        truncated = bool(sim.t[0] >= sim.episode_steps)
        info: dict[str, Any] = {
            "power_kw": float(power_kw),
            "cost": float(cost),
            "discomfort_kh": float(discomfort),
            "t_zone": t1.copy(),
        }
        if truncated:
            info[KPI_INFO_KEY] = sim.kpis(0)
            info[START_DAY_INFO_KEY] = int(sim.episode_start_day[0])
            self._stop()
        return sim.observation()[0], float(reward), False, truncated, info

    def _stop(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None

    def close(self) -> None:
        self._stop()
        super().close()
