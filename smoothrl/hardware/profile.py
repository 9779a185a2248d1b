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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.sources import check_channels, check_exogenous

ON_ESTOP = ("stop", "hold", "recover")


def _vector(value: Any, name: str, where: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        out = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise SmoothRLError(f"{where}: {name} must be a number or a list of numbers, got {value!r}") from None
    if out.ndim != 1 or not np.all(np.isfinite(out)):
        raise SmoothRLError(f"{where}: {name} must be a flat list of finite numbers, got {value!r}")
    return out


def _section(data: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise SmoothRLError(f"{where}: '{key}' must be a mapping, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise SmoothRLError(f"{where}: unknown key {key}.{unknown[0]}; allowed: {', '.join(allowed)}")
    return dict(value)


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
    :param obs_channels: where each observation channel comes from (modbus): ``{name, register}``,
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
    Check and parse a profile's YAML content.

    :param data: the loaded YAML
    :param where: its file name, for messages
    :return: the profile
    :raises SmoothRLError: naming the file and the bad key
    """
    if not isinstance(data, Mapping):
        raise SmoothRLError(f"{where} is not a hardware profile (a mapping of backend, control_period_s, ...)")
    top = (
        "name",
        "backend",
        "control_period_s",
        "sim",
        "udp",
        "modbus",
        "exogenous",
        "observation",
        "command",
        "bringup",
        "watchdog",
    )
    unknown = sorted(set(data) - set(top))
    if unknown:
        raise SmoothRLError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(top)}")
    if "backend" not in data:
        raise SmoothRLError(f"{where}: the key 'backend' is missing; add backend: sim")
    period = data.get("control_period_s")
    if not isinstance(period, int | float) or isinstance(period, bool) or not period > 0:
        raise SmoothRLError(f"{where}: control_period_s must be a positive number of seconds, got {period!r}")
    obs = _section(data, "observation", ("max_age_periods", "low", "high", "channels"), where)
    cmd = _section(
        data, "command", ("low", "high", "max_rate", "max_jerk", "lowpass_alpha", "safe_action", "nominal"), where
    )
    bringup = _section(data, "bringup", ("ramp_s", "hold_s"), where)
    watchdog = _section(data, "watchdog", ("max_overruns", "on_estop", "recover_after_periods"), where)
    sim = _section(data, "sim", ("env", "env_kwargs", "seed", "lockstep"), where)
    udp = _section(
        data, "udp", ("host", "port", "bind", "bind_port", "observations", "commands", "lockstep", "timeout_s"), where
    )
    modbus_keys = ("host", "port", "unit", "commands", "lockstep", "timeout_s", "step_register")
    modbus = _section(data, "modbus", (*modbus_keys, "command_register", "sequence_register", "weekday_jan1"), where)
    channels = check_channels(obs.get("channels"), where)
    exogenous = check_exogenous(data.get("exogenous"), channels, where)
    if data["backend"] == "modbus":
        for key in ("port", "commands"):
            if not isinstance(modbus.get(key), int) or isinstance(modbus.get(key), bool) or modbus[key] < 0:
                raise SmoothRLError(f"{where}: the modbus backend needs modbus.{key}, a non-negative integer")
        if not channels:
            raise SmoothRLError(f"{where}: the modbus backend needs observation.channels (a source per channel)")
    if data["backend"] == "udp":
        for key in ("port", "observations", "commands"):
            if not isinstance(udp.get(key), int) or isinstance(udp.get(key), bool) or udp[key] < 0:
                raise SmoothRLError(f"{where}: the udp backend needs udp.{key}, a non-negative integer")
    safe = cmd.get("safe_action", "hold")
    if not (safe in ("hold", "zero") or isinstance(safe, list | int | float)):
        raise SmoothRLError(f"{where}: command.safe_action must be hold, zero or a vector, got {safe!r}")
    alpha = cmd.get("lowpass_alpha")
    if alpha is not None and not (isinstance(alpha, int | float) and 0 < alpha <= 1):
        raise SmoothRLError(f"{where}: command.lowpass_alpha must be in (0, 1], got {alpha!r}")
    limits = CommandLimits(
        low=_vector(cmd.get("low"), "command.low", where),
        high=_vector(cmd.get("high"), "command.high", where),
        max_rate=_vector(cmd.get("max_rate"), "command.max_rate", where),
        max_jerk=_vector(cmd.get("max_jerk"), "command.max_jerk", where),
        lowpass_alpha=None if alpha is None else float(alpha),
        safe_action=safe if isinstance(safe, str) else _vector(safe, "command.safe_action", where),
        nominal=_vector(cmd.get("nominal"), "command.nominal", where),
    )
    for name in ("max_rate", "max_jerk"):
        value = getattr(limits, name)
        if value is not None and np.any(value <= 0):
            raise SmoothRLError(f"{where}: command.{name} must be positive, got {value.tolist()}")
    if limits.low is not None and limits.high is not None and np.any(limits.low >= limits.high):
        raise SmoothRLError(f"{where}: command.low must be below command.high")
    on_estop = watchdog.get("on_estop", "stop")
    if on_estop not in ON_ESTOP:
        raise SmoothRLError(f"{where}: watchdog.on_estop must be one of {', '.join(ON_ESTOP)}, got {on_estop!r}")
    numbers = {
        "observation.max_age_periods": obs.get("max_age_periods", 3.0),
        "bringup.ramp_s": bringup.get("ramp_s", 0.0),
        "bringup.hold_s": bringup.get("hold_s", 0.0),
        "watchdog.max_overruns": watchdog.get("max_overruns", 3),
        "watchdog.recover_after_periods": watchdog.get("recover_after_periods", 4),
    }
    for key, value in numbers.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise SmoothRLError(f"{where}: {key} must be a non-negative number, got {value!r}")
    recover = numbers["watchdog.recover_after_periods"]
    if not isinstance(recover, int) or recover < 1:
        raise SmoothRLError(f"{where}: watchdog.recover_after_periods must be a whole number >= 1, got {recover!r}")
    if data["backend"] == "sim" and "env" not in sim:
        raise SmoothRLError(f"{where}: the sim backend needs sim.env, e.g. sim: {{env: Pendulum-v1}}")
    return HardwareProfile(
        name=str(data.get("name", Path(where).stem)),
        backend=str(data["backend"]),
        control_period_s=float(period),
        command=limits,
        sim=sim,
        udp=udp,
        modbus=modbus,
        obs_channels=channels,
        exogenous=exogenous,
        max_age_periods=float(numbers["observation.max_age_periods"]),
        obs_low=_vector(obs.get("low"), "observation.low", where),
        obs_high=_vector(obs.get("high"), "observation.high", where),
        ramp_s=float(numbers["bringup.ramp_s"]),
        hold_s=float(numbers["bringup.hold_s"]),
        max_overruns=int(numbers["watchdog.max_overruns"]),
        recover_after_periods=int(numbers["watchdog.recover_after_periods"]),
        on_estop=on_estop,
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
