"""HVAC env configuration: building, plant, schedules, tariff, comfort (validated with pydantic).

A preset is a YAML file in the top-level ``envs/`` folder; ``gymnasium.make(id, preset=NAME,
**overrides)`` loads it and deep-merges the overrides (a dict value updates a dict field).
Every value is validated here, so a bad one fails with an error naming the field.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smoothrl.building.tariff import TariffSpec
from smoothrl.errors import SmoothRLError
from smoothrl.presets import load_yaml, preset_dir

#: ISO 13790:2008 Table 12, thermal mass classes: (C_m in J/K per m2 floor, A_m in m2 per m2 floor).
ISO13790_MASS = {
    "very_light": (80_000.0, 2.5),
    "light": (110_000.0, 2.5),
    "medium": (165_000.0, 2.5),
    "heavy": (260_000.0, 3.0),
    "very_heavy": (370_000.0, 3.5),
}
#: ISO 13790 heat transfer coefficients (W/m2K): surface-to-air h_is, mass-to-surface h_ms;
#: A_t = 4.5 A_f is the area of all surfaces facing the zone.
H_IS, H_MS, LAMBDA_AT = 3.45, 9.1, 4.5
RHO_C_AIR = 1200.0  # J/(m3 K), volumetric heat capacity of air
FACADE_NAMES = ("south", "east", "north", "west")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneSpec(_Strict):
    """
    One thermal zone: an air node and a thermal-mass node (ISO 13790 5R1C with the surface
    node folded into the air-mass conductance).

    :param name: zone name
    :param floor_area: m2
    :param height: m
    :param ua_opaque: conductance of the opaque envelope to outdoors, W/K (through the mass node)
    :param ua_window: conductance of the glazing, W/K (air node to outdoors)
    :param ach: infiltration and ventilation, air changes per hour
    :param window_area: m2 of glazing on each facade (south, east, north, west)
    :param shgc: solar heat gain coefficient of the glazing
    :param mass_class: ISO 13790 thermal mass class
    :param air_capacity_factor: air node capacity as a multiple of the air's (furniture, fast surfaces)
    :param mass_factor: the mass class's capacity scaled (1: ISO 13790's; a calibration fits it)
    """

    name: str = "zone"
    floor_area: float = Field(gt=0)
    height: float = Field(2.7, gt=0)
    ua_opaque: float = Field(gt=0)
    ua_window: float = Field(ge=0)
    ach: float = Field(0.5, ge=0)
    window_area: dict[Literal["south", "east", "north", "west"], float] = Field(default_factory=dict)
    shgc: float = Field(0.6, ge=0, le=1)
    mass_class: Literal["very_light", "light", "medium", "heavy", "very_heavy"] = "medium"
    air_capacity_factor: float = Field(5.0, gt=0)
    mass_factor: float = Field(1.0, gt=0)

    @property
    def capacity_mass(self) -> float:
        """C_m, J/K."""
        return ISO13790_MASS[self.mass_class][0] * self.floor_area * self.mass_factor

    @property
    def capacity_air(self) -> float:
        """C_a, J/K."""
        return RHO_C_AIR * self.floor_area * self.height * self.air_capacity_factor

    @property
    def h_air_out(self) -> float:
        """Air node to outdoors: glazing + ventilation, W/K."""
        return self.ua_window + RHO_C_AIR * self.ach * self.floor_area * self.height / 3600.0

    @property
    def h_air_mass(self) -> float:
        """Air to mass: H_tr,is and H_tr,ms in series (ISO 13790), W/K."""
        h_is = H_IS * LAMBDA_AT * self.floor_area
        h_ms = H_MS * ISO13790_MASS[self.mass_class][1] * self.floor_area
        return 1.0 / (1.0 / h_is + 1.0 / h_ms)

    @property
    def h_mass_out(self) -> float:
        """Mass to outdoors: H_tr,em = 1 / (1/H_tr,op - 1/H_tr,ms) (ISO 13790 eq. 63), W/K."""
        h_ms = H_MS * ISO13790_MASS[self.mass_class][1] * self.floor_area
        return 1.0 / (1.0 / self.ua_opaque - 1.0 / h_ms)

    @model_validator(mode="after")
    def _opaque_below_mass(self) -> ZoneSpec:
        h_ms = H_MS * ISO13790_MASS[self.mass_class][1] * self.floor_area
        if self.ua_opaque >= h_ms:
            raise ValueError(f"ua_opaque must be below H_tr,ms = {h_ms:.0f} W/K for this mass class and floor area")
        return self


class PlantSpec(_Strict):
    """
    A reversible air-source heat pump per zone, with fan and compressor protection.

    COP is a fraction of the Carnot COP between condensing and evaporating temperatures
    (heating: T_zone + lift_indoor and T_out - lift_outdoor; cooling the other way round),
    clipped to ``[cop_min, cop_max]``. Heating capacity derates linearly below 7 degC outdoors.

    :param heating_capacity: W per zone at 7 degC outdoors
    :param cooling_capacity: W per zone
    :param carnot_efficiency: fraction of the Carnot COP achieved
    :param lift_indoor: K between zone air and the indoor coil
    :param lift_outdoor: K between outdoor air and the outdoor coil
    :param cop_min: lower COP bound
    :param cop_max: upper COP bound
    :param derate_per_k: heating capacity lost per K below 7 degC (fraction)
    :param derate_floor: heating capacity never falls below this fraction
    :param min_modulation: the modulating compressor's lowest running fraction (below: off)
    :param stages: capacity stages of the staged (discrete) variant
    :param fan_power: W per zone at full airflow (fan affinity: proportional to airflow cubed)
    :param min_on_minutes: the compressor, once on, refuses to stop before this
    :param min_off_minutes: the compressor, once off, refuses to start before this
    """

    heating_capacity: float = Field(gt=0)
    cooling_capacity: float = Field(gt=0)
    carnot_efficiency: float = Field(0.45, gt=0, le=1)
    lift_indoor: float = Field(15.0, gt=0)
    lift_outdoor: float = Field(5.0, ge=0)
    cop_min: float = Field(1.0, gt=0)
    cop_max: float = Field(7.0, gt=0)
    derate_per_k: float = Field(0.02, ge=0)
    derate_floor: float = Field(0.4, gt=0, le=1)
    min_modulation: float = Field(0.2, gt=0, lt=1)
    stages: int = Field(1, ge=1, le=4)
    fan_power: float = Field(0.0, ge=0)
    min_on_minutes: float = Field(30.0, ge=0)
    min_off_minutes: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _cop_band(self) -> PlantSpec:
        if self.cop_min >= self.cop_max:
            raise ValueError("cop_min must be below cop_max")
        return self


class ComfortSpec(_Strict):
    """
    Comfort band (degC) by occupancy, as BOPTEST uses.

    :param occupied: [low, high] while occupied
    :param unoccupied: [low, high] otherwise
    """

    occupied: tuple[float, float] = (21.0, 24.0)
    unoccupied: tuple[float, float] = (15.0, 30.0)

    @model_validator(mode="after")
    def _ordered(self) -> ComfortSpec:
        for name in ("occupied", "unoccupied"):
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(f"comfort band {name} is inverted: low {low} must be below high {high}")
        return self


class ScheduleSpec(_Strict):
    """
    Occupancy and internal gains.

    ``office``: occupied on weekdays within ``occupied_hours``. ``residential``: occupied
    outside ``away_hours`` on weekdays and all day at weekends.

    :param kind: schedule type
    :param occupied_hours: office [start, end) hours
    :param away_hours: residential [start, end) hours when nobody is home on weekdays
    :param gains_occupied: internal gains while occupied, W/m2 (people, lights, equipment)
    :param gains_unoccupied: internal gains otherwise, W/m2
    """

    kind: Literal["office", "residential"] = "office"
    occupied_hours: tuple[float, float] = (7.0, 19.0)
    away_hours: tuple[float, float] = (8.0, 17.0)
    gains_occupied: float = Field(20.0, ge=0)
    gains_unoccupied: float = Field(2.0, ge=0)


class HVACSpec(_Strict):
    """
    Everything that defines an HVAC task.

    :param name: preset name
    :param description: what the preset models, with sources
    :param zones: the thermal zones
    :param interzone: conductances between zones: ``[i, j, W/K]`` entries
    :param plant: the heat pumps
    :param schedule: occupancy and internal gains
    :param tariff: electricity price
    :param comfort: comfort bands
    :param weather: EPW name or path (see ``weather.resolve_weather``)
    :param step_minutes: control step, 1 to 60 minutes
    :param episode_days: days per episode, 1 to 7 (an episode stays within one week of its split)
    :param comfort_weight: reward weight of discomfort, $ per K h
    :param forecast_hours: horizons of the forecasts in the observation
    :param forecast: what is forecast in the observation, at each of ``forecast_hours``: ``t_out``
        (outdoor temperature), ``price`` and ``ghi_kw`` (global horizontal irradiance, kW/m2);
        forecasts are the weather file's and the tariff's own values (a deployed controller
        computes them the same way, see :mod:`smoothrl.hardware.sources`)
    :param initial_temperature: [low, high] of the random initial zone temperature, degC
    """

    name: str = "custom"
    description: str = ""
    zones: list[ZoneSpec] = Field(min_length=1)
    interzone: list[tuple[int, int, float]] = Field(default_factory=list)
    plant: PlantSpec
    schedule: ScheduleSpec = ScheduleSpec()
    tariff: TariffSpec = TariffSpec()
    comfort: ComfortSpec = ComfortSpec()
    weather: str = "denver"
    step_minutes: int = Field(15, ge=1, le=60)
    episode_days: int = Field(7, ge=1, le=7)
    comfort_weight: float = Field(1.0, ge=0)
    forecast_hours: tuple[float, ...] = (1.0, 3.0, 6.0)
    forecast: tuple[Literal["t_out", "price", "ghi_kw"], ...] = ("t_out", "price")
    initial_temperature: tuple[float, float] = (18.0, 24.0)

    @property
    def floor_area(self) -> float:
        """Total floor area, m2."""
        return sum(z.floor_area for z in self.zones)

    @model_validator(mode="after")
    def _check(self) -> HVACSpec:
        if 60 % self.step_minutes and self.step_minutes % 60:
            raise ValueError(
                f"step_minutes must divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60), got {self.step_minutes}"
            )
        n = len(self.zones)
        for i, j, h in self.interzone:
            if not (0 <= i < n and 0 <= j < n and i != j):
                raise ValueError(f"interzone entry [{i}, {j}, {h}] must join two different zones among 0..{n - 1}")
            if h < 0 or not math.isfinite(h):
                raise ValueError(f"interzone conductance between zones {i} and {j} must be >= 0, got {h}")
        if any(not 0 < h <= 8760 for h in self.forecast_hours):
            raise ValueError("forecast_hours must be hours ahead in (0, 8760]")
        if len(set(self.forecast)) != len(self.forecast):
            raise ValueError(f"forecast names a series twice: {list(self.forecast)}")
        low, high = self.initial_temperature
        if not low <= high:
            raise ValueError(f"initial_temperature is inverted: {low} > {high}")
        return self


def available_presets() -> list[str]:
    """:return: the HVAC preset names (``envs/*.yaml``)"""
    return sorted(p.stem for p in preset_dir("envs").glob("*.yaml"))


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_spec(preset: str | None, default: str, **overrides: Any) -> HVACSpec:
    """
    Load a preset and apply overrides.

    :param preset: preset name (``envs/<preset>.yaml``); ``None`` for ``default``
    :param default: the env id's default preset
    :param overrides: fields to replace; dict values are merged into dict fields
    :return: the validated spec
    :raises SmoothRLError: for an unknown preset or an invalid value, naming the field
    """
    name = preset or default
    path = preset_dir("envs") / f"{name}.yaml"
    if not path.is_file():
        raise SmoothRLError(f"unknown HVAC preset '{name}'; choose one of: {', '.join(available_presets())}")
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SmoothRLError(f"{path} must hold a mapping of HVAC fields; fix the file")
    data = _merge({"name": name, **data}, overrides)
    try:
        return HVACSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "preset"
        msg = err["msg"].removeprefix("Value error, ")
        raise SmoothRLError(f"HVAC preset '{name}': {where}: {msg} (got {err.get('input')!r})") from None
