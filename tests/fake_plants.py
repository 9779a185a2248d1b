"""A Modbus gateway and a UDP robot written without smoothrl's runtime: what an integrator's plant
looks like from the wire. Each keeps its own log of what it received (the far end's view), and
can be made to fail the way real ones do: freeze, end its run, answer slowly, fall silent, stamp
packets with a clock of its own.

The gateway speaks pymodbus only (float32 high word first, the register map of smoothrl's modbus
backend: observations at input registers ``2 i``, a step counter at 100, the clock at 102, a
run-ended flag at 104; the command at holding register 0, a sequence number at 2). The robot
speaks the SRL1 datagram layout (version 2, with its pairing token) with :mod:`struct` and :mod:`zlib`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field


def _words(value: float, encoding: str, scale: float) -> list[int]:
    if encoding == "int16":
        return [struct.unpack(">H", struct.pack(">h", round(value * scale)))[0]]
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def _value(words: list[int], encoding: str, scale: float) -> float:
    if encoding == "int16":
        return struct.unpack(">h", struct.pack(">H", words[0]))[0] / scale
    return struct.unpack(">f", struct.pack(">HH", *words))[0]


@dataclass
class Write:
    """What the far end received, and when (its own monotonic clock)."""

    at: float
    command: float


@dataclass
class FakeGateway:
    """
    A Modbus TCP gateway to a plant whose two sensors read ``(sin(step / 10), 0.1)``; it steps
    every ``dt`` seconds (unless frozen).

    :param port: where it listens (loopback)
    :param dt: seconds per plant step
    """

    port: int
    dt: float = 0.05
    step: int = 0
    frozen: bool = False  # the counter and values stop, every read still answers
    ended: bool = False  # the run-ended flag
    delay_s: float = 0.0  # every reply comes this late
    encoding: str = "float32"  # or int16: one register per value, raw = value * scale
    scale: float = 1.0
    writes: list[Write] = field(default_factory=list)
    health: list[tuple[int, int]] = field(default_factory=list)  # (heartbeat, state) at holding 20, 21
    ready: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FakeGateway:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        assert self.ready.wait(10)
        return self

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)

    def _observation(self) -> list[float]:
        import math

        return [math.sin(self.step / 10), 0.1]

    async def _action(self, fc: int, start: int, address: int, count: int, registers: list, values) -> None:  # noqa: ANN001
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if fc == 4:
            words = [w for v in self._observation() for w in _words(v, self.encoding, self.scale)]
            registers[0 - start : len(words) - start] = words
            seconds = self.step * 900
            status = [self.step >> 16, self.step & 0xFFFF, seconds >> 16, seconds & 0xFFFF, int(self.ended)]
            registers[100 - start : 105 - start] = status
        elif values is not None:
            current = list(registers)
            current[address - start : address - start + len(values)] = list(values)
            if address == 20:
                self.health.append((values[0], values[1]))
            else:
                width = 1 if self.encoding == "int16" else 2
                self.writes.append(Write(time.monotonic(), _value(current[0:width], self.encoding, self.scale)))

    async def _serve(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import SimData, SimDevice
        from pymodbus.simulator.simdata import DataType

        bits = [SimData(0, count=1, datatype=DataType.BITS)]
        device = SimDevice(
            id=1,
            simdata=(
                bits,
                bits,
                [SimData(0, count=22, datatype=DataType.REGISTERS)],
                [SimData(0, count=105, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.05)
        self.ready.set()
        next_step = time.monotonic() + self.dt
        while not self.stop.is_set() and not task.done():
            await asyncio.sleep(max(0.0, min(0.01, next_step - time.monotonic())))
            if time.monotonic() >= next_step:
                next_step += self.dt
                if not self.frozen and not self.ended:
                    self.step += 1
        await server.shutdown()


HEADER = struct.Struct("<4sBBBxQQIdd")
OBSERVATION, COMMAND, HELLO = 1, 2, 3
ANSWERS_HELLO = 2


def _packet(kind: int, seq: int, token: int, values: list[float], t_sent: float, stamp: float, flags: int) -> bytes:
    head = HEADER.pack(b"SRL1", 2, kind, flags, seq, token, len(values), t_sent, stamp)
    body = head + struct.pack(f"<{len(values)}d", *values)
    return body + struct.pack("<I", zlib.crc32(body))


@dataclass
class FakeRobot:
    """
    A real-time robot over UDP with three sensors: answers the first hello, then sends an
    observation every ``dt`` seconds stamped with its own clock (``clock_offset_s`` from the host's
    monotonic clock), and logs every command it receives.

    :param dt: seconds per observation
    :param clock_offset_s: the robot's clock minus the host's
    """

    dt: float = 0.05
    clock_offset_s: float = 0.0
    silent: bool = False  # stops sending (still receives)
    clock_stopped: bool = False  # keeps sending, with the same stamp every time
    writes: list[Write] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FakeRobot:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.005)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._thread.join(10)
        self.sock.close()

    def _clock(self) -> float:
        return time.monotonic() + self.clock_offset_s

    def _serve(self) -> None:
        controller, token, seq, next_send, stamp, flags = None, 0, 0, time.monotonic(), self._clock(), 0
        while not self.stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except (TimeoutError, BlockingIOError):
                data = None
            if data is not None and len(data) >= HEADER.size + 4:
                _, _, kind, _, _, their_token, n, _, _ = HEADER.unpack(data[: HEADER.size])
                if kind == HELLO and controller is None:
                    controller, token, next_send, flags = sender, their_token, time.monotonic(), ANSWERS_HELLO
                elif kind == COMMAND and n >= 1:
                    value = struct.unpack("<d", data[HEADER.size : HEADER.size + 8])[0]
                    self.writes.append(Write(time.monotonic(), value))
            if controller is not None and time.monotonic() >= next_send:
                next_send += self.dt
                if self.silent:
                    continue
                if not self.clock_stopped:
                    stamp = self._clock()
                seq += 1
                packet = _packet(OBSERVATION, seq, token, [0.1, 0.2, 0.0], self._clock(), stamp, flags)
                self.sock.sendto(packet, controller)
                flags = 0
