"""Learned controllers against the tuned baselines and the MPC bound on ``smoothrl/HVAC-v0``: what
each lever contributes.

Variants (PPO, the env's preset unless a variant changes it):

- ``ppo``: PPO alone (500k steps); ``ppo_smooth``: with the action-smoothness term (loss form,
  order 1, weight 1.0);
- ``bc``: the oracle MPC distilled by behaviour cloning on its own trajectories (one round of
  16,384 decisions), no RL;
- ``dagger``: three DAgger rounds of 16,384 decisions, no RL (the ``dagger_ppo`` run's
  checkpoint 0, the distilled policy RL starts from);
- ``dagger_ppo``: then PPO fine-tuning (1M steps, exploration std exp(-2.5), learning rate
  1e-4): the recipe;
- ``dagger_ppo_smooth``: the recipe's distilled policy (``pretrain.from_run``) fine-tuned with the
  action-smoothness term;
- ``dagger_ppo_forecast``: the recipe observing solar forecasts and forecasts up to 24 h ahead.
- ``dagger_ppo_2m``: the recipe's distilled policy (``pretrain.from_run``) fine-tuned twice as
  long (2M steps);
- ``pi_dagger_ppo``: the recipe with the tuned PI as the teacher instead of the MPC;
- ``dagger_ppo_kl``: the recipe's distilled policy fine-tuned with PPO's early stop at a KL
  divergence of 0.01 per update (``target_kl``): fine-tuning moves a distilled policy less;
- ``dagger_ppo_keep``: the recipe's distilled policy fine-tuned on the observation normalization
  it was distilled with (``pretrain.keep_normalization``) instead of statistics that RL updates;
- ``dagger_ppo_lin``: the recipe's distilled policy fine-tuned with a learning rate decaying
  linearly from 1e-4 to 0 (``lin_1e-4``), so that the policy settles instead of ending wherever
  the last updates took it;
- ``dagger_ppo_settle``: both, the distilled normalization kept and the learning rate decaying to
  0; ``dagger_ppo_settle_kl`` with PPO's early stop at a KL divergence of 0.01 too;
  ``dagger_ppo_settle_smooth`` with the action-smoothness term too.

Every controller plays the same 13 distinct test weeks from the same initial temperatures
(evaluation seed 10000), beside the thermostat and PI tuned on the training weeks and the oracle
and realistic MPC. Reported per variant over its seeds: the return (mean and 95% t-interval), the
gap to the oracle MPC, the weeks it beats the tuned PI (fewest over the seeds), discomfort,
energy, switches/day and jerk RMS; plotted: return and oracle gap per variant, and the learning
curves of the RL variants (test-week return every 50k steps) with the PI and the MPC as lines.

Each trial is a run directory under ``--runs`` (resumed if it was interrupted) and its record is
kept in ``results/trials/hvac_control/<variant>/seed_<s>.json``, so the study can be run in parts
(``--variants``, ``--seeds``) and the report reads every trial kept. Budget: 3 seeds (``--quick``:
1 seed, 2 test weeks, 2 rounds of 1,024 decisions and 20k RL steps, into a folder of its own).
``python scripts/study_hvac_control.py [--quick] [--variants V ...] [--seeds N] [--workers 2]``
writes results/study_hvac_control.json and .png. ``--plant staged`` runs the same study on the
staged plant ``smoothrl/HVACDiscrete-v0``, paired with the tuned thermostat (the PI needs a
modulating plant), its fine-tune dropping the entropy bonus (the distilled categorical policy
explores by its own probabilities); trials in ``results/trials/hvac_control_staged/``, results in
``results/study_hvac_control_staged.json``. ``--plant multizone`` runs it on the 5-zone office
``smoothrl/HVACMultiZone-v0`` (twice the RL steps; 3 rounds of 4,096 teacher decisions, the 5-zone
MPC costing about 216 ms a decision), ``--plant eplus`` on EnergyPlus ``smoothrl/EPlus-v0``, where
no oracle exists: the realistic MPC (on the RC model calibrated to EnergyPlus) teaches, is the line
the gap is measured to, and the budget is a fifth of the RL steps and 2 rounds of 4,096 decisions
on 8 buildings (a step of EnergyPlus costs about 4 ms). The non-learned controllers' evaluations
are read from ``results/bench_hvac_control.json`` when it played the same weeks from the same seed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import KEPT_TRIALS, bench_controllers, run_jobs, save_results, study_args, t_interval, table
from rich.console import Console

EVAL_SEED = 10_000
SMOOTH = "action_reg={order: 1, weight: 1.0}"
TEACHER = ("pretrain.teacher={teacher}", "pretrain.steps=16384")
PI_TEACHER = ("pretrain.teacher=pi", "pretrain.steps=16384")
FINE_TUNE = ("policy_kwargs.log_std_init=-2.5", "learning_rate=1e-4")
FINE_TUNED = "{fine_tune}"  # in a variant's overrides: the plant's fine-tune overrides


@dataclass(frozen=True)
class Plant:
    """One plant of the study: its env, the tuned rule baselines that run on it (the last is the one
    every variant is paired with), the fine-tune's overrides, and the name its trials, runs and
    results carry."""

    env: str
    rules: tuple[str, ...]
    fine_tune: tuple[str, ...]
    name: str
    #: every variant's RL steps are multiplied by this (a larger plant needs a larger budget, a
    #: slower simulator a smaller one)
    steps_scale: float = 1.0
    #: the MPCs that run on the plant (the first is the bound the gap is measured to)
    mpcs: tuple[str, ...] = ("mpc-oracle", "mpc-realistic")
    #: overrides of every distillation on the plant (a smaller budget where the teacher is slow)
    pretrain: tuple[str, ...] = ()

    @property
    def controllers(self) -> tuple[str, ...]:
        return (*self.rules, *self.mpcs)

    @property
    def bound(self) -> str:
        """The MPC whose return the gap is measured to (and the MPC teacher of the variants)."""
        return self.mpcs[0]

    @property
    def reference(self) -> str:
        return self.rules[-1]


#: On the staged plant the distilled categorical policy explores by its own probabilities: the
#: fine-tune drops the entropy bonus instead of setting a Gaussian's std; the PI needs a modulating
#: plant, so the tuned thermostat is the reference there.
PLANTS = {
    "modulating": Plant("smoothrl/HVAC-v0", ("thermostat", "pi"), FINE_TUNE, "hvac_control"),
    "staged": Plant(
        "smoothrl/HVACDiscrete-v0", ("thermostat",), ("ent_coef=0.0", "learning_rate=1e-4"), "hvac_control_staged"
    ),
    # the 5-zone oracle MPC costs about 216 ms a decision: 3 rounds of 4,096 decisions (45 minutes)
    "multizone": Plant(
        "smoothrl/HVACMultiZone-v0",
        ("thermostat", "pi"),
        FINE_TUNE,
        "hvac_control_multizone",
        2,
        pretrain=("pretrain.steps=4096",),
    ),
    # EnergyPlus exposes no RC state: no oracle; the realistic MPC (on the RC model calibrated to it)
    # teaches and is the line to beat; a step costs about 4 ms, the MPC 110 ms a decision
    "eplus": Plant(
        "smoothrl/EPlus-v0",
        ("thermostat", "pi"),
        FINE_TUNE,
        "hvac_control_eplus",
        0.2,
        ("mpc-realistic",),
        ("pretrain.steps=4096", "pretrain.rounds=2", "pretrain.buildings=8"),
    ),
}
KEEP = "pretrain.keep_normalization=true"
LINEAR = "learning_rate=lin_1e-4"
KL = "target_kl=0.01"
#: the recipe's distilled policy fine-tuned on its distilled normalization, the learning rate decaying to 0
SETTLED = (*TEACHER, "pretrain.from_run={dagger_ppo}", FINE_TUNED, KEEP, LINEAR)
FORECAST = ("env_kwargs.forecast=[t_out, price, ghi_kw]", "env_kwargs.forecast_hours=[1, 3, 6, 12, 24]")
#: variant -> (overrides, RL steps, the run it is read from: None, or (variant, checkpoint step))
VARIANTS: dict[str, tuple[tuple[str, ...], int, tuple[str, int] | None]] = {
    "ppo": ((), 500_000, None),
    "ppo_smooth": ((SMOOTH,), 500_000, None),
    "bc": ((*TEACHER, "pretrain.rounds=1"), 0, None),
    "dagger": ((), 0, ("dagger_ppo", 0)),
    "dagger_ppo": ((*TEACHER, "pretrain.rounds=3", FINE_TUNED), 1_000_000, None),
    "dagger_ppo_smooth": ((*TEACHER, "pretrain.from_run={dagger_ppo}", FINE_TUNED, SMOOTH), 1_000_000, None),
    "dagger_ppo_forecast": ((*TEACHER, "pretrain.rounds=3", FINE_TUNED, *FORECAST), 1_000_000, None),
    "dagger_ppo_2m": ((*TEACHER, "pretrain.from_run={dagger_ppo}", FINE_TUNED), 2_000_000, None),
    "pi_dagger_ppo": ((*PI_TEACHER, "pretrain.rounds=3", FINE_TUNED), 1_000_000, None),
    "dagger_ppo_kl": ((*TEACHER, "pretrain.from_run={dagger_ppo}", FINE_TUNED, KL), 1_000_000, None),
    "dagger_ppo_keep": ((*TEACHER, "pretrain.from_run={dagger_ppo}", FINE_TUNED, KEEP), 1_000_000, None),
    "dagger_ppo_lin": ((*TEACHER, "pretrain.from_run={dagger_ppo}", FINE_TUNED, LINEAR), 1_000_000, None),
    "dagger_ppo_settle": (SETTLED, 1_000_000, None),
    "dagger_ppo_settle_kl": ((*SETTLED, KL), 1_000_000, None),
    "dagger_ppo_settle_smooth": ((*SETTLED, SMOOTH), 1_000_000, None),
}
QUICK = ("pretrain.steps=1024", "pretrain.rounds=2", "pretrain.buildings=8")
KEYS = ("mean_return", "tdis_tot", "ener_tot", "switches_per_day", "jerk_rms")
CURVE = "eval/mean_reward"


@dataclass(frozen=True)
class Trial:
    key: tuple
    plant: str
    variant: str
    seed: int
    episodes: int
    runs: str
    quick: bool
    kept: str


def _record(summary: dict[str, Any], steps: int) -> dict[str, Any]:
    out = {k: float(summary[k]) for k in KEYS}
    out["episode_returns"] = [float(r) for r in summary["episode_returns"]]
    out["episode_start_days"] = [int(d) for d in summary["episode_start_days"]]
    out["steps"] = steps
    return out


def run_trial(trial: Trial) -> dict[str, Any]:
    """Train (or resume, or read from its source run) one variant and seed, evaluate it, and keep
    its record as soon as it is done."""
    from smoothrl.rundir import atomic_write_json

    record = _trial(trial)
    atomic_write_json(Path(trial.kept) / trial.variant / f"seed_{trial.seed}.json", record)
    return record


def _trial(trial: Trial) -> dict[str, Any]:
    import torch as th

    from smoothrl import rundir
    from smoothrl.run.build import load_run
    from smoothrl.run.evaluation import evaluate, evaluate_controller
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import resume, train
    from smoothrl.tools.plotting import read_scalar_tags

    th.set_num_threads(1)
    plant = PLANTS[trial.plant]
    if trial.variant in plant.controllers:
        measured = _bench_record(plant.env, trial.variant, trial.episodes)
        if measured is not None:
            return measured
        summary, _ = evaluate_controller(trial.variant, plant.env, episodes=trial.episodes, seed=EVAL_SEED)
        return _record(summary, 0) | {"ms_per_decision": float(summary["ms_per_decision"])}
    overrides, steps, source = VARIANTS[trial.variant]
    steps = int(steps * plant.steps_scale)
    overrides = tuple(x for o in overrides for x in (plant.fine_tune if o == FINE_TUNED else (o,)))
    overrides = tuple(o.replace("{teacher}", plant.bound) for o in overrides)
    if any(o.startswith("pretrain.teacher") for o in overrides):
        overrides = (*overrides, *plant.pretrain)
    if source is not None:  # a checkpoint of another variant's run
        run_dir = Path(trial.runs) / source[0] / f"seed_{trial.seed}"
        ckpt = rundir.checkpoint_paths(run_dir, source[1])
        if not ckpt.model.is_file():
            raise RuntimeError(f"{ckpt.model} is missing: run the {source[0]} variant first")
        copy = Path(trial.runs) / trial.variant / f"seed_{trial.seed}"
        if copy.exists():
            shutil.rmtree(copy)
        copy.mkdir(parents=True)
        shutil.copy(run_dir / rundir.CONFIG, copy / rundir.CONFIG)
        shutil.copy(ckpt.model, copy / rundir.MODEL)
        if ckpt.vecnormalize.is_file():
            shutil.copy(ckpt.vecnormalize, copy / rundir.VECNORMALIZE)
        summary, _ = evaluate(load_run(copy), trial.episodes, seed=EVAL_SEED)
        return _record(summary, source[1])
    run_dir = Path(trial.runs) / trial.variant / f"seed_{trial.seed}"
    # "{variant}" in an override: that variant's run of the same seed (a distillation to start from)
    for v in VARIANTS:
        overrides = tuple(o.replace(f"{{{v}}}", str(Path(trial.runs) / v / f"seed_{trial.seed}")) for o in overrides)
    if trial.quick:
        steps = min(steps, 20_000)
        overrides = (*overrides, *(QUICK if any(o.startswith("pretrain.") for o in overrides) else ()))
    freq = max(steps // 10, 1000)
    items = [*overrides, f"eval_freq={freq if steps else 0}", f"eval_episodes={trial.episodes}"]
    if (run_dir / rundir.MODEL).is_file():
        path = run_dir
    elif rundir.latest_checkpoint(run_dir) is not None:
        path = resume(run_dir, progress_bar=False)
    else:
        config = resolve_config("ppo", plant.env, None, items, n_timesteps=steps, seed=trial.seed)
        path = train(config, run_dir, overwrite=True, progress_bar=False)
    summary, _ = evaluate(load_run(path), trial.episodes, seed=EVAL_SEED)
    record = _record(summary, steps)
    curve_steps, curve = read_scalar_tags(path, [CURVE])[CURVE]
    record["curve"] = [[int(s), float(v)] for s, v in zip(curve_steps, curve, strict=True)]
    pretrain = path / rundir.PRETRAIN
    if pretrain.is_file():
        record["pretrain"] = json.loads(pretrain.read_text())["rounds"]
    return record


def _bench_record(env: str, controller: str, episodes: int) -> dict[str, Any] | None:
    """``controller``'s record on ``env`` from the HVAC control benchmark when it played the same
    weeks from the same evaluation seed, else ``None`` (the 5-zone MPC takes about 30 minutes a
    controller: read, not run again)."""
    row = bench_controllers(env, EVAL_SEED, episodes).get(controller)
    if row is None:
        return None
    return _record(row, 0) | {"ms_per_decision": float(row["ms_per_decision"])}


def _sources(variant: str) -> list[str]:
    """The variants whose runs ``variant`` starts from (``{name}`` in its overrides)."""
    return [v for v in VARIANTS if any(f"{{{v}}}" in o for o in VARIANTS[variant][0])]


def summarize(
    kept: dict[str, dict[int, dict[str, Any]]],
    controllers: dict[str, dict[str, Any]],
    reference: str,
    bound: str = "mpc-oracle",
) -> dict[str, Any]:
    """Per variant over its seeds: means, the return's 95% interval, the gap to the MPC ``bound``
    (``oracle_gap``), weeks beating the tuned rule baseline ``reference``."""
    from smoothrl.run.evaluation import paired_wins

    oracle = controllers.get(bound)
    pi = controllers.get(reference)
    out: dict[str, Any] = {}
    for variant, seeds in kept.items():
        records = [seeds[s] for s in sorted(seeds)]
        mean, half = t_interval([r["mean_return"] for r in records])
        row: dict[str, Any] = {k: float(np.mean([r[k] for r in records])) for k in KEYS}
        row.update(seeds=sorted(seeds), return_ci95=half, mean_return=mean)
        if oracle is not None:
            row["oracle_gap"] = (oracle["mean_return"] - mean) / abs(oracle["mean_return"])
        if pi is not None:
            row["weeks_beating_reference"] = [paired_wins(r, pi, variant, reference)[0] for r in records]
            row["weeks"] = len(records[0]["episode_returns"])
        out[variant] = row
    return out


def plot(report: dict[str, Any], kept: dict[str, dict[int, dict[str, Any]]], path: Path) -> None:
    """Return and oracle gap per variant; learning curves with the tuned rule baseline and the MPC
    as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    controllers, variants = report["controllers"], report["variants"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [v for v in VARIANTS if v in variants]
    y = np.arange(len(names))
    left.errorbar(
        [variants[v]["mean_return"] for v in names],
        y,
        xerr=[np.nan_to_num(variants[v]["return_ci95"]) for v in names],
        fmt="o",
        color="tab:blue",
        capsize=4,
    )
    left.set_yticks(y, [f"{v} ({variants[v].get('oracle_gap', float('nan')):+.0%})" for v in names])
    bound = report["settings"]["bound"]
    styles = {
        report["settings"]["reference"]: ("tab:green", "--"),
        "mpc-oracle": ("black", "-"),
        # the realistic MPC is drawn as the bound where it is one (EnergyPlus)
        "mpc-realistic": ("black", "-") if bound == "mpc-realistic" else ("tab:gray", ":"),
    }
    for name, (color, style) in styles.items():
        if name in controllers:
            left.axvline(controllers[name]["mean_return"], color=color, linestyle=style, label=name)
            right.axhline(controllers[name]["mean_return"], color=color, linestyle=style, label=name)
    left.set_xlabel(f"return on the test weeks (mean, 95% interval over seeds; gap to {bound} in brackets)")
    left.legend(loc="center left", fontsize=8)
    for variant in names:
        curves = [np.array(r["curve"]) for r in kept.get(variant, {}).values() if r.get("curve")]
        if not curves:
            continue
        shortest = min(len(c) for c in curves)
        steps = curves[0][:shortest, 0]
        values = np.mean([c[:shortest, 1] for c in curves], axis=0)
        if variant.startswith("dagger") and "dagger" in variants:  # the distilled policy RL starts from
            steps, values = np.r_[0, steps], np.r_[variants["dagger"]["mean_return"], values]
        right.plot(steps, values, marker=".", label=variant)
    if bound in controllers:  # the bound's neighbourhood: early PPO returns fall below the axis
        line = controllers[bound]["mean_return"]
        best = max([0.8 * line, *(float(np.max(lin.get_ydata())) for lin in right.get_lines())])
        right.set_ylim(2.0 * line, best + 0.05 * abs(line))  # a learned controller may pass the MPC
    right.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))  # 200k, 1M: labels that fit
    right.set_xlabel("RL steps")
    right.set_ylabel("return on the test weeks (mean over seeds)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = study_args(
        __doc__,
        "study_hvac_control",
        seeds=(3, 1),
        episodes=(13, 2),
        workers=2,
        quick="1 seed, 2 test weeks, a small distillation and 20k RL steps",
        extra=lambda p: (
            p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)),
            p.add_argument("--runs", type=Path, default=None, help="run directories (default runs/study_hvac_control)"),
            p.add_argument("--report-only", action="store_true", help="read the kept trials, train nothing"),
            p.add_argument(
                "--seed-list",
                type=int,
                nargs="+",
                default=None,
                help="train only these seeds (default: 0 to --seeds - 1), e.g. beside another machine's",
            ),
            p.add_argument(
                "--plant",
                choices=list(PLANTS),
                default="modulating",
                help="modulating: smoothrl/HVAC-v0 (paired with the tuned PI); staged: smoothrl/HVACDiscrete-v0 "
                "(paired with the tuned thermostat); multizone: smoothrl/HVACMultiZone-v0 (5 zones, paired with "
                "the tuned PI, twice the RL steps); eplus: smoothrl/EPlus-v0 (paired with the tuned PI, measured "
                "to the realistic MPC)",
            ),
        ),
    )
    console = Console()
    plant = PLANTS[args.plant]
    env, reference = plant.env, plant.reference
    study = plant.name + ("_quick" if args.quick else "")
    runs = args.runs or Path("runs/study_" + study)
    kept_dir = KEPT_TRIALS / study

    def trial_path(variant: str, seed: int) -> Path:
        return kept_dir / variant / f"seed_{seed}.json"

    if not args.report_only:
        todo = [
            Trial((c, EVAL_SEED), args.plant, c, EVAL_SEED, args.episodes, str(runs), args.quick, str(kept_dir))
            for c in plant.controllers
        ]
        todo = [t for t in todo if not trial_path(t.variant, t.seed).is_file()]
        later = [v for v in args.variants if VARIANTS[v][2] is not None or _sources(v)]
        first = [v for v in args.variants if v not in later]
        for group in (first, later):
            todo += [
                Trial((v, s), args.plant, v, s, args.episodes, str(runs), args.quick, str(kept_dir))
                for v in group
                for s in (args.seed_list if args.seed_list is not None else range(args.seeds))
                if not trial_path(v, s).is_file()
            ]
            run_jobs(todo, args.workers, console, fn=run_trial, backend=args.backend, address=args.address)
            todo = []
    kept: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(kept_dir.glob("*/seed_*.json")):
        kept.setdefault(path.parent.name, {})[int(path.stem.removeprefix("seed_"))] = json.loads(path.read_text())
    controllers = {c: kept.pop(c)[EVAL_SEED] for c in plant.controllers if c in kept}
    report = {
        "settings": {
            "env": env,
            "reference": reference,
            "bound": plant.bound,
            "evaluation_seed": EVAL_SEED,
            "weeks": args.episodes,
            "variants": {v: {"overrides": list(o), "rl_steps": s, "from": f} for v, (o, s, f) in VARIANTS.items()},
            "fine_tune": list(plant.fine_tune),
            "quick": args.quick,
            "command": "python scripts/study_hvac_control.py"
            + (f" --plant {args.plant}" if args.plant != "modulating" else "")
            + (" --quick" if args.quick else ""),
        },
        "controllers": {c: {k: r[k] for k in (*KEYS, "ms_per_decision") if k in r} for c, r in controllers.items()},
        "variants": summarize(kept, controllers, reference, plant.bound),
        "trials": kept,
    }
    rows = []
    for name, row in report["variants"].items():
        beat = row.get("weeks_beating_reference")
        rows.append(
            [
                name,
                f"{row['mean_return']:.2f} ± {row['return_ci95']:.2f}"
                if len(row["seeds"]) > 1
                else f"{row['mean_return']:.2f}",
                f"{row.get('oracle_gap', float('nan')):+.1%}",
                f"{min(beat)}/{row['weeks']}" if beat else "-",
                str(len(row["seeds"])),
                f"{row['tdis_tot']:.2f}",
                f"{row['ener_tot']:.3f}",
                f"{row['switches_per_day']:.2f}",
                f"{row['jerk_rms']:.3f}",
            ]
        )
    for name, row in report["controllers"].items():
        gap = (
            (controllers[plant.bound]["mean_return"] - row["mean_return"])
            / abs(controllers[plant.bound]["mean_return"])
            if plant.bound in controllers
            else float("nan")
        )
        rows.append(
            [name, f"{row['mean_return']:.2f}", f"{gap:+.1%}", "-", "-", f"{row['tdis_tot']:.2f}",
             f"{row['ener_tot']:.3f}", f"{row['switches_per_day']:.2f}", f"{row['jerk_rms']:.3f}"]
        )  # fmt: skip
    columns = [
        "controller",
        "return",
        f"gap to {plant.bound}",
        f"weeks > {reference} (min)",
        "seeds",
        "tdis",
        "ener",
        "sw/day",
        "jerk",
    ]
    title = f"{env}: {args.episodes} test weeks, evaluation seed {EVAL_SEED} (return: mean ± 95% interval over seeds)"
    out = args.out
    if out == Path("results/study_hvac_control.json"):  # never over another plant's or the full study's results
        out = out.with_name(f"study_{study}.json")
    save_results(report, out, [table(title, columns, rows)], console)
    if report["variants"]:
        plot(report, kept, out.with_suffix(".png"))
        console.print(f"wrote {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
