"""What a deployment records: its figures (:class:`LoopStats`) and its per-period CSV log
(:class:`DeployLog`), written so that nothing is lost to a second writer or a kill.

Only the standard library and numpy: it loads on the controller.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smoothrl.checks import check_writable
from smoothrl.errors import SmoothRLError


@dataclass
class LoopStats:
    """Timing and safety figures of a run."""

    periods: int = 0
    overruns: int = 0
    missed: int = 0  # periods skipped because the loop fell a whole period behind (never caught up in a burst)
    period_errors: list[float] = field(default_factory=list)
    inference_s: list[float] = field(default_factory=list)
    read_to_write_s: list[float] = field(default_factory=list)
    obs_age_s: list[float] = field(default_factory=list)
    estop: str | None = None
    estops: int = 0
    recoveries: int = 0
    stopped_by: str = "duration"
    interventions: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """:return: JSON-friendly figures (seconds in ms)"""

        def ms(values: list[float], q: float) -> float:
            return float(np.percentile(values, q) * 1000) if values else float("nan")

        errors = np.abs(self.period_errors) if self.period_errors else np.array([np.nan])
        return {
            "periods": self.periods,
            "overruns": self.overruns,
            "missed_periods": self.missed,
            "mean_period_error_ms": float(np.mean(self.period_errors) * 1000) if self.period_errors else float("nan"),
            "p99_jitter_ms": float(np.percentile(errors, 99) * 1000),
            "inference_median_ms": ms(self.inference_s, 50),
            "inference_p99_ms": ms(self.inference_s, 99),
            "read_to_write_median_ms": ms(self.read_to_write_s, 50),
            "read_to_write_p99_ms": ms(self.read_to_write_s, 99),
            "max_obs_age_ms": float(np.max(self.obs_age_s) * 1000) if self.obs_age_s else float("nan"),
            "estop": self.estop,
            "estops": self.estops,
            "recoveries": self.recoveries,
            "stopped_by": self.stopped_by,
            "interventions": dict(self.interventions),
        }


class DeployLog:
    """
    One CSV row per period, flushed as it is written, to ``PATH.partial``; renamed to ``PATH``
    when closed (an existing ``PATH`` is never overwritten: the caller chooses a new name).

    Columns: ``period``; ``utc`` (ISO 8601, when the period's row was written); ``wall_s``
    (seconds since the loop started, on the controller's clock); ``plant_s`` (the profile's
    seconds: simulated in lock-step, wall seconds times the speedup in real time); ``phase``
    (``ramp``, ``hold``, ``policy``, ``estop``, and ``stop`` for the safe action written when the
    run ends); timing in ms; each observation channel by its name; ``raw:`` and ``cmd:`` per
    command (the policy's action, and what was written); interventions; the e-stop's reason.

    :param path: the log file
    :param observations: the observation channels' names, in order
    :param commands: command channels
    """

    def __init__(self, path: str | Path, observations: Sequence[str], commands: int) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise SmoothRLError(f"{self.path} already exists; pass another @log")
        check_writable(self.path, "@log")
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _claim(self.partial)
        self._writer = csv.writer(self._file)
        self._writer.writerow(
            [
                "period",
                "utc",
                "wall_s",
                "plant_s",
                "phase",
                "period_error_ms",
                "inference_ms",
                "obs_age_ms",
                *(f"obs:{name}" for name in observations),
                *(f"raw:{i}" for i in range(commands)),
                *(f"cmd:{i}" for i in range(commands)),
                "interventions",
                "estop",
            ]
        )

    def row(self, values: list[Any]) -> None:
        """:param values: one period's values, in the header's order"""
        self._writer.writerow(values)
        self._file.flush()

    def close(self) -> Path:
        """
        :return: the final path (published without replacing a file another writer put there
            meanwhile: then the log stays at ``PATH.partial`` and that is returned)
        """
        if self._file.closed:
            return self.path
        self._file.flush()
        try:
            os.link(self.partial, self.path)  # fails if PATH exists: never clobbered
        except FileExistsError:
            self._file.close()
            return self.partial
        os.unlink(self.partial)
        self._file.close()  # the lock goes with the file
        return self.path


def check_log(path: str | Path) -> None:
    """
    Before a deployment connects: a log path that is free (no log, no other deploy's or killed
    deploy's ``.partial``).

    :param path: the log
    :raises SmoothRLError: naming what is there
    """
    path = Path(path)
    if path.exists():
        raise SmoothRLError(f"{path} already exists; pass another @log")
    partial = path.with_name(path.name + ".partial")
    if partial.exists():
        raise _taken(partial)
    check_writable(path, "@log")


def _claim(partial: Path) -> Any:
    """
    Create a log's ``.partial`` file for this process alone: exclusively, and locked while it is
    written, so a second deploy with the same log is refused instead of interleaving rows, and the
    log of a killed run is kept instead of replaced.

    :param partial: ``PATH.partial``
    :return: the open file
    :raises SmoothRLError: when another deploy writes it, or a finished-early run left it
    """
    try:
        fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise _taken(partial) from None
    handle = os.fdopen(fd, "w", newline="")
    try:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # no POSIX locks (Windows): the exclusive create alone guards it
        pass
    return handle


def _taken(partial: Path) -> SmoothRLError:
    """:return: why a log's existing ``.partial`` file cannot be written: another deploy writes it,
    or a deploy that did not finish left it (kept as its record)"""
    if _locked_by_other(partial):
        return SmoothRLError(f"{partial} is being written by another deploy; pass another @log")
    return SmoothRLError(
        f"{partial} holds the log of a deploy that did not finish (killed?); keep it: pass another @log, "
        "or move it away first"
    )


def _locked_by_other(path: Path) -> bool:
    """Whether another live process holds ``path``'s lock (POSIX ``flock``)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with open(path) as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False
