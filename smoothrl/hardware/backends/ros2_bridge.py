"""The far end of the ``ros2`` backend: an env as a ros2_control-shaped robot, for ``smoothrl bridge
ros2`` and the tests. It runs on the development machine (it imports the env).

It publishes, once per step, on the ROS 2 domain it is given (loopback only by default):

- ``/joint_states`` (``sensor_msgs/msg/JointState``, as joint_state_broadcaster): the robot's
  joints by name, their position and velocity, and as effort the last command (a PyBullet robot's
  own joints; Pendulum's one joint ``pendulum``, its angle and angular velocity);
- ``/smoothrl/observation`` (``std_msgs/msg/Float64MultiArray``): the env's whole observation,
  for what joints do not carry (a body's pose and speed, contacts);
- ``/smoothrl/status`` (``std_msgs/msg/Float64MultiArray``): the step counter, the episodes
  finished, the last finished episode's return and length, and 1 when this step ended an episode;

and takes ``/forward_command_controller/commands`` (``std_msgs/msg/Float64MultiArray``, in the
order of :func:`robot_joints`' command joints), as a forward_command_controller does.

Lock-step: each command steps the env once and publishes the new state; after an episode's end
the next command starts the next episode. Real time: the env steps every period with the latest
command (standing still until the first one).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from smoothrl.hardware.backends.ros2 import close, participant, qos

OBSERVATION_TOPIC = "/smoothrl/observation"
STATUS_TOPIC = "/smoothrl/status"
COMMAND_TOPIC = "/forward_command_controller/commands"
JOINT_STATES = "/joint_states"


@dataclass(frozen=True)
class RobotJoints:
    """
    The joints a robot publishes and is commanded through.

    :param names: the joints in joint_states (in this order)
    :param commanded: the forward_command_controller's joints, in its order (the action's order)
    """

    names: tuple[str, ...]
    commanded: tuple[str, ...]


def robot_joints(env: Any) -> RobotJoints:
    """
    :param env: the env
    :return: its joints: a PyBullet robot's own, Pendulum's one, else ``joint_0, ...`` commanded only
    """
    unwrapped = env.unwrapped
    robot = getattr(unwrapped, "robot", None)
    if robot is not None and hasattr(robot, "ordered_joints"):
        names = tuple(j.joint_name for j in robot.ordered_joints)
        return RobotJoints(names, names)
    if type(unwrapped).__name__ == "PendulumEnv":
        return RobotJoints(("pendulum",), ("pendulum",))
    n = int(np.prod(env.action_space.shape)) if env.action_space.shape else 1
    return RobotJoints((), tuple(f"joint_{i}" for i in range(n)))


def joint_values(env: Any) -> tuple[list[float], list[float]]:
    """:param env: the env
    :return: the joints' positions and velocities (:func:`robot_joints`' order)"""
    unwrapped = env.unwrapped
    robot = getattr(unwrapped, "robot", None)
    if robot is not None and hasattr(robot, "ordered_joints"):
        pairs = [j.current_position() for j in robot.ordered_joints]
        return [float(p) for p, _ in pairs], [float(v) for _, v in pairs]
    if type(unwrapped).__name__ == "PendulumEnv":
        return [float(unwrapped.state[0])], [float(unwrapped.state[1])]
    return [], []


def serve_ros2(
    env_id: str,
    domain_id: int = 0,
    lockstep: bool = True,
    seed: int = 0,
    episodes: int | None = None,
    localhost_only: bool = True,
    period: float | None = None,
    env_kwargs: dict[str, Any] | None = None,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> list[float]:
    """
    Run an env as a ros2_control-shaped robot (see the module docstring) until ``episodes`` have
    finished (``None``: until ``stop`` or Ctrl-C).

    :param env_id: the env (a PyBullet robot, Pendulum, or any gymnasium / smoothrl id)
    :param domain_id: the ROS domain id
    :param lockstep: step once per command; else every ``period`` seconds with the latest command
    :param seed: seed of the first episode
    :param episodes: stop after this many episodes
    :param localhost_only: discovery and data on 127.0.0.1 only
    :param period: real time: seconds per step (default: the env's ``dt``)
    :param env_kwargs: keyword arguments of the env
    :param ready: set once the topics are up
    :param stop: ends the bridge when set
    :return: the finished episodes' returns
    """
    from cyclonedds.core import Listener
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    from smoothrl.envs import control_period, make_base_env
    from smoothrl.hardware.backends.ros2_messages import (
        Float64MultiArray,
        Header,
        JointState,
        Time,
        array,
        dds_topic,
    )

    env = make_base_env(env_id, **(env_kwargs or {}))
    obs, _ = env.reset(seed=seed)
    joints = robot_joints(env)  # a PyBullet robot has its joints once reset
    dt = period or control_period(env) or 0.02
    dp = participant(domain_id, localhost_only)
    writers = {
        name: DataWriter(dp, Topic(dp, dds_topic(name), kind), qos(True))
        for name, kind in (
            (JOINT_STATES, JointState),
            (OBSERVATION_TOPIC, Float64MultiArray),
            (STATUS_TOPIC, Float64MultiArray),
        )
    }
    arrived = threading.Condition()
    inbox: list[np.ndarray] = []

    def take(reader: Any) -> None:
        samples = reader.take(N=64)
        with arrived:
            inbox.extend(np.asarray(s.data, dtype=np.float64) for s in samples if hasattr(s, "data"))
            arrived.notify_all()

    reader = DataReader(
        dp,
        Topic(dp, dds_topic(COMMAND_TOPIC), Float64MultiArray),
        qos(True, 10),
        listener=Listener(on_data_available=take),
    )
    steps, ret, length, returns, ended = 0, 0.0, 0, [], False
    command = np.zeros(len(joints.commanded))

    def publish() -> None:
        positions, velocities = joint_values(env)
        sim = steps * dt
        stamp = Time(int(sim), int(round((sim - int(sim)) * 1e9)) % 1_000_000_000)
        efforts = [float(v) for v in command[: len(positions)]]
        writers[OBSERVATION_TOPIC].write(array(np.asarray(obs, dtype=np.float64).tolist(), "observation"))
        writers[JOINT_STATES].write(
            JointState(Header(stamp, "world"), list(joints.names), positions, velocities, efforts)
        )
        last = [returns[-1], float(last_length)] if returns else [0.0, 0.0]  # the status last: the step is out
        writers[STATUS_TOPIC].write(array([float(steps), float(len(returns)), *last, float(ended)], "status"))

    def step() -> None:
        nonlocal obs, ret, length, steps, ended, last_length
        if ended:  # the next episode starts with this command
            obs, _ = env.reset()
            ret, length, ended = 0.0, 0, False
            return
        action = int(command[0]) if env.action_space.__class__.__name__ == "Discrete" else command.astype(np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        ret, length, steps = ret + float(reward), length + 1, steps + 1
        if terminated or truncated:
            ended, last_length = True, length
            returns.append(ret)

    last_length, commanded = 0, False
    if ready is not None:
        ready.set()
    next_step = time.monotonic() + dt
    try:
        publish()
        while (episodes is None or len(returns) < episodes or ended) and not (stop is not None and stop.is_set()):
            if episodes is not None and len(returns) >= episodes and ended:
                time.sleep(0.5)  # the last state is out: give the controller time to read it
                break
            with arrived:
                arrived.wait(0.05 if lockstep else max(0.0, min(0.05, next_step - time.monotonic())))
                received, inbox[:] = list(inbox), []
            for values in received:
                if values.shape == command.shape and np.all(np.isfinite(values)):
                    command, commanded = values, True
                    if lockstep:
                        step()
                        publish()
            if not lockstep and time.monotonic() >= next_step:
                next_step += dt
                if commanded:  # standing still until the first command
                    step()
                publish()
            if lockstep and not received and steps == 0 and not ended:
                publish()  # until the controller's first command: say where the robot is
    except KeyboardInterrupt:
        pass
    finally:
        close(dp)  # its readers, writers and topics with it
        del reader
        env.close()
    return returns
