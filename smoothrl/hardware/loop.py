"""The fixed-rate control loop: read -> policy -> safety filter -> write, on absolute deadlines.

Period ``k`` starts at ``t0 + k * period`` (never ``sleep(dt)`` after the work, which drifts).
Each period the loop reads the newest observation, checks it (finite, in range, not older than
``max_age_periods``: the age comes from the plant, a step counter or the robot's stamps, not
from when the controller read), asks the policy (in a worker thread, so that an inference slower
than the period cannot hold the hardware: the last command is held and the overrun counted),
filters the command (:mod:`smoothrl.hardware.safety`) and writes it. Before the policy takes
over, the bring-up ramps from the safe command to the nominal one and holds it.

In real time every read and write runs on an I/O worker with a deadline inside the period, so a
slow or hung gateway cannot hold the loop: a call that does not return in time is a fault. A loop
that falls a whole period behind skips the missed periods (counted as ``missed_periods``) instead
of catching up in a burst of writes.

The watchdog latches the emergency stop on a stale, missing, non-finite or out-of-range
observation, a read or write failure or timeout, or ``max_overruns`` consecutive overruns: the
safe action is written within the period, and then the run ends (``on_estop: stop``) or keeps
writing the safe action until :meth:`ControlLoop.rearm` (``on_estop: hold``), or keeps writing it
and re-arms itself once the fault has cleared for ``recover_after_periods`` periods
(``on_estop: recover``: a plant controller that rides through a gateway restart; the bring-up
runs again first).

Every ending is safe: the far end's run-ended flag, ``duration_s`` reached, Ctrl-C, a fault or any
exception writes the safe action once more and logs it as the last row (phase ``stop``). Every
period is timed and, with a log, written as one CSV row (flushed, so a log is complete up to a
fault; the file gets its final name when the loop ends).

In lock-step (a simulated backend that advances only when commanded) nothing sleeps, I/O is
direct and time is the simulation's: period ``k`` is at ``k * period``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from smoothrl.checks import SPEEDUP, check_number
from smoothrl.errors import SmoothRLError
from smoothrl.hardware.artefact import ArtefactPolicy
from smoothrl.hardware.interface import HardwareInterface
from smoothrl.hardware.io import DeadlineIO, Late
from smoothrl.hardware.profile import HardwareProfile
from smoothrl.hardware.record import DeployLog, LoopStats
from smoothrl.hardware.safety import DiscreteSafetyFilter, SafetyFilter

PHASES = ("ramp", "hold", "policy", "estop", "stop")


def make_filter(profile: HardwareProfile, low: np.ndarray, high: np.ndarray, discrete: bool, n: int = 0) -> Any:
    """
    The safety filter of a profile for an artefact's action space.

    :param profile: the controller profile
    :param low: the artefact's action lower bounds
    :param high: its upper bounds
    :param discrete: whether commands are indices
    :param n: number of discrete actions
    :return: a :class:`SafetyFilter` or :class:`DiscreteSafetyFilter`
    :raises SmoothRLError: when the profile's limits do not fit the artefact's action space
    """
    cmd = profile.command
    if discrete:
        return DiscreteSafetyFilter(n, int(low[0]), cmd.safe_action)
    dim = len(low)
    for name in ("low", "high", "max_rate", "max_jerk", "nominal"):
        value = getattr(cmd, name)
        if value is not None and value.size not in (1, dim):
            raise SmoothRLError(
                f"{profile.path}: command.{name} has {value.size} values, the policy has {dim} command channels"
            )
    if not isinstance(cmd.safe_action, str) and cmd.safe_action.size not in (1, dim):
        raise SmoothRLError(f"{profile.path}: command.safe_action has {cmd.safe_action.size} values, expected {dim}")
    lo = low if cmd.low is None else np.broadcast_to(cmd.low, (dim,)).astype(float)
    hi = high if cmd.high is None else np.broadcast_to(cmd.high, (dim,)).astype(float)
    if np.any(lo < low - 1e-9) or np.any(hi > high + 1e-9):
        raise SmoothRLError(
            f"{profile.path}: command bounds [{lo.tolist()}, {hi.tolist()}] exceed the policy's action bounds "
            f"[{low.tolist()}, {high.tolist()}]; narrow them"
        )
    return SafetyFilter(lo, hi, cmd.max_rate, cmd.max_jerk, cmd.lowpass_alpha, cmd.safe_action)


@dataclass
class _Period:
    """One period of the loop: its timing, what was read, what was decided and written."""

    k: int
    t: float  # seconds since the start: wall-clock, or simulated in lock-step
    simulated: float  # the profile's seconds
    deadline: float
    now: float  # when the period's work started
    error: float  # how late it started
    raw: np.ndarray  # the policy's action (NaN: none this period)
    obs: np.ndarray = field(default_factory=lambda: np.empty(0))
    stamp: float = 0.0
    fault: str | None = None
    read_at: float = 0.0
    phase: str = "policy"
    command: np.ndarray = field(default_factory=lambda: np.empty(0))
    inference: float = float("nan")
    filtered: bool = False  # the command came through the safety filter (not the e-stop's)
    late: bool = False  # the read did not answer in time: the last observation stands
    write: bool = False  # it is to be written (the e-stop writes its own)


class ControlLoop:
    """
    Drive a hardware interface with an artefact policy under a profile.

    :param policy: the artefact's policy
    :param interface: the hardware
    :param profile: the controller profile
    :param log: a per-period log (``None``: none)
    :param speedup: real time: run the loop this many times faster than the profile's period
        (with a far end that is sped up as much: a simulated plant)
    :param clock: monotonic seconds (tests pass a fake)
    :param sleep: sleeps seconds (tests pass a fake)
    :param io_deadlines: real time: read and write on the I/O worker with a deadline inside the
        period (``False``: call the interface directly in the loop's thread, as lock-step does;
        a hung gateway then holds the loop: for comparison only)
    """

    def __init__(
        self,
        policy: ArtefactPolicy,
        interface: HardwareInterface,
        profile: HardwareProfile,
        log: str | Path | None = None,
        speedup: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        io_deadlines: bool = True,
    ) -> None:
        self.policy = policy
        self.interface = interface
        self.profile = profile
        self.speedup = check_number("@speedup", speedup, SPEEDUP)
        self.period = profile.control_period_s
        self.clock, self.sleep = clock, sleep
        self.log_path = Path(log) if log is not None else None
        self.log_written: Path | None = None  # where the log ended up (its path, or its .partial)
        artefact = policy.artefact
        low, high = artefact.action_bounds()
        n = int(artefact.manifest["action_space"].get("n", 0))
        self.filter = make_filter(profile, low, high, artefact.discrete, n)
        self.stats = LoopStats()
        self.stop_event = threading.Event()
        self._rearm = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self.io = DeadlineIO(interface, direct=not io_deadlines)
        self._last_read: tuple[np.ndarray, float] | None = None  # the newest observation and its timestamp
        self._pending: Future | None = None
        self._consecutive_overruns = 0
        self._healthy = 0  # periods in a row, during an e-stop, with a good observation and a safe write
        # the bring-up: where it starts, where it goes, and when (the profile's seconds) it began
        self._start_command = self._nominal = np.zeros(self.filter.dim)
        self._phase_t0 = 0.0
        self._t0, self._k = self.clock(), 0  # the loop's start and current period

    # -- bring-up ---------------------------------------------------------------------------

    def _bringup_commands(self) -> tuple[np.ndarray, np.ndarray]:
        """The bring-up's start (the safe action; ``hold``: the nominal command) and nominal command."""
        f, cmd = self.filter, self.profile.command
        if not isinstance(f, SafetyFilter):
            return f.last.copy(), f.last.copy()
        nominal = (f.low + f.high) / 2 if cmd.nominal is None else np.broadcast_to(cmd.nominal, (f.dim,)).astype(float)
        nominal = f.clip(nominal)
        if isinstance(cmd.safe_action, str):
            start = nominal if cmd.safe_action == "hold" else f.clip(np.zeros(f.dim))
        else:
            start = f.clip(np.broadcast_to(cmd.safe_action, (f.dim,)).astype(float))
        return start, nominal

    def _bringup_target(self, t: float, start: np.ndarray, nominal: np.ndarray) -> tuple[str, np.ndarray]:
        ramp, hold = self.profile.ramp_s, self.profile.hold_s
        if t < ramp:
            return "ramp", start + (nominal - start) * (t / ramp)
        if t < ramp + hold:
            return "hold", nominal
        return "policy", nominal

    # -- hardware I/O with a deadline -------------------------------------------------------

    def _budget(self, until: float) -> float:
        """Seconds from now to ``until``, and at least a quarter period (a late start still gets its I/O)."""
        return max(0.25 * self.period, until - self.clock())

    # -- the watchdog ---------------------------------------------------------------------

    def _estop(self, reason: str) -> np.ndarray:
        command = self.filter.safe()
        if self.stats.estop is None:
            self.stats.estop = reason
            self.stats.estops += 1
        try:
            self.io.write_safe(command, 0.5 * self.period)
        except Late:  # queued behind a slow call: it goes out when the gateway answers
            self._healthy = 0
        except Exception as e:  # the hardware cannot even take the safe action: tell it, and stop
            self.interface.on_error(e)
            self._healthy = 0
            if self.profile.on_estop != "recover":  # recover: try again next period
                self.stats.stopped_by = "estop"
                self.stop_event.set()
        return command

    def _recovered(self) -> bool:
        """``on_estop: recover``: clear the e-stop after enough healthy periods (the bring-up follows)."""
        if self.profile.on_estop != "recover" or self._healthy < self.profile.recover_after_periods:
            return False
        self.stats.estop, self._healthy = None, 0
        self.stats.recoveries += 1
        self._consecutive_overruns = 0
        self.policy.reset()
        return True

    def rearm(self) -> None:
        """Clear a latched emergency stop: the bring-up runs again from the safe command."""
        self._rearm.set()

    def _check(self, obs: np.ndarray, stamp: float, now: float) -> str | None:
        if not np.all(np.isfinite(obs)):
            return "non-finite observation"
        p = self.profile
        if (p.obs_low is not None and np.any(obs < p.obs_low)) or (p.obs_high is not None and np.any(obs > p.obs_high)):
            return "observation out of range"
        if not self.interface.lockstep and now - stamp > p.max_age_periods * self.period:
            return f"stale observation ({(now - stamp) * 1000:.0f} ms old)"
        return None

    def _decide(self, obs: np.ndarray, deadline: float) -> tuple[np.ndarray | None, float]:
        """The policy's action, or ``None`` when it missed the period (an overrun)."""
        if self.interface.lockstep:
            start = self.clock()
            return self.policy.act(obs), self.clock() - start
        if self._pending is not None and not self._pending.done():
            return None, float("nan")  # still busy with an earlier period's observation
        start = self.clock()
        self._pending = self._executor.submit(self.policy.act, obs)
        try:
            action = self._pending.result(timeout=max(0.0, deadline - self.clock()))
        except FutureTimeout:
            return None, float("nan")
        return action, self.clock() - start

    # -- running -------------------------------------------------------------------------

    def run(self, duration_s: float | None = None) -> LoopStats:
        """
        Configure, activate, and run until ``duration_s`` (the profile's seconds: simulated in
        lock-step or with a speedup), the
        far end's end, :attr:`stop_event`, or a latched emergency stop with ``on_estop: stop``.
        Ctrl-C writes the safe action and ends the run cleanly (``stopped_by="interrupt"``).

        :param duration_s: how long (``None``: until stopped)
        :return: the figures
        :raises SmoothRLError: when the hardware's channels do not match the policy
        """
        artefact = self.policy.artefact
        if not self.interface.lockstep:  # wall-clock periods; lock-step periods are simulated time
            self.period = self.profile.control_period_s / self.speedup
        channels = self.interface.configure()
        if channels.observations != artefact.sensors or channels.commands != artefact.action_dim:
            self.interface.deactivate()
            raise SmoothRLError(
                f"the hardware has {channels.observations} observation and {channels.commands} command channels, "
                f"the policy {artefact.sensors} and {artefact.action_dim}; use a profile for this policy's env"
            )
        names = channels.names[: channels.observations] or tuple(name for name, _ in artefact.channels)
        log = DeployLog(self.log_path, list(names), channels.commands) if self.log_path else None
        try:
            self.interface.activate()
            self._loop(duration_s, log)
            self._safe_stop(log)
        except KeyboardInterrupt:
            self.stats.stopped_by = "interrupt"
            self._safe_stop(log, "interrupted")
        except BaseException as e:
            self.stats.stopped_by = "error"
            self._safe_stop(log, f"error: {type(e).__name__}")
            self.interface.on_error(e)
            raise
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self.io.close()
            self.stats.interventions = {**vars(self.filter.counts), "total": self.filter.counts.total()}
            try:
                self.interface.deactivate()
            finally:
                if log is not None:
                    self.log_written = log.close()
        return self.stats

    # -- the loop: each period is wait -> read -> update -> write -> record ---------------------

    def _safe_stop(self, log: DeployLog | None, reason: str | None = None) -> None:
        """Every ending: write the safe action once more (an e-stop's, or the run's last command
        replaced by it) and log it as the last row, phase ``stop``.

        :param log: the log, if any
        :param reason: why the run ends abnormally (``None``: it ended as it should)
        """
        if reason is not None and self.stats.estop is None:
            self.stats.estop = reason
            self.stats.estops += 1
        command = self.filter.safe()
        try:
            self.io.write_safe(command, max(2 * self.period, 1.0))  # the last chance: wait for it
        except Exception as e:  # the far end is gone: nothing more can be written
            self.interface.on_error(e)
        now = self.clock()
        k = self._k
        t = k * self.period
        period = _Period(
            k,
            t,
            t * (1.0 if self.interface.lockstep else self.speedup),
            now,
            now,
            0.0,
            raw=np.full(self.filter.dim, np.nan),
        )
        period.obs = np.full(self.policy.artefact.sensors, np.nan)
        period.stamp, period.phase, period.command = now, "stop", command
        if log is not None:
            log.row(self._row(period, 0.0))

    def _loop(self, duration_s: float | None, log: DeployLog | None) -> None:
        self._start_command, self._nominal = self._bringup_commands()
        self._phase_t0 = 0.0
        self.filter.reset(self._start_command)
        self.policy.reset()
        t0 = self._t0 = self.clock()
        k = self._k = 0
        while not self.stop_event.is_set():
            self._k = k
            period = self._wait(k, t0, duration_s)
            if period is None:
                return
            self._read(period)
            if period.fault is None and self.interface.finished:  # the episode ended with the last command
                self.stats.stopped_by = "episode end"
                return
            self._update(period)
            self._write(period)
            self._record(period, log)
            if self.stats.estop is not None and self.profile.on_estop == "stop":
                self.stats.stopped_by = "estop"
                return
            k = period.k + 1

    def _wait(self, k: int, t0: float, duration_s: float | None) -> _Period | None:
        """Timing: wait for period ``k``'s deadline (real time only), or ``None`` when the run is over."""
        t_k = k * self.period
        simulated = t_k * (1.0 if self.interface.lockstep else self.speedup)  # the profile's seconds
        if duration_s is not None and simulated >= duration_s - 1e-9:
            return None
        if self.interface.finished:
            self.stats.stopped_by = "episode end"
            return None
        deadline = t0 + t_k
        if not self.interface.lockstep:
            late = int((self.clock() - deadline) // self.period)
            if late >= 1:  # a whole period or more behind: skip the missed periods rather than catch up in a burst
                self.stats.missed += late
                return self._wait(k + late, t0, duration_s)
            self.sleep(max(0.0, deadline - self.clock()))
        now = self.clock()
        error = 0.0 if self.interface.lockstep else now - deadline
        if self._rearm.is_set() and self.stats.estop is not None:
            self._rearm.clear()
            self.stats.estop = None
            self._start_command, self._phase_t0 = self.filter.last.copy(), simulated
            self.policy.reset()
        return _Period(k, t_k, simulated, deadline, now, error, raw=np.full(self.filter.dim, np.nan))

    def _read(self, period: _Period) -> None:
        """Read the newest observation and check it (a fault latches the e-stop in :meth:`_update`).
        A read that has not answered in time is no fault by itself: the last observation stands,
        and ages (the staleness check trips after ``max_age_periods``)."""
        try:
            obs, stamp = self.io.read(self._budget(period.deadline + 0.5 * self.period))
            self._last_read = (np.asarray(obs, dtype=np.float64).ravel(), stamp)
        except Late as e:
            if self._last_read is None:
                period.obs = np.full(self.policy.artefact.sensors, np.nan)
                period.stamp, period.fault = period.now, f"read failed ({e})"
                period.read_at = self.clock()
                return
            period.late = True
        except Exception as e:
            period.obs = np.full(self.policy.artefact.sensors, np.nan)
            period.stamp, period.fault = period.now, f"read failed ({e})"
            period.read_at = self.clock()
            return
        period.obs, period.stamp = self._last_read[0].copy(), self._last_read[1]
        period.fault = self._check(period.obs, period.stamp, period.now)
        period.read_at = self.clock()

    def _update(self, period: _Period) -> None:
        """Decide the period's command: the e-stop's safe action, the bring-up, or the policy's
        action (held on an overrun) through the safety filter."""
        if self.stats.estop is not None and period.fault is None and self._recovered():
            self._start_command, self._phase_t0 = self.filter.last.copy(), period.simulated
        if self.stats.estop is not None or period.fault is not None:
            period.phase = "estop"
            self._healthy = self._healthy + 1 if period.fault is None and not period.late else 0
            period.command = self._estop(period.fault or self.stats.estop)  # type: ignore[arg-type]
            if self.interface.lockstep and period.fault is not None:  # the far end is gone: do not spin
                self.sleep(min(self.period, 0.05))
            return
        period.phase, target = self._bringup_target(
            period.simulated - self._phase_t0, self._start_command, self._nominal
        )
        if period.phase == "policy":
            budget = period.deadline + self.period * 0.9 if not self.interface.lockstep else 0.0
            action, period.inference = (None, float("nan")) if period.late else self._decide(period.obs, budget)
            if action is None:
                self.stats.overruns += 1
                self._consecutive_overruns += 1
                target = self.filter.last.copy()
            else:
                self._consecutive_overruns = 0
                period.raw = action
                target = action
        period.command = self.filter(target)
        period.filtered = period.write = True
        if self._consecutive_overruns >= max(1, self.profile.max_overruns):
            period.phase, period.write = "estop", False
            period.command = self._estop(
                f"{self._consecutive_overruns} consecutive overruns (the policy or the hardware did not answer in time)"
            )

    def _write(self, period: _Period) -> None:
        """Write the command (an e-stop has written its safe action already); a failed write latches the e-stop."""
        if period.write:
            try:
                self.io.write(period.command, self._budget(period.deadline + self.period))
            except Late:  # not written this period (the hardware is busy or slow): the plant holds the last
                self.stats.overruns += 1
            except Exception as e:
                period.phase = "estop"
                period.command = self._estop(f"write failed ({e})")
        if period.filtered:  # the policy's action history follows what was sent
            self.policy.sent(period.command)

    def _row(self, period: _Period, age: float) -> list[Any]:
        """One log row, in :class:`DeployLog`'s column order."""
        return [
            period.k,
            datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            round(period.now - self._t0, 6),
            round(period.simulated, 6),
            period.phase,
            period.error * 1000,
            period.inference * 1000,
            age * 1000,
            *np.asarray(period.obs, dtype=float).tolist(),
            *np.broadcast_to(period.raw, (self.filter.dim,)).tolist(),
            *np.asarray(period.command, dtype=float).tolist(),
            self.filter.counts.total(),
            self.stats.estop or "",
        ]

    def _record(self, period: _Period, log: DeployLog | None) -> None:
        """The period's figures, its log row, and an overrun of the whole period's work."""
        self.stats.periods += 1
        self.stats.period_errors.append(period.error)
        age = 0.0 if self.interface.lockstep else max(0.0, period.now - period.stamp)
        self.stats.obs_age_s.append(age)
        if np.isfinite(period.inference):
            self.stats.inference_s.append(period.inference)
        self.stats.read_to_write_s.append(self.clock() - period.read_at)
        if log is not None:
            log.row(self._row(period, age))
        if not self.interface.lockstep and self.clock() > period.deadline + self.period:
            self.stats.overruns += 1  # the whole period's work ran past the next deadline
