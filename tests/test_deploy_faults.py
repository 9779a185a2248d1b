"""Faults at the far end, reproduced against a gateway and a robot that do not use smoothrl's
runtime (``tests/fake_plants.py``), each judged from the far end's own log: the safe action
reaches the plant within the documented time, and nothing reaches it in a burst."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from smoothrl.hardware.backends.modbus import ModbusInterface
from smoothrl.hardware.backends.udp import UdpInterface
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import parse_profile
from tests.fake_plants import FakeGateway, FakeRobot

HEAT = 0.9  # what the policy asks for: 90% heat
SAFE = 0.0


class Artefact:
    discrete, action_dim, control_period_s = False, 1, None
    manifest: dict[str, Any] = {"action_space": {"type": "Box"}}

    def __init__(self, sensors: int) -> None:
        self.sensors = sensors
        self.channels = [(f"s{i}", "") for i in range(sensors)]

    def action_bounds(self):
        return np.array([-1.0]), np.array([1.0])


class Policy:
    def __init__(self, sensors: int) -> None:
        self.artefact = Artefact(sensors)

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.array([HEAT])

    def sent(self, command: np.ndarray) -> None:
        pass


def after(loop: ControlLoop, periods: int, fault: Callable[[], None]) -> list[float]:
    """Inject ``fault`` (at the far end) once the loop has run ``periods`` periods.

    :return: a list that receives the time (monotonic) the fault began
    """
    began: list[float] = []

    def inject() -> None:
        while loop.stats.periods < periods:
            time.sleep(0.01)
        fault()
        began.append(time.monotonic())

    threading.Thread(target=inject, daemon=True).start()
    return began


def last_write(far_end: Any, timeout: float = 2.0) -> float:
    """The far end's last command once its writes have settled (datagrams arrive after the loop ends)."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        if len(far_end.writes) == seen:
            break
        seen = len(far_end.writes)
        time.sleep(0.1)
    return far_end.writes[-1].command


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gateway():
    started: list[FakeGateway] = []

    def start(**kwargs: Any) -> FakeGateway:
        started.append(FakeGateway(_port(), **kwargs).start())
        return started[-1]

    yield start
    for g in started:
        g.close()


PERIOD = 0.05


def modbus_loop(port: int, timeout_s: float = 1.0, modbus: dict | None = None, **watchdog: Any) -> ControlLoop:
    profile = parse_profile(
        {
            "backend": "modbus",
            "control_period_s": PERIOD,
            "modbus": {"port": port, "commands": 1, "lockstep": False, "timeout_s": timeout_s, **(modbus or {})},
            "observation": {
                "max_age_periods": 3,
                "channels": [{"name": "s0", "register": 0}, {"name": "s1", "register": 1 if modbus else 2}],
            },
            "command": {"safe_action": [SAFE]},
            "watchdog": {"on_estop": "stop", **watchdog},
        },
        "fake-gateway.yaml",
    )
    interface = ModbusInterface(profile.modbus, profile.obs_channels, 1, PERIOD, lockstep=False)
    return ControlLoop(Policy(2), interface, profile)


def test_a_frozen_gateway_trips_the_watchdog_within_max_age_periods(gateway):
    plant = gateway(dt=PERIOD)
    loop = modbus_loop(plant.port)
    frozen_at = after(loop, 20, lambda: setattr(plant, "frozen", True))  # stuck; every read still answers
    stats = loop.run(10.0)
    assert stats.estop is not None and "stale observation" in stats.estop, stats.summary()
    first_safe = next(w for w in plant.writes if w.at > frozen_at[0] and w.command == SAFE)
    heat_after = [w for w in plant.writes if frozen_at[0] < w.at < first_safe.at and abs(w.command - HEAT) < 1e-6]
    # max_age_periods 3: stale after 3 periods without a new step, the safe action in that period
    assert first_safe.at - frozen_at[0] < (3 + 2) * PERIOD
    assert len(heat_after) <= 4  # not 27 commands to a plant that had stopped
    assert plant.writes[-1].command == SAFE


def test_the_plants_run_ended_flag_ends_the_run_with_the_safe_action_written(gateway):
    plant = gateway(dt=PERIOD)
    loop = modbus_loop(plant.port)
    after(loop, 10, lambda: setattr(plant, "ended", True))
    stats = loop.run(10.0)
    assert stats.stopped_by == "episode end" and stats.estop is None
    assert plant.writes[-1].command == SAFE and any(abs(w.command - HEAT) < 1e-6 for w in plant.writes)


