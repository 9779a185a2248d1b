"""The plant of the ``bacnet`` backend: the HVAC simulator (one building) as a BACnet/IP device
(bacpypes3), for ``smoothrl bridge bacnet-hvac`` and the tests. It runs on the development
machine (it imports the simulator).

Its objects, as a building's automation server would publish them:

- every observation channel ``i`` of the env (the shipped profiles' channel names) at instance
  ``i + 1``: an ``analog-input`` in its engineering units (the solar irradiance in W/m2, as a
  pyranometer reports it), or a ``binary-input`` for the flags (``occupied``, ``hvac_locked[...]``);
- (analog inputs notify every change to COV subscribers: ``covIncrement`` 1e-6)
- ``positive-integer-value,1`` the step counter, ``,2`` the plant's clock (seconds since
  January 1st), ``,3`` the command sequence number (written by the controller), and
  ``binary-value,1`` set once the run has ended;
- ``analog-value,1..Z`` the heat pumps' signals, -1 (cool) .. 1 (heat): **commandable**, with a
  priority array. The plant's own sequence (the fallback: the tuned PI by default) writes its
  command at priority 16 every step, so whatever the controller writes at a higher priority wins,
  and when it relinquishes (writes null) the building is back on its own sequence;
- ``analog-value,101..107`` the return and KPIs so far (:data:`~smoothrl.hardware.backends.modbus.PLANT_KPIS`).

Lock-step: each new sequence number steps the plant once with the commands' present values. Real
time: the plant steps every ``step_minutes / speedup``, with or without a controller.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.backends.bacnet import make_application
from smoothrl.hardware.backends.hvac_plant import HVACPlant
from smoothrl.hardware.backends.modbus import PLANT_KPIS

STEP_OBJECT = "positive-integer-value,1"
CLOCK_OBJECT = "positive-integer-value,2"
SEQUENCE_OBJECT = "positive-integer-value,3"
FINISHED_OBJECT = "binary-value,1"
KPI_OBJECT = "analog-value,101"
#: the priority the plant's own sequence writes its commands at (the lowest)
FALLBACK_PRIORITY = 16
#: env units -> (BACnet engineering units, factor from the env's value to the published one)
PUBLISHED_UNITS = {
    "degC": ("degreesCelsius", 1.0),
    "kW/m2": ("wattsPerSquareMeter", 1000.0),
}
FLAGS = ("occupied", "hvac_locked")
#: the analog inputs' COV increment: every change is notified (a building's points would say 0.1 K)
COV_INCREMENT = 1e-6


def _objects() -> dict[str, type]:
    """bacpypes3's local object classes (made on first use: bacpypes3 is an optional dependency)."""
    from bacpypes3.local.analog import AnalogInputObject, AnalogValueObject, AnalogValueObjectCmd
    from bacpypes3.local.binary import BinaryInputObject, BinaryValueObject
    from bacpypes3.local.cov import COVIncrementCriteria
    from bacpypes3.local.object import Object
    from bacpypes3.object import PositiveIntegerValueObject

    class PositiveIntegerValue(Object, PositiveIntegerValueObject):  # type: ignore[misc]
        """A local positive-integer-value object (bacpypes3 ships none), notifying COV subscribers."""

        _cov_criteria = COVIncrementCriteria

    return {
        "ai": AnalogInputObject,
        "av": AnalogValueObject,
        "cmd": AnalogValueObjectCmd,
        "bi": BinaryInputObject,
        "bv": BinaryValueObject,
        "piv": PositiveIntegerValue,
    }


