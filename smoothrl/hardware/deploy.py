"""``smoothrl deploy``: an artefact, a profile and a backend, checked against each other, then the loop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.artefact import Artefact
from smoothrl.hardware.backends import make_interface
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import HardwareProfile, load_profile


def check_profile(artefact: Artefact, profile: HardwareProfile) -> None:
    """
    Refuse a profile that does not fit the artefact.

    :param artefact: the policy
    :param profile: the controller profile
    :raises SmoothRLError: for a control period other than the policy's
    """
    period = artefact.control_period_s
    if period is not None and abs(profile.control_period_s - period) > 1e-6 * max(1.0, period):
        raise SmoothRLError(
            f"{profile.path} runs at {profile.control_period_s} s per period, but the policy was trained at "
            f"{period} s per step; set control_period_s: {period}"
        )


def deploy(
    artefact_dir: str | Path,
    profile_path: str | Path,
    duration_s: float | None = None,
    lockstep: bool | None = None,
    speedup: float = 1.0,
    log: str | Path | None = None,
    status: Any = None,
) -> dict[str, Any]:
    """
    Run an artefact on the hardware a profile names.

    :param artefact_dir: written by ``smoothrl export``
    :param profile_path: ``hardware/NAME.yaml`` or a shipped profile's name
    :param duration_s: how long (``None``: until the far end finishes, or Ctrl-C)
    :param lockstep: sim backend: override the profile's lock-step setting
    :param speedup: real-time sim: run faster than the wall clock
    :param log: CSV log path
    :param status: something with ``print(str)`` for a status line every second (``None``: quiet)
    :return: the loop's figures, plus the simulated episodes' returns for the sim backend
    :raises SmoothRLError: for an artefact, profile or backend that does not fit
    """
    artefact = Artefact.load(artefact_dir)
    profile = load_profile(profile_path)
    check_profile(artefact, profile)
    if duration_s is not None and duration_s <= 0:
        raise SmoothRLError(f"--duration must be positive, got {duration_s}")
    if log is not None and Path(log).exists():
        raise SmoothRLError(f"{log} already exists; pass another --log")
    interface = make_interface(profile, lockstep=lockstep, speedup=speedup)
    loop = ControlLoop(artefact.policy(), interface, profile, log=log, speedup=speedup)
    done = threading.Event()

    def report() -> None:
        while not done.wait(1.0):
            s = loop.stats
            status.print(
                f"{s.periods} periods, {s.overruns} overruns, {loop.filter.counts.total()} interventions, "
                f"e-stop: {s.estop or 'no'}"
            )

    reporter = threading.Thread(target=report, daemon=True) if status is not None else None
    if reporter is not None:
        reporter.start()
    try:
        stats = loop.run(duration_s)
    finally:
        done.set()
    summary = {"profile": profile.name, **stats.summary()}
    returns = getattr(interface, "returns", None)
    if returns is not None:
        summary["episode_returns"] = list(returns)
    if log is not None:
        summary["log"] = str(log)
    return summary
