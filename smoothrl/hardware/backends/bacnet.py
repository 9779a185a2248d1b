"""The ``bacnet`` backend: a supervisory controller on a building's BACnet/IP network (bacpypes3).

The controller is a BACnet device of its own. It finds the plant's device by its instance
(Who-Is/I-Am: sent to ``address`` when the profile gives one, else broadcast), reads each
observation channel as the ``present-value`` of an object, and writes each command to a
commandable object **at a command priority** of its priority array::

    backend: bacnet
    bacnet:
      device: 599                     # the plant's device instance
      address: 127.0.0.1:47808        # its BACnet/IP address (absent: a Who-Is broadcast finds it)
      local_address: 0.0.0.0:47809    # the controller's own BACnet/IP address and port
      local_device: 4194000           # the controller's device instance
      priority: 8                     # the priority array slot the controller writes (1 highest .. 16)
      on_stop: relinquish             # or safe_action: what the e-stop and every ending write
      commands:
        - {name: "hvac_signal[office]", object: "analog-value,1"}
      step_object: positive-integer-value,1     # optional: a counter the plant bumps each step
      clock_object: positive-integer-value,2    # optional: the plant's seconds since Jan 1 (else this machine's)
      finished_object: binary-value,1           # optional: 1 once the plant's run has ended
      sequence_object: positive-integer-value,3 # optional: the controller bumps it after each command
      kpi_object: analog-value,101              # optional: the first of 7 KPI objects (return, tdis_tot, ...)
      cov: false                                # true: COV subscriptions instead of a read per period
    observation:
      channels:
        - {name: "t_zone[office]", object: "analog-input,1", unit: degC, low: 5, high: 40}
        - {name: tod_sin, clock: tod_sin}

**Relinquish.** On an emergency stop and at every ending (``on_stop: relinquish``, the
default) the controller writes *null* at its priority: the object's present value falls to the
next priority in the array, the BMS's own sequence (or the relinquish default), which is how a
supervisory controller hands a building back. ``on_stop: safe_action`` writes the profile's safe
action at the priority instead and leaves it there. A re-armed loop (``on_estop: recover``)
writes at its priority again and takes the plant back.

**Units.** Where an analog object reports engineering units, they must be the channel's (the
policy's) or convert to them exactly (degrees Fahrenheit or kelvin to degC, W/m2 to kW/m2):
anything else is refused at ``configure``. Binary objects read 0 (inactive) or 1 (active).

**Freshness.** Each period reads every object in one ReadPropertyMultiple. With a
``step_object`` the observation is as old as that counter's last change (a frozen device ages
past ``max_age_periods`` although every read succeeds); without one it is as old as the read.
With ``cov: true`` (real time, with a ``step_object``) the controller subscribes to
change-of-value notifications of every object it reads instead (renewed every
``cov_lifetime_s``) and each period takes the newest values it was sent: no request per period;
the observation is as old as the step counter's last notified change.

The plant side for tests and trials is ``smoothrl bridge bacnet-hvac``
(:mod:`smoothrl.hardware.backends.bacnet_plant`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.backends.counter import StepCounter
from smoothrl.hardware.backends.modbus import PLANT_KPIS
from smoothrl.hardware.interface import Channels, HardwareInterface
from smoothrl.hardware.sources import ChannelSources

#: a channel's unit -> the BACnet engineering unit (bacpypes3's spelling) that is the same
UNITS = {
    "degC": "degrees-celsius",
    "degF": "degrees-fahrenheit",
    "K": "degrees-kelvin",
    "W/m2": "watts-per-square-meter",
    "kW": "kilowatts",
    "W": "watts",
    "kWh": "kilowatt-hours",
    "%": "percent",
    "s": "seconds",
    "Pa": "pascals",
    "m3/s": "cubic-meters-per-second",
}
#: exact conversions (BACnet unit, channel unit) -> (scale, offset): value = raw * scale + offset
CONVERSIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("degrees-fahrenheit", "degC"): (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    ("degrees-kelvin", "degC"): (1.0, -273.15),
    ("watts-per-square-meter", "kW/m2"): (1e-3, 0.0),
    ("watts", "kW"): (1e-3, 0.0),
}
#: units that say nothing about a value (any channel unit reads them)
NO_UNITS = ("no-units",)


def conversion(bacnet_unit: str | None, unit: str | None, what: str) -> tuple[float, float]:
    """
    How an object's present value becomes the channel's value.

    :param bacnet_unit: the object's ``units`` (``None``: it has none, a binary object)
    :param unit: the channel's unit (``None``: not given)
    :param what: the channel and object, for the message
    :return: ``(scale, offset)``
    :raises SmoothRLError: for units that are neither the same nor exactly convertible
    """
    if bacnet_unit is None or bacnet_unit in NO_UNITS or not unit:
        return 1.0, 0.0
    if UNITS.get(unit) == bacnet_unit:
        return 1.0, 0.0
    if (bacnet_unit, unit) in CONVERSIONS:
        return CONVERSIONS[(bacnet_unit, unit)]
    raise SmoothRLError(
        f"{what} reports {bacnet_unit}, but the channel is in {unit}; map a point in {unit} "
        "(or in a unit smoothrl converts exactly) or fix the channel's unit"
    )


class AsyncThread:
    """An asyncio event loop on a thread of its own, for a synchronous caller (the control loop)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, make: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        """
        :param make: makes the coroutine to run on the loop
        :param timeout: seconds to wait for it
        :return: its result
        :raises TimeoutError: when it takes longer (it is cancelled)
        """

        async def call() -> Any:  # made on the loop: some bacpypes3 calls act as soon as they are called
            return await asyncio.wait_for(make(), timeout)

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        try:
            return future.result(timeout + 1.0)
        except (asyncio.TimeoutError, TimeoutError):
            future.cancel()
            raise TimeoutError(f"no answer in {timeout:g} s") from None

    def close(self) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=2.0)
        if not self.loop.is_running():
            self.loop.close()


