"""Controller profiles (``hardware/*.yaml``): what the loop drives and the limits it enforces.

A profile names a backend and its settings, the control period, the checks on observations,
the command limits of the safety filter, the bring-up sequence and the watchdog's thresholds::

    name: sim-pendulum
    backend: sim
    control_period_s: 0.05
    sim: {env: Pendulum-v1, seed: 10000, lockstep: true}
    observation: {max_age_periods: 3, low: [-1, -1, -8], high: [1, 1, 8]}
    command:
      low: [-2.0]
      high: [2.0]
      max_rate: [0.4]          # |a_t - a_{t-1}| per period
      max_jerk: [0.2]          # |a_t - 3a_{t-1} + 3a_{t-2} - a_{t-3}|
      lowpass_alpha: null      # exponential low-pass of the policy's command, 0 < alpha <= 1
      safe_action: hold        # hold, zero, or a vector
      nominal: [0.0]           # where the bring-up ramps to
    bringup: {ramp_s: 0.5, hold_s: 0.25}
    watchdog: {max_overruns: 3, on_estop: stop}   # stop | hold | recover (recover_after_periods: 4)

A building controller's profile also maps each observation channel to its source (a register,
the clock, the weather file, the tariff, a constant) and names the weather file and tariff in
``exogenous`` (:mod:`smoothrl.hardware.sources`).

Only the standard library, numpy, PyYAML and pydantic (the tariff's model): it loads on the
controller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.backend_settings import (
    BacnetSettings,
    ModbusSettings,
    Ros2Settings,
    Section,
    SimSettings,
    UdpSettings,
)
from smoothrl.hardware.sources import check_channels, check_exogenous

ON_ESTOP = ("stop", "hold", "recover")
BACKENDS = ("sim", "udp", "modbus", "bacnet", "ros2")

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, le=86_400, allow_inf_nan=False)]


def _vector(value: Any) -> Any:
    """A number or a flat list of finite numbers -> a list (pydantic checks the numbers)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return value


Vector = Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=1)]


class ObservationSection(Section):
    """``observation``: the checks on every observation, and (modbus) each channel's source."""

    max_age_periods: Positive = 3.0
    low: Vector | None = None
    high: Vector | None = None
    channels: list[Any] | None = None

    _vectors = field_validator("low", "high", mode="before")(_vector)

    @model_validator(mode="after")
    def _ordered(self) -> ObservationSection:
        if self.low is not None and self.high is not None:
            if len(self.low) != len(self.high):
                raise ValueError(f"low has {len(self.low)} values, high {len(self.high)}")
            if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=True)):
                raise ValueError("every low must be below its high")
        return self


class CommandSection(Section):
    """``command``: the safety filter's limits (see :class:`CommandLimits`)."""

    low: Vector | None = None
    high: Vector | None = None
    max_rate: Vector | None = None
    max_jerk: Vector | None = None
    lowpass_alpha: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    safe_action: Literal["hold", "zero"] | Vector = "hold"
    nominal: Vector | None = None

    _vectors = field_validator("low", "high", "max_rate", "max_jerk", "nominal", mode="before")(_vector)

    @field_validator("safe_action", mode="before")
    @classmethod
    def _safe(cls, value: Any) -> Any:
        value = _vector(value)
        finite = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in value
        )
        if value not in ("hold", "zero") and not (finite and value):
            raise ValueError(f"must be hold, zero or a vector of finite numbers, got {value!r}")
        return value

    @model_validator(mode="after")
    def _inside(self) -> CommandSection:
        for name in ("max_rate", "max_jerk"):
            value = getattr(self, name)
            if value is not None and any(v <= 0 for v in value):
                raise ValueError(f"{name} must be positive, got {value}")
        if self.low is not None and self.high is not None:
            if len(self.low) not in (1, len(self.high)) and len(self.high) != 1:
                raise ValueError(f"low has {len(self.low)} values, high {len(self.high)}")
            if np.any(np.asarray(self.low) >= np.asarray(self.high)):
                raise ValueError("low must be below high")
        for name in ("safe_action", "nominal"):
            value = getattr(self, name)
            if isinstance(value, list):
                outside = _outside(np.asarray(value), self.low, self.high)
                if outside:
                    raise ValueError(f"{name} {value} is outside the command bounds [{outside}]")
        return self


