"""Is there a smoothness setting that cuts HVAC switching by ~60% at a small cost?

Reads three sweeps, finished or not (this script runs no training; each sweep file's header has
the command that runs or resumes it):

- ``sweeps/hvac_smoothness_weights.yaml`` -> ``runs/sweeps/hvac_weights``: PPO on the modulating
  plant (``smoothrl/HVAC-v0``);
- ``sweeps/hvac_discrete_smoothness_weights.yaml`` -> ``runs/sweeps/hvac_discrete_weights``: PPO
  on the on/off plant (``smoothrl/HVACDiscrete-v0``);
- ``sweeps/hvac_discrete_dqn_reward.yaml`` -> ``runs/sweeps/hvac_discrete_dqn``: DQN with reward
  shaping on the on/off plant.

PPO sweeps: plain vs the loss-form terms of orders 1-3 at weights 0.1/1/10 and reward shaping of
orders 1-3 at 0.005/0.05/0.5; the DQN sweep: plain and the reward-shaping variants. 1M steps, 3
seeds, 13 test weeks per trial. The thermostat (and, on the modulating plant, PI) baselines are
evaluated on the same 13 test-week episodes (seed 10000). Reported per sweep, form and order: each
weight's switching, discomfort and energy against that sweep's plain run (means over the seeds
that finished, switching ± std across seeds), the best switching cut with discomfort and energy no
more than 5% above the plain run's, and switching against discomfort and against energy as a plot
(one row per sweep, with the baselines).
``python scripts/study_hvac_weights.py [--runs runs/sweeps]`` writes results/study_hvac_weights.json
and .png.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from benchlib import KEPT_TRIALS, keep_trials, pool_seeds, save_results, study_args, table
from rich.console import Console

KEYS = ("mean_return", "tdis_tot", "ener_tot", "switches_per_day", "jerk_rms")
TOLERANCE = 0.05
#: (label, env, baselines, sweep file, folder under --runs, trials planned)
STUDIES = (
    (
        "PPO HVAC-v0", "smoothrl/HVAC-v0", ("thermostat", "pi"),
        "sweeps/hvac_smoothness_weights.yaml", "hvac_weights", 57,
    ),
    (
        "PPO HVACDiscrete-v0", "smoothrl/HVACDiscrete-v0", ("thermostat",),
        "sweeps/hvac_discrete_smoothness_weights.yaml", "hvac_discrete_weights", 57,
    ),
    (
        "DQN HVACDiscrete-v0", "smoothrl/HVACDiscrete-v0", ("thermostat",),
        "sweeps/hvac_discrete_dqn_reward.yaml", "hvac_discrete_dqn", 30,
    ),
)  # fmt: skip


def trial_record(run: Path) -> dict[str, float] | None:
    """:return: a finished trial's metrics (``None`` while it runs, or when it failed)"""
    path = run / "trial.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    if record.get("status") != "ok":
        return None
    return {k: float(record[k]) for k in KEYS}


def read(sweep_dir: Path, kept_dir: Path) -> dict[str, dict]:
    """
    :param sweep_dir: the sweep's folder (its trials are kept under ``kept_dir`` first)
    :param kept_dir: the kept trials and the earlier aggregate (``earlier.json``)
    :return: variant -> :func:`~benchlib.pool_seeds` (empty when nothing has finished)
    """
    kept = keep_trials(sweep_dir, kept_dir, trial_record)
    earlier_path = kept_dir / "earlier.json"
    earlier = json.loads(earlier_path.read_text())["variants"] if earlier_path.is_file() else {}
    return {
        v: pool_seeds(earlier.get(v), kept.get(v, {}), KEYS, "switches_per_day")
        for v in sorted(set(earlier) | set(kept))
    }


def form_order(variant: str) -> tuple[str, int, float] | None:
    """``loss_o2_w10`` -> ("loss", 2, 10.0); ``plain`` -> None"""
    if variant == "plain":
        return None
    form, order, weight = variant.split("_")
    return form, int(order[1:]), float(weight[1:])


def analyse(mean: dict[str, dict]) -> tuple[dict, dict, list[list[str]]]:
    """
    :param mean: variant -> :func:`~benchlib.pool_seeds`
    :return: the same with ``change`` vs plain added, the best variant within tolerance per form
        and order, and the table rows
    """
    plain = mean["plain"]
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
            variant, str(m["seeds"]), f"{m['switches_per_day']:.1f} ± {m['switches_per_day_std']:.1f}",
            f"{change['switches_per_day']:+.0%}", f"{m['tdis_tot']:.2f}", f"{change['tdis_tot']:+.0%}",
            f"{m['ener_tot']:.3f}", f"{change['ener_tot']:+.0%}", f"{m['jerk_rms']:.3f}",
        ])  # fmt: skip
    return mean, best, rows


