"""The ``modbus`` backend (building automation over Modbus TCP, with pymodbus) and its plant.

Values travel as IEEE-754 float32 in two consecutive 16-bit registers, high word first (the
usual "ABCD" order of building-automation gateways) unless the profile says ``word_order:
little``, or as scaled signed 16-bit integers (``encoding: int16``, ``scale``), as many gateways
publish them. The profile names every register the
controller touches::

    modbus:
      host: 127.0.0.1
      port: 5020
      unit: 1                  # the Modbus device id
      lockstep: true
      timeout_s: 2.0            # how long one request may take
      connect_timeout_s: 10.0   # how long to wait for the gateway at start-up
      step_register: 100       # input registers: the plant's step counter or heartbeat (uint32, 2 registers:
                               # the observation is as old as its last change), the
                               # simulated seconds since Jan 1, 00:00 (uint32, 2 registers) and 1
                               # once the plant's run has ended (1 register): 100..104
      command_register: 0      # holding registers: one float32 per command channel ...
      sequence_register: 2     # ... then a holding register the controller bumps with each command
      health_register: 20      # optional: two holding registers the controller writes every period for
                               # the BMS: a heartbeat (uint16, +1 per write) and its state (0 the
                               # policy or bring-up, 1 the safe action, 2 stopped)
      encoding: float32        # or int16: one signed register per value, value = raw / scale
      word_order: big          # float32: big (high word first, "ABCD") or little ("CDAB")
      scale: 1.0               # int16: the gateway's scale factor (100: hundredths)
      kpi_register: 110        # optional: input registers where the plant reports its KPIs (float32
                               # each: return, tdis_tot, ener_tot, cost_tot, pele_tot, atvl_tot,
                               # switches_per_day); deploy reports them at the end
    observation:
      channels:                # in the policy's order; each from a register, the clock, the weather
        - {name: t_zone, register: 0}          # file, the tariff or a constant (see
        - {name: tod_sin, clock: tod_sin}      # smoothrl.hardware.sources)
        - {name: unused, constant: 0.0}

The client reads input registers and writes only the command and sequence registers the profile
names; a register the server does not have is one clear error at ``configure``.

``smoothrl bridge modbus-hvac`` (:mod:`smoothrl.hardware.backends.hvac_plant`) runs the HVAC
simulator (one building) behind a pymodbus TCP server on loopback: every observation channel of
the env at input registers ``2 i`` (float32), the step counter, the clock and the run-ended
flag at 100, 102 and 104, the heat-pump commands at holding registers ``2 j`` and the sequence
register right after them. Lock-step: each new sequence number steps the plant once with the
commands written alongside it. Real time: the plant steps every
``step_minutes / speedup`` with the latest commands.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.backends.counter import StepCounter
from smoothrl.hardware.interface import Channels, HardwareInterface
from smoothrl.hardware.sources import ChannelSources

STEP_REGISTER = 100
CLOCK_REGISTER = 102
FINISHED_REGISTER = 104
#: input registers where smoothrl's plant reports its KPIs so far (float32 each, in this order)
KPI_REGISTER = 110
PLANT_KPIS = ("return", "tdis_tot", "ener_tot", "cost_tot", "pele_tot", "atvl_tot", "switches_per_day")
#: holding registers where smoothrl's plant lets a controller report its health (heartbeat, state)
HEALTH_REGISTER = 20
#: the controller's state in its health register's second word, for the BMS
HEALTH_RUNNING, HEALTH_SAFE, HEALTH_STOPPED = 0, 1, 2


def _codec() -> Any:
    from pymodbus.client import ModbusTcpClient  # its register converters (a classmethod API)

    return ModbusTcpClient


def to_registers(
    values: np.ndarray, encoding: str = "float32", word_order: str = "big", scale: float = 1.0
) -> list[int]:
    """
    :param values: floats
    :param encoding: ``float32`` (two registers per value) or ``int16`` (one signed register per
        value, ``round(value * scale)``, saturated at the int16 range)
    :param word_order: float32: ``big`` (high word first, "ABCD") or ``little`` (low word first, "CDAB")
    :param scale: int16: the gateway's scale factor
    :return: the registers
    """
    codec = _codec()
    values = np.ravel(np.asarray(values, dtype=np.float64))
    if encoding == "int16":
        raw = np.clip(np.round(np.nan_to_num(values * scale, nan=0.0)), -32768, 32767).astype(int)
        return codec.convert_to_registers([int(v) for v in raw], codec.DATATYPE.INT16)
    return codec.convert_to_registers([float(v) for v in values], codec.DATATYPE.FLOAT32, word_order=word_order)


def from_registers(
    registers: list[int], encoding: str = "float32", word_order: str = "big", scale: float = 1.0
) -> np.ndarray:
    """
    :param registers: registers holding values as :func:`to_registers` writes them
    :param encoding: ``float32`` or ``int16``
    :param word_order: float32: ``big`` or ``little``
    :param scale: int16: the gateway's scale factor (the value is ``raw / scale``)
    :return: the values
    """
    codec = _codec()
    if encoding == "int16":
        raw = codec.convert_from_registers(list(registers), codec.DATATYPE.INT16)
        return np.atleast_1d(np.asarray(raw, dtype=np.float64)) / scale
    out = codec.convert_from_registers(list(registers), codec.DATATYPE.FLOAT32, word_order=word_order)
    return np.atleast_1d(np.asarray(out, float))


def uint32(registers: list[int]) -> int:
    """:param registers: two 16-bit registers, high word first
    :return: the unsigned 32-bit value"""
    codec = _codec()
    return int(codec.convert_from_registers(list(registers), codec.DATATYPE.UINT32))


#: the most registers one Modbus read may ask for (the protocol's limit is 125)
MAX_READ = 124


def _runs(addresses: list[int], width: int = 2) -> list[tuple[int, int]]:
    """``(start, count)`` reads covering the values of ``width`` registers at ``addresses``:
    contiguous, at most :data:`MAX_READ` registers each, never reaching into a gap between channels."""
    runs: list[list[int]] = []
    for address in addresses:
        if runs and address <= runs[-1][1] and address + width - runs[-1][0] <= MAX_READ:
            runs[-1][1] = max(runs[-1][1], address + width)
        else:
            runs.append([address, address + width])
    return [(start, stop - start) for start, stop in runs]


class ModbusInterface(HardwareInterface):
    """
    The controller's side: a pymodbus TCP client.

    :param settings: the profile's ``modbus`` section (see the module docstring)
    :param channels: the profile's ``observation.channels``
    :param commands: number of command channels
    :param period: the control period
    :param lockstep: override ``settings["lockstep"]``
    :param exogenous: the profile's ``exogenous`` section (weather file and tariff), for channels
        computed on the controller (:mod:`smoothrl.hardware.sources`)
    """

    def __init__(
        self,
        settings: dict[str, Any],
        channels: list[dict[str, Any]],
        commands: int,
        period: float,
        lockstep: bool | None = None,
        exogenous: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        weekday = settings.get("weekday_jan1")
        self.sources = ChannelSources(channels, exogenous or {}, period, None if weekday is None else int(weekday))
        self.commands = commands
        self.period = period
        self.lockstep = bool(settings.get("lockstep", False) if lockstep is None else lockstep)
        self.unit = int(settings.get("unit", 1))
        self.timeout = float(settings.get("timeout_s", 2.0))
        self.step_register = int(settings.get("step_register", STEP_REGISTER))
        self.command_register = int(settings.get("command_register", 0))
        self.encoding = str(settings.get("encoding", "float32"))
        self.word_order = str(settings.get("word_order", "big"))
        self.scale = float(settings.get("scale", 1.0))
        self.width = 1 if self.encoding == "int16" else 2  # registers per value
        self.sequence_register = int(settings.get("sequence_register", self.command_register + self.width * commands))
        health = settings.get("health_register")
        self.health_register = None if health is None else int(health)
        self._heartbeat = 0
        self._runs = _runs(self.sources.registers, self.width)
        self.client: Any = None
        self.sequence = 0
        self.counter = StepCounter(self.lockstep, self.timeout)
        self._last_obs: np.ndarray | None = None
        self._finished = False
        kpi = settings.get("kpi_register")
        self.kpi_register = None if kpi is None else int(kpi)
        #: the KPIs the plant reported (``kpi_register``), read when its run ends or the deployment does
        self.plant_kpis: dict[str, float] | None = None

    def _check(self, response: Any, what: str) -> Any:
        if response is None or response.isError():
            raise ConnectionError(f"Modbus {what} failed ({response})")
        return response

    def configure(self) -> Channels:
        from pymodbus.client import ModbusTcpClient

        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # failures become our one-line errors

        host, port = str(self.settings.get("host", "127.0.0.1")), int(self.settings["port"])
        self.client = ModbusTcpClient(host, port=port, timeout=self.timeout, retries=0)
        deadline = time.monotonic() + float(self.settings.get("connect_timeout_s", 10.0))
        while (
            not self.client.connect()
        ):  # a gateway (or bridge) still starting: wait for it, as long as the profile says
            if time.monotonic() >= deadline:
                raise SmoothRLError(
                    f"no Modbus server answers at {host}:{port}; start the plant (smoothrl bridge) first"
                )
            time.sleep(0.2)
        reads = [(self.step_register, 5, "the step, clock and end registers")]
        if self.kpi_register is not None:
            reads.append((self.kpi_register, 2 * len(PLANT_KPIS), "the KPI registers"))
        reads += [(start, count, "observation registers") for start, count in self._runs]
        for address, count, what in reads:
            response = self.client.read_input_registers(address, count=count, device_id=self.unit)
            if response.isError():
                self.client.close()
                raise SmoothRLError(
                    f"the Modbus server has no input registers {address}..{address + count - 1} ({what}); "
                    "fix the register map in the profile"
                )
        response = self.client.read_holding_registers(
            self.command_register, count=self.width * self.commands, device_id=self.unit
        )
        sequence = self.client.read_holding_registers(self.sequence_register, count=1, device_id=self.unit)
        if response.isError() or sequence.isError():
            self.client.close()
            raise SmoothRLError(
                f"the Modbus server has no holding registers {self.command_register}..{self.sequence_register} "
                "(commands and sequence); fix the register map in the profile"
            )
        if self.health_register is not None:
            health = self.client.read_holding_registers(self.health_register, count=2, device_id=self.unit)
            if health.isError():
                self.client.close()
                raise SmoothRLError(
                    f"the Modbus server has no holding registers {self.health_register}..{self.health_register + 1} "
                    "(the controller's health); fix modbus.health_register in the profile"
                )
        self.sequence = int(sequence.registers[0])
        return Channels(len(self.sources.channels), self.commands, self.sources.names)

    def activate(self) -> None:
        """The plant is already running (real time) or waiting for the first command (lock-step)."""

    def _status(self) -> tuple[int, float]:
        regs = self._check(
            self.client.read_input_registers(self.step_register, count=5, device_id=self.unit), "read"
        ).registers
        if regs[4] and not self._finished:
            self._read_kpis()
        self._finished = bool(regs[4])
        return uint32(regs[:2]), float(uint32(regs[2:4]))

    def _read_kpis(self) -> None:
        """Read the plant's KPI registers, if the profile names them (best effort: a plant going away keeps none)."""
        if self.kpi_register is None or self.client is None:
            return
        response = self.client.read_input_registers(self.kpi_register, count=2 * len(PLANT_KPIS), device_id=self.unit)
        if response is not None and not response.isError():
            values = from_registers(list(response.registers))
            self.plant_kpis = {name: float(v) for name, v in zip(PLANT_KPIS, values, strict=True)}

    @property
    def finished(self) -> bool:
        return self._finished

    def read(self) -> tuple[np.ndarray, float]:
        if self._finished and self._last_obs is not None:  # the plant's run is over: nothing new to read
            return self._last_obs.copy(), time.monotonic()
        step, seconds = self.counter.wait(self._status, lambda: self._finished)
        stamp = self.counter.stamp(step)
        words: dict[int, int] = {}
        for start, count in self._runs:
            response = self.client.read_input_registers(start, count=count, device_id=self.unit)
            words.update(enumerate(self._check(response, "read").registers, start))
        values = {a: float(self._decode([words[a + i] for i in range(self.width)])[0]) for a in self.sources.registers}
        obs = self.sources.observe(values, seconds)
        self._last_obs = obs
        return obs, stamp

    def write(self, command: np.ndarray) -> None:
        self._write_command(command, HEALTH_RUNNING)

    def emergency_stop(self, command: np.ndarray) -> None:
        self._write_command(command, HEALTH_SAFE)

    def _decode(self, registers: list[int]) -> np.ndarray:
        return from_registers(registers, self.encoding, self.word_order, self.scale)

    def _write_command(self, command: np.ndarray, health: int) -> None:
        """The command and the sequence number, then (``health_register``) the heartbeat and state."""
        self.sequence = (self.sequence + 1) % 65536
        self._write_registers(command)
        if self.health_register is not None:
            self._heartbeat = (self._heartbeat + 1) % 65536
            self._check(
                self.client.write_registers(self.health_register, [self._heartbeat, health], device_id=self.unit),
                "write",
            )

    def _write_registers(self, command: np.ndarray) -> None:
        values = to_registers(np.asarray(command, dtype=np.float64).ravel(), self.encoding, self.word_order, self.scale)
        if self.sequence_register == self.command_register + len(values):  # one write: commands, then sequence
            self._check(
                self.client.write_registers(self.command_register, [*values, self.sequence], device_id=self.unit),
                "write",
            )
            return
        self._check(self.client.write_registers(self.command_register, values, device_id=self.unit), "write")
        self._check(self.client.write_registers(self.sequence_register, [self.sequence], device_id=self.unit), "write")

    def deactivate(self) -> None:
        if self.client is not None:
            if self.plant_kpis is None:
                with contextlib.suppress(Exception):
                    self._read_kpis()
            if self.health_register is not None:  # tell the BMS the controller has stopped (best effort)
                with contextlib.suppress(Exception):
                    self.client.write_registers(
                        self.health_register, [self._heartbeat, HEALTH_STOPPED], device_id=self.unit
                    )
            self.client.close()
            self.client = None
