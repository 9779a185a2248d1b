"""``smoothrl deploy``: an artefact, a profile and a backend, checked against each other, then the loop."""

from __future__ import annotations

import argparse
import json
import sys
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
        seen = 0
        while not done.wait(1.0):
            s = loop.stats
            if s.periods == 0:  # still connecting
                continue
            recent = [abs(e) for e in s.period_errors[seen:]]
            rate, seen = len(recent), s.periods
            jitter = f"{sorted(recent)[int(0.99 * (len(recent) - 1))] * 1000:.2f} ms" if recent else "-"
            status.print(
                f"{rate} Hz, p99 jitter {jitter}, {s.periods} periods, {s.overruns} overruns, "
                f"{loop.filter.counts.total()} interventions, e-stop: {s.estop or 'no'}"
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


class _Status:
    """Prints the status line to stderr (the runtime has no rich)."""

    def print(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """
    ``smoothrl-deploy``: ``smoothrl deploy`` for a controller that has only the runtime installed.

    :param argv: the arguments (default: ``sys.argv[1:]``)
    :return: the exit code (2 for a user error, 130 when interrupted)
    """
    parser = argparse.ArgumentParser(prog="smoothrl-deploy", description="Run an exported policy on hardware.")
    parser.add_argument("artefact", help="an artefact directory written by `smoothrl export`")
    parser.add_argument("--hardware", required=True, help="controller profile: a YAML file or a shipped name")
    parser.add_argument("--duration", type=float, default=None, help="seconds to run")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--lockstep", dest="lockstep", action="store_true", default=None)
    mode.add_argument("--realtime", dest="lockstep", action="store_false")
    parser.add_argument("--speedup", type=float, default=1.0, help="run faster than the clock (simulated plants)")
    parser.add_argument("--log", default=None, help="per-period CSV log")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object only")
    args = parser.parse_args(argv)
    try:
        summary = deploy(
            args.artefact,
            args.hardware,
            args.duration,
            args.lockstep,
            args.speedup,
            args.log,
            status=None if args.json else _Status(),
        )
    except SmoothRLError as e:
        print(f"error: {e.for_cli()}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 130 if summary.get("stopped_by") == "interrupt" else 0