def _outside(value: np.ndarray, low: list[float] | None, high: list[float] | None) -> str:
    """``"low, high"`` when ``value`` leaves the bounds (broadcast), else an empty string."""
    try:
        lo = np.broadcast_to(-np.inf if low is None else np.asarray(low), value.shape)
        hi = np.broadcast_to(np.inf if high is None else np.asarray(high), value.shape)
    except ValueError:
        return ""  # sizes that disagree are refused against the policy's action space
    if np.any(value < lo) or np.any(value > hi):
        return f"{low}, {high}"
    return ""


class BringupSection(Section):
    """``bringup``: ramp from the safe command to the nominal one, then hold it."""

    ramp_s: Seconds = 0.0
    hold_s: Seconds = 0.0


class WatchdogSection(Section):
    """``watchdog``: when the emergency stop fires and what follows it."""

    max_overruns: Annotated[int, Field(ge=1, le=1_000_000)] = 3
    on_estop: Literal["stop", "hold", "recover"] = "stop"
    recover_after_periods: Annotated[int, Field(ge=1, le=1_000_000)] = 4


class ProfileModel(Section):
    """A profile file: the backend and its section, the control period and the loop's settings."""

    name: str | None = None
    backend: Literal["sim", "udp", "modbus", "bacnet", "ros2"]
    control_period_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]
    sim: SimSettings | None = None
    udp: UdpSettings | None = None
    modbus: ModbusSettings | None = None
    bacnet: BacnetSettings | None = None
    ros2: Ros2Settings | None = None
    exogenous: Any = None
    observation: ObservationSection = ObservationSection()
    command: CommandSection = CommandSection()
    bringup: BringupSection = BringupSection()
    watchdog: WatchdogSection = WatchdogSection()

    @model_validator(mode="after")
    def _backend_section(self) -> ProfileModel:
        if getattr(self, self.backend) is None:
            example = {"sim": "sim: {env: Pendulum-v1}", "udp": "udp: {port: 9870, observations: 3, commands: 1}"}
            example["bacnet"] = "bacnet: {device: 599, commands: [{name: signal, object: 'analog-value,1'}]}"
            example["ros2"] = "ros2: {controller_joints: [j], commands: [{name: u, joint: j}]}"
            hint = example.get(self.backend, "modbus: {port: 5020, commands: 1}")
            raise ValueError(f"the {self.backend} backend needs its section; add {hint}")
        return self


def _message(error: Any) -> str:
    """One line from pydantic's first error: the key's dotted path and what is wrong."""
    loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "literal[", "list[")))
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown key '{loc}'; check its spelling against the profile's documented keys"
    if error["type"] == "missing":
        return f"the key '{loc}' is missing; add it"
    return f"{loc}: {msg}" if loc else msg


@dataclass(frozen=True)
class CommandLimits:
    """
    The safety filter's settings, per command dimension.

    :param low: lowest command (default: the artefact's action bounds)
    :param high: highest command
    :param max_rate: largest ``|a_t - a_{t-1}|`` per period (``None``: no rate limit)
    :param max_jerk: largest ``|a_t - 3a_{t-1} + 3a_{t-2} - a_{t-3}|`` (``None``: no jerk limit)
    :param lowpass_alpha: exponential low-pass ``y += alpha (x - y)`` on the policy's command
    :param safe_action: ``"hold"`` (the last command), ``"zero"``, or a vector
    :param nominal: the command the bring-up ramps to (default: the middle of the bounds)
    """

    low: np.ndarray | None = None
    high: np.ndarray | None = None
    max_rate: np.ndarray | None = None
    max_jerk: np.ndarray | None = None
    lowpass_alpha: float | None = None
    safe_action: str | np.ndarray = "hold"
    nominal: np.ndarray | None = None


