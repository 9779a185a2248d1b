"""The ROS 2 messages the ``ros2`` backend exchanges, as DDS types (cyclonedds' IDL classes).

ROS 2 maps ``pkg/msg/Type`` to the DDS type ``pkg::msg::dds_::Type_`` and a topic ``/name`` to
the DDS topic ``rt/name``; these classes carry those names and the fields of the standard
definitions, so their CDR bytes are what a ROS 2 node sends and expects (checked against the
rosbags package's own CDR implementation in the tests):

- ``builtin_interfaces/msg/Time``: ``int32 sec``, ``uint32 nanosec``
- ``std_msgs/msg/Header``: ``Time stamp``, ``string frame_id``
- ``sensor_msgs/msg/JointState``: ``Header header``, ``string[] name``, ``float64[] position``,
  ``float64[] velocity``, ``float64[] effort``
- ``std_msgs/msg/MultiArrayDimension``: ``string label``, ``uint32 size``, ``uint32 stride``
- ``std_msgs/msg/MultiArrayLayout``: ``MultiArrayDimension[] dim``, ``uint32 data_offset``
- ``std_msgs/msg/Float64MultiArray``: ``MultiArrayLayout layout``, ``float64[] data``
"""

# no ``from __future__ import annotations``: cyclonedds reads the field types at class creation
from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float64, int32, sequence, uint32


@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    """``builtin_interfaces/msg/Time``."""

    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    """``std_msgs/msg/Header``."""

    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    """``sensor_msgs/msg/JointState`` (what ros2_control's joint_state_broadcaster publishes)."""

    header: Header = field(default_factory=Header)
    name: sequence[str] = field(default_factory=list)
    position: sequence[float64] = field(default_factory=list)
    velocity: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)


@dataclass
class MultiArrayDimension(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    """``std_msgs/msg/MultiArrayDimension``."""

    label: str = ""
    size: uint32 = 0
    stride: uint32 = 0


@dataclass
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    """``std_msgs/msg/MultiArrayLayout``."""

    dim: sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: uint32 = 0


@dataclass
class Float64MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    """``std_msgs/msg/Float64MultiArray`` (what a forward_command_controller subscribes to)."""

    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: sequence[float64] = field(default_factory=list)


#: the ROS 2 name of each type, as rosbags and ``ros2 topic`` spell it
ROS_NAMES = {
    Time: "builtin_interfaces/msg/Time",
    Header: "std_msgs/msg/Header",
    JointState: "sensor_msgs/msg/JointState",
    MultiArrayDimension: "std_msgs/msg/MultiArrayDimension",
    MultiArrayLayout: "std_msgs/msg/MultiArrayLayout",
    Float64MultiArray: "std_msgs/msg/Float64MultiArray",
}


def dds_topic(name: str) -> str:
    """:param name: a ROS 2 topic (``/joint_states``)
    :return: its DDS topic name (``rt/joint_states``)"""
    return "rt/" + name.lstrip("/")


def array(values: list[float], label: str = "") -> Float64MultiArray:
    """:param values: the data
    :param label: the one dimension's label
    :return: a one-dimensional ``Float64MultiArray``"""
    n = len(values)
    return Float64MultiArray(MultiArrayLayout([MultiArrayDimension(label, n, n)], 0), [float(v) for v in values])
