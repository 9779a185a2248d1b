"""How the commands print: a summary, a comparison of runs and baselines, a certificate, as rich
tables or as JSON (``--json``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from smoothrl.cli.app import console


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4g}"
    return str(value)


def print_summary(summary: dict[str, Any], title: str) -> None:
    """
    Print an evaluation summary as a table.

    :param summary: from :func:`smoothrl.run.evaluation.evaluate`
    :param title: table title (the run directory)
    """
    mode = "deterministic" if summary["deterministic"] else "stochastic"
    table = Table(
        title=title, caption=f"{summary['env']}, {mode}, {summary['episodes']} episodes, seed {summary['seed']}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("return", f"{summary['mean_return']:.2f} ± {summary['std_return']:.2f}")
    table.add_row("episodes", str(summary["episodes"]))
    table.add_row("continuity cost (x100)", fmt(summary["continuity_cost"]))
    table.add_row("jerk RMS", fmt(summary["jerk_rms"]))
    table.add_row("Sm", fmt(summary["sm"]))
    skip = {
        "mean_return",
        "std_return",
        "episodes",
        "continuity_cost",
        "jerk_rms",
        "sm",
        "env",
        "deterministic",
        "seed",
    }
    for key, value in summary.items():
        if key not in skip and not isinstance(value, list | dict):  # per-episode lists: in --json
            table.add_row(key, fmt(value))
    console.print(table)


def print_comparison(comparison: dict[str, Any]) -> None:
    """
    Print several runs and controllers side by side: each one's change beside the reference run,
    the weeks each won against it, and the gap to the oracle MPC.

    :param comparison: from :func:`smoothrl.run.evaluation.compare_runs`
    """
    runs, reference = comparison["runs"], comparison["reference"]
    first = runs[reference]
    days = first.get("episode_start_days")
    caption = f"{first.get('env')}, {first.get('episodes')} episodes"
    if days is not None:
        caption += f" on distinct days {sorted(days)} (seed {first.get('seed')})"
    table = Table(title=f"eval: {len(runs)} controllers (changes against {reference})", caption=caption)
    table.add_column("metric")
    for name in runs:
        table.add_column(Path(name).name + (" (reference)" if name == reference else ""), justify="right")
    from smoothrl.run.evaluation import COMPARED

    extra = ("atvl_tot", "min_onoff_violations_requested")  # the rest is in --json
    keys = [k for k in (*COMPARED, *extra) if k in runs[reference]]
    for key in keys:
        cells = []
        for name, summary in runs.items():
            change = comparison["change"].get(name, {}).get(key)
            cells.append(fmt(summary.get(key)) + (f" ({change:+.0%})" if change is not None else ""))
        table.add_row(key, *cells)
    if comparison.get("wins"):
        wins = comparison["wins"]
        table.add_row("weeks won vs reference", *(f"{wins[n][0]}/{wins[n][1]}" if n in wins else "-" for n in runs))
    if comparison.get("oracle"):
        gap = comparison["oracle_gap"]
        table.add_row("gap to oracle MPC", *(f"{gap[n]:.0%}" for n in runs))
    timing = [runs[n].get("ms_per_decision") for n in runs]
    if any(t is not None for t in timing):
        table.add_row("ms per decision", *("-" if t is None else f"{t:.3g}" for t in timing))
    console.print(table)


def print_json_or(summary: dict[str, Any], as_json: bool, show: Callable[[], None]) -> None:
    from smoothrl.rundir import json_safe

    if as_json:
        typer.echo(json.dumps(json_safe(summary)))
    else:
        show()


def print_certificate(summary: dict[str, Any], title: str) -> None:
    table = Table(
        title=title,
        caption=f"{summary['env']}, sigma {summary['sigma']}, {summary['samples']} samples, "
        f"alpha {summary['alpha']}, {summary['states']} states",
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    if summary["kind"] == "discrete":
        table.add_row("abstain fraction", fmt(summary["abstain_fraction"]))
        table.add_row("mean certified radius (L2)", fmt(summary["mean_radius"]))
        for r, frac in summary["certified_fraction"].items():
            table.add_row(f"certified at radius {r}", fmt(frac))
    else:
        for e, width in summary["mean_bound_width"].items():
            table.add_row(f"mean action bound width, eps {e}", fmt(width))
    table.add_row("ms per state", fmt(summary["ms_per_state"]))
    if "reward" in summary:
        reward = summary["reward"]
        table.add_row("noisy median return", fmt(reward["noisy_median_return"]))
        for e, low in reward["lower_bound_median"].items():
            table.add_row(f"certified median return, eps {e}", fmt(low))
    console.print(table)
