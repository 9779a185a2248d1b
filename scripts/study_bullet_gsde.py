"""gSDE on PyBullet at the rl-zoo3 budget, with the smoothness the papers never report.

Reads the sweeps below, finished or not (this script runs no training; each sweep file's header
has the command that runs or resumes it, and the pilot ``sweeps/bullet_smoothness_pilot.yaml``
picks the smoothness weight of the ``*_smooth`` sweeps):

- the pilot, ``sweeps/bullet_smoothness_pilot.yaml`` -> ``runs/sweeps/bullet_pilot``;
- PPO, HalfCheetah / Hopper Bullet: ``sweeps/bullet_{halfcheetah,hopper}_ppo.yaml`` (Gaussian vs
  gSDE) and ``..._ppo_smooth.yaml`` (gSDE + a first- and a third-order ``action_reg`` term);
- SAC and TD3, HalfCheetah Bullet: ``sweeps/bullet_halfcheetah_{sac,td3}.yaml``.

Each trial's budget is its sweep file's (read back from the trial's config: the zoo's 2M/1M, or
the smaller budget one 2-core machine fits in a few hours). Every trial read is kept in ``results/trials/<sweep>/``
(:func:`benchlib.keep_trials`), so the report survives the loss of ``runs/``.

Reported per study and variant: the deterministic policy's return (mean over the finished seeds
and its 95% t-interval) and smoothness on 10 evaluation episodes (continuity cost x100, jerk RMS,
Sm), the smoothness of the *exploring* actions (the last ``smoothness/*`` values training logged),
the steps each trial has done, and SB3's published mean +- std beside it (2M steps and 6 seeds for
PPO, 1M for SAC/TD3, from SB3's documentation of PPO, SAC and TD3). Unfinished trials still give
their learning curves (``eval/mean_reward`` against steps, plotted per seed with the published
values as dashed lines), so a reader sees where a study stands.
``python scripts/study_bullet_gsde.py [--runs runs/sweeps]`` writes results/study_bullet_gsde.json
and .png.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from benchlib import KEPT_TRIALS, keep_trials, save_results, study_args, t_interval, table
from rich.console import Console

KEYS = ("mean_return", "continuity_cost", "jerk_rms", "sm")
RETURN_TOLERANCE = 0.05
EXPLORING = {f"train_{k}": f"smoothness/{k}" for k in ("continuity_cost", "jerk_rms", "sm")}
#: label -> (folders under --runs, the zoo's budget in steps, {variant: SB3's published mean, std})
STUDIES = {
    "PPO HalfCheetahBulletEnv-v0 pilot (seed 0)": (("bullet_pilot",), 2_000_000, {}),
    "PPO HalfCheetahBulletEnv-v0": (
        ("bullet_halfcheetah_ppo", "bullet_halfcheetah_ppo_smooth"), 2_000_000,
        {"gaussian": (1976, 479), "gsde": (2826, 45)},
    ),
    "PPO HopperBulletEnv-v0": (
        ("bullet_hopper_ppo", "bullet_hopper_ppo_smooth"), 2_000_000, {"gaussian": (1567, 339), "gsde": (2512, 21)},
    ),
    "SAC HalfCheetahBulletEnv-v0": (
        ("bullet_halfcheetah_sac",), 1_000_000, {"gaussian": (2757, 53), "gsde": (2984, 202)},
    ),
    "TD3 HalfCheetahBulletEnv-v0": (("bullet_halfcheetah_td3",), 1_000_000, {"gaussian": (2774, 35)}),
}  # fmt: skip


def read_trial(run: Path) -> dict | None:
    """
    :param run: a trial's run directory (``<variant>/seed_<s>``)
    :return: its budget, steps done, learning curve, exploring-action smoothness and, when
        finished, its evaluation metrics; ``None`` before its config is written
    """
    from smoothrl.run.build import read_config
    from smoothrl.rundir import latest_checkpoint
    from smoothrl.tools.plotting import read_scalar_tags

    if not (run / "config.yaml").is_file():
        return None
    ckpt = latest_checkpoint(run)
    series = read_scalar_tags(run, ("eval/mean_reward", *EXPLORING.values()))
    steps, values = series["eval/mean_reward"]
    out: dict = {
        "budget": read_config(run).n_timesteps,
        "steps_done": ckpt.steps if ckpt else 0,
        "curve": [steps.tolist(), values.tolist()],
        "finished": False,
    }
    for key, tag in EXPLORING.items():
        _, logged = series[tag]
        out[key] = float(logged[-1]) if len(logged) else float("nan")
    trial = run / "trial.json"
    if trial.is_file():
        record = json.loads(trial.read_text())
        if record.get("status") == "ok":
            out["finished"] = True
            out["steps_done"] = max(out["steps_done"], out["budget"])
            out.update({k: float(record[k]) for k in KEYS})
    return out


def interval(values: list[float]) -> tuple[float, float, float]:
    """:return: the mean and its 95% t-interval's bounds (``nan`` below 2 values)"""
    mean, half = t_interval(values)
    return mean, mean - half, mean + half


