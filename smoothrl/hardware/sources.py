"""Where each observation channel of a building controller comes from.

A policy trained on the HVAC simulator observes more than sensors: the time of day, the price
and forecasts of the outdoor temperature and price. A profile maps every channel to one source::

    exogenous:                          # what the controller computes itself
      weather: USA_CO_Denver-Aurora-Buckley.AFB.724695_TMY3.epw   # an EPW path (relative to the
                                        # profile) or, with pyenergyplus-lbnl installed, a shipped name;
                                        # absent: the one the artefact bundles (the run's own)
      tariff: {kind: time_of_use}       # smoothrl.building.tariff.TariffSpec; absent: the artefact's
      step_minutes: 15                  # default: the control period
    observation:
      channels:
        - {name: "t_zone[office]", register: 0, unit: degC}   # a float32 input register (two words)
        - {name: occupied, object: "binary-input,8"}  # a BACnet object's present-value (bacnet backend)
        - {name: tod_sin, clock: tod_sin}            # a time feature of the plant's clock
        - {name: t_out_in_3h, weather: t_out, ahead_h: 3}   # the weather file, 3 hours ahead
        - {name: price, tariff: price}               # the tariff now
        - {name: price_in_1h, tariff: price, ahead_h: 1}
        - {name: spare, constant: 0.0}
        - {name: obs_2, joint: pendulum, field: velocity}   # a ROS 2 robot's joint (ros2 backend)
        - {name: obs_7, topic: /smoothrl/observation, index: 7}   # an element of a Float64MultiArray topic

Weather and tariff channels are computed with the simulator's own code
(:class:`smoothrl.building.exogenous.ExogenousYear`), so they equal what the policy saw in
training at the same step of the year.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from smoothrl.building.calendar import TIME_FEATURES, clock, time_features
from smoothrl.errors import SmoothRLError

SOURCES = ("register", "object", "joint", "topic", "clock", "weather", "tariff", "constant")
#: what a ``weather`` channel may name (``ghi_kw``: global horizontal irradiance in kW/m2)
WEATHER_CHANNELS = ("t_out", "ghi_kw")
TARIFF_CHANNELS = ("price",)
SECONDS_PER_DAY = 86_400
#: the BACnet object types whose present-value an ``object`` channel may read (as bacpypes3 spells them)
READABLE_OBJECTS = (
    "analog-input",
    "analog-value",
    "analog-output",
    "binary-input",
    "binary-value",
    "binary-output",
    "multi-state-input",
    "multi-state-value",
    "positive-integer-value",
    "integer-value",
    "large-analog-value",
)
#: what a ``joint`` channel may read of a sensor_msgs/JointState
JOINT_FIELDS = ("position", "velocity", "effort")
#: a ROS 2 topic name (absolute)
TOPIC = re.compile(r"/[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")
#: the largest BACnet object instance (2^22 - 2; 2^22 - 1 is the wildcard)
MAX_INSTANCE = 4_194_302


def check_object_id(value: Any, where: str, types: tuple[str, ...]) -> tuple[str, int]:
    """
    Check a BACnet object identifier as a profile writes it: ``"TYPE,INSTANCE"``.

    :param value: the profile's string, such as ``"analog-input,1"``
    :param where: the key, for messages
    :param types: the object types allowed there
    :return: ``(type, instance)``
    :raises SmoothRLError: naming the key and the form it needs
    """
    parts = value.split(",") if isinstance(value, str) else []
    kind = parts[0].strip() if parts else ""
    instance = parts[1].strip() if len(parts) == 2 else ""
    if kind not in types or not instance.isdigit() or int(instance) > MAX_INSTANCE:
        raise SmoothRLError(
            f"{where} must be an object identifier TYPE,INSTANCE with TYPE one of {', '.join(types)} and "
            f"INSTANCE 0..{MAX_INSTANCE}, got {value!r}"
        )
    return kind, int(instance)


def check_channels(value: Any, where: str) -> list[dict[str, Any]]:
    """
    Check ``observation.channels``: each names exactly one source.

    :param value: the profile's list
    :param where: the profile's file name, for messages
    :return: the channels
    :raises SmoothRLError: naming the channel and what is wrong
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise SmoothRLError(f"{where}: observation.channels must be a list of {{name, {' | '.join(SOURCES)}}}")
    out = []
    for i, channel in enumerate(value):
        at = f"{where}: observation.channels[{i}]"
        sources = [k for k in SOURCES if isinstance(channel, Mapping) and k in channel]
        extra = {
            "weather": {"ahead_h"},
            "tariff": {"ahead_h"},
            "joint": {"field", "encode"},
            "topic": {"index"},
        }.get(sources[0] if sources else "", set())
        if (
            not isinstance(channel, Mapping)
            or len(sources) != 1
            or set(channel) - {"name", "unit", "low", "high", *sources, *extra}
        ):
            raise SmoothRLError(f"{at} must have a name and exactly one of {', '.join(SOURCES)}")
        if not isinstance(channel.get("name"), str) or not channel["name"]:
            raise SmoothRLError(f"{at}.name must be the channel's name, as the policy's manifest lists it")
        if not isinstance(channel.get("unit", ""), str):
            raise SmoothRLError(f"{at}.unit must be a unit such as degC, got {channel['unit']!r}")
        kind, what = sources[0], channel[sources[0]]
        if kind == "register" and (not isinstance(what, int) or isinstance(what, bool) or what < 0):
            raise SmoothRLError(f"{at}.register must be a register address (int >= 0)")
        if kind == "joint" and (not isinstance(what, str) or not what):
            raise SmoothRLError(f"{at}.joint must be a joint's name, as the robot's joint_states lists it")
        if kind == "joint" and channel.get("field") not in JOINT_FIELDS:
            raise SmoothRLError(f"{at}.field must be one of {', '.join(JOINT_FIELDS)}, got {channel.get('field')!r}")
        if kind == "joint" and channel.get("encode", "cos") not in ("cos", "sin"):
            raise SmoothRLError(f"{at}.encode must be cos or sin (a revolute joint's angle), got {channel['encode']!r}")
        if kind == "topic" and (not isinstance(what, str) or not TOPIC.fullmatch(what)):
            raise SmoothRLError(f"{at}.topic must be a ROS 2 topic name such as /robot/state, got {what!r}")
        if kind == "topic" and (
            not isinstance(channel.get("index"), int) or isinstance(channel.get("index"), bool) or channel["index"] < 0
        ):
            raise SmoothRLError(f"{at}.index must be the value's index in the topic's array (int >= 0)")
        if kind == "object":
            kind_, instance = check_object_id(what, f"{at}.object", READABLE_OBJECTS)
            channel = {**channel, "object": f"{kind_},{instance}"}
        allowed = {"clock": TIME_FEATURES, "weather": WEATHER_CHANNELS, "tariff": TARIFF_CHANNELS}.get(kind)
        if allowed is not None and what not in allowed:
            raise SmoothRLError(f"{at}.{kind} must be one of {', '.join(allowed)}, got {what!r}")
        if kind == "constant" and (
            not isinstance(what, int | float) or isinstance(what, bool) or not np.isfinite(what)
        ):
            raise SmoothRLError(f"{at}.constant must be a finite number, got {what!r}")
        bounds = [channel.get(k) for k in ("low", "high")]
        for key, value in zip(("low", "high"), bounds, strict=True):
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value)
            ):
                raise SmoothRLError(f"{at}.{key} must be a finite number (the plausible range), got {value!r}")
        if None not in bounds and bounds[0] >= bounds[1]:
            raise SmoothRLError(f"{at}: low {bounds[0]} must be below high {bounds[1]}")
        ahead = channel.get("ahead_h", 0.0)
        if not isinstance(ahead, int | float) or isinstance(ahead, bool) or not 0 <= ahead <= 8760:
            raise SmoothRLError(f"{at}.ahead_h must be hours ahead (0..8760), got {ahead!r}")
        out.append(dict(channel))
    return out


