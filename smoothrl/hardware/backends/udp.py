"""The ``udp`` backend: a small binary protocol to a robot bridge, and the bridge's env side.

Every datagram is one packet, little-endian::

    offset  size  field
    0       4     magic      b"SRL1"
    4       1     version    2
    5       1     kind       1 observation (bridge -> controller), 2 command (controller -> bridge),
                             3 hello (controller -> bridge: pair, send an observation),
                             4 refused (bridge -> controller: paired with another controller),
                             5 report (bridge -> controller, when an episode ends: its return,
                             its length in steps, the episodes finished so far)
    6       1     flags      bit 0: the episode ended with this observation;
                             bit 1: this observation answers a hello (the receiver restarts its
                             sequence check: a robot or controller that restarted resynchronises)
    7       1     (zero)
    8       8     seq        sequence number, per sender, increasing (64 bits: it does not wrap)
    16      8     token      the deployment's pairing token: chosen at random by the controller,
                             sent in its hello, echoed in every observation, carried by every command
    24      4     n          number of payload values
    28      8     t_sent     sender's monotonic clock when sent (s); the controller measures the
                             offset to its own clock at hello
    36      8     stamp      observation: when it was measured; command: the observation it answers
    44      8 n   payload    n float64 values
    44+8n   4     crc32      zlib.crc32 of every byte before it

A receiver drops a packet that is short, has another magic, version or kind, a bad CRC, comes
from a peer other than the one configured, carries another token, or has a sequence number not
above the last one accepted (duplicates and reordered packets) or more than :data:`MAX_JUMP`
above it (a corrupted or forged number cannot lock the link out); each drop is counted.

Pairing: the bridge binds to the first controller that says hello (its address and token) for the
length of the deployment: it answers another controller's hello with ``refused`` and ignores its
commands, until the paired controller has been silent for ``lease_s``. The paired controller may
say hello again at any time (after a bridge restart it does so by itself when observations stop)
and both sides restart their sequence checks. Sockets bind to loopback unless the profile says
otherwise.

Lock-step: each command makes the bridge step once and answer with the next observation; the
controller waits for an observation newer than its last. Real time: the bridge steps every
period with the latest command it has and sends every observation; the controller reads the
newest one that has arrived.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.interface import Channels, HardwareInterface

MAGIC = b"SRL1"
VERSION = 2
OBSERVATION, COMMAND, HELLO, REFUSED, REPORT = 1, 2, 3, 4, 5
EPISODE_END, ANSWERS_HELLO = 1, 2
HEADER = struct.Struct("<4sBBBxQQIdd")
CRC = struct.Struct("<I")
MAX_VALUES = 4096
#: the largest step a sequence number may take from one accepted packet to the next
MAX_JUMP = 1 << 20


@dataclass(frozen=True)
class Packet:
    """
    One decoded packet.

    :param kind: ``OBSERVATION``, ``COMMAND``, ``HELLO`` or ``REFUSED``
    :param seq: sequence number
    :param values: payload
    :param t_sent: sender's clock at sending
    :param stamp: measurement time (observations) or the answered observation's (commands)
    :param flags: ``EPISODE_END`` and ``ANSWERS_HELLO`` bits
    :param token: the pairing token
    """

    kind: int
    seq: int
    values: np.ndarray
    t_sent: float = 0.0
    stamp: float = 0.0
    flags: int = 0
    token: int = 0


def encode(packet: Packet) -> bytes:
    """:param packet: what to send
    :return: the datagram"""
    values = np.ascontiguousarray(packet.values, dtype="<f8").ravel()
    head = HEADER.pack(
        MAGIC, VERSION, packet.kind, packet.flags, packet.seq, packet.token, values.size, packet.t_sent, packet.stamp
    )
    body = head + values.tobytes()
    return body + CRC.pack(zlib.crc32(body))


def decode(data: bytes) -> Packet | None:
    """
    :param data: a datagram
    :return: the packet, or ``None`` when it is malformed (short, foreign, corrupted)
    """
    if len(data) < HEADER.size + CRC.size:
        return None
    body, (crc,) = data[: -CRC.size], CRC.unpack(data[-CRC.size :])
    if zlib.crc32(body) != crc:
        return None
    magic, version, kind, flags, seq, token, n, t_sent, stamp = HEADER.unpack(body[: HEADER.size])
    if (
        magic != MAGIC
        or version != VERSION
        or kind not in (OBSERVATION, COMMAND, HELLO, REFUSED, REPORT)
        or n > MAX_VALUES
    ):
        return None
    if len(body) != HEADER.size + 8 * n:
        return None
    values = np.frombuffer(body[HEADER.size :], dtype="<f8").astype(np.float64)
    return Packet(kind, seq, values, t_sent, stamp, flags, token)


@dataclass
class Receiver:
    """
    Accepts packets of one kind from one peer and one pairing, in order; counts what it drops.

    :param peer: ``(host, port)`` the packets must come from (``None``: the first sender)
    :param kind: the kind expected
    :param token: the pairing token they must carry (``None``: any)
    """

    peer: tuple[str, int] | None
    kind: int
    token: int | None = None
    last_seq: int = -1
    dropped: dict[str, int] = field(
        default_factory=lambda: {"malformed": 0, "peer": 0, "stale": 0, "kind": 0, "token": 0, "jump": 0}
    )

    def accept(self, data: bytes, sender: tuple[str, int]) -> Packet | None:
        """:return: the packet when it is acceptable, else ``None`` (and the drop counted)"""
        if self.peer is not None and tuple(sender[:2]) != tuple(self.peer):
            self.dropped["peer"] += 1
            return None
        packet = decode(data)
        if packet is None:
            self.dropped["malformed"] += 1
            return None
        if packet.kind in (HELLO, REFUSED, REPORT):  # pairing and reports: the caller decides
            return packet
        if packet.kind != self.kind:
            self.dropped["kind"] += 1
            return None
        if self.token is not None and packet.token != self.token:
            self.dropped["token"] += 1
            return None
        if packet.flags & ANSWERS_HELLO:  # the far end (re)started its sequence for us
            self.last_seq = -1
        if packet.seq <= self.last_seq:
            self.dropped["stale"] += 1
            return None
        if self.last_seq >= 0 and packet.seq - self.last_seq > MAX_JUMP:
            self.dropped["jump"] += 1
            return None
        self.last_seq = packet.seq
        if self.peer is None:
            self.peer = tuple(sender[:2])  # type: ignore[assignment]
        return packet


class UdpInterface(HardwareInterface):
    """
    The controller's side: sends commands to the bridge, receives its observations.

    :param settings: the profile's ``udp`` section: ``host`` / ``port`` of the bridge, ``bind``
        (default ``127.0.0.1``, port 0: any), ``observations`` and ``commands`` (channel
        counts), ``lockstep``, ``timeout_s`` (how long a read waits in lock-step)
    :param period: the control period
    :param lockstep: override ``settings["lockstep"]``
    """

    def __init__(self, settings: dict[str, Any], period: float, lockstep: bool | None = None) -> None:
        for key in ("port", "observations", "commands"):
            if key not in settings:
                raise SmoothRLError(f"the udp backend needs udp.{key} in the profile")
        self.settings = settings
        self.period = period
        self.lockstep = bool(settings.get("lockstep", False) if lockstep is None else lockstep)
        self.peer = (str(settings.get("host", "127.0.0.1")), int(settings["port"]))
        self.timeout = float(settings.get("timeout_s", max(1.0, 10 * period)))
        self.sock: socket.socket | None = None
        self.token = secrets.randbits(63) | 1  # this deployment's pairing token (never 0)
        self.receiver = Receiver(self.peer, OBSERVATION, self.token)
        self.seq = 0
        self._latest: Packet | None = None
        self._arrivals = 0  # observations accepted so far
        self._refused = False
        #: what the robot reported of its last finished episode (``return``, ``length``, ``episodes``)
        self.plant_kpis: dict[str, float] | None = None
        self._hello_at = 0.0  # when the last hello went out
        self._received_at = 0.0  # when the newest observation arrived (our monotonic clock)
        self.clock_offset = 0.0  # the robot's clock minus ours, measured at hello
        self._consumed = 0  # observations accepted when the last one was read
        self._finished = False

    def configure(self) -> Channels:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((str(self.settings.get("bind", "127.0.0.1")), int(self.settings.get("bind_port", 0))))
        return Channels(int(self.settings["observations"]), int(self.settings["commands"]))

    def _send(self, kind: int, values: np.ndarray, stamp: float = 0.0) -> None:
        assert self.sock is not None
        self.seq += 1
        packet = Packet(kind, self.seq, values, time.monotonic(), stamp, token=self.token)
        self.sock.sendto(encode(packet), self.peer)

    def _receive(self, timeout: float) -> bool:
        """Take every packet that has arrived (waiting up to ``timeout`` for the first); keep the newest."""
        assert self.sock is not None
        got = False
        self.sock.settimeout(timeout)
        while True:
            try:
                data, sender = self.sock.recvfrom(65536)
            except (TimeoutError, BlockingIOError):
                return got
            except ConnectionRefusedError:  # ICMP port unreachable: no bridge listening (yet)
                return got
            packet = self.receiver.accept(data, sender)
            if packet is not None and packet.kind == REFUSED and packet.token == self.token:
                self._refused = True
            if packet is not None and packet.kind == REPORT and packet.token == self.token and packet.values.size >= 3:
                ret, length, episodes = packet.values[:3].tolist()
                self.plant_kpis = {"return": ret, "length": length, "episodes": episodes}
            if packet is not None and packet.kind == OBSERVATION:
                self._latest, self._received_at, got = packet, time.monotonic(), True
                self._arrivals += 1
                self._finished = self.lockstep and bool(packet.flags & EPISODE_END)  # real time: the robot goes on
            self.sock.settimeout(0.0)

    def activate(self) -> None:
        deadline = time.monotonic() + max(self.timeout, 5.0)
        while time.monotonic() < deadline:  # say hello until the bridge answers
            self._hello()
            if self._receive(0.2):
                assert self._latest is not None
                # the robot's clock against ours, agreed at hello (one-way delay included): its stamps in our clock
                self.clock_offset = self._latest.t_sent - self._received_at
                return
            if self._refused:
                raise SmoothRLError(
                    f"the bridge at udp://{self.peer[0]}:{self.peer[1]} is paired with another controller; "
                    "stop that deployment first (the bridge frees itself once it has been silent for the lease)"
                )
        raise SmoothRLError(f"no bridge answers at udp://{self.peer[0]}:{self.peer[1]}; start `smoothrl bridge` first")

    def _hello(self) -> None:
        """Say hello (pair, or pair again with a restarted bridge), at most every 0.1 s."""
        if time.monotonic() - self._hello_at >= 0.1:
            self._hello_at = time.monotonic()
            self._send(HELLO, np.zeros(0))

    def read(self) -> tuple[np.ndarray, float]:
        if self.lockstep:  # wait for the observation that answers the last command
            deadline = time.monotonic() + self.timeout
            while self._latest is None or self._arrivals <= self._consumed:
                if not self._receive(max(0.0, deadline - time.monotonic())) and time.monotonic() >= deadline:
                    self._hello()  # a restarted bridge lost the pairing: pair again, for the next try
                    raise TimeoutError("no observation from the bridge")
        else:
            self._receive(0.0)
            if time.monotonic() - self._received_at > 2 * self.period:
                self._hello()  # silent: perhaps restarted; the watchdog judges the age meanwhile
        if self._latest is None:
            raise TimeoutError("no observation from the bridge yet")
        self._consumed = self._arrivals
        # as old as the older of: its arrival here, and its measurement in our clock (a robot whose clock runs
        # behind or stops cannot make an old observation look fresh, nor a fresh one look old)
        measured = min(self._latest.stamp - self.clock_offset, self._received_at)
        return self._latest.values.copy(), measured

    def write(self, command: np.ndarray) -> None:
        self._send(COMMAND, np.asarray(command, dtype=np.float64), self._latest.stamp if self._latest else 0.0)

    @property
    def finished(self) -> bool:
        return self._finished

    def deactivate(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def serve_env(
    env_id: str,
    port: int,
    host: str = "127.0.0.1",
    lockstep: bool = True,
    seed: int = 0,
    period: float | None = None,
    env_kwargs: dict[str, Any] | None = None,
    episodes: int | None = None,
    ready: Any = None,
    stop: Any = None,
    lease_s: float = 5.0,
) -> list[float]:
    """
    The bridge: runs an env as the far end of the udp backend until ``episodes`` have finished
    (``None``: forever) or Ctrl-C. Pairs with the first controller that says hello and refuses
    every other until that one has been silent for ``lease_s``.

    :param env_id: the env (a PyBullet robot, or any gymnasium / smoothrl id)
    :param port: the UDP port to listen on
    :param host: the address to bind (loopback by default)
    :param lockstep: step once per command; else every ``period`` seconds with the latest command
    :param seed: seed of the first episode
    :param period: real time: seconds per step (default: the env's ``dt``)
    :param env_kwargs: keyword arguments of the env
    :param episodes: stop after this many episodes
    :param ready: an event set once the socket is bound (for tests and the CLI)
    :param stop: an event that ends the bridge when set
    :param lease_s: seconds of silence after which the paired controller is released
    :return: the finished episodes' returns
    """
    from smoothrl.envs import control_period, make_base_env

    env = make_base_env(env_id, **(env_kwargs or {}))
    discrete = env.action_space.__class__.__name__ == "Discrete"
    obs, _ = env.reset(seed=seed)
    dt = period or control_period(env) or 0.02
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    if ready is not None:
        ready.set()
    receiver = Receiver(None, COMMAND)
    stamp, seq, ret, returns, command, ended = time.monotonic(), 0, 0.0, [], None, False
    controller: tuple[str, int] | None = None
    token, heard = 0, time.monotonic()  # the pairing, and when the paired controller was last heard

    def send(flags: int = 0) -> None:
        nonlocal seq
        seq += 1
        values = np.asarray(obs, dtype=np.float64)
        packet = Packet(OBSERVATION, seq, values, time.monotonic(), stamp, flags, token)
        sock.sendto(encode(packet), controller)  # type: ignore[arg-type]

    def pair(hello: Packet, sender: tuple[str, int]) -> bool:
        """Pair with a controller's hello (again, for the paired one); refuse another's."""
        nonlocal controller, token, receiver, heard
        same = controller == tuple(sender[:2]) and token == hello.token
        if not (controller is None or same or time.monotonic() - heard > lease_s):
            sock.sendto(encode(Packet(REFUSED, 0, np.zeros(0), time.monotonic(), 0.0, 0, hello.token)), sender)
            return False
        if not same:
            controller, token = tuple(sender[:2]), hello.token  # type: ignore[assignment]
            receiver = Receiver(controller, COMMAND, token)
        heard = time.monotonic()
        return True

    length = 0

    def step() -> None:
        nonlocal obs, stamp, ret, ended, length
        action = int(command[0]) if discrete else command  # type: ignore[index]
        obs, reward, terminated, truncated, _ = env.step(action)
        stamp, ret, length = time.monotonic(), ret + float(reward), length + 1
        ended = bool(terminated or truncated)

    def report() -> None:
        """The finished episode's return and length, to the paired controller."""
        nonlocal length
        values = np.array([ret, length, len(returns)], dtype=np.float64)
        sock.sendto(encode(Packet(REPORT, 0, values, time.monotonic(), stamp, 0, token)), controller)  # type: ignore[arg-type]
        length = 0

    next_step = time.monotonic() + dt
    try:
        while (episodes is None or len(returns) < episodes) and not (stop is not None and stop.is_set()):
            wait = 0.2 if lockstep else max(0.0, next_step - time.monotonic())
            sock.settimeout(wait if stop is not None or not lockstep else None)
            try:
                data, sender = sock.recvfrom(65536)
            except (TimeoutError, BlockingIOError):
                data, sender = None, None
            hello = decode(data) if data is not None else None
            if hello is not None and hello.kind == HELLO:
                if pair(hello, sender):  # type: ignore[arg-type]
                    if command is None:
                        stamp = time.monotonic()  # standing still: the sensors are read now
                    send(ANSWERS_HELLO)
            elif data is not None:
                packet = receiver.accept(data, sender) if controller is not None else None
                if packet is not None and packet.kind == COMMAND:
                    heard = time.monotonic()
                    command = packet.values if not discrete else packet.values[:1]
                    if lockstep:
                        step()
                        if ended:
                            returns.append(ret)
                            report()
                            send(EPISODE_END)
                            obs, _ = env.reset()
                            stamp, ret, ended = time.monotonic(), 0.0, False
                        else:
                            send()
            if not lockstep and time.monotonic() >= next_step:
                next_step += dt
                if controller is not None and command is None:  # no command yet: the robot stands still
                    stamp = time.monotonic()
                    send()
                elif command is not None and controller is not None:
                    step()
                    flags = EPISODE_END if ended else 0
                    if ended:
                        returns.append(ret)
                        report()
                    send(flags)
                    if ended:
                        obs, _ = env.reset()
                        stamp, ret, ended = time.monotonic(), 0.0, False
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        env.close()
    return returns
