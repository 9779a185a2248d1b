"""The settings section of each backend in a controller profile (``sim``, ``udp``, ``modbus``,
``bacnet``, ``ros2``): pydantic models, strict, every number finite and in range, unknown keys
refused. :mod:`smoothrl.hardware.profile` checks a whole profile with them.

Only the standard library and pydantic: it loads on the controller.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smoothrl.checks import MAX_SEED
from smoothrl.errors import SmoothRLError

Port = Annotated[int, Field(ge=1, le=65_535)]
Register = Annotated[int, Field(ge=0, le=65_535)]


class Section(BaseModel):
    """A profile section: strict types, unknown keys refused, read-only once checked."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SimSettings(Section):
    """``sim``: a gymnasium / smoothrl env in its own process."""

    env: str = Field(min_length=1)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    lockstep: bool = True


class UdpSettings(Section):
    """``udp``: the robot bridge's address and the channel counts."""

    host: str = "127.0.0.1"
    port: Port
    bind: str = "127.0.0.1"
    bind_port: Annotated[int, Field(ge=0, le=65_535)] = 0
    observations: Annotated[int, Field(ge=1, le=4096)]
    commands: Annotated[int, Field(ge=1, le=4096)]
    lockstep: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None


class ModbusSettings(Section):
    """``modbus``: the gateway's address and register map (:mod:`smoothrl.hardware.backends.modbus`)."""

    host: str = "127.0.0.1"
    port: Port
    unit: Annotated[int, Field(ge=0, le=255)] = 1
    commands: Annotated[int, Field(ge=1, le=60)]
    lockstep: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 2.0
    connect_timeout_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 10.0
    step_register: Register = 100
    command_register: Register = 0
    sequence_register: Register | None = None
    kpi_register: Register | None = None
    health_register: Register | None = None
    encoding: Literal["float32", "int16"] = "float32"
    word_order: Literal["big", "little"] = "big"
    scale: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 1.0
    weekday_jan1: Annotated[int, Field(ge=0, le=6)] | None = None


def _bacnet_address(value: str, key: str) -> str:
    """``HOST:PORT`` or ``HOST/MASK:PORT`` with an IPv4 host, as bacpypes3 parses it."""
    import ipaddress

    host, _, port = value.rpartition(":")
    address, _, mask = host.partition("/")
    try:
        ipaddress.IPv4Address(address)
        ok = port.isdigit() and 0 <= int(port) <= 65_535 and (not mask or (mask.isdigit() and 0 <= int(mask) <= 32))
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{key} must be an IPv4 address and UDP port, HOST:PORT or HOST/MASK:PORT, got {value!r}")
    return value


def _object(value: Any, types: tuple[str, ...], key: str) -> str:
    from smoothrl.hardware.sources import check_object_id

    try:
        kind, instance = check_object_id(value, key, types)
    except SmoothRLError as e:
        raise ValueError(str(e)) from None
    return f"{kind},{instance}"


#: object types a bacnet command may be written to: commandable ones, with a priority array
COMMANDABLE_OBJECTS = ("analog-output", "analog-value")
#: object types of the plant's step counter, clock and sequence number
COUNTER_OBJECTS = ("positive-integer-value", "integer-value", "analog-value", "large-analog-value")
Instance = Annotated[int, Field(ge=0, le=4_194_302)]


class BacnetCommand(Section):
    """One command channel of the ``bacnet`` backend: the commandable object it is written to."""

    name: str = Field(min_length=1)
    object: str
    unit: str | None = None

    @field_validator("object")
    @classmethod
    def _commandable(cls, value: str) -> str:
        return _object(value, COMMANDABLE_OBJECTS, "object")