def check_exogenous(value: Any, channels: list[dict[str, Any]], where: str) -> dict[str, Any]:
    """
    Check the profile's ``exogenous`` section against the channels that need it.

    :param value: the section (``None`` when absent)
    :param channels: the checked ``observation.channels``
    :param where: the profile's file name (relative weather paths are relative to its folder)
    :return: ``{"weather": path or name, "tariff": {...}, "step_minutes": int | None}``, or ``{}``
    :raises SmoothRLError: for a missing or malformed section
    """
    needs = [c["name"] for c in channels if "weather" in c or "tariff" in c]
    if value is None:
        if needs:
            raise SmoothRLError(
                f"{where}: channel {needs[0]!r} is computed from the weather file and tariff; "
                "add exogenous: {weather: FILE.epw, tariff: {kind: ...}}"
            )
        return {}
    if not isinstance(value, Mapping):
        raise SmoothRLError(f"{where}: 'exogenous' must be a mapping of weather, tariff, step_minutes")
    unknown = sorted(set(value) - {"weather", "tariff", "step_minutes"})
    if unknown:
        raise SmoothRLError(f"{where}: unknown key exogenous.{unknown[0]}; allowed: weather, tariff, step_minutes")
    weather = value.get("weather")  # absent: the artefact's own (``smoothrl export`` bundles the run's)
    if weather is not None and (not isinstance(weather, str) or not weather):
        raise SmoothRLError(f"{where}: exogenous.weather must name an EPW file, got {weather!r}")
    if weather is not None:
        path = Path(weather).expanduser()
        beside = Path(where).parent / path
        if not path.is_absolute() and beside.is_file():
            weather = str(beside)
    from pydantic import ValidationError

    from smoothrl.building.tariff import TariffSpec

    tariff = value.get("tariff")  # absent: the artefact's own
    try:
        TariffSpec.model_validate(tariff or {})
    except ValidationError as e:
        error = e.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        raise SmoothRLError(f"{where}: exogenous.tariff{'.' + key if key else ''}: {error['msg']}") from None
    step = value.get("step_minutes")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step <= 0 or (24 * 60) % step != 0):
        raise SmoothRLError(f"{where}: exogenous.step_minutes must divide a day into whole steps, got {step!r}")
    return {"weather": weather, "tariff": None if tariff is None else dict(tariff), "step_minutes": step}