@dataclass(frozen=True)
class HardwareProfile:
    """
    A parsed, checked controller profile.

    :param name: its name
    :param backend: ``sim`` (see :mod:`smoothrl.hardware.backends`)
    :param control_period_s: the loop's period
    :param command: the safety filter's limits
    :param sim: the sim backend's settings (``env``, ``env_kwargs``, ``seed``, ``lockstep``)
    :param modbus: the modbus backend's settings (``host``, ``port``, ``unit``, ``commands``,
        ``lockstep``, ``timeout_s``, ``step_register``, ``command_register``,
        ``sequence_register``, ``weekday_jan1``)
    :param bacnet: the bacnet backend's settings (:class:`BacnetSettings`, defaults filled)
    :param ros2: the ros2 backend's settings (:class:`Ros2Settings`, defaults filled)
    :param obs_channels: where each observation channel comes from (modbus, bacnet, ros2): ``{name, register}``,
        ``{name, clock}``, ``{name, weather, ahead_h}``, ``{name, tariff, ahead_h}`` or
        ``{name, constant}`` (:mod:`smoothrl.hardware.sources`)
    :param exogenous: the weather file and tariff that weather and tariff channels are computed from
    :param udp: the udp backend's settings (``host``, ``port``, ``bind``, ``bind_port``,
        ``observations``, ``commands``, ``lockstep``, ``timeout_s``)
    :param max_age_periods: an observation older than this many periods is stale
    :param obs_low: lowest plausible observation per channel (``None``: unchecked)
    :param obs_high: highest plausible observation per channel
    :param ramp_s: bring-up: seconds to ramp from the safe action to ``nominal``
    :param hold_s: bring-up: seconds to hold ``nominal`` before the policy takes over
    :param max_overruns: consecutive deadline overruns that trigger the emergency stop
    :param on_estop: ``stop`` (end the run after the safe action), ``hold`` (keep writing it
        until re-armed or the run's end) or ``recover`` (keep writing it, reconnecting, and re-arm
        by itself once the fault has cleared for ``recover_after_periods`` periods in a row: the
        bring-up then runs again before the policy takes over)
    :param recover_after_periods: ``recover``: healthy periods (a good observation and a safe
        command written) before the loop re-arms itself
    :param path: the file it came from
    """

    name: str
    backend: str
    control_period_s: float
    command: CommandLimits
    sim: dict[str, Any] = field(default_factory=dict)
    udp: dict[str, Any] = field(default_factory=dict)
    modbus: dict[str, Any] = field(default_factory=dict)
    bacnet: dict[str, Any] = field(default_factory=dict)
    ros2: dict[str, Any] = field(default_factory=dict)
    obs_channels: list[dict[str, Any]] = field(default_factory=list)
    exogenous: dict[str, Any] = field(default_factory=dict)
    max_age_periods: float = 3.0
    obs_low: np.ndarray | None = None
    obs_high: np.ndarray | None = None
    ramp_s: float = 0.0
    hold_s: float = 0.0
    max_overruns: int = 3
    on_estop: str = "stop"
    recover_after_periods: int = 4
    path: str = "<profile>"