class HVACBacnetServer(HVACPlant):
    """
    The HVAC simulator (one building) as a BACnet/IP device (see the module docstring).

    :param preset: the HVAC preset (``envs/<name>.yaml``)
    :param port: UDP port (BACnet/IP's own is 47808)
    :param host: address to bind (loopback by default)
    :param device: the device instance
    :param lockstep: step once per command sequence number; else in real time
    :param speedup: real time: simulated seconds per wall-clock second / step length
    :param seed: seed of the episode's initial temperatures
    :param split: ``"test"`` or ``"train"`` (see :class:`~smoothrl.hardware.backends.hvac_plant.HVACPlant`)
    :param env_id: the HVAC id
    :param env_kwargs: more keyword arguments of the env
    :param fallback: the building's own sequence when no controller commands it: a rule baseline
        of :func:`smoothrl.envs.hvac.control.make_controller` (tuned for the preset: ``pi``,
        ``thermostat``), or ``None`` (the signals' relinquish default, off)
    """

    def __init__(
        self,
        preset: str | None = None,
        port: int = 47808,
        host: str = "127.0.0.1",
        device: int = 599,
        lockstep: bool = True,
        speedup: float = 1.0,
        seed: int = 10_000,
        split: str = "test",
        env_id: str = "smoothrl/HVAC-v0",
        env_kwargs: dict[str, Any] | None = None,
        fallback: str | None = "pi",
    ) -> None:
        super().__init__(preset, lockstep, speedup, seed, split, env_id, env_kwargs)
        self.port, self.host, self.device = port, host, device
        self.fallback = None
        if fallback is not None:
            from smoothrl.envs.hvac.control import make_controller

            self.fallback = make_controller(fallback, self.sim)
        self.sequence = 0
        #: per step: the priority that commanded the plant (1..16), or ``None`` for the relinquish default
        self.priorities: list[int | None] = []
        self._units = list(getattr(self.sim, "obs_units", ["1"] * len(self.names)))
        self.commands: list[Any] = []
        self.inputs: list[Any] = []
        self.status: dict[str, Any] = {}
        self.kpi_objects: list[Any] = []

    # -- the device's objects ----------------------------------------------------------------

    def object_map(self) -> dict[str, str]:
        """:return: every observation channel's object, by channel name (what a profile maps)"""
        return {name: f"{self._kind(i)},{i + 1}" for i, name in enumerate(self.names)}

    def _kind(self, i: int) -> str:
        return "binary-input" if self.names[i].startswith(FLAGS) else "analog-input"

    def _build(self) -> list[Any]:
        cls = _objects()
        flags = [0, 0, 0, 0]
        for i, name in enumerate(self.names):
            if self._kind(i) == "binary-input":
                obj = cls["bi"](
                    objectIdentifier=("binary-input", i + 1),
                    objectName=name,
                    presentValue="inactive",
                    statusFlags=flags,
                )
            else:
                units = PUBLISHED_UNITS.get(self._units[i], ("noUnits", 1.0))[0]
                obj = cls["ai"](
                    objectIdentifier=("analog-input", i + 1),
                    objectName=name,
                    presentValue=0.0,
                    units=units,
                    covIncrement=COV_INCREMENT,
                    statusFlags=flags,
                )
            self.inputs.append(obj)
        server = self

        class Sequence(cls["piv"]):  # type: ignore[misc,valid-type]
            """The command sequence number: a new one steps a lock-step plant."""

            async def write_property(self, attr: Any, value: Any, index: Any = None, priority: Any = None) -> None:
                await super().write_property(attr, value, index, priority)
                server._sequence_written(int(self.presentValue))

        class Finished(cls["bv"]):  # type: ignore[misc,valid-type]
            """The run-ended flag: once a controller has read it set, the plant may stop."""

            async def read_property(self, attr: Any, index: Any = None) -> Any:
                value = await super().read_property(attr, index)
                if server.finished.is_set():
                    server._end_read = True
                return value

        self.status = {
            "step": cls["piv"](
                objectIdentifier=("positive-integer-value", 1),
                objectName="step",
                presentValue=0,
                covIncrement=1,
                statusFlags=flags,
            ),
            "clock": cls["piv"](
                objectIdentifier=("positive-integer-value", 2),
                objectName="clock_s",
                covIncrement=1,
                presentValue=self._seconds(),
                statusFlags=flags,
            ),
            "sequence": Sequence(
                objectIdentifier=("positive-integer-value", 3), objectName="sequence", presentValue=0, statusFlags=flags
            ),
            "finished": Finished(
                objectIdentifier=("binary-value", 1), objectName="run_ended", presentValue="inactive", statusFlags=flags
            ),
        }
        zones = [n.removeprefix("hvac_signal") for n in self.names if n.startswith("hvac_signal")]
        for z in range(self.zones):
            self.commands.append(
                cls["cmd"](
                    objectIdentifier=("analog-value", z + 1),
                    objectName=f"hvac_command{zones[z] if z < len(zones) else z}",
                    presentValue=0.0,
                    relinquishDefault=0.0,
                    units="noUnits",
                    statusFlags=flags,
                    eventState="normal",
                    outOfService=False,
                )
            )
        first = int(KPI_OBJECT.split(",")[1])
        self.kpi_objects = [
            cls["av"](
                objectIdentifier=("analog-value", first + k),
                objectName=name,
                presentValue=0.0,
                units="noUnits",
                statusFlags=flags,
                eventState="normal",
                outOfService=False,
            )
            for k, name in enumerate(PLANT_KPIS)
        ]
        self._publish()
        return [*self.inputs, *self.status.values(), *self.commands, *self.kpi_objects]

    def _publish(self) -> None:
        """Every object's present value from the simulator's state."""
        for i, obj in enumerate(self.inputs):
            value = float(self.obs[i])
            if self._kind(i) == "binary-input":
                obj.presentValue = "active" if value > 0.5 else "inactive"
            else:
                obj.presentValue = value * PUBLISHED_UNITS.get(self._units[i], ("", 1.0))[1]
        self.status["step"].presentValue = self.steps
        self.status["clock"].presentValue = self._seconds()
        self.status["finished"].presentValue = "active" if self.finished.is_set() else "inactive"
        for obj, value in zip(self.kpi_objects, self._kpi_values(), strict=True):
            obj.presentValue = float(value) if np.isfinite(value) else 0.0

    # -- stepping ------------------------------------------------------------------------------

    def _sequence_written(self, sequence: int) -> None:
        if sequence != self.sequence:
            self.sequence = sequence
            if self.lockstep:
                self._advance()

    def _advance(self) -> None:
        """The building's own sequence writes at priority 16, the winning values step the plant."""
        if self.finished.is_set():
            return
        if self.fallback is not None:
            start = np.array([self.steps == 0])
            action, _ = self.fallback.predict(self.obs[None].astype(np.float64), episode_start=start)
            for obj, value in zip(self.commands, np.ravel(action), strict=True):
                obj.presentValue = float(value)  # a commandable object's present value is its priority 16 slot
        priority = self.commands[0].currentCommandPriority
        self.priorities.append(None if priority.null is not None else int(priority.unsigned))
        self.command = np.clip([float(obj.presentValue) for obj in self.commands], -1.0, 1.0)
        self._step()
        self._publish()

    async def _serve(self, stop: threading.Event) -> None:
        app = make_application(f"{self.host}:{self.port}", self.device, self._build(), name="smoothrl-plant")
        try:
            self.ready.set()
            await self._run(stop)
        finally:
            app.close()

    def serve(self, stop: threading.Event | None = None) -> dict[str, Any]:
        """
        Serve until ``stop`` is set, or until the episode has ended and a controller has read that.

        :param stop: ends the server
        :return: ``{"steps", "episode_return", "kpis", "priorities"}`` (``priorities``: how many
            steps each priority commanded, ``"relinquish default"`` for none)
        :raises SmoothRLError: when the port is taken
        """
        stop = stop or threading.Event()
        try:
            asyncio.run(self._serve(stop))
        except OSError as e:
            raise SmoothRLError(
                f"cannot open BACnet/IP on {self.host}:{self.port} ({e.strerror or e}); pick another @port"
            ) from None
        counts: dict[str, int] = {}
        for p in self.priorities:
            key = "relinquish default" if p is None else str(p)
            counts[key] = counts.get(key, 0) + 1
        return {"steps": self.steps, "episode_return": self.episode_return, "kpis": self.kpis, "priorities": counts}
