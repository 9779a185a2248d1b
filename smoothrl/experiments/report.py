"""A sweep's report: one row per trial (``results.csv``), the interquartile mean and 95%
stratified-bootstrap interval per variant and metric with the probability of improvement over the
first variant (rliable, ``summary.md``), and the plot (``sweep.png``)."""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smoothrl import rundir
from smoothrl.errors import SmoothRLError
from smoothrl.experiments.executor import INSTALL_HINT

if TYPE_CHECKING:
    from smoothrl.experiments.sweep import SweepSpec

RESULTS = "results.csv"
SUMMARY = "summary.md"
PLOT = "sweep.png"
#: bootstrap replications of the intervals (rliable's default is 50000; 2000 keeps a summary fast)
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0


#: below this many seeds a bootstrap interval is mostly the spread of the few runs it resamples, and
#: a probability of improvement compares a handful of pairs: the reports say so
FEW_SEEDS = 5


def few_seeds_warning(n: int) -> str | None:
    """:param n: the fewest finished seeds behind any interval
    :return: a one-line warning when ``n`` is below :data:`FEW_SEEDS`, else ``None``"""
    if n >= FEW_SEEDS:
        return None
    return (
        f"only {n} seed{'s' if n != 1 else ''} behind an interval: below {FEW_SEEDS}, a 95% bootstrap interval is "
        "little more than the range of the runs and the probability of improvement compares a handful of pairs; "
        "add seeds before drawing conclusions"
    )


def aggregate(records: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str]) -> dict:
    """
    Interquartile mean with 95% stratified-bootstrap intervals (rliable), per variant and metric,
    over the finished trials; and the probability that each variant improves on the first one's
    return (when the return is a metric).

    :param records: trial records
    :param variants: in order (the first is the reference)
    :param metrics: metric names
    :return: ``{"metrics": {metric: {variant: {iqm, low, high, mean, n}}}, "improvement": {...}}``
    """
    try:
        from rliable import library
        from rliable import metrics as rly
    except ImportError:
        raise SmoothRLError(f"aggregating a sweep needs rliable; {INSTALL_HINT}") from None

    ok = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {"metrics": {}, "improvement": {}}
    for metric in metrics:
        scores = {}
        for v in variants:
            values = [r[metric] for r in ok if r["variant"] == v and r.get(metric) is not None]
            values = [x for x in values if math.isfinite(x)]
            if values:
                scores[v] = np.asarray(values, dtype=np.float64)[:, None]  # (runs, tasks=1)
        if not scores:
            continue
        # rliable's stratified bootstrap draws its indices from numpy's global generator (the
        # random_state it takes is handed to arch and not used for them): seed it, then restore it
        state = np.random.get_state()
        np.random.seed(BOOTSTRAP_SEED)
        try:
            with warnings.catch_warnings():  # arch deprecates the RandomState rliable hands it
                warnings.simplefilter("ignore", FutureWarning)
                points, intervals = library.get_interval_estimates(
                    scores,
                    lambda x: np.array([rly.aggregate_iqm(x)]),
                    reps=BOOTSTRAP_REPS,
                    random_state=np.random.RandomState(BOOTSTRAP_SEED),
                )
        finally:
            np.random.set_state(state)
        out["metrics"][metric] = {
            v: {
                "iqm": float(points[v][0]),
                "low": float(intervals[v][0, 0]),
                "high": float(intervals[v][1, 0]),
                "mean": float(scores[v].mean()),
                "n": int(len(scores[v])),
            }
            for v in scores
        }
    returns = {v: np.asarray([r["mean_return"] for r in ok if r["variant"] == v], dtype=np.float64) for v in variants}
    if "mean_return" in metrics and len(variants) > 1 and len(returns[variants[0]]):
        ref = returns[variants[0]][:, None]
        for v in variants[1:]:
            if len(returns[v]):
                out["improvement"][v] = float(rly.probability_of_improvement(returns[v][:, None], ref))
    return out