def test_a_slow_gateway_cannot_hold_the_loop_or_cause_a_burst(gateway):
    """Replies 4 periods late: the loop does not wait for them (each late period holds the last
    command and counts an overrun; ``max_overruns`` of them latch the e-stop), the safe action
    reaches the plant once the gateway takes requests again, and no more than one write lands
    per period."""
    plant = gateway(dt=PERIOD)
    loop = modbus_loop(plant.port, timeout_s=2.0)
    after(loop, 20, lambda: setattr(plant, "delay_s", 4 * PERIOD))
    started = time.monotonic()
    stats = loop.run(3.0)
    # the late replies are overruns (the last command held), then the e-stop: within max_overruns periods
    assert stats.estop is not None and ("consecutive overruns" in stats.estop or "stale" in stats.estop), stats.estop
    assert time.monotonic() - started < 1.0 + 20 * PERIOD + 8 * PERIOD  # stopped, not blocked for the timeout
    assert plant.writes[-1].command == SAFE
    times = np.array([w.at for w in plant.writes])
    assert np.all(np.diff(times) > 0.2 * PERIOD), np.diff(times).min()  # never a burst


# --------------------------------------------------------------------------------------------
# a robot over UDP


@pytest.fixture
def robot():
    started: list[FakeRobot] = []

    def start(**kwargs: Any) -> FakeRobot:
        started.append(FakeRobot(**kwargs).start())
        return started[-1]

    yield start
    for r in started:
        r.close()


def udp_loop(port: int) -> ControlLoop:
    profile = parse_profile(
        {
            "backend": "udp",
            "control_period_s": PERIOD,
            "udp": {"port": port, "observations": 3, "commands": 1, "lockstep": False},
            "observation": {"max_age_periods": 3},
            "command": {"safe_action": [SAFE]},
            "watchdog": {"on_estop": "stop"},
        },
        "fake-robot.yaml",
    )
    return ControlLoop(Policy(3), UdpInterface(profile.udp, PERIOD, lockstep=False), profile)


@pytest.mark.parametrize("offset", [-1000.0, 0.0, 1000.0], ids=["behind", "same", "ahead"])
def test_a_robot_with_its_own_clock_runs_and_a_silent_one_estops_within_max_age(robot, offset: float):
    arm = robot(dt=PERIOD, clock_offset_s=offset)
    loop = udp_loop(arm.port)
    silent_at = after(loop, 20, lambda: setattr(arm, "silent", True))
    stats = loop.run(10.0)
    assert stats.periods >= 20  # a clock behind or ahead of the controller's is not a fault
    assert stats.estop is not None and "stale observation" in stats.estop, stats.summary()
    assert last_write(arm) == SAFE  # (waits for the datagrams still on their way)
    first_safe = next(w for w in arm.writes if w.at > silent_at[0] and w.command == SAFE)
    assert first_safe.at - silent_at[0] < (3 + 2) * PERIOD  # not 60 periods


def test_a_robot_whose_clock_stops_is_stale_although_packets_arrive(robot):
    arm = robot(dt=PERIOD)
    loop = udp_loop(arm.port)
    after(loop, 20, lambda: setattr(arm, "clock_stopped", True))
    stats = loop.run(10.0)
    assert stats.estop is not None and "stale observation" in stats.estop
    assert 20 <= stats.periods <= 20 + 6 and last_write(arm) == SAFE


def test_a_scaled_int16_gateway_and_the_controllers_health_register(gateway):
    """A gateway publishing scaled int16 values (hundredths) and watching the controller's health
    register: the command arrives as 0.90, the heartbeat rises with every write, the state says
    policy (0), then safe action (1) after the e-stop, then stopped (2)."""
    plant = gateway(dt=PERIOD, encoding="int16", scale=100.0)
    settings = {"encoding": "int16", "scale": 100.0, "health_register": 20}
    loop = modbus_loop(plant.port, modbus=settings)
    after(loop, 10, lambda: setattr(plant, "frozen", True))
    stats = loop.run(10.0)
    assert stats.estop is not None and "stale" in stats.estop
    assert any(w.command == pytest.approx(HEAT) for w in plant.writes) and plant.writes[-1].command == SAFE
    beats = [beat for beat, _ in plant.health]
    assert beats == sorted(beats) and len(set(beats)) >= len(beats) - 1  # +1 per write (the last: stopped)
    states = [state for _, state in plant.health]
    assert states[0] == 0 and 1 in states and states[-1] == 2
    assert states.index(1) > max(i for i, state in enumerate(states) if state == 0)  # safe after the policy


def test_a_hung_gateway_latches_the_estop_and_ends_the_run_without_waiting_for_it(gateway):
    """A gateway that stops answering altogether: the loop is never held (each period goes on),
    the e-stop latches after ``max_overruns`` late periods, and the run ends within a second of
    waiting for the queued safe action, instead of the gateway's timeout."""
    plant = gateway(dt=PERIOD)
    loop = modbus_loop(plant.port, timeout_s=30.0)
    began = after(loop, 20, lambda: setattr(plant, "delay_s", 60.0))
    stats = loop.run(10.0)
    assert stats.estop is not None and "consecutive overruns" in stats.estop, stats.estop
    assert stats.stopped_by == "estop" and 20 <= stats.periods <= 20 + 3 + 2
    assert time.monotonic() - began[0] < 3.0  # not the 30 s request timeout, nor the 60 s the gateway takes