class BacnetSettings(Section):
    """``bacnet``: the device, the controller's own BACnet/IP port, the command objects and priority
    (:mod:`smoothrl.hardware.backends.bacnet`)."""

    device: Instance
    address: str | None = None
    local_address: str = "0.0.0.0:47809"
    local_device: Instance = 4_194_000
    priority: Annotated[int, Field(ge=1, le=16)] = 8
    on_stop: Literal["relinquish", "safe_action"] = "relinquish"
    commands: list[BacnetCommand] = Field(min_length=1, max_length=60)
    lockstep: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 2.0
    connect_timeout_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 10.0
    step_object: str | None = None
    clock_object: str | None = None
    finished_object: str | None = None
    sequence_object: str | None = None
    kpi_object: str | None = None
    cov: bool = False
    cov_lifetime_s: Annotated[int, Field(ge=10, le=86_400)] = 300
    weekday_jan1: Annotated[int, Field(ge=0, le=6)] | None = None

    @field_validator("address", "local_address")
    @classmethod
    def _address(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _bacnet_address(value, info.field_name)

    @field_validator("step_object", "clock_object", "sequence_object")
    @classmethod
    def _counter(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _object(value, COUNTER_OBJECTS, info.field_name)

    @field_validator("finished_object")
    @classmethod
    def _flag(cls, value: str | None) -> str | None:
        return None if value is None else _object(value, ("binary-value", "binary-input"), "finished_object")

    @field_validator("kpi_object")
    @classmethod
    def _kpi(cls, value: str | None) -> str | None:
        return None if value is None else _object(value, ("analog-value", "analog-input"), "kpi_object")

    @model_validator(mode="after")
    def _lockstep(self) -> BacnetSettings:
        if self.cov and (self.lockstep or self.step_object is None):
            raise ValueError(
                "cov needs step_object and real time (a value that does not change sends nothing: its age comes "
                "from the step counter's notifications); drop lockstep or cov"
            )
        if self.lockstep and (self.step_object is None or self.sequence_object is None):
            raise ValueError("lockstep needs step_object and sequence_object (the plant steps on each sequence number)")
        names = [c.name for c in self.commands]
        if len(set(names)) != len(names):
            raise ValueError(f"commands name a channel twice: {names}")
        return self


def _topic(value: str, key: str) -> str:
    from smoothrl.hardware.sources import TOPIC

    if not TOPIC.fullmatch(value):
        raise ValueError(f"{key} must be a ROS 2 topic name such as /joint_states, got {value!r}")
    return value


class Ros2Command(Section):
    """One command channel of the ``ros2`` backend: the joint it drives."""

    name: str = Field(min_length=1)
    joint: str = Field(min_length=1)


class Ros2Settings(Section):
    """``ros2``: the domain, the topics and the joints (:mod:`smoothrl.hardware.backends.ros2`)."""

    domain_id: Annotated[int, Field(ge=0, le=232)] = 0
    localhost_only: bool = True
    joint_states: str = "/joint_states"
    state_qos: Literal["best_effort", "reliable"] = "best_effort"
    command_topic: str = "/forward_command_controller/commands"
    controller_joints: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=4096)
    commands: list[Ros2Command] = Field(min_length=1, max_length=4096)
    status_topic: str | None = None
    lockstep: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 2.0
    connect_timeout_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 10.0

    @field_validator("joint_states", "command_topic", "status_topic")
    @classmethod
    def _topics(cls, value: str | None, info: Any) -> str | None:
        return None if value is None else _topic(value, info.field_name)

    @model_validator(mode="after")
    def _joints(self) -> Ros2Settings:
        joints = [c.joint for c in self.commands]
        if len(set(joints)) != len(joints):
            raise ValueError(f"commands drive a joint twice: {joints}")
        if len(set(self.controller_joints)) != len(self.controller_joints):
            raise ValueError(f"controller_joints names a joint twice: {self.controller_joints}")
        if set(joints) != set(self.controller_joints):
            missing = sorted(set(self.controller_joints) - set(joints)) or sorted(
                set(joints) - set(self.controller_joints)
            )
            raise ValueError(
                f"commands and controller_joints must name the same joints (the forward controller takes every one); "
                f"{missing[0]!r} is in one only"
            )
        if self.lockstep and self.status_topic is None:
            raise ValueError("lockstep needs status_topic (smoothrl's bridge reports its step there)")
        return self
