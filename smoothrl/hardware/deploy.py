"""``smoothrl deploy``: an artefact, a profile and a backend, checked against each other, then the loop."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
from pathlib import Path
from typing import Any

from smoothrl.checks import DURATION, SPEEDUP, check_number
from smoothrl.errors import SmoothRLError
from smoothrl.hardware.artefact import Artefact
from smoothrl.hardware.backends import make_interface
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import HardwareProfile, load_profile
from smoothrl.hardware.record import check_log

#: the exit code of a run that ended on a fault (an emergency stop), after writing the safe action
FAULT_EXIT = 1


def check_profile(artefact: Artefact, profile: HardwareProfile) -> None:
    """
    Refuse a profile that does not fit the artefact: another control period, or observation
    channels whose names, order or units are not the policy's.

    :param artefact: the policy
    :param profile: the controller profile
    :raises SmoothRLError: naming the first mismatch
    """
    period = artefact.control_period_s
    if period is not None and abs(profile.control_period_s - period) > 1e-6 * max(1.0, period):
        raise SmoothRLError(
            f"{profile.path} runs at {profile.control_period_s} s per period, but the policy was trained at "
            f"{period} s per step; set control_period_s: {period}"
        )
    if not profile.obs_channels:  # sim and udp exchange channels by position
        return
    expected = artefact.channels
    if len(profile.obs_channels) != len(expected):
        raise SmoothRLError(
            f"{profile.path} lists {len(profile.obs_channels)} observation channels, the policy reads "
            f"{len(expected)}: {', '.join(name for name, _ in expected)}"
        )
    for i, (channel, (name, unit)) in enumerate(zip(profile.obs_channels, expected, strict=True)):
        if channel["name"] != name:
            where = [n for n, _ in expected].index(channel["name"]) if channel["name"] in dict(expected) else None
            hint = f" (the policy reads it as channel {where})" if where is not None else ""
            raise SmoothRLError(
                f"{profile.path}: observation.channels[{i}] is {channel['name']!r}{hint}, but the policy's channel "
                f"{i} is {name!r}; list the channels in the policy's order"
            )
        given = channel.get("unit")
        if given and unit and given != unit:
            raise SmoothRLError(
                f"{profile.path}: observation.channels[{i}] ({name}) is in {given}, the policy was trained on {unit}; "
                "convert it at the gateway or fix the unit"
            )


def with_bundle(artefact: Artefact, profile: HardwareProfile) -> HardwareProfile:
    """
    Fill what a profile's ``exogenous`` section leaves out (the weather file, the tariff, the
    step) from what the artefact bundles, so a controller needs nothing beside the artefact.

    :param artefact: the policy
    :param profile: the controller profile
    :return: the profile to run
    """
    bundle = artefact.exogenous()
    if not profile.exogenous or bundle is None:
        return profile
    filled = {
        key: bundle[key] if profile.exogenous.get(key) is None else value for key, value in profile.exogenous.items()
    }
    return dataclasses.replace(profile, exogenous=filled)


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
    if duration_s is not None:
        check_number("@duration", duration_s, DURATION)
    check_number("@speedup", speedup, SPEEDUP)
    artefact = Artefact.load(artefact_dir)
    profile = load_profile(profile_path)
    check_profile(artefact, profile)
    if log is not None:
        check_log(log)
    profile = with_bundle(artefact, profile)
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
    plant = getattr(interface, "plant_kpis", None)
    if plant is not None:  # what the plant reported: its return and KPIs
        summary["plant"] = plant
    if loop.log_written is not None:
        summary["log"] = str(loop.log_written)
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
    interrupted = summary.get("stopped_by") == "interrupt"
    fault = summary["estop"] if not interrupted else None
    if args.json:
        print(json.dumps(summary))
    elif not fault:
        print("\n".join(f"{k}: {v}" for k, v in summary.items()))
    if fault:
        saved = f"; the log is complete in {args.log}" if args.log else ""
        print(
            f"error: the run ended on an emergency stop ({fault}); the safe action was written{saved}", file=sys.stderr
        )
        return FAULT_EXIT
    return 130 if interrupted else 0
