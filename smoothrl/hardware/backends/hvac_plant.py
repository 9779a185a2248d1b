"""The plant of the ``modbus`` backend: the HVAC simulator (one building) behind a pymodbus TCP
server, for ``smoothrl bridge modbus-hvac`` and the tests. It runs on the development machine
(it imports the simulator); the register layout is in :mod:`smoothrl.hardware.backends.modbus`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.backends.modbus import (
    FINISHED_REGISTER,
    HEALTH_REGISTER,
    KPI_REGISTER,
    PLANT_KPIS,
    STEP_REGISTER,
    from_registers,
    to_registers,
)


class HVACPlant:
    """
    The HVAC simulator (one building) as a plant a protocol server publishes: its observation,
    the commands last written, stepping, the episode's return and KPIs.

    :param preset: the HVAC preset (``envs/<name>.yaml``)
    :param lockstep: step once per command sequence number; else in real time
    :param speedup: real time: simulated seconds per wall-clock second / step length
    :param seed: seed of the episode's initial temperatures (and, on the train split, its start day)
    :param split: ``"test"`` (the first evaluation week, as ``smoothrl eval`` plays it) or ``"train"``
        (a random training week)
    :param env_id: the HVAC id (``smoothrl/HVAC-v0`` modulating, ``smoothrl/HVACMultiZone-v0``)
    :param env_kwargs: more keyword arguments of the env
    """

    def __init__(
        self,
        preset: str | None = None,
        lockstep: bool = True,
        speedup: float = 1.0,
        seed: int = 10_000,
        split: str = "test",
        env_id: str = "smoothrl/HVAC-v0",
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import gymnasium as gym

        import smoothrl.envs  # noqa: F401  (registers the ids)

        kwargs = {**(env_kwargs or {}), "split": split, **({"preset": preset} if preset else {})}
        kwargs.setdefault("in_order", split == "test")  # the weeks evaluation plays, in its order
        self.env = gym.make(env_id, **kwargs).unwrapped
        self.sim = self.env.sim
        self.obs, _ = self.env.reset(seed=seed)
        self.zones = int(np.prod(self.env.action_space.shape))
        self.names = list(self.sim.obs_names)
        self.lockstep = lockstep
        self.dt = self.sim.dt_h * 3600.0 / speedup
        self.command = np.zeros(self.zones)
        self.steps = 0
        self.episode_return = 0.0
        self.kpis: dict[str, float] | None = None
        self.finished = threading.Event()
        self.ready = threading.Event()
        self._end_read = False  # a controller has seen that the run ended
        self._lock = threading.Lock()

    def _seconds(self) -> int:
        """The plant's clock: simulated seconds since January 1st, 00:00."""
        return int(self.sim.k[0]) * int(round(self.sim.dt_h * 3600))

    def _kpi_values(self) -> np.ndarray:
        """:return: the return so far and (once the run has ended) the KPIs, in :data:`PLANT_KPIS` order"""
        kpis = {"return": self.episode_return, **(self.kpis or {})}
        return np.array([kpis.get(name, np.nan) for name in PLANT_KPIS], dtype=np.float64)

    def _advance(self) -> None:
        """One step of the plant with the commands last written (a protocol server may add to it)."""
        self._step()

    async def _run(self, stop: threading.Event, serving: Any = lambda: True) -> None:
        """
        Step in real time (lock-step: the protocol's handlers step) until ``stop`` is set, the
        server stops ``serving()``, or a second after a controller has read that the run ended.
        """
        next_step = time.monotonic() + self.dt
        ended_at: float | None = None
        while not stop.is_set() and serving():
            if self._end_read:  # a controller saw the end: let it finish its last requests, then stop
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > 1.0:
                    break
            await asyncio.sleep(0.005 if self.lockstep else max(0.0, min(0.05, next_step - time.monotonic())))
            if not self.lockstep and time.monotonic() >= next_step:
                next_step += self.dt
                self._advance()

    def _step(self) -> None:
        with self._lock:
            if self.finished.is_set():
                return
            obs, reward, _, truncated, info = self.env.step(self.command.astype(np.float32))
            self.obs = obs
            self.steps += 1
            self.episode_return += reward
            if truncated:
                self.kpis = dict(info["kpis"])
                self.finished.set()