def write_results(out: Path, records: Sequence[dict[str, Any]], metrics: Sequence[str]) -> Path:
    """``results.csv``: one row per trial (variant, seed, status, metrics, seconds, node, error)."""
    columns = ["variant", "seed", "status", *metrics, "seconds", "resumed_from", "node", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"])):
        writer.writerow({c: r.get(c, "") for c in columns})
    return rundir.atomic_write_text(out / RESULTS, buffer.getvalue())


def write_summary(out: Path, spec: SweepSpec, records: Sequence[dict[str, Any]], agg: dict) -> Path:
    """``summary.md``: the sweep, its failed trials, IQM and 95% CIs per variant and metric."""
    failed = [r for r in records if r.get("status") != "ok"]
    lines = [
        f"# Sweep {spec.name or ''}".rstrip(),
        "",
        f"{spec.base.algo} on {spec.base.env}, {spec.base.timesteps or 'preset'} steps per trial, "
        f"seeds {spec.seed_list()}, {spec.base.episodes} evaluation episodes; "
        f"{len(records) - len(failed)} of {len(records)} trials finished.",
        "",
        "Interquartile mean over seeds with its 95% stratified-bootstrap interval (rliable, "
        f"{BOOTSTRAP_REPS} replications); `trials` is the number of seeds behind each interval.",
        "",
    ]
    fewest = min((row["n"] for rows in agg["metrics"].values() for row in rows.values()), default=0)
    warning = few_seeds_warning(fewest) if agg["metrics"] else None
    if warning:
        lines += [f"**Warning: {warning}.**", ""]
    for metric, rows in agg["metrics"].items():
        lines += [
            f"## {metric}",
            "",
            "| variant | IQM | 95% CI | mean | trials |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for v, row in rows.items():
            lines.append(
                f"| {v} | {row['iqm']:.4g} | [{row['low']:.4g}, {row['high']:.4g}] | {row['mean']:.4g} | {row['n']} |"
            )
        lines.append("")
    if agg["improvement"]:
        first = spec.expanded()[0].name
        pairs = min(row["n"] for row in agg["metrics"].get("mean_return", {}).values()) if agg["metrics"] else 0
        lines += [f"## Probability of improvement over {first} (return, over {pairs} or more seeds each)", ""]
        lines += [f"- {v}: {p:.2f}" for v, p in agg["improvement"].items()] + [""]
    if failed:
        lines += ["## Failed trials", ""]
        lines += [f"- {r['variant']} seed {r['seed']}: {r.get('error', '')}" for r in failed] + [""]
    return rundir.atomic_write_text(out / SUMMARY, "\n".join(lines))


def plot_sweep(out: Path, records: Sequence[dict[str, Any]], agg: dict, variants: Sequence[str]) -> Path:
    """``sweep.png``: IQM with CI per metric, the return's performance profile, return vs jerk RMS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(agg["metrics"])
    ok = [r for r in records if r.get("status") == "ok"]
    fig, axes = plt.subplots(1, len(metrics) + 2, figsize=(3.6 * (len(metrics) + 2), 3.4))
    for ax, metric in zip(axes, metrics, strict=False):
        rows = agg["metrics"][metric]
        names = [v for v in variants if v in rows]
        iqm = np.array([rows[v]["iqm"] for v in names])
        err = np.array([[rows[v]["iqm"] - rows[v]["low"], rows[v]["high"] - rows[v]["iqm"]] for v in names]).T
        ax.barh(names, iqm, xerr=err, color="tab:blue", alpha=0.7)
        ax.set(title=f"{metric} (IQM, 95% CI)")
    profile_ax, scatter_ax = axes[-2], axes[-1]
    returns = {
        v: np.array([r["mean_return"] for r in ok if r["variant"] == v and "mean_return" in r]) for v in variants
    }
    returns = {v: x[np.isfinite(x)] for v, x in returns.items() if len(x)}
    if returns:
        everything = np.concatenate(list(returns.values()))
        taus = np.linspace(everything.min(), everything.max(), 50)
        for v, x in returns.items():
            profile_ax.plot(taus, [(x > t).mean() for t in taus], label=v)
        profile_ax.set(title="performance profile (return)", xlabel="return tau", ylabel="fraction of runs > tau")
        profile_ax.legend(fontsize=7)
    for v in variants:
        points = [(r.get("jerk_rms"), r.get("mean_return")) for r in ok if r["variant"] == v]
        points = [(a, b) for a, b in points if a is not None and b is not None]
        if points:
            x, y = np.array(points, dtype=np.float64).T
            scatter_ax.scatter(x, y, label=v, s=16)
    scatter_ax.set(title="return vs jerk RMS (each trial)", xlabel="jerk RMS", ylabel="return")
    if scatter_ax.get_legend_handles_labels()[0]:
        scatter_ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    rundir.atomic_write(out / PLOT, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    return out / PLOT