def summarize_variant(trials: dict[int, dict]) -> dict:
    """:return: one variant's aggregate over its finished seeds, and every seed's progress"""
    done = [t for t in trials.values() if t["finished"]]
    out: dict = {"seeds_finished": len(done), "steps_done": {s: t["steps_done"] for s, t in trials.items()}}
    if done:
        out["return"] = interval([t["mean_return"] for t in done])
        for key in (*KEYS[1:], *EXPLORING):
            vals = [t[key] for t in done if np.isfinite(t[key])]
            out[key] = float(np.mean(vals)) if vals else float("nan")
    return out


def answers(variants: dict, pilot: bool = False) -> dict:
    """The issue's questions, where the variants to answer them have finished (and the pilot's weights)."""
    out = {}
    g, s = variants.get("gaussian", {}), variants.get("gsde", {})
    if "return" in g and "return" in s:
        out["gsde_return_gain"] = s["return"][0] - g["return"][0]
        out["gsde_jerk_ratio_eval"] = s["jerk_rms"] / g["jerk_rms"] if g["jerk_rms"] else float("nan")
        out["gsde_jerk_ratio_exploring"] = (
            s["train_jerk_rms"] / g["train_jerk_rms"] if g["train_jerk_rms"] else float("nan")
        )
    within: dict[int, float] = {}
    best: dict[int, tuple[float, float]] = {}
    for name, v in variants.items():
        if name.startswith("gsde_") and "return" in v and "return" in s:
            jerk = v["jerk_rms"] / s["jerk_rms"] if s["jerk_rms"] else float("nan")
            change = (v["return"][0] - s["return"][0]) / abs(s["return"][0])
            out[f"{name}_jerk_ratio_vs_gsde"] = jerk
            out[f"{name}_return_change_vs_gsde"] = change
            out[f"{name}_halves_jerk_within_5pct"] = bool(jerk <= 0.5 and change >= -RETURN_TOLERANCE)
            order, weight = int(name.removeprefix("gsde_o").split("_w")[0]), float(name.split("_w")[1])
            if change >= -RETURN_TOLERANCE:
                within[order] = max(within.get(order, 0.0), weight)
            if order not in best or v["return"][0] > best[order][0]:
                best[order] = (v["return"][0], weight)
    if pilot:  # the pilot's rule: per order, the largest weight within 5% of gSDE's return, else the best return's
        out["weight_kept_per_order"] = {o: within.get(o, best[o][1]) for o in sorted(best)}
        out["weight_kept_within_5pct"] = {o: o in within for o in sorted(best)}
    return out


def fmt(value: float, spec: str = ".1f") -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, spec)


