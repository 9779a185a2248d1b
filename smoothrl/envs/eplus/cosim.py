"""One EnergyPlus run, stepped from Python: the runtime API's callbacks on EnergyPlus's thread,
a queue handshake so that :meth:`EnergyPlusRun.step` advances exactly one zone timestep.

The model's own HVAC conditions the building through the sizing and warm-up days (so an episode
starts from a conditioned building); from the run period's first timestep on, its thermostats are
set out of reach (heating -60 degC, cooling 100 degC) and its fans stopped, and the heat of
smoothrl's plant enters each zone through an ``OtherEquipment`` object added to the model
(convective, its power actuated every step, negative when cooling). EnergyPlus then computes the
building: envelope, solar, internal gains of its own schedules, infiltration.

Each run has its own output folder under a temp dir, removed by :meth:`EnergyPlusRun.close`;
a run EnergyPlus aborts becomes one :class:`~smoothrl.errors.SmoothRLError` quoting the severe and
fatal lines of its ``eplusout.err``.
"""

from __future__ import annotations

import contextlib
import queue
import re
import shutil
import tempfile
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: names of what smoothrl adds to the model
HEAT_OBJECT = "SMOOTHRL_HEAT_{zone}"
ALWAYS_ON = "SMOOTHRL_ALWAYS_ON"
#: how long a step may wait for EnergyPlus (its first step includes sizing and warm-up)
TIMEOUT_S = 600.0
_RUN_PERIOD = re.compile(r"\n[ \t]*RunPeriod,.*?;[^\n]*", re.S | re.I)
_TIMESTEP = re.compile(r"\n[ \t]*Timestep,[^;]*;", re.I)
_SIMULATION_CONTROL = re.compile(r"\n[ \t]*SimulationControl,.*?;", re.S | re.I)


def prepare_idf(idf: str, zones: list[str], start_day: int, days: int, start_weekday: int, step_minutes: int) -> str:
    """
    The model as smoothrl runs it: one run period of ``days`` from ``start_day`` (day of a
    non-leap year, 0-based), ``60 / step_minutes`` timesteps per hour, sizing but no
    design-day simulation, and a convective heat source in every controlled zone.

    :param idf: the model's text
    :param zones: EnergyPlus zone names to control
    :param start_day: first day (0 = January 1st)
    :param days: days to simulate
    :param start_weekday: weekday of the first day (0 = Monday), as smoothrl's calendar has it
    :param step_minutes: control step
    :return: the IDF text
    :raises SmoothRLError: for a step EnergyPlus cannot take
    """
    if 60 % step_minutes:
        raise SmoothRLError(f"EnergyPlus needs a step that divides an hour, got {step_minutes} minutes")
    first = date(2017, 1, 1) + timedelta(days=start_day)  # 2017: not a leap year
    last = first + timedelta(days=days - 1)
    text = _RUN_PERIOD.sub("", idf)
    text = _TIMESTEP.sub("", text)
    text = _SIMULATION_CONTROL.sub("", text)
    text += (
        # sizing calculations yes, the design days' simulations no, the weather file's run period yes
        "\nSimulationControl,\n  Yes, Yes, Yes, No, Yes, No, 1;\n"
        f"\nTimestep,{60 // step_minutes};\n"
        f"\nRunPeriod,\n  SMOOTHRL EPISODE,\n  {first.month}, {first.day}, ,\n  {last.month}, {last.day}, ,\n"
        f"  {WEEKDAYS[start_weekday]},\n  No, No, No, Yes, Yes;\n"
        f"\nSchedule:Constant,\n  {ALWAYS_ON},\n  ,\n  1;\n"
    )
    for zone in zones:
        text += (
            f"\nOtherEquipment,\n  {HEAT_OBJECT.format(zone=zone)},\n  None,\n  {zone},\n  {ALWAYS_ON},\n"
            "  EquipmentLevel,\n  0,\n  ,\n  ,\n  0,\n  0,\n  0;\n"
        )
    return text


def error_lines(err_file: Path, limit: int = 3) -> str:
    """:return: the first severe/fatal messages of an ``eplusout.err``, joined on one line"""
    try:
        lines = err_file.read_text(errors="replace").splitlines()
    except OSError:
        return "no eplusout.err was written"
    picked = [ln.strip() for ln in lines if "** Severe  **" in ln or "**  Fatal  **" in ln]
    cleaned = [re.sub(r"\s+", " ", ln.replace("**", "").strip()) for ln in picked[:limit]]
    return "; ".join(cleaned) or "EnergyPlus stopped without a severe error in eplusout.err"


