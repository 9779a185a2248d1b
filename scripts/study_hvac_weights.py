"""Issue 16, part 2: is there a smoothness setting that cuts HVAC switching by ~60% at a small cost?

Reads the sweep ``sweeps/hvac_smoothness_weights.yaml`` (PPO on ``smoothrl/HVAC-v0``, plain vs
the loss-form terms of orders 1-3 at weights 0.1/1/10 and reward shaping of orders 1-3 at
0.005/0.05/0.5; 1M steps, 3 seeds, 13 test weeks), finished or not (run it with
``smoothrl sweep sweeps/hvac_smoothness_weights.yaml --backend local --max-parallel 2 --out
runs/sweeps/hvac_weights``; this script runs no training), evaluates the thermostat and PI
baselines on 13 test-week episodes (seed 10000), and reports per form and order: each weight's switching,
discomfort and energy against the plain run (means over the seeds that finished), the best
switching cut with discomfort and energy no more than 5% above the plain run's, and switching
against discomfort and against energy per form and order as a plot (with the baselines).
``python scripts/study_hvac_weights.py [--sweep-dir runs/sweeps/hvac_weights]`` writes
results/study_hvac_weights.json and .png.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console

from smoothrl.benchmark import save_results, study_args, table

KEYS = ("mean_return", "tdis_tot", "ener_tot", "switches_per_day", "jerk_rms")
TOLERANCE = 0.05


def read(sweep_dir: Path) -> dict[str, list[dict[str, float]]]:
    """:return: variant -> the finished trials' metrics"""
    out: dict[str, list[dict[str, float]]] = defaultdict(list)
    with open(sweep_dir / "results.csv") as f:
        for row in csv.DictReader(f):
            if row["status"] == "ok":
                out[row["variant"]].append({k: float(row[k]) for k in KEYS})
    return out


def form_order(variant: str) -> tuple[str, int, float] | None:
    """``loss_o2_w10`` -> ("loss", 2, 10.0); ``plain`` -> None"""
    if variant == "plain":
        return None
    form, order, weight = variant.split("_")
    return form, int(order[1:]), float(weight[1:])


def main() -> None:
    args = study_args(
        __doc__, "study_hvac_weights", quick="the same (the script trains nothing)",
        extra=lambda p: p.add_argument("--sweep-dir", type=Path, default=Path("runs/sweeps/hvac_weights")),
    )  # fmt: skip
    from smoothrl.training import EVAL_SEED_OFFSET, evaluate_controller

    console = Console(width=160)
    trials = read(args.sweep_dir)
    if "plain" not in trials:
        raise SystemExit("the sweep has no finished plain trial yet; run it (see --help)")
    mean = {v: {k: float(np.mean([t[k] for t in ts])) for k in KEYS} | {"seeds": len(ts)} for v, ts in trials.items()}
    plain = mean["plain"]
    baselines = {}
    for name in ("thermostat", "pi"):
        summary, _ = evaluate_controller(name, "smoothrl/HVAC-v0", {}, 13, EVAL_SEED_OFFSET)
        baselines[name] = {k: float(summary[k]) for k in KEYS if k in summary}
    rows, best = [], {}
    for variant, m in sorted(mean.items(), key=lambda kv: form_order(kv[0]) or ("", 0, 0.0)):
        change = {k: (m[k] - plain[k]) / abs(plain[k]) if plain[k] else 0.0 for k in KEYS}
        m["change"] = change
        key = form_order(variant)
        if key is not None:
            group = f"{key[0]} order {key[1]}"
            within = change["tdis_tot"] <= TOLERANCE and change["ener_tot"] <= TOLERANCE
            current = best.get(group, {}).get("switches_change")
            if within and (current is None or change["switches_per_day"] < current):
                best[group] = {"variant": variant, "switches_change": change["switches_per_day"]}
            best.setdefault(group, {"variant": None, "switches_change": None})
        rows.append([
            variant, str(m["seeds"]), f"{m['switches_per_day']:.1f}", f"{change['switches_per_day']:+.0%}",
            f"{m['tdis_tot']:.2f}", f"{change['tdis_tot']:+.0%}", f"{m['ener_tot']:.3f}", f"{change['ener_tot']:+.0%}",
            f"{m['jerk_rms']:.3f}",
        ])  # fmt: skip
    plot(mean, baselines, args.out.with_suffix(".png"))
    best_rows = [
        [g, b["variant"] or "none within 5%", "-" if b["switches_change"] is None else f"{b['switches_change']:+.0%}"]
        for g, b in sorted(best.items())
    ]
    finished = sum(m["seeds"] for m in mean.values())
    save_results(
        {
            "settings": {
                "command": "python scripts/study_hvac_weights.py",
                "sweep": "sweeps/hvac_smoothness_weights.yaml",
                "trials_finished": finished,
                "trials_planned": 57,
                "tolerance": TOLERANCE,
            },  # fmt: skip
            "variants": mean,
            "baselines": baselines,
            "best_within_tolerance": best,
        },
        args.out,
        [
            table(
                f"PPO smoothrl/HVAC-v0, 1M steps, {finished} of 57 trials finished; change vs plain",
                [
                    "variant",
                    "seeds",
                    "switches/day",
                    "vs plain",
                    "tdis K h",
                    "vs plain",
                    "ener kWh/m2",
                    "vs plain",
                    "jerk RMS",
                ],
                rows,
            ),  # fmt: skip
            table(
                "best switching cut with discomfort and energy at most 5% above plain",
                ["form, order", "variant", "switching change"],
                best_rows,
            ),  # fmt: skip
        ],
        console,
    )


def plot(mean: dict, baselines: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smoothrl.rundir import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, x in zip(axes, ("tdis_tot", "ener_tot"), strict=True):
        groups: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        for variant, m in mean.items():
            key = form_order(variant)
            if key is not None:
                groups[f"{key[0]} o{key[1]}"].append((m[x], m["switches_per_day"], key[2]))
        for label, points in sorted(groups.items()):
            pts = sorted(points)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label, markersize=4, linewidth=0.8)
        ax.scatter([mean["plain"][x]], [mean["plain"]["switches_per_day"]], marker="*", s=120, c="k", label="plain")
        for name, b in baselines.items():
            ax.scatter([b[x]], [b["switches_per_day"]], marker="s", s=40, label=name)
        ax.set(xlabel=x, ylabel="switches per day", title=f"switching vs {x} (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


if __name__ == "__main__":
    main()