def cut(change: float | None) -> str:
    """:return: a switching change as a percentage, ``-`` for none"""
    return "-" if change is None else f"{change:+.0%}"


def main() -> None:
    args = study_args(
        __doc__, "study_hvac_weights", quick="the same (the script trains nothing)",
        extra=lambda p: p.add_argument("--runs", type=Path, default=Path("runs/sweeps")),
    )  # fmt: skip
    from smoothrl.run.build import EVAL_SEED_OFFSET
    from smoothrl.run.evaluation import evaluate_controller

    console = Console(width=160)
    studies, tables = {}, []
    columns = ["variant", "seeds", "switches/day", "vs plain", "tdis K h", "vs plain", "ener kWh/m2", "vs plain"]
    for label, env, controllers, sweep_file, folder, planned in STUDIES:
        variants = read(args.runs / folder, KEPT_TRIALS / folder)
        if "plain" not in variants:
            console.print(f"{label}: no finished plain trial in {args.runs / folder} yet; skipped")
            continue
        mean, best, rows = analyse(variants)
        baselines = {}
        for name in controllers:
            summary, _ = evaluate_controller(name, env, {}, 13, EVAL_SEED_OFFSET)
            baselines[name] = {k: float(summary[k]) for k in KEYS if k in summary}
        finished = sum(m["seeds"] for m in mean.values())
        studies[label] = {
            "env": env,
            "sweep": sweep_file,
            "sweep_dir": str(args.runs / folder),
            "kept_trials": str(KEPT_TRIALS / folder),
            "trials_finished": finished,
            "trials_planned": planned,
            "variants": mean,
            "baselines": baselines,
            "best_within_tolerance": best,
        }
        tables.append(table(f"{label}, 1M steps, {finished} of {planned} trials; change vs plain", [
            *columns, "jerk RMS"], rows))  # fmt: skip
        tables.append(table(
            f"{label}: best switching cut with discomfort and energy at most 5% above plain",
            ["form, order", "variant", "switching change"],
            [[g, b["variant"] or "none within 5%", cut(b["switches_change"])] for g, b in sorted(best.items())],
        ))  # fmt: skip
    if not studies:
        raise SystemExit(f"no sweep under {args.runs} has a finished plain trial yet; run them (see --help)")
    plot(studies, args.out.with_suffix(".png"))
    save_results(
        {"settings": {"command": "python scripts/study_hvac_weights.py", "tolerance": TOLERANCE}, "studies": studies},
        args.out,
        tables,
        console,
    )


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """:return: the points no other point beats in both coordinates (lower is better), by the first"""
    front: list[tuple[float, float]] = []
    for point in sorted(points):
        if not front or point[1] < front[-1][1]:
            front.append(point)
    return front


def plot(studies: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smoothrl.rundir import atomic_write

    fig, axes = plt.subplots(len(studies), 2, figsize=(11, 4.0 * len(studies)), squeeze=False)
    for row, (label, study) in zip(axes, studies.items(), strict=True):
        mean = study["variants"]
        for ax, x in zip(row, ("tdis_tot", "ener_tot"), strict=True):
            groups: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
            for variant, m in mean.items():
                key = form_order(variant)
                if key is not None:
                    groups[f"{key[0]} o{key[1]}"].append((m[x], m["switches_per_day"], key[2]))
            for name, points in sorted(groups.items()):
                pts = sorted(points)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name, markersize=4, linewidth=0.8)
            plain = mean["plain"]
            front = pareto_front([(m[x], m["switches_per_day"]) for m in mean.values()])
            ax.step(*zip(*front, strict=True), where="post", color="0.4", linestyle=":", linewidth=1.2,
                    label="Pareto front of the sweep")  # fmt: skip
            ax.scatter([plain[x]], [plain["switches_per_day"]], marker="*", s=120, c="k", label="plain")
            for name, b in study["baselines"].items():
                ax.scatter([b[x]], [b["switches_per_day"]], marker="s", s=40, label=name)
            ax.set(xlabel=x, ylabel="switches per day", title=f"{label}: switching vs {x}")
            low, high = ax.dataLim.intervalx
            if low > 0 and high / low > 10:  # agents at under 1 K h beside baselines at 30-40: log shows both
                ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


if __name__ == "__main__":
    main()