class EnergyPlusRun:
    """
    :param idf: the prepared IDF text (:func:`prepare_idf`)
    :param weather: the EPW file
    :param zones: EnergyPlus zone names, in the order of the heat and temperature arrays
    """

    def __init__(self, idf: str, weather: Path, zones: list[str]) -> None:
        from pyenergyplus.api import EnergyPlusAPI

        self.zones = zones
        self.folder = Path(tempfile.mkdtemp(prefix="smoothrl-eplus-"))
        (self.folder / "in.idf").write_text(idf)
        self.api = EnergyPlusAPI()
        self.state = self.api.state_manager.new_state()
        self.api.runtime.set_console_output_status(self.state, False)
        self._actions: queue.Queue = queue.Queue(maxsize=1)
        self._observations: queue.Queue = queue.Queue(maxsize=1)
        self._handles: dict[str, Any] | None = None
        self._started = False  # the run period's first timestep was reached
        self._stopping = False
        self.returncode: int | None = None
        for zone in zones:
            self.api.exchange.request_variable(self.state, "Zone Mean Air Temperature", zone)
        self.api.exchange.request_variable(self.state, "Site Outdoor Air Drybulb Temperature", "Environment")
        runtime = self.api.runtime
        runtime.callback_begin_zone_timestep_after_init_heat_balance(self.state, self._begin_timestep)
        runtime.callback_end_zone_timestep_after_zone_reporting(self.state, self._end_timestep)
        args = ["-w", str(weather), "-d", str(self.folder), str(self.folder / "in.idf")]
        self._thread = threading.Thread(target=self._run, args=(args,), daemon=True, name="energyplus")
        self._thread.start()

    # EnergyPlus's thread
    def _run(self, args: list[str]) -> None:
        try:
            self.returncode = self.api.runtime.run_energyplus(self.state, args)
        finally:
            self._put(None)  # wakes a waiting step: the run is over

    def _put(self, item: Any) -> None:
        with contextlib.suppress(queue.Full):
            self._observations.put_nowait(item)

    def _in_run_period(self, state: Any) -> bool:
        ex = self.api.exchange
        return ex.api_data_fully_ready(state) and not ex.warmup_flag(state) and ex.kind_of_sim(state) == 3

    def _resolve(self, state: Any) -> dict[str, Any]:
        ex = self.api.exchange
        handles: dict[str, Any] = {
            "t_zone": [ex.get_variable_handle(state, "Zone Mean Air Temperature", z) for z in self.zones],
            "t_out": ex.get_variable_handle(state, "Site Outdoor Air Drybulb Temperature", "Environment"),
            "heat": [
                ex.get_actuator_handle(state, "OtherEquipment", "Power Level", HEAT_OBJECT.format(zone=z).upper())
                for z in self.zones
            ],  # fmt: skip
            "heating": [
                ex.get_actuator_handle(state, "Zone Temperature Control", "Heating Setpoint", z) for z in self.zones
            ],
            "cooling": [
                ex.get_actuator_handle(state, "Zone Temperature Control", "Cooling Setpoint", z) for z in self.zones
            ],
            "fans": [],
        }
        for line in ex.list_available_api_data_csv(state).decode(errors="replace").splitlines():
            parts = line.split(",")
            if (
                len(parts) >= 4
                and parts[0] == "Actuator"
                and parts[1] == "Fan"
                and parts[2] == "Fan Air Mass Flow Rate"
            ):
                handles["fans"].append(ex.get_actuator_handle(state, "Fan", "Fan Air Mass Flow Rate", parts[3]))
        missing = [k for k in ("t_zone", "heat", "heating", "cooling") if any(h < 0 for h in handles[k])]
        if handles["t_out"] < 0 or missing:
            raise SmoothRLError(
                f"the EnergyPlus model lacks what smoothrl controls ({', '.join(missing) or 't_out'}) for zones "
                f"{self.zones}; check the zone names (env_kwargs.zone_map) and that every zone has a thermostat"
            )
        return handles

    def _temperatures(self, state: Any) -> np.ndarray:
        ex = self.api.exchange
        return np.array([ex.get_variable_value(state, h) for h in self._handles["t_zone"]])

    def _begin_timestep(self, state: Any) -> None:
        if self._stopping or not self._in_run_period(state):
            return
        if self._handles is None:
            try:
                self._handles = self._resolve(state)
            except SmoothRLError as e:
                self._put(e)
                self.api.runtime.stop_simulation(state)
                self._stopping = True
                return
        if not self._started:
            self._started = True
            self._put(self._temperatures(state))  # the episode's first observation
        heat = self._actions.get()
        if heat is None:  # close(): stop here
            self._stopping = True
            self.api.runtime.stop_simulation(state)
            return
        ex, h = self.api.exchange, self._handles
        for i, watts in enumerate(heat):
            ex.set_actuator_value(state, h["heat"][i], float(watts))
            ex.set_actuator_value(state, h["heating"][i], -60.0)
            ex.set_actuator_value(state, h["cooling"][i], 100.0)
        for fan in h["fans"]:
            ex.set_actuator_value(state, fan, 0.0)

    def _end_timestep(self, state: Any) -> None:
        if self._stopping or not self._started or not self._in_run_period(state):
            return
        self._put(self._temperatures(state))

    # the caller's thread
    def _get(self) -> np.ndarray:
        try:
            item = self._observations.get(timeout=TIMEOUT_S)
        except queue.Empty:
            raise SmoothRLError(f"EnergyPlus did not answer within {TIMEOUT_S:.0f} s; see {self.folder}") from None
        if isinstance(item, Exception):
            raise item
        if item is None:
            self._thread.join(timeout=30)
            if self.returncode not in (0, None):
                message = error_lines(self.folder / "eplusout.err")
                raise SmoothRLError(f"EnergyPlus stopped with an error: {message}")
            raise SmoothRLError("the EnergyPlus run ended before the episode did")
        return item

    def first(self) -> np.ndarray:
        """:return: zone temperatures at the run period's start (waits for sizing and warm-up)"""
        return self._get()

    def step(self, heat: np.ndarray) -> np.ndarray:
        """
        :param heat: W into each zone during the next timestep (negative: cooling)
        :return: zone mean air temperatures at its end
        """
        self._actions.put(np.asarray(heat, dtype=np.float64))
        return self._get()

    def close(self) -> None:
        """Stop the simulation, wait for its thread, free its state and remove its folder."""
        if self._thread.is_alive():
            self._stopping = True
            self.api.runtime.stop_simulation(self.state)
            with contextlib.suppress(queue.Full):
                self._actions.put_nowait(None)
            self._thread.join(timeout=60)
        if not self._thread.is_alive():
            self.api.state_manager.delete_state(self.state)
        shutil.rmtree(self.folder, ignore_errors=True)