def make_application(local_address: str, instance: int, objects: list[Any] = (), name: str = "smoothrl") -> Any:
    """
    A bacpypes3 application: a device object, a BACnet/IP network port, and ``objects``.
    Call it on the loop the application will run on.

    :param local_address: ``HOST[/MASK]:PORT`` to bind
    :param instance: the device instance
    :param objects: more local objects
    :param name: the device's name
    :return: the application
    """
    from bacpypes3.app import Application
    from bacpypes3.local.device import DeviceObject
    from bacpypes3.local.networkport import NetworkPortObject

    device = DeviceObject(objectIdentifier=("device", instance), objectName=f"{name}-{instance}", vendorIdentifier=999)
    port = NetworkPortObject(local_address, objectIdentifier=("network-port", 1), objectName="NetworkPort-1")
    return Application.from_object_list([device, port, *objects])


def _number(value: Any) -> float:
    """A present value as a float: Real, Unsigned, Integer, Double, or a BinaryPV (inactive 0, active 1)."""
    return float(value)


class BacnetInterface(HardwareInterface):
    """
    The controller's side (see the module docstring).

    :param settings: the profile's ``bacnet`` section (defaults filled)
    :param channels: the profile's ``observation.channels``
    :param period: the control period
    :param lockstep: override ``settings["lockstep"]``
    :param exogenous: the profile's ``exogenous`` section (weather channels)
    """

    def __init__(
        self,
        settings: dict[str, Any],
        channels: list[dict[str, Any]],
        period: float,
        lockstep: bool | None = None,
        exogenous: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        weekday = settings.get("weekday_jan1")
        self.sources = ChannelSources(channels, exogenous or {}, period, None if weekday is None else int(weekday))
        self.commands = [dict(c) for c in settings["commands"]]
        self.period = period
        self.lockstep = bool(settings.get("lockstep", False) if lockstep is None else lockstep)
        self.timeout = float(settings.get("timeout_s", 2.0))
        self.priority = int(settings.get("priority", 8))
        self.on_stop = str(settings.get("on_stop", "relinquish"))
        self._status_objects = [
            settings.get(k) for k in ("step_object", "clock_object", "finished_object") if settings.get(k)
        ]
        self._io: AsyncThread | None = None
        self.app: Any = None
        self.device_address: Any = None
        self._convert: dict[str, tuple[float, float]] = {}
        self.sequence = 0
        self.counter = StepCounter(self.lockstep, self.timeout, poll_s=0.001)
        self._last_obs: np.ndarray | None = None
        self._finished = False
        self._cov_tasks: list[Any] = []
        self._cov_values: dict[str, Any] = {}
        #: whether the controller's priority slot is empty (it has relinquished the plant)
        self.relinquished = True
        #: the KPIs the plant reported (``kpi_object``), read when its run ends or the deployment does
        self.plant_kpis: dict[str, float] | None = None

    # -- talking to the device --------------------------------------------------------------

    def _call(self, make: Callable[[], Awaitable[Any]], timeout: float | None = None) -> Any:
        """Run a bacpypes3 request on the I/O loop; a BACnet error, reject or abort becomes a ConnectionError."""
        from bacpypes3.apdu import ErrorRejectAbortNack

        assert self._io is not None
        try:
            return self._io.run(make, self.timeout if timeout is None else timeout)
        except ErrorRejectAbortNack as e:  # a BaseException in bacpypes3: the device said no
            raise ConnectionError(f"BACnet device {self.settings['device']} answered {e}") from None

    def _read(self, obj: str, prop: str) -> Any:
        from bacpypes3.primitivedata import ObjectIdentifier

        return self._call(lambda: self.app.read_property(self.device_address, ObjectIdentifier(obj), prop))

    def _write(self, obj: str, value: Any, priority: int | None = None) -> None:
        from bacpypes3.primitivedata import ObjectIdentifier

        self._call(
            lambda: self.app.write_property(
                self.device_address, ObjectIdentifier(obj), "present-value", value, None, priority
            )
        )

    def _read_many(self, objects: list[str]) -> dict[str, Any]:
        """Every object's present value in one ReadPropertyMultiple."""
        from bacpypes3.primitivedata import ObjectIdentifier

        request: list[Any] = []
        for obj in objects:
            request += [ObjectIdentifier(obj), ["present-value"]]
        answer = self._call(lambda: self.app.read_property_multiple(self.device_address, request))
        values: dict[str, Any] = {}
        for (kind, instance), _, _, value in answer:
            key = f"{kind},{instance}"
            if type(value).__name__ == "ErrorType":
                raise ConnectionError(f"BACnet object {key} could not be read ({value.errorCode})")
            values[key] = value
        return values

    def _discover(self) -> Any:
        """The device's address: the I-Am answering a Who-Is for its instance."""
        from bacpypes3.pdu import Address

        device = int(self.settings["device"])
        target = self.settings.get("address")
        wait = float(self.settings.get("connect_timeout_s", 10.0))
        deadline = time.monotonic() + wait
        while True:  # a device still starting: ask again, as long as the profile says
            i_ams = self._call(
                lambda: self.app.who_is(device, device, Address(target) if target else None, timeout=1.0),
                timeout=2.0,
            )
            for i_am in i_ams or []:
                if i_am.iAmDeviceIdentifier[1] == device:
                    return i_am.pduSource
            if time.monotonic() >= deadline:
                where = f"at {target}" if target else "on the network (Who-Is broadcast)"
                raise SmoothRLError(
                    f"no BACnet device {device} answers {where}; start the plant (smoothrl bridge bacnet-hvac) "
                    "or fix bacnet.device and bacnet.address"
                )

    # -- the lifecycle --------------------------------------------------------------------------

    def configure(self) -> Channels:
        from bacpypes3.primitivedata import Null  # noqa: F401  (fails here, not mid-run, without bacpypes3)

        logging.getLogger("bacpypes3").setLevel(logging.CRITICAL)
        self._io = AsyncThread("bacnet-io")
        local = str(self.settings.get("local_address", "0.0.0.0:47809"))

        async def start() -> Any:
            return make_application(local, int(self.settings.get("local_device", 4_194_000)))

        try:
            self.app = self._io.run(start, 5.0)
        except OSError as e:
            self._io.close()
            raise SmoothRLError(
                f"cannot open BACnet/IP on {local} ({e.strerror or e}); set bacnet.local_address to a free port"
            ) from None
        try:
            self.device_address = self._discover()
            self._check_objects()
            if self.settings.get("cov"):
                self._subscribe()
        except BaseException:
            self._close()
            raise
        return Channels(len(self.sources.channels), len(self.commands), self.sources.names)

    def _object_units(self, obj: str, what: str) -> str | None:
        """The object's engineering units (``None`` for an object without them); refuses a missing object."""
        try:
            self._read(obj, "present-value")
        except (ConnectionError, TimeoutError) as e:
            raise SmoothRLError(
                f"the BACnet device has no readable object {obj} ({what}: {e}); fix the object in the profile"
            ) from None
        if not obj.startswith(("analog", "large-analog")):
            return None
        try:
            return str(self._read(obj, "units"))
        except (ConnectionError, TimeoutError):
            return None  # no units property: nothing to check

    def _check_objects(self) -> None:
        for channel in self.sources.channels:
            if "object" in channel:
                what = f"channel {channel['name']!r} ({channel['object']})"
                units = self._object_units(channel["object"], what)
                self._convert[channel["object"]] = conversion(units, channel.get("unit"), what)
        for command in self.commands:
            what = f"command {command['name']!r} ({command['object']})"
            units = self._object_units(command["object"], what)
            if conversion(units, command.get("unit"), what) != (1.0, 0.0):
                raise SmoothRLError(f"{what} reports {units}; command objects must be in the command's own unit")
            try:
                self._read(command["object"], "priority-array")
            except (ConnectionError, TimeoutError):
                raise SmoothRLError(
                    f"{what} is not commandable (it has no priority array); map the command to an analog "
                    "output or a commandable analog value"
                ) from None
        for key in ("step_object", "clock_object", "finished_object", "sequence_object", "kpi_object"):
            obj = self.settings.get(key)
            if obj:
                self._object_units(obj, f"bacnet.{key}")
        sequence = self.settings.get("sequence_object")
        if sequence:
            self.sequence = int(_number(self._read(sequence, "present-value")))

    def activate(self) -> None:
        """The plant is already running (real time) or waiting for the first command (lock-step)."""

    def _subscribe(self) -> None:
        """``cov``: a task per object keeps its newest notified value (the first from a read)."""
        from bacpypes3.primitivedata import ObjectIdentifier

        objects = list(dict.fromkeys([*self._status_objects, *self.sources.objects]))
        self._cov_values = self._read_many(objects)
        lifetime = int(self.settings.get("cov_lifetime_s", 300))

        async def watch(obj: str) -> None:
            async with self.app.change_of_value(
                self.device_address, ObjectIdentifier(obj), None, False, lifetime
            ) as scm:
                while True:
                    prop, value = await scm.get_value()
                    if str(prop) == "present-value":
                        self._cov_values[obj] = value

        async def start() -> None:
            self._cov_tasks = [asyncio.ensure_future(watch(obj)) for obj in objects]

        self._call(start)

    def _status(self) -> tuple[int, float, dict[str, Any]]:
        """The step counter, the plant's clock and every observed object's value, in one request
        (``cov``: the newest values notified)."""
        if self._cov_tasks:
            failed = next((t for t in self._cov_tasks if t.done()), None)
            if failed is not None:  # a subscription refused or lost: the values would age unseen
                raise ConnectionError(
                    f"a COV subscription ended ({failed.exception() if not failed.cancelled() else 'cancelled'})"
                )
            values = dict(self._cov_values)
        else:
            values = self._read_many([*self._status_objects, *self.sources.objects])
        step_obj, clock_obj = self.settings.get("step_object"), self.settings.get("clock_object")
        finished_obj = self.settings.get("finished_object")
        step = int(_number(values[step_obj])) if step_obj else self.counter.last + 1  # no counter: always new
        if clock_obj:
            seconds = _number(values[clock_obj])
        else:  # this machine's local clock
            now = time.localtime()
            seconds = (now.tm_yday - 1) * 86_400.0 + now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
        finished = bool(finished_obj) and bool(_number(values[finished_obj]))
        if finished and not self._finished:
            self._read_kpis()
        self._finished = finished
        return step, seconds, values

    def _read_kpis(self) -> None:
        """Read the plant's KPI objects, if the profile names them (best effort)."""
        first = self.settings.get("kpi_object")
        if not first or self.app is None:
            return
        kind, instance = first.split(",")
        objects = [f"{kind},{int(instance) + i}" for i in range(len(PLANT_KPIS))]
        with contextlib.suppress(Exception):
            values = self._read_many(objects)
            self.plant_kpis = {name: _number(values[o]) for name, o in zip(PLANT_KPIS, objects, strict=True)}

    @property
    def finished(self) -> bool:
        return self._finished

    def read(self) -> tuple[np.ndarray, float]:
        if self._finished and self._last_obs is not None:  # the plant's run is over: nothing new to read
            return self._last_obs.copy(), time.monotonic()
        step, seconds, values = self.counter.wait(self._status, lambda: self._finished)
        stamp = self.counter.stamp(step)
        observed = {}
        for obj in self.sources.objects:
            scale, offset = self._convert.get(obj, (1.0, 0.0))
            observed[obj] = _number(values[obj]) * scale + offset
        obs = self.sources.observe(observed, seconds)
        self._last_obs = obs
        return obs, stamp

    def _bump_sequence(self) -> None:
        sequence = self.settings.get("sequence_object")
        if sequence:
            self.sequence = (self.sequence + 1) % 4_194_304
            self._write(sequence, self.sequence)

    def write(self, command: np.ndarray) -> None:
        for channel, value in zip(self.commands, np.asarray(command, dtype=np.float64).ravel(), strict=True):
            self._write(channel["object"], float(value), self.priority)
        self.relinquished = False
        self._bump_sequence()

    def emergency_stop(self, command: np.ndarray) -> None:
        """``on_stop: relinquish``: null at the controller's priority (the BMS takes over); else the safe action."""
        if self.on_stop != "relinquish":
            self.write(command)
            return
        self.relinquish()
        self._bump_sequence()

    def relinquish(self) -> None:
        """Write null at the controller's priority to every command object."""
        from bacpypes3.primitivedata import Null

        for channel in self.commands:
            self._write(channel["object"], Null(()), self.priority)
        self.relinquished = True

    def _close(self) -> None:
        if self._io is not None:
            if self.app is not None:
                app, tasks = self.app, self._cov_tasks

                async def close() -> None:
                    for task in tasks:
                        task.cancel()
                    app.close()

                with contextlib.suppress(Exception):
                    self._io.run(close, 2.0)
            self._io.close()
        self.app, self._io, self._cov_tasks = None, None, []

    def deactivate(self) -> None:
        if self.app is not None and self.device_address is not None:
            if self.plant_kpis is None:
                self._read_kpis()
            if self.on_stop == "relinquish" and not self.relinquished:  # the last chance to hand the plant back
                with contextlib.suppress(Exception):
                    self.relinquish()
        self._close()
