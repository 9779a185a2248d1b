"""Reproduce Figure 2 of "Performative Reinforcement Learning" (Mandal et al., ICML 2023) on smoothrl's gridworld.

Settings (the paper's): repeated retraining with lambda in {0, 0.2, 0.5, 1, 5} at beta = 10 and
beta in {0.1, 1, 5, 10, 200} at lambda = 1; repeated gradient ascent with eta in {0.05, 0.1,
0.2, 1, 2} at lambda = 1, beta = 5; finite samples with n in {20, 50, 100, 200, 500, 1000}
trajectories per round at lambda = 1, beta = 5 (several seeds); plus, beyond the paper, MDRR
against retraining every deployment in a gradually shifting gridworld (adaptation 0.3, n = 200).
gamma = 0.9, 50 followers. For every setting: the rounds needed to reach a relative occupancy
change below 1e-3 (or "not in T rounds"), the final relative change and the wall time per round.

Budget: the paper runs 1000 rounds and 20 seeds; the default here is 300 rounds and 5 seeds of
the sampled methods (about 10 minutes on 2 cores), ``--quick`` 40 rounds and 2 seeds.
``python scripts/repro_performative.py [--quick] [--rounds T] [--seeds N] [--workers K]``
writes results/repro_performative.json and results/repro_performative.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import run_jobs, save_results, study_args, t_interval, table
from rich.console import Console

from smoothrl.performative.gridworld import PerformativeGridworld
from smoothrl.performative.solvers import retrain

TOLERANCE = 1e-3
LAMBDAS = (0.0, 0.2, 0.5, 1.0, 5.0)
BETAS = (0.1, 1.0, 5.0, 10.0, 200.0)
ETAS = (0.05, 0.1, 0.2, 1.0, 2.0)
SAMPLES = (20, 50, 100, 200, 500, 1000)


@dataclass(frozen=True)
class Setting:
    """One run: ``key = (study, label, seed)``."""

    key: tuple
    method: str
    lam: float
    beta: float
    rounds: int
    eta: float | None = None
    samples: int | None = None
    seed: int = 0
    adaptation: float = 1.0
    delay: int = 1


def run_setting(s: Setting) -> dict[str, Any]:
    """One tabular run (module level, so that it pickles to a worker)."""
    world = PerformativeGridworld(beta=s.beta, adaptation=s.adaptation)
    run = retrain(world, s.method, s.lam, s.rounds, eta=s.eta, samples=s.samples, delay=s.delay, seed=s.seed)
    first = run.rounds_to(TOLERANCE)
    out = {
        "relative_change": run.series("relative_change").tolist(),
        "performative_return": run.series("performative_return").tolist(),
        "rounds_to_tolerance": first,
        "final_relative_change": float(run.series("relative_change")[-1]),
        "min_relative_change": float(run.series("relative_change").min()),
        "seconds_per_round": float(np.mean(run.series("seconds"))),
        "max_kkt_residual": float(run.series("kkt_residual").max()),
    }
    if s.method == "rga":
        out["suboptimality_gap"] = run.series("suboptimality_gap").tolist()
    return out


def settings(rounds: int, seeds: int) -> list[Setting]:
    """Every run of the study."""
    out = [Setting(("rr_lambda", f"lambda={lam:g}", 0), "rr", lam, 10.0, rounds) for lam in LAMBDAS]
    out += [Setting(("rr_beta", f"beta={beta:g}", 0), "rr", 1.0, beta, rounds) for beta in BETAS]
    out += [Setting(("rga_eta", f"eta={eta:g}", 0), "rga", 1.0, 5.0, rounds, eta=eta) for eta in ETAS]
    for n in SAMPLES:
        out += [
            Setting(("finite_n", f"n={n}", seed), "finite", 1.0, 5.0, rounds, samples=n, seed=seed)
            for seed in range(seeds)
        ]
    for label, delay in (("retrain every deployment", 1), ("MDRR, delay 3", 3)):
        out += [
            Setting(
                ("mdrr", label, seed), "mdrr", 1.0, 5.0, rounds, samples=200, seed=seed, adaptation=0.3, delay=delay
            )
            for seed in range(seeds)
        ]
    return out


def aggregate(results: dict[tuple, dict[str, Any]], rounds: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Per study and label: over seeds, the rounds to the tolerance and the final change (mean, 95% interval)."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for (study, label, _seed), result in sorted(results.items(), key=lambda kv: kv[0][2]):
        grouped.setdefault(study, {}).setdefault(label, []).append(result)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for study, labels in grouped.items():
        out[study] = {}
        for label, runs in labels.items():
            reached = [r["rounds_to_tolerance"] for r in runs if r["rounds_to_tolerance"] is not None]
            final_mean, final_half = t_interval([r["final_relative_change"] for r in runs])
            curves = np.array([r["relative_change"] for r in runs])
            out[study][label] = {
                "seeds": len(runs),
                "reached": len(reached),
                "rounds_to_tolerance": reached,
                "final_relative_change": final_mean,
                "final_relative_change_ci95": final_half,
                "min_relative_change": float(np.mean([r["min_relative_change"] for r in runs])),
                "seconds_per_round": float(np.mean([r["seconds_per_round"] for r in runs])),
                "max_kkt_residual": float(max(r["max_kkt_residual"] for r in runs)),
                "relative_change_mean": curves.mean(axis=0).tolist(),
                "relative_change_std": curves.std(axis=0).tolist(),
                "final_performative_return": float(np.mean([r["performative_return"][-1] for r in runs])),
            }
            if "suboptimality_gap" in runs[0]:
                out[study][label]["final_suboptimality_gap"] = float(
                    np.mean([r["suboptimality_gap"][-1] for r in runs])
                )
    return out


def rounds_cell(row: dict[str, Any], rounds: int) -> str:
    """'4' for one seed, '12 (5/5 seeds, 9-15)' for several, 'not in T rounds' when none reached it."""
    reached = row["rounds_to_tolerance"]
    if not reached:
        return f"not in {rounds} rounds"
    if row["seeds"] == 1:
        return str(reached[0])
    return f"{np.mean(reached):.0f} ({len(reached)}/{row['seeds']} seeds, {min(reached)}-{max(reached)})"


TITLES = {
    "rr_lambda": "repeated retraining, beta = 10",
    "rr_beta": "repeated retraining, lambda = 1",
    "rga_eta": "repeated gradient ascent, lambda = 1, beta = 5",
    "finite_n": "finite samples, lambda = 1, beta = 5",
    "mdrr": "gradually shifting env (adaptation 0.3), n = 200, lambda = 1, beta = 5",
}


def plot(summary: dict[str, dict[str, dict[str, Any]]], out: Path) -> None:
    """One panel per study: the relative change per round (log scale), seed mean with its spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smoothrl.rundir import atomic_write

    fig, axes = plt.subplots(1, len(summary), figsize=(4.2 * len(summary), 3.6))
    for ax, (study, labels) in zip(np.atleast_1d(axes), summary.items(), strict=True):
        for label, row in labels.items():
            mean, std = np.array(row["relative_change_mean"]), np.array(row["relative_change_std"])
            x = np.arange(1, len(mean) + 1)
            ax.semilogy(x, np.maximum(mean, 1e-16), label=label, linewidth=1)
            if row["seeds"] > 1:
                ax.fill_between(x, np.maximum(mean - std, 1e-16), mean + std, alpha=0.2)
        ax.axhline(TOLERANCE, color="grey", linestyle="--", linewidth=0.8)
        ax.set(title=TITLES[study], xlabel="round", ylabel="||d_t+1 - d_t|| / ||d_t||")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def main() -> None:
    args = study_args(
        __doc__,
        "repro_performative",
        seeds=(5, 2),
        workers=2,
        quick="40 rounds, 2 seeds of the sampled methods",
        extra=lambda p: p.add_argument("--rounds", type=int, default=None, help="default 300 (--quick: 40)"),
    )
    rounds = args.rounds or (40 if args.quick else 300)
    console = Console()
    results = run_jobs(
        settings(rounds, args.seeds), args.workers, console, fn=run_setting, backend=args.backend, address=args.address
    )
    summary = aggregate(results, rounds)
    tables = [
        table(
            f"{TITLES[study]}: {rounds} rounds" + (f", {args.seeds} seeds" if study in ("finite_n", "mdrr") else ""),
            ["setting", "rounds to < 1e-3", "final change", "min change", "s/round"],
            [
                [
                    label,
                    rounds_cell(row, rounds),
                    f"{row['final_relative_change']:.2e}",
                    f"{row['min_relative_change']:.2e}",
                    f"{row['seconds_per_round']:.3f}",
                ]
                for label, row in labels.items()
            ],
        )
        for study, labels in summary.items()
    ]
    png = args.out.with_suffix(".png")
    plot(summary, png)
    command = "python scripts/repro_performative.py" + (" --quick" if args.quick else "")
    save_results(
        {
            "settings": {
                "command": command,
                "rounds": rounds,
                "seeds_sampled": args.seeds,
                "gamma": 0.9,
                "followers": 50,
                "tolerance": TOLERANCE,
                "plot": str(png),
            },
            "studies": summary,
        },
        args.out,
        tables,
        console,
    )


if __name__ == "__main__":
    main()
