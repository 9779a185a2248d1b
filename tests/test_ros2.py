"""The ros2 backend (cyclonedds, loopback only, no ROS installation): its messages are ROS 2's
own bytes (checked with rosbags' independent CDR implementation), a lock-step episode against
`smoothrl bridge ros2` returns what `smoothrl eval` returns, joints are mapped by name, and stale,
missing or NaN joint states end in the safe action."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("cyclonedds")
rosbags_typesys = pytest.importorskip("rosbags.typesys")

from smoothrl.errors import SmoothRLError  # noqa: E402
from smoothrl.hardware.artefact import Artefact  # noqa: E402
from smoothrl.hardware.backends import ros2_messages as m  # noqa: E402
from smoothrl.hardware.backends.ros2 import Ros2Interface, participant, qos  # noqa: E402
from smoothrl.hardware.backends.ros2_bridge import serve_ros2  # noqa: E402
from smoothrl.hardware.loop import ControlLoop  # noqa: E402
from smoothrl.hardware.profile import load_profile, parse_profile  # noqa: E402

TYPESTORE = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_HUMBLE)
#: a domain id per test: no test hears another's robot
DOMAINS = itertools.count(150)

EXAMPLES = [
    m.Time(-5, 999_999_999),
    m.Header(m.Time(1_700_000_000, 5), "base_link"),
    m.JointState(m.Header(m.Time(3, 4), "world"), ["bthigh", "bshin"], [0.1, -2.5], [1e-9], []),
    m.MultiArrayDimension("joints", 6, 6),
    m.MultiArrayLayout([m.MultiArrayDimension("a", 2, 6), m.MultiArrayDimension("b", 3, 3)], 1),
    m.Float64MultiArray(m.MultiArrayLayout([m.MultiArrayDimension("joints", 2, 2)], 0), [0.5, -1e300]),
]


def _plain(value: Any) -> Any:
    """A message of either library as plain Python (lists, floats, strings), for comparison."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: _plain(getattr(value, k)) for k in value.__dataclass_fields__ if not k.startswith("__")}
    if isinstance(value, np.ndarray | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@pytest.mark.parametrize("message", EXAMPLES, ids=[type(e).__name__ for e in EXAMPLES])
def test_every_message_is_ros2_cdr_both_ways(message: Any):
    """smoothrl's bytes decode with rosbags to the same message, rosbags' bytes are smoothrl's."""
    name = m.ROS_NAMES[type(message)]
    ours = message.serialize()
    theirs = TYPESTORE.deserialize_cdr(ours, name)
    assert _plain(theirs) == _plain(message)
    back = TYPESTORE.serialize_cdr(theirs, name)
    assert bytes(back) == ours
    assert type(message).deserialize(bytes(back)) == message


finite = st.floats(allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text(alphabet="abcdefghij_0123456789", min_size=1, max_size=12), max_size=8),
    values=st.lists(finite, max_size=8),
    sec=st.integers(-(2**31), 2**31 - 1),
    nanosec=st.integers(0, 2**32 - 1),
)
def test_joint_states_and_commands_round_trip_for_any_values(names, values, sec, nanosec):
    state = m.JointState(m.Header(m.Time(sec, nanosec), "f"), names, values, values[:3], values[::-1])
    command = m.array(values, "joints")
    for message in (state, command):
        name = m.ROS_NAMES[type(message)]
        decoded = TYPESTORE.deserialize_cdr(message.serialize(), name)
        assert _plain(decoded) == _plain(message)
        assert bytes(TYPESTORE.serialize_cdr(decoded, name)) == message.serialize()


def test_topic_names_follow_ros2s_dds_mapping():
    assert m.dds_topic("/joint_states") == "rt/joint_states"
    assert m.dds_topic("/forward_command_controller/commands") == "rt/forward_command_controller/commands"
    assert m.JointState.__idl_typename__ == "sensor_msgs::msg::dds_::JointState_"
    assert m.Float64MultiArray.__idl_typename__ == "std_msgs::msg::dds_::Float64MultiArray_"