def parse_profile(data: Any, where: str = "<profile>") -> HardwareProfile:
    """
    Check and parse a profile's YAML content, whole, before anything acts on it.

    :param data: the loaded YAML
    :param where: its file name, for messages
    :return: the profile
    :raises SmoothRLError: naming the file and the first bad key
    """
    if not isinstance(data, dict):
        raise SmoothRLError(f"{where} is not a hardware profile (a mapping of backend, control_period_s, ...)")
    try:
        model = ProfileModel.model_validate(data)
    except ValidationError as e:
        raise SmoothRLError(f"{where}: {_message(e.errors()[0])}") from None
    channels = check_channels(model.observation.channels, where)
    exogenous = check_exogenous(model.exogenous, channels, where)
    if model.backend in ("modbus", "bacnet", "ros2") and not channels:
        raise SmoothRLError(f"{where}: the {model.backend} backend needs observation.channels (a source per channel)")
    own = {"register": "modbus", "object": "bacnet", "joint": "ros2", "topic": "ros2"}
    for c in channels:
        kind = next(k for k in own if k in c) if any(k in c for k in own) else None
        if kind is not None and own[kind] != model.backend:
            raise SmoothRLError(
                f"{where}: channel {c['name']!r} reads a {kind}, which the {model.backend} backend has not; "
                f"map it to a source of the {model.backend} backend"
            )
        if model.backend == "ros2" and kind is None:
            raise SmoothRLError(f"{where}: channel {c['name']!r} must read a joint or a topic (the ros2 backend)")
    obs, cmd, watchdog = model.observation, model.command, model.watchdog
    obs_low, obs_high = obs.low, obs.high
    if any("low" in c or "high" in c for c in channels):
        if obs_low is not None or obs_high is not None:
            raise SmoothRLError(
                f"{where}: give plausible ranges per channel or as observation.low/high, not both; drop one"
            )
        obs_low = [float(c.get("low", -np.inf)) for c in channels]
        obs_high = [float(c.get("high", np.inf)) for c in channels]

    def array(value: list[float] | None) -> np.ndarray | None:
        return None if value is None else np.asarray(value, dtype=np.float64)

    limits = CommandLimits(
        low=array(cmd.low),
        high=array(cmd.high),
        max_rate=array(cmd.max_rate),
        max_jerk=array(cmd.max_jerk),
        lowpass_alpha=cmd.lowpass_alpha,
        safe_action=cmd.safe_action if isinstance(cmd.safe_action, str) else array(cmd.safe_action),  # type: ignore[arg-type]
        nominal=array(cmd.nominal),
    )

    def settings(section: BaseModel | None) -> dict[str, Any]:
        return {} if section is None else section.model_dump(exclude_unset=True)

    return HardwareProfile(
        name=model.name or Path(where).stem,
        backend=model.backend,
        control_period_s=float(model.control_period_s),
        command=limits,
        sim=settings(model.sim),
        udp=settings(model.udp),
        modbus=settings(model.modbus),
        bacnet={} if model.bacnet is None else model.bacnet.model_dump(),
        ros2={} if model.ros2 is None else model.ros2.model_dump(),
        obs_channels=channels,
        exogenous=exogenous,
        max_age_periods=float(obs.max_age_periods),
        obs_low=array(obs_low),
        obs_high=array(obs_high),
        ramp_s=float(model.bringup.ramp_s),
        hold_s=float(model.bringup.hold_s),
        max_overruns=watchdog.max_overruns,
        recover_after_periods=watchdog.recover_after_periods,
        on_estop=watchdog.on_estop,
        path=where,
    )


def load_profile(path: str | Path) -> HardwareProfile:
    """
    Read a profile file.

    :param path: ``hardware/NAME.yaml``, or a bare ``NAME`` of a shipped profile
    :return: the profile
    :raises SmoothRLError: for a missing or malformed file
    """
    import yaml

    from smoothrl.presets import preset_dir

    path = Path(path)
    if not path.is_file() and path.suffix == "" and not path.parent.name:  # a bare NAME: a shipped profile
        shipped = preset_dir("hardware") / f"{path.name}.yaml"
        if shipped.is_file():
            path = shipped
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SmoothRLError(f"cannot read hardware profile {path}: {e.strerror}; check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SmoothRLError(f"{path} is not valid YAML; fix the file") from None
    return parse_profile(data, str(path))
