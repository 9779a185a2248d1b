"""The ``ros2`` backend: a ros2_control robot over ROS 2 topics, with no ROS installation on the
controller: DDS through cyclonedds (the RMW of several ROS 2 distributions), ROS 2's own topic
and type names (:mod:`smoothrl.hardware.backends.ros2_messages`)::

    backend: ros2
    ros2:
      domain_id: 42                 # ROS_DOMAIN_ID
      localhost_only: true          # as ROS_LOCALHOST_ONLY=1: discovery and data on 127.0.0.1 only
      joint_states: /joint_states   # sensor_msgs/msg/JointState (joint_state_broadcaster)
      state_qos: best_effort        # sensor data; or reliable
      command_topic: /forward_command_controller/commands   # std_msgs/msg/Float64MultiArray (reliable)
      controller_joints: [bthigh, bshin, bfoot]   # the forward_command_controller's `joints`, in its order
      commands:                     # the policy's action dimensions, in its order, each to a joint by name
        - {name: u0, joint: bthigh}
      status_topic: /smoothrl/status   # optional: smoothrl's bridge reports its step and episodes here
      lockstep: false
    observation:
      max_age_periods: 3
      channels:                     # in the policy's order
        - {name: obs_0, joint: pendulum, field: position, encode: cos}   # a joint's position|velocity|effort
        - {name: obs_2, joint: pendulum, field: velocity}
        - {name: obs_7, topic: /smoothrl/observation, index: 7}          # an element of a Float64MultiArray

Joints are found **by name** in every JointState message (never by position): a joint a channel
names that a message lacks makes that observation NaN, which the loop refuses (the safe action);
at ``configure`` the first message must have every named joint. The command message is laid out
in ``controller_joints`` order whatever the policy's order is.

**Freshness** is by receive time: an observation is as old as the oldest sample it is built from
(a robot that stops publishing is stale after ``max_age_periods``). **Lock-step** (smoothrl's
bridge only) waits for the bridge's status (step counter) to move past the last command and
for every topic it reads to have published since.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.interface import Channels, HardwareInterface

#: status topic values, in order: the step counter, episodes finished, the last finished
#: episode's return and length, and 1 when the last step ended an episode
STATUS = ("step", "episodes", "episode_return", "episode_length", "ended")
_DOMAINS: dict[int, Any] = {}
_DOMAIN_LOCK = threading.Lock()
LOCALHOST = (
    "<CycloneDDS><Domain id='any'><General><Interfaces><NetworkInterface address='127.0.0.1'/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    "<MaxAutoParticipantIndex>120</MaxAutoParticipantIndex><Peers><Peer address='127.0.0.1'/></Peers>"
    "</Discovery></Domain></CycloneDDS>"
)


_PARTICIPANTS: list[Any] = []


def participant(domain_id: int, localhost_only: bool) -> Any:
    """
    A DDS participant on a domain (configured once per process: loopback only when asked).
    Close it with :func:`close`: cyclonedds keeps every entity until it is deleted explicitly.

    :param domain_id: the ROS domain id
    :param localhost_only: discovery and data on 127.0.0.1 only (``ROS_LOCALHOST_ONLY=1``)
    :return: the participant
    """
    from cyclonedds.domain import Domain, DomainParticipant

    with _DOMAIN_LOCK:
        if not _DOMAINS and not _PARTICIPANTS:
            atexit.register(_close_all)
        if localhost_only and domain_id not in _DOMAINS:
            _DOMAINS[domain_id] = Domain(domain_id, LOCALHOST)
        dp = DomainParticipant(domain_id)
        _PARTICIPANTS.append(dp)
        return dp


def close(dp: Any) -> None:
    """
    Delete a participant and everything it holds (readers and their listeners, writers, topics):
    no callback runs after this returns.

    :param dp: a participant from :func:`participant` (``None``: nothing)
    """
    with _DOMAIN_LOCK:
        if dp is None or dp not in _PARTICIPANTS:
            return
        _PARTICIPANTS.remove(dp)
    dp.__del__()  # cyclonedds' way to delete an entity now (its registry holds it otherwise)


def _close_all() -> None:
    """At exit, before the interpreter goes: no DDS thread may call into Python after it."""
    for dp in list(_PARTICIPANTS):
        close(dp)
    with _DOMAIN_LOCK:
        for domain in _DOMAINS.values():
            domain.__del__()
        _DOMAINS.clear()


def qos(reliable: bool, depth: int = 1) -> Any:
    """:param reliable: reliable (commands) or best effort (sensor data)
    :param depth: samples kept
    :return: the QoS"""
    from cyclonedds.core import Policy, Qos
    from cyclonedds.util import duration

    return Qos(
        Policy.Reliability.Reliable(duration(seconds=1)) if reliable else Policy.Reliability.BestEffort,
        Policy.History.KeepLast(depth),
    )


class Subscription:
    """
    The newest sample of a topic and when it arrived (a listener keeps them as samples come).

    :param dp: the participant
    :param topic: the ROS 2 topic
    :param kind: its message class
    :param reliable: the reader's QoS
    :param changed: notified on every sample
    """

    def __init__(self, dp: Any, topic: str, kind: type, reliable: bool, changed: threading.Condition) -> None:
        from cyclonedds.core import Listener
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        from smoothrl.hardware.backends.ros2_messages import dds_topic

        self.name, self.changed = topic, changed
        self.sample: Any = None
        self.received = float("-inf")
        self.count = 0
        self.topic = Topic(dp, dds_topic(topic), kind)
        self.reader = DataReader(dp, self.topic, qos(reliable), listener=Listener(on_data_available=self._arrived))

    def _arrived(self, reader: Any) -> None:
        samples = [s for s in reader.take(N=64) if hasattr(s, "__dataclass_fields__")]  # not the writer's dispose
        if samples:
            with self.changed:
                self.sample, self.received = samples[-1], time.monotonic()
                self.count += 1
                self.changed.notify_all()


class Ros2Interface(HardwareInterface):
    """
    The controller's side (see the module docstring).

    :param settings: the profile's ``ros2`` section (defaults filled)
    :param channels: the profile's ``observation.channels``
    :param lockstep: override ``settings["lockstep"]``
    """

    def __init__(self, settings: dict[str, Any], channels: list[dict[str, Any]], lockstep: bool | None = None) -> None:
        self.settings = settings
        self.channels = channels
        # the topics an observation is built from (its age is the oldest of their samples)
        joint_states = settings.get("joint_states", "/joint_states")
        used = [joint_states] if any("joint" in c for c in channels) else []
        self._used = list(dict.fromkeys(used + [c["topic"] for c in channels if "topic" in c]))
        self.commands = [dict(c) for c in settings["commands"]]
        self.controller_joints = list(settings["controller_joints"])
        # the message's element j carries the policy's action dimension order[j]
        by_joint = {c["joint"]: i for i, c in enumerate(self.commands)}
        self.order = [by_joint[j] for j in self.controller_joints]
        self.lockstep = bool(settings.get("lockstep", False) if lockstep is None else lockstep)
        self.timeout = float(settings.get("timeout_s", 2.0))
        self.changed = threading.Condition()
        self.dp: Any = None
        self.subscriptions: dict[str, Subscription] = {}
        self.writer: Any = None
        self._seen_step = -1.0
        self._counts: dict[str, int] = {}  # samples per topic when the last command was written
        self._episodes = 0.0
        self._finished = False
        self._last_obs: np.ndarray | None = None
        #: what the robot reported of its last finished episode (``return``, ``length``, ``episodes``)
        self.plant_kpis: dict[str, float] | None = None

    def configure(self) -> Channels:
        from cyclonedds.pub import DataWriter
        from cyclonedds.topic import Topic

        from smoothrl.hardware.backends.ros2_messages import Float64MultiArray, JointState, dds_topic

        s = self.settings
        self.dp = participant(int(s.get("domain_id", 0)), bool(s.get("localhost_only", True)))
        best_effort = s.get("state_qos", "best_effort") == "best_effort"
        topics: dict[str, type] = {}
        if any("joint" in c for c in self.channels):
            topics[s.get("joint_states", "/joint_states")] = JointState
        for c in self.channels:
            if "topic" in c:
                topics[c["topic"]] = Float64MultiArray
        if s.get("status_topic"):
            topics[s["status_topic"]] = Float64MultiArray
        for name, kind in topics.items():
            self.subscriptions[name] = Subscription(self.dp, name, kind, not best_effort, self.changed)
        command = Topic(
            self.dp, dds_topic(s.get("command_topic", "/forward_command_controller/commands")), Float64MultiArray
        )
        self.writer = DataWriter(self.dp, command, qos(True, 10))
        deadline = time.monotonic() + float(s.get("connect_timeout_s", 10.0))
        with self.changed:
            while any(sub.sample is None for sub in self.subscriptions.values()):
                if not self.changed.wait(max(0.0, deadline - time.monotonic())):
                    missing = [n for n, sub in self.subscriptions.items() if sub.sample is None]
                    self.deactivate()
                    raise SmoothRLError(
                        f"nothing arrives on {', '.join(missing)} (ROS domain {s.get('domain_id', 0)}); start the "
                        "robot (smoothrl bridge ros2) or fix the topics and ros2.domain_id"
                    )
        while not self.writer.get_matched_subscriptions():  # a command written before the robot hears it is lost
            if time.monotonic() >= deadline:
                self.deactivate()
                raise SmoothRLError(
                    f"nobody subscribes to {s.get('command_topic', '/forward_command_controller/commands')} "
                    "(ROS domain {0}); start the robot's forward_command_controller or fix ros2.command_topic".format(
                        s.get("domain_id", 0)
                    )
                )
            time.sleep(0.01)
        self._check_joints()
        return Channels(len(self.channels), len(self.commands), tuple(c["name"] for c in self.channels))

    def _check_joints(self) -> None:
        """Every joint a channel names is in the first JointState; every topic index is in its array."""
        for c in self.channels:
            if "joint" in c:
                sample = self.subscriptions[self.settings.get("joint_states", "/joint_states")].sample
                names = list(sample.name)
                values = getattr(sample, c["field"])
                if c["joint"] not in names or names.index(c["joint"]) >= len(values):
                    self.deactivate()
                    raise SmoothRLError(
                        f"joint {c['joint']!r} (channel {c['name']!r}) has no {c['field']} in "
                        f"{self.settings.get('joint_states', '/joint_states')} (it has {', '.join(names) or 'none'}); "
                        "fix the joint's name in the profile"
                    )
            elif "topic" in c:
                size = len(self.subscriptions[c["topic"]].sample.data)
                if c["index"] >= size:
                    self.deactivate()
                    raise SmoothRLError(
                        f"channel {c['name']!r} reads index {c['index']} of {c['topic']}, which has {size} values; "
                        "fix the index in the profile"
                    )

    def activate(self) -> None:
        """The robot publishes already."""

    @property
    def finished(self) -> bool:
        return self._finished

    def _status(self) -> np.ndarray | None:
        topic = self.settings.get("status_topic")
        return None if not topic else np.asarray(self.subscriptions[topic].sample.data, dtype=float)

    def read(self) -> tuple[np.ndarray, float]:
        if self._finished and self._last_obs is not None:
            return self._last_obs.copy(), time.monotonic()
        with self.changed:
            if self.lockstep:  # wait for the robot to have taken the last command
                deadline = time.monotonic() + self.timeout
                while self._status()[0] <= self._seen_step or any(  # type: ignore[index]
                    sub.count <= self._counts.get(name, -1) for name, sub in self.subscriptions.items()
                ):  # the step has moved on, and every topic has published since the command
                    if not self.changed.wait(max(0.0, deadline - time.monotonic())):
                        raise TimeoutError("the robot did not step")
            samples = {name: (sub.sample, sub.received) for name, sub in self.subscriptions.items()}
        status = self._status()
        if status is not None:
            self._seen_step = status[0]
            if status[1] > self._episodes:  # an episode ended with this step
                self._episodes = status[1]
                self.plant_kpis = {"return": status[2], "length": status[3], "episodes": status[1]}
                self._finished = self.lockstep and bool(status[4])  # real time: the robot goes on
        obs = np.empty(len(self.channels))
        joint_states = self.settings.get("joint_states", "/joint_states")
        for i, c in enumerate(self.channels):
            if "joint" in c:
                sample = samples[joint_states][0]
                names = list(sample.name)
                values = getattr(sample, c["field"])
                k = names.index(c["joint"]) if c["joint"] in names else -1
                value = float(values[k]) if 0 <= k < len(values) else float("nan")  # a missing joint: refused
                encode = c.get("encode")
                obs[i] = np.cos(value) if encode == "cos" else np.sin(value) if encode == "sin" else value
            else:
                data = samples[c["topic"]][0].data
                obs[i] = float(data[c["index"]]) if c["index"] < len(data) else float("nan")
        stamp = time.monotonic() if self.lockstep else min(samples[name][1] for name in self._used)
        self._last_obs = obs
        return obs, stamp

    def write(self, command: np.ndarray) -> None:
        from smoothrl.hardware.backends.ros2_messages import array

        values = np.asarray(command, dtype=np.float64).ravel()
        with self.changed:
            self._counts = {name: sub.count for name, sub in self.subscriptions.items()}
        self.writer.write(array([float(values[i]) for i in self.order], "joints"))

    def deactivate(self) -> None:
        close(self.dp)
        self.subscriptions.clear()
        self.writer, self.dp = None, None