@pytest.fixture(scope="module")
def artefact(tmp_path_factory) -> tuple[Path, Path]:
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    root = tmp_path_factory.mktemp("ros2")
    overrides = ["n_timesteps=600", "eval_freq=0", "checkpoint_freq=0", "eval_episodes=1", "learning_starts=100"]
    run_dir = train(resolve_config("sac", "Pendulum-v1", "smoke", overrides), root / "r")
    return run_dir, export_run(run_dir, root / "art")


def profile(domain: int, **ros2: Any) -> Any:
    base = load_profile("hardware/ros2_pendulum.yaml")
    watchdog = {"on_estop": "stop"}
    observation = {"channels": ros2.pop("channels", base.obs_channels), "max_age_periods": 2}
    return parse_profile(
        {
            "backend": "ros2",
            "control_period_s": 0.05,
            "ros2": {**base.ros2, "domain_id": domain, "connect_timeout_s": 10.0, **ros2},
            "observation": observation,
            "command": {"safe_action": [0.0]},
            "watchdog": watchdog,
        },
        "ros2-test.yaml",
    )


def test_lockstep_over_ros2_returns_what_eval_returns(artefact):
    from smoothrl.run.evaluation import evaluate

    run_dir, art = artefact
    domain = next(DOMAINS)
    ready, returns = threading.Event(), []
    thread = threading.Thread(
        target=lambda: returns.extend(serve_ros2("Pendulum-v1", domain, seed=10_000, episodes=1, ready=ready)),
        daemon=True,
    )
    thread.start()
    assert ready.wait(30)
    prof = profile(domain)
    interface = Ros2Interface(prof.ros2, prof.obs_channels)
    stats = ControlLoop(Artefact.load(art).policy(), interface, prof).run()
    thread.join(20)
    reference, _ = evaluate(run_dir, episodes=1)
    assert stats.stopped_by == "episode end" and stats.periods == 200, stats.summary()
    assert returns[0] == pytest.approx(reference["mean_return"], rel=1e-4)
    assert interface.plant_kpis == {"return": pytest.approx(returns[0]), "length": 200, "episodes": 1}


class FakeRobot:
    """A robot publishing joint states the test shapes, recording every command it receives."""

    def __init__(self, domain: int, joints: tuple[str, ...] = ("elbow", "pendulum", "wrist")) -> None:
        from cyclonedds.core import Listener
        from cyclonedds.pub import DataWriter
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        self.domain = domain
        self.dp = participant(domain, True)
        self.joints = list(joints)
        self.writer = DataWriter(self.dp, Topic(self.dp, "rt/joint_states", m.JointState), qos(True))
        self.commands: list[list[float]] = []
        self.events: list[str] = []
        self.reader = DataReader(
            self.dp,
            Topic(self.dp, "rt/forward_command_controller/commands", m.Float64MultiArray),
            qos(True, 64),
            listener=Listener(on_data_available=self._command),
        )
        self.mode = "ok"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._publish, daemon=True)
        self.thread.start()

    def _command(self, reader: Any) -> None:
        for sample in reader.take(N=64):
            if not hasattr(sample, "data"):  # a controller's writer going away
                continue
            self.commands.append(list(sample.data))
            self.events.append(f"command:{self.mode}")

    def _publish(self) -> None:
        k = 0
        while not self.stop.wait(0.02):
            k += 1
            if self.mode == "silent":
                continue
            names = [j for j in self.joints if not (self.mode == "missing" and j == "pendulum")]
            position = [0.1 * k if j == "pendulum" else 7.0 for j in names]
            if self.mode == "nan":
                position = [float("nan")] * len(names)
            self.writer.write(m.JointState(m.Header(m.Time(k, 0), "world"), names, position, [0.5] * len(names), []))
            self.events.append(f"state:{self.mode}")

    def close(self) -> None:
        from smoothrl.hardware.backends.ros2 import close

        self.stop.set()
        self.thread.join(5)
        close(self.dp)


