"""Put a trained run in ``models/``, as rl-zoo3 ships trained agents: the files ``smoothrl eval``
and ``smoothrl export`` need (config, model, normalization statistics, the distillation record),
its evaluation on every distinct test week (``eval.json``, evaluation seed 10000), its exported
ONNX artefact (``artefact/``) with the artefact's decision time, and a card (``README.md``) with the
command that trained it and its evaluation beside the tuned baselines and the MPC
(``results/bench_hvac_control.json``, the same weeks and seed).

``python scripts/ship_model.py RUN_DIR models/NAME --command "smoothrl train ..."``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchlib import bench_controllers

from smoothrl import rundir
from smoothrl.hardware.artefact import Artefact
from smoothrl.run.build import EVAL_SEED_OFFSET, load_run, make_env
from smoothrl.run.evaluation import evaluate, paired_wins
from smoothrl.tools.export import export_run

FILES = (rundir.CONFIG, rundir.MODEL, rundir.VECNORMALIZE, rundir.PRETRAIN)
TEACHERS = {"mpc-oracle": "oracle economic MPC", "mpc-realistic": "realistic economic MPC", "pi": "tuned PI"}
KPIS = ("mean_return", "tdis_tot", "ener_tot", "cost_tot", "switches_per_day", "jerk_rms")


def decision_ms(artefact_dir: Path, run_dir: Path, n: int = 1000) -> float:
    """Median wall time of one artefact decision (onnxruntime, one observation at a time)."""
    run = load_run(run_dir)
    venv = make_env(
        run.config, n_envs=1, training=False, seed=EVAL_SEED_OFFSET, vecnormalize_path=run.vecnormalize_path
    )
    obs = venv.reset()
    observations = []
    for _ in range(n):
        observations.append(venv.get_original_obs()[0].copy())
        action, _ = run.model.predict(obs, deterministic=True)
        obs, *_ = venv.step(action)
    venv.close()
    policy = Artefact.load(artefact_dir).policy()
    times = []
    for raw in observations:
        began = time.perf_counter()
        policy.act(raw)
        times.append(time.perf_counter() - began)
    return 1000.0 * statistics.median(times)


def card(name: str, command: str, summary: dict, ms: float, env_short: str, teacher: str | None) -> str:
    """The model's README: what it is, how it was trained, how it compares.

    :param teacher: the controller distilled into the policy before RL (``None``: RL alone)
    """
    bench = bench_controllers(env_short, summary["seed"], summary["episodes"])
    bound = next((c for c in ("mpc-oracle", "mpc-realistic") if c in bench), None)
    reference = next((c for c in ("pi", "thermostat") if c in bench), None)
    what = f"PPO on `{summary['env']}`"
    what += (
        f", the {TEACHERS.get(teacher, teacher)} distilled into it (DAgger), then fine-tuned with PPO."
        if teacher
        else "."
    )
    lines = [
        f"# {name}",
        "",
        what,
        "",
        "Trained with:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Evaluate it: `smoothrl eval models/{name} --baselines`; deploy it: `smoothrl deploy models/{name}/artefact "
        "--hardware PROFILE`.",
        "",
        f"Its {summary['episodes']} distinct test weeks (evaluation seed {summary['seed']}), beside the controllers "
        "evaluated on the same weeks (`results/bench_hvac_control.json`):",
        "",
        f"| controller | return | gap to {bound or 'the MPC'} | weeks beating {reference or 'the rule baseline'} "
        "| tdis_tot (K h) | ener_tot (kWh/m2) | cost_tot ($/m2) | switches/day | jerk RMS | ms/decision |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    oracle = bench[bound]["mean_return"] if bound else None
    pi = bench.get(reference) if reference else None

    def row(label: str, s: dict, ms_value: float | None) -> str:
        gap = f"{(oracle - s['mean_return']) / abs(oracle):.1%}" if oracle else "-"
        won = "-"
        if pi is not None and s is not pi:
            won = "{}/{}".format(*paired_wins(s, pi, name, reference))
        cells = [f"{s['mean_return']:.2f}", gap, won] + [f"{s[k]:.3g}" for k in KPIS[1:]]
        return f"| {label} | " + " | ".join(cells) + f" | {'-' if ms_value is None else f'{ms_value:.3g}'} |"

    lines.append(row(f"**{name}**", summary, ms))
    for controller in ("pi", "thermostat", "mpc-realistic", "mpc-oracle"):
        if controller in bench:
            lines.append(row(controller, bench[controller], bench[controller].get("ms_per_decision")))
    lines += [
        "",
        "ms/decision: the model's exported ONNX artefact in onnxruntime (median of 1,000 decisions, one at a time); "
        "the other controllers' in Python, per call.",
        "",
        "Per week (start day of the year: return):",
        "",
    ]
    lines.append(
        ", ".join(
            f"{d}: {r:.2f}" for d, r in zip(summary["episode_start_days"], summary["episode_returns"], strict=True)
        )
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--command", required=True, help="the command that trained the run")
    args = parser.parse_args()
    run = load_run(args.run)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        staged = Path(tmp) / args.out.name
        staged.mkdir()
        for name in FILES:
            if (args.run / name).is_file():
                shutil.copy(args.run / name, staged / name)
        summary, _ = evaluate(load_run(staged), seed=EVAL_SEED_OFFSET)
        rundir.atomic_write_json(staged / rundir.EVAL, summary)
        export_run(staged, staged / "artefact")
        ms = decision_ms(staged / "artefact", staged)
        env_short = run.config.env.removeprefix("smoothrl/")
        teacher = run.config.pretrain.teacher if run.config.pretrain is not None else None
        (staged / "README.md").write_text(card(args.out.name, args.command, summary, ms, env_short, teacher))
        if args.out.exists():
            shutil.rmtree(args.out)
        staged.rename(args.out)
    print(
        f"{args.out}: return {summary['mean_return']:.3f} on {summary['episodes']} weeks; artefact {ms:.3f} ms/decision"
    )


if __name__ == "__main__":
    main()