class ChannelSources:
    """
    Builds the policy's observation from register values and the plant's clock.

    :param channels: checked ``observation.channels``
    :param exogenous: checked ``exogenous`` section (``{}``: no weather or tariff channel)
    :param period_s: the control period (the default step of the exogenous year)
    :param weekday_jan1: the weekday of January 1st (0 Monday); ``None``: the weather file's
    :raises SmoothRLError: for an unreadable weather file
    """

    def __init__(
        self,
        channels: list[dict[str, Any]],
        exogenous: Mapping[str, Any],
        period_s: float,
        weekday_jan1: int | None = None,
    ) -> None:
        self.channels = channels
        self.registers = sorted({int(c["register"]) for c in channels if "register" in c})
        self.objects = list(dict.fromkeys(str(c["object"]) for c in channels if "object" in c))
        self.year = None
        if exogenous:
            if exogenous.get("weather") is None:
                raise SmoothRLError(
                    "weather and tariff channels need a weather file: name it in the profile's exogenous.weather, "
                    "or deploy an artefact of an HVAC run (export bundles the run's own)"
                )
            from smoothrl.building.exogenous import ExogenousYear
            from smoothrl.building.tariff import TariffSpec
            from smoothrl.building.weather import read_epw

            step = exogenous.get("step_minutes") or round(period_s / 60)
            self.year = ExogenousYear.build(
                read_epw(exogenous["weather"]), int(step), TariffSpec(**(exogenous.get("tariff") or {}))
            )
        start = self.year.cal["weekday"][0] if self.year is not None else 0
        self.weekday_jan1 = int(start if weekday_jan1 is None else weekday_jan1)

    @property
    def names(self) -> tuple[str, ...]:
        """The channels' names, in the policy's order."""
        return tuple(str(c.get("name", "")) for c in self.channels)

    def observe(self, register_value: Mapping[int | str, float], seconds: float) -> np.ndarray:
        """
        :param register_value: register address (or BACnet object identifier) -> the float it holds
            (every address in :attr:`registers`, every object in :attr:`objects`)
        :param seconds: the plant's clock, seconds since January 1st, 00:00
        :return: the observation
        """
        hour, weekday = clock(seconds, self.weekday_jan1)
        features = time_features(hour, weekday)
        step = int(seconds // (self.year.step_minutes * 60)) if self.year is not None else 0
        obs = np.empty(len(self.channels))
        for i, c in enumerate(self.channels):
            if "register" in c:
                obs[i] = register_value[int(c["register"])]
            elif "object" in c:
                obs[i] = register_value[str(c["object"])]
            elif "clock" in c:
                obs[i] = float(features[c["clock"]])
            elif "weather" in c or "tariff" in c:
                obs[i] = self.year.value(c.get("weather") or c["tariff"], step, float(c.get("ahead_h", 0.0)))  # type: ignore[union-attr]
            else:
                obs[i] = float(c["constant"])
        return obs