@pytest.fixture
def robot():
    robots: list[FakeRobot] = []

    def start(**kwargs: Any) -> FakeRobot:
        robots.append(FakeRobot(next(DOMAINS), **kwargs))
        return robots[-1]

    yield start
    for r in robots:
        r.close()


@pytest.mark.parametrize("fault", ["silent", "missing", "nan"])
def test_stale_missing_or_nan_joint_states_end_in_the_safe_action(artefact, robot, fault: str):
    """The robot goes silent, drops the joint the policy reads, or reports NaN: the controller
    commands the safe action (0) within one period of noticing (missing and NaN: the next
    command; silent: after max_age_periods, 2)."""
    _, art = artefact
    domain = next(DOMAINS)
    fake = FakeRobot(domain)
    try:
        prof = profile(domain, lockstep=False, status_topic=None, timeout_s=0.2)
        loop = ControlLoop(Artefact.load(art).policy(), Ros2Interface(prof.ros2, prof.obs_channels), prof)
        runner = threading.Thread(target=lambda: loop.run(30.0), daemon=True)
        runner.start()
        deadline = time.monotonic() + 30
        while len(fake.commands) < 10:  # running on good joint states
            assert time.monotonic() < deadline
            time.sleep(0.01)
        fake.mode = fault
        while not any(e.startswith("command:") and e.endswith(fault) for e in fake.events):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        runner.join(10)
        assert loop.stats.estop is not None and not runner.is_alive()
        after = [
            c
            for c, e in zip(fake.commands, [e for e in fake.events if e.startswith("command:")], strict=True)
            if e.endswith(fault)
        ]
        allowed = 2 + 2 if fault == "silent" else 1  # commands sent on the last good state before the safe one
        assert after[-1] == [0.0], after
        assert len(after) <= allowed + 1, (fault, after)
    finally:
        fake.close()


def test_joints_are_mapped_by_name_not_by_position(artefact, robot):
    """The robot lists three joints, the policy's is the second: the controller reads it by name,
    and lays its command out in the forward controller's joint order."""
    fake = robot()
    prof = profile(next(DOMAINS))  # the settings' shape; the domain is the fake's below
    settings_ = {**prof.ros2, "domain_id": _domain(fake), "lockstep": False, "status_topic": None}
    interface = Ros2Interface(settings_, prof.obs_channels)
    interface.configure()
    obs, _ = interface.read()
    angle = np.arctan2(obs[1], obs[0])
    assert obs[2] == 0.5 and 0 < angle < 10  # the pendulum's velocity and angle, not the elbow's 7.0
    interface.deactivate()
    two = parse_profile(
        {
            "backend": "ros2",
            "control_period_s": 0.05,
            "ros2": {
                "controller_joints": ["wrist", "elbow"],
                "commands": [{"name": "u_elbow", "joint": "elbow"}, {"name": "u_wrist", "joint": "wrist"}],
            },
            "observation": {"channels": [{"name": "q", "joint": "elbow", "field": "position"}]},
        },
        "p.yaml",
    )
    assert Ros2Interface(two.ros2, two.obs_channels).order == [1, 0]  # wrist's value first


def _domain(fake: FakeRobot) -> int:
    return fake.domain


def test_configure_errors_are_one_line(artefact, robot):
    prof = profile(next(DOMAINS), connect_timeout_s=0.5)
    with pytest.raises(SmoothRLError, match=r"nothing arrives on /joint_states, /smoothrl/status \(ROS domain"):
        Ros2Interface(prof.ros2, prof.obs_channels).configure()
    fake = robot(joints=("elbow", "wrist"))
    settings_ = {**prof.ros2, "domain_id": _domain(fake), "lockstep": False, "status_topic": None}
    with pytest.raises(
        SmoothRLError,
        match=r"joint 'pendulum' \(channel 'obs_0'\) has no position in /joint_states "
        r"\(it has elbow, wrist\)",
    ):
        Ros2Interface(settings_, prof.obs_channels).configure()