class HVACPlantServer(HVACPlant):
    """
    The HVAC simulator (one building) behind a pymodbus TCP server (see the module docstring).

    :param preset: the HVAC preset (``envs/<name>.yaml``)
    :param port: TCP port
    :param host: address to bind (loopback by default)
    :param lockstep: step once per command sequence number; else in real time
    :param speedup: real time: simulated seconds per wall-clock second / step length
    :param seed: seed of the episode's initial temperatures (and, on the train split, its start day)
    :param split: ``"test"`` or ``"train"`` (see :class:`HVACPlant`)
    :param env_id: the HVAC id (``smoothrl/HVAC-v0`` modulating, ``smoothrl/HVACMultiZone-v0``)
    :param env_kwargs: more keyword arguments of the env
    """

    def __init__(
        self,
        preset: str | None = None,
        port: int = 5020,
        host: str = "127.0.0.1",
        lockstep: bool = True,
        speedup: float = 1.0,
        seed: int = 10_000,
        split: str = "test",
        env_id: str = "smoothrl/HVAC-v0",
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(preset, lockstep, speedup, seed, split, env_id, env_kwargs)
        self.port, self.host = port, host
        self.sequence = 0

    @property
    def sequence_register(self) -> int:
        """Holding register of the command sequence number (right after the commands)."""
        return 2 * self.zones

    def register_map(self) -> dict[str, Any]:
        """:return: the addresses a profile needs, by channel name"""
        return {
            "observations": {name: 2 * i for i, name in enumerate(self.names)},
            "step_register": STEP_REGISTER,
            "command_register": 0,
            "sequence_register": self.sequence_register,
            "kpi_register": KPI_REGISTER,
            "health_register": HEALTH_REGISTER,
            "weekday_jan1": int(self.sim.profiles["weekday"][0]),
        }

    async def _action(self, fc: int, start: int, address: int, count: int, registers: list, values: Any) -> None:
        if fc == 4:  # input registers: publish the current state
            with self._lock:
                words = to_registers(self.obs)
                seconds, ended = self._seconds(), self.finished.is_set()
                status = [self.steps >> 16, self.steps & 0xFFFF, seconds >> 16, seconds & 0xFFFF, int(ended)]
                if ended and address <= FINISHED_REGISTER < address + count:
                    self._end_read = True
                report = to_registers(self._kpi_values())
            registers[0 - start : len(words) - start] = words
            registers[STEP_REGISTER - start : FINISHED_REGISTER + 1 - start] = status
            registers[KPI_REGISTER - start : KPI_REGISTER + len(report) - start] = report
        elif values is not None:  # a write to the holding registers
            current = list(registers)
            current[address - start : address - start + len(values)] = list(values)
            command = from_registers(current[0 - start : 2 * self.zones - start])
            sequence = int(current[self.sequence_register - start])
            with self._lock:
                self.command = np.clip(command, -1.0, 1.0)
            if sequence != self.sequence:
                self.sequence = sequence
                if self.lockstep:
                    self._step()
        return None

    async def _serve(self, stop: threading.Event) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import SimData, SimDevice
        from pymodbus.simulator.simdata import DataType

        def block(count: int) -> list:
            return [SimData(0, count=count, datatype=DataType.REGISTERS)]

        bits = [SimData(0, count=1, datatype=DataType.BITS)]
        device = SimDevice(
            id=1,
            simdata=(
                bits,
                bits,
                block(max(self.sequence_register + 1, HEALTH_REGISTER + 2)),
                block(KPI_REGISTER + 2 * len(PLANT_KPIS)),
            ),
            action=self._action,
        )
        server = ModbusTcpServer(device, address=(self.host, self.port))
        task = asyncio.create_task(server.serve_forever())
        await asyncio.sleep(0.05)
        self.ready.set()
        await self._run(stop, lambda: not task.done())
        await server.shutdown()
        if task.done() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    def serve(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """
        Serve until ``stop`` is set, or until the episode has ended and a controller has read that.

        :param stop: ends the server
        :return: ``{"steps", "episode_return", "kpis"}``
        :raises SmoothRLError: when the port is taken
        """
        stop = stop or threading.Event()
        try:
            asyncio.run(self._serve(stop))
        except (OSError, RuntimeError) as e:  # pymodbus: RuntimeError("Could not start listen ...")
            reason = getattr(e, "strerror", None) or str(e)
            raise SmoothRLError(f"cannot listen on {self.host}:{self.port} ({reason}); pick another @port") from None
        return {"steps": self.steps, "episode_return": self.episode_return, "kpis": self.kpis}
