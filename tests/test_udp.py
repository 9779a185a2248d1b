"""The udp backend: the protocol's codec and its drops, lock-step against `smoothrl eval`, and
faults injected by a proxy between loop and bridge (loopback only)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from smoothrl.hardware.artefact import Artefact
from smoothrl.hardware.backends.udp import (
    ANSWERS_HELLO,
    COMMAND,
    OBSERVATION,
    Packet,
    Receiver,
    UdpInterface,
    decode,
    encode,
    serve_env,
)
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import parse_profile


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_codec_round_trip_and_rejections():
    packet = Packet(OBSERVATION, 7, np.array([1.5, -2.0, 3.25]), 10.0, 9.5, 1)
    data = encode(packet)
    assert len(data) == 44 + 3 * 8 + 4
    back = decode(data)
    assert back is not None and back.seq == 7 and back.flags == 1 and back.stamp == 9.5
    np.testing.assert_array_equal(back.values, packet.values)
    corrupted = bytearray(data)
    corrupted[40] ^= 0x01
    assert decode(bytes(corrupted)) is None  # bad CRC
    assert decode(data[:-5]) is None  # truncated
    assert decode(b"XXXX" + data[4:]) is None  # foreign magic (and CRC)
    receiver = Receiver(("127.0.0.1", 9), OBSERVATION)
    assert receiver.accept(data, ("127.0.0.1", 9)) is not None
    assert receiver.accept(data, ("127.0.0.1", 9)) is None  # duplicate
    assert receiver.accept(encode(Packet(OBSERVATION, 5, np.zeros(1))), ("127.0.0.1", 9)) is None  # reordered
    assert receiver.accept(encode(Packet(OBSERVATION, 8, np.zeros(1))), ("127.0.0.1", 10)) is None  # other peer
    assert receiver.accept(encode(Packet(COMMAND, 9, np.zeros(1))), ("127.0.0.1", 9)) is None  # wrong kind
    assert receiver.accept(bytes(corrupted), ("127.0.0.1", 9)) is None
    huge = encode(Packet(OBSERVATION, 2**40, np.zeros(1)))  # a corrupted or forged sequence number
    assert receiver.accept(huge, ("127.0.0.1", 9)) is None
    assert receiver.accept(encode(Packet(OBSERVATION, 8, np.zeros(1))), ("127.0.0.1", 9)) is not None  # not locked out
    assert receiver.dropped == {"malformed": 1, "peer": 1, "stale": 2, "kind": 1, "token": 0, "jump": 1}
    paired = Receiver(("127.0.0.1", 9), OBSERVATION, token=42)
    assert paired.accept(encode(Packet(OBSERVATION, 1, np.zeros(1), token=41)), ("127.0.0.1", 9)) is None
    assert paired.accept(encode(Packet(OBSERVATION, 2**63 + 5, np.zeros(1), token=42)), ("127.0.0.1", 9)) is not None
    restarted = Packet(OBSERVATION, 1, np.zeros(1), flags=ANSWERS_HELLO, token=42)  # the robot restarted
    assert paired.accept(encode(restarted), ("127.0.0.1", 9)) is not None and paired.dropped["token"] == 1


class Proxy:
    """Forwards datagrams between a controller and a bridge, injecting faults on the way back."""

    def __init__(self, bridge_port: int, fault=None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.bridge = ("127.0.0.1", bridge_port)
        self.fault = fault or (lambda data, n: [data])
        self.controller = None
        self.commands: list[Packet] = []
        self.stop = threading.Event()
        self.n = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            if sender == self.bridge:
                if self.controller is not None:
                    self.n += 1
                    for out in self.fault(data, self.n):
                        self.sock.sendto(out, self.controller)
            else:
                self.controller = sender
                packet = decode(data)
                if packet is not None and packet.kind == COMMAND:
                    self.commands.append(packet)
                self.sock.sendto(data, self.bridge)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def artefact(tmp_path_factory) -> tuple[Path, Path]:
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    root = tmp_path_factory.mktemp("udp")
    overrides = ["n_timesteps=600", "eval_freq=0", "checkpoint_freq=0", "eval_episodes=1"]
    run_dir = train(resolve_config("sac", "Pendulum-v1", "smoke", [*overrides, "learning_starts=100"]), root / "r")
    return run_dir, export_run(run_dir, root / "art")


@pytest.fixture
def start_bridge():
    """Starts bridges in threads; stops them when the test ends."""
    stops: list[threading.Event] = []

    def start(port: int, lockstep: bool, episodes: int | None = 1) -> tuple[threading.Thread, list]:
        out: list = []
        ready, stop = threading.Event(), threading.Event()
        stops.append(stop)

        def serve() -> None:
            out.extend(
                serve_env(
                    "Pendulum-v1", port, lockstep=lockstep, seed=10_000, episodes=episodes, ready=ready, stop=stop
                )
            )

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        assert ready.wait(30)
        return thread, out

    def stop_all() -> None:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(10)

    threads: list[threading.Thread] = []
    start.stop_all = stop_all  # type: ignore[attr-defined]
    yield start
    stop_all()


def profile(port: int, lockstep: bool, **watchdog):
    return parse_profile(
        {
            "backend": "udp",
            "control_period_s": 0.05,
            "udp": {"port": port, "observations": 3, "commands": 1, "lockstep": lockstep, "timeout_s": 0.5},
            "observation": {"max_age_periods": watchdog.pop("max_age_periods", 3)},
            "command": {"safe_action": [0.0]},
            "watchdog": {"on_estop": "stop", **watchdog},
        },
        "udp-test.yaml",
    )


def test_lockstep_over_udp_returns_what_eval_returns(artefact, start_bridge):
    from smoothrl.run.evaluation import evaluate

    run_dir, art = artefact
    port = free_port()
    thread, returns = start_bridge(port, lockstep=True)
    prof = profile(port, True)
    interface = UdpInterface(prof.udp, 0.05)
    stats = ControlLoop(Artefact.load(art).policy(), interface, prof).run()
    thread.join(10)
    reference, _ = evaluate(run_dir, episodes=1)
    assert stats.stopped_by == "episode end" and stats.periods == 200
    assert returns[0] == pytest.approx(reference["mean_return"], rel=1e-4)
    assert interface.plant_kpis == {"return": pytest.approx(returns[0]), "length": 200, "episodes": 1}


def test_lost_link_latches_the_estop_and_the_robot_gets_the_safe_action(artefact, start_bridge):
    _, art = artefact
    port = free_port()
    thread, _ = start_bridge(port, lockstep=False, episodes=None)
    proxy = Proxy(port, fault=lambda data, n: [data] if n < 20 else [])  # observations stop after 20
    prof = profile(proxy.port, False)
    stats = ControlLoop(Artefact.load(art).policy(), UdpInterface(prof.udp, 0.05), prof).run(10.0)
    proxy.close()
    assert stats.estop is not None and "stale observation" in stats.estop
    assert stats.stopped_by == "estop" and stats.periods < 40  # within max_age_periods of the loss
    assert proxy.commands[-1].values.tolist() == [0.0]  # the last command the robot got: the safe action


def test_duplicated_reordered_and_corrupted_packets_are_dropped_and_the_loop_goes_on(artefact, start_bridge):
    _, art = artefact
    port = free_port()
    thread, _ = start_bridge(port, lockstep=False, episodes=None)
    held: list[bytes] = []

    def faults(data: bytes, n: int) -> list[bytes]:
        if n % 7 == 0:  # duplicate
            return [data, data]
        if n % 11 == 0:  # corrupt a payload byte
            bad = bytearray(data)
            bad[-6] ^= 0xFF
            return [bytes(bad)]
        if n % 13 == 0:  # hold it back: it arrives after the next one
            held.append(data)
            return []
        out = [data, *held]
        held.clear()
        return out

    proxy = Proxy(port, fault=faults)
    prof = profile(proxy.port, False, max_age_periods=20)  # a loaded machine must not make it stale
    interface = UdpInterface(prof.udp, 0.05)
    stats = ControlLoop(Artefact.load(art).policy(), interface, prof).run(2.0)
    proxy.close()
    assert stats.estop is None and stats.periods == 40
    dropped = interface.receiver.dropped
    assert dropped["stale"] >= 3 and dropped["malformed"] >= 2  # duplicates + reordered, corrupted


def test_no_bridge_is_one_clear_error(artefact):
    from smoothrl.errors import SmoothRLError

    _, art = artefact
    prof = profile(free_port(), True)
    interface = UdpInterface(prof.udp, 0.05)
    interface.configure()
    with pytest.raises(SmoothRLError, match="no bridge answers"):
        interface.activate()
    interface.deactivate()


def test_the_bridge_pairs_with_one_controller_and_refuses_a_second(artefact, start_bridge):
    """A second controller's hello is refused with one clear error, and its commands never reach
    the robot; the paired controller's deployment runs on undisturbed."""
    import socket as sockets

    from smoothrl.errors import SmoothRLError

    _, art = artefact
    port = free_port()
    start_bridge(port, lockstep=False, episodes=None)
    proxy = Proxy(port)  # sees what reaches the bridge from the paired controller
    prof = profile(proxy.port, False)
    first = UdpInterface(prof.udp, 0.05)
    loop = ControlLoop(Artefact.load(art).policy(), first, prof)
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(loop.run(2.0)))
    runner.start()
    while loop.stats.periods < 5:
        time.sleep(0.01)
    second = UdpInterface({**prof.udp, "port": port}, 0.05)
    second.configure()
    with pytest.raises(SmoothRLError, match="paired with another controller"):
        second.activate()
    # a rogue sender's commands with a guessed token: ignored (other address, other token)
    rogue = sockets.socket(sockets.AF_INET, sockets.SOCK_DGRAM)
    for seq in range(1, 20):
        rogue.sendto(encode(Packet(COMMAND, seq, np.array([2.0]), token=first.token + 1)), ("127.0.0.1", port))
    rogue.close()
    second.deactivate()
    runner.join(30)
    proxy.close()
    stats = outcome[0]
    assert stats.estop is None and stats.periods == 40, stats.summary()


def test_a_restarted_bridge_is_paired_again_and_the_loop_recovers(artefact, start_bridge):
    """The robot's bridge restarts (its sequence numbers begin again): the controller, riding
    through with ``on_estop: recover``, says hello again, resynchronises and re-arms."""
    _, art = artefact
    port = free_port()

    def bridge() -> None:
        start_bridge(port, lockstep=False, episodes=None)

    bridge()
    prof = profile(port, False, on_estop="recover", recover_after_periods=4)
    interface = UdpInterface(prof.udp, 0.05)
    loop = ControlLoop(Artefact.load(art).policy(), interface, prof)
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(loop.run(6.0)))
    runner.start()
    while loop.stats.periods < 20:
        time.sleep(0.01)
    start_bridge.stop_all()  # the robot goes down ...
    time.sleep(0.5)
    bridge()  # ... and comes back on the same port, counting from 1 again
    runner.join(60)
    stats = outcome[0]
    assert stats.estops >= 1 and stats.recoveries >= 1 and stats.estop is None, stats.summary()