@pytest.mark.parametrize(
    ("ros2", "message"),
    [
        ({"controller_joints": ["a"], "commands": [{"name": "u", "joint": "b"}]}, r"'a' is in one only"),
        ({"controller_joints": ["a", "a"], "commands": [{"name": "u", "joint": "a"}]}, r"names a joint twice"),
        (
            {"controller_joints": ["a"], "commands": [{"name": "u", "joint": "a"}], "lockstep": True},
            r"lockstep needs status_topic",
        ),
        (
            {"controller_joints": ["a"], "commands": [{"name": "u", "joint": "a"}], "joint_states": "joint states"},
            r"joint_states must be a ROS 2 topic name",
        ),
        ({"controller_joints": ["a"], "commands": [{"name": "u", "joint": "a"}], "domain_id": 300}, r"domain_id"),
        ({"controller_joints": ["a"], "commands": [{"name": "u", "joint": "a"}], "state_qos": "fast"}, r"state_qos"),
    ],
)
def test_a_malformed_ros2_section_is_refused_naming_the_key(ros2: dict, message: str):
    import re

    data = {
        "backend": "ros2",
        "control_period_s": 0.05,
        "ros2": ros2,
        "observation": {"channels": [{"name": "q", "joint": "a", "field": "position"}]},
    }
    with pytest.raises(SmoothRLError) as e:
        parse_profile(data, "p.yaml")
    assert re.search(message, str(e.value)) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"name": "q", "joint": "a"}, r"field must be one of position, velocity, effort"),
        ({"name": "q", "joint": "a", "field": "position", "encode": "tan"}, r"encode must be cos or sin"),
        ({"name": "q", "topic": "state", "index": 0}, r"topic must be a ROS 2 topic name"),
        ({"name": "q", "topic": "/state", "index": -1}, r"index must be the value's index"),
        ({"name": "q", "register": 0}, r"reads a register, which the ros2 backend has not"),
        ({"name": "q", "clock": "tod_sin"}, r"must read a joint or a topic"),
    ],
)
def test_a_malformed_ros2_channel_is_refused(channel: dict, message: str):
    data = {
        "backend": "ros2",
        "control_period_s": 0.05,
        "ros2": {"controller_joints": ["a"], "commands": [{"name": "u", "joint": "a"}]},
        "observation": {"channels": [channel]},
    }
    with pytest.raises(SmoothRLError, match=message):
        parse_profile(data, "p.yaml")


def test_the_shipped_halfcheetah_profile_drives_the_pybullet_robot(tmp_path: Path):
    """``ros2_halfcheetah``: a (barely trained) PyBullet HalfCheetah policy reads the body's state
    from the observation topic and drives the six joints by name, for a second in lock-step."""
    import yaml

    from smoothrl.hardware.deploy import deploy
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    overrides = ["n_timesteps=256", "eval_freq=0", "checkpoint_freq=0", "normalize=true"]
    config = resolve_config("ppo", "HalfCheetahBulletEnv-v0", "smoke", overrides)
    artefact = export_run(train(config, tmp_path / "run", progress_bar=False), tmp_path / "art")
    domain = next(DOMAINS)
    profile = yaml.safe_load(Path("hardware/ros2_halfcheetah.yaml").read_text())
    profile["ros2"]["domain_id"] = domain
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    ready, stop = threading.Event(), threading.Event()
    robot = threading.Thread(
        target=lambda: serve_ros2("HalfCheetahBulletEnv-v0", domain, seed=10_000, ready=ready, stop=stop), daemon=True
    )
    robot.start()
    assert ready.wait(60)
    try:
        summary = deploy(artefact, tmp_path / "profile.yaml", duration_s=1.0, log=tmp_path / "log.csv")
    finally:
        stop.set()
        robot.join(30)
    assert summary["stopped_by"] == "duration" and summary["estop"] is None, summary
    assert summary["periods"] == 61  # a second at 0.0165 s per period