def main() -> None:
    args = study_args(
        __doc__, "study_bullet_gsde", quick="the same (the script trains nothing)",
        extra=lambda p: p.add_argument("--runs", type=Path, default=Path("runs/sweeps")),
    )  # fmt: skip
    console = Console(width=170)
    studies, tables, curves = {}, [], {}
    for label, (folders, budget, published) in STUDIES.items():
        trials: dict[str, dict[int, dict]] = {}
        for folder in folders:
            trials.update(keep_trials(args.runs / folder, KEPT_TRIALS / folder, read_trial))
        if not trials:
            console.print(f"{label}: no trial under {args.runs} ({', '.join(folders)}) yet; skipped")
            continue
        variants = {name: summarize_variant(t) for name, t in trials.items()}
        curves[label] = (trials, published)
        studies[label] = {
            "folders": list(folders),
            "zoo_budget": budget,
            "published": {k: list(v) for k, v in published.items()},
            "variants": variants,
            "answers": answers(variants, pilot="pilot" in label),
        }
        rows = []
        for name, v in variants.items():
            ret = v.get("return", (float("nan"),) * 3)
            ref = published.get(name)
            steps = ", ".join(f"{s // 1000}k" for s in sorted(v["steps_done"].values()))
            rows.append([
                name, f"{v['seeds_finished']} ({steps})", f"{fmt(ret[0])} [{fmt(ret[1])}, {fmt(ret[2])}]",
                "-" if ref is None else f"{ref[0]} ± {ref[1]}", fmt(v.get("continuity_cost", np.nan), ".3f"),
                fmt(v.get("jerk_rms", np.nan), ".4f"), fmt(v.get("sm", np.nan), ".5f"),
                fmt(v.get("train_continuity_cost", np.nan), ".3f"), fmt(v.get("train_jerk_rms", np.nan), ".4f"),
            ])  # fmt: skip
        ours = sorted({t["budget"] for ts in trials.values() for t in ts.values()})
        studies[label]["budget_run"] = ours
        tables.append(table(
            f"{label}: {'/'.join(f'{b // 1000}k' for b in ours)} steps per trial (the zoo's and SB3's published: "
            f"{budget // 1000}k), 10 deterministic episodes",
            ["variant", "seeds done (steps each)", "return [95% CI]", "SB3 published", "eval cont. x100",
             "eval jerk RMS", "eval Sm", "explore cont. x100", "explore jerk RMS"],
            rows,
        ))  # fmt: skip
    if not studies:
        raise SystemExit(f"no PyBullet study under {args.runs} has a trial yet; run the sweeps (see --help)")
    plot(curves, args.out.with_suffix(".png"))
    save_results(
        {"settings": {"command": "python scripts/study_bullet_gsde.py", "episodes": 10}, "studies": studies},
        args.out,
        tables,
        console,
    )


def plot(curves: dict, out: Path) -> None:
    """
    Top row: learning curves (one line per seed, SB3's published results dashed); bottom row: the
    deterministic policy's jerk RMS against its return, one dot per finished seed.

    :param curves: label -> ({variant: {seed: trial record}}, {variant: SB3's published (mean, std)})
    :param out: the PNG
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from smoothrl.rundir import atomic_write

    fig, axes = plt.subplots(2, len(curves), figsize=(5.0 * len(curves), 8.0), squeeze=False)
    for col, (label, (variants, published)) in enumerate(curves.items()):
        top, bottom = axes[0][col], axes[1][col]
        for i, (name, seeds) in enumerate(sorted(variants.items())):
            color = f"C{i}"
            for j, trial in enumerate(seeds.values()):
                steps, values = trial["curve"]
                top.plot(steps, values, color=color, linewidth=0.9, alpha=0.8, label=name if j == 0 else None)
            if name in published:
                top.axhline(published[name][0], color=color, linestyle="--", linewidth=0.8)
            done = [t for t in seeds.values() if t["finished"]]
            if done:
                bottom.scatter([t["jerk_rms"] for t in done], [t["mean_return"] for t in done], color=color, s=18,
                               label=name)  # fmt: skip
        top.set(xlabel="environment steps", ylabel="eval return (deterministic)", title=label)
        top.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        top.legend(fontsize=7, title="one line per seed; dashed: SB3 published", title_fontsize=6)
        bottom.set(xlabel="eval jerk RMS (normalized actions)", ylabel="eval return", title="finished seeds")
        if bottom.collections:
            bottom.legend(fontsize=7)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)


if __name__ == "__main__":
    main()
