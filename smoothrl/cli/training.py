"""``smoothrl train`` and ``smoothrl tune-baseline``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from smoothrl.cli.app import app, console, user_errors
from smoothrl.cli.tables import fmt, print_json_or, print_summary
from smoothrl.errors import SmoothRLError


@app.command()
@user_errors
@app.command()
@user_errors
def train(
    algo: Annotated[str | None, typer.Option(help="Algorithm (see `smoothrl list`).")] = None,
    env: Annotated[str | None, typer.Option(help="Environment id.")] = None,
    preset: Annotated[
        str | None, typer.Option(help="Preset entry of agents/<algo>.yaml (default: the env id).")
    ] = None,
    timesteps: Annotated[int | None, typer.Option(help="Training budget in env steps (default: the preset's).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    n_envs: Annotated[int | None, typer.Option(help="Parallel environments.")] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default: runs/<algo>/<env>_<n>).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override one hyperparameter: key=value.")] = None,
    pretrain: Annotated[
        str | None,
        typer.Option(
            help="Distil this controller into the policy before RL training (HVAC envs: mpc-oracle, mpc-realistic, "
            "pi, thermostat; tune it with --set pretrain.KEY=VALUE)."
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --run-dir from its latest checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a run already in --run-dir.")] = False,
    device: Annotated[str | None, typer.Option(help="Torch device: auto, cpu, cuda.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train an agent and write a run directory (model, config, TensorBoard logs, checkpoints, eval)."""
    from smoothrl.checks import check_writable
    from smoothrl.run import training
    from smoothrl.run.overrides import resolve_config
    from smoothrl.rundir import next_free_run_dir

    if resume:
        if run_dir is None:
            raise SmoothRLError("--resume needs --run-dir, the run to continue")
        if overwrite:
            raise SmoothRLError("--resume and --overwrite exclude each other; pick one")
        given = {
            "--algo": algo,
            "--env": env,
            "--preset": preset,
            "--seed": seed,
            "--n-envs": n_envs,
            "--set": set_ or None,
            "--pretrain": pretrain,
            "--device": device,
        }
        extra = [flag for flag, value in given.items() if value is not None]
        if extra:
            raise SmoothRLError(
                f"--resume uses the run's saved config; drop {', '.join(extra)} (only --timesteps may change)"
            )
        path = training.resume(run_dir, n_timesteps=timesteps, progress_bar=progress)
    else:
        if algo is None or env is None:
            raise SmoothRLError("train needs --algo and --env (or --resume --run-dir DIR); see `smoothrl list`")
        items = ([f"pretrain.teacher={pretrain}"] if pretrain is not None else []) + (set_ or [])
        config = resolve_config(
            algo, env, preset, items, n_timesteps=timesteps, seed=seed, n_envs=n_envs, device=device
        )
        if run_dir is None:
            run_dir = next_free_run_dir(Path("runs") / config.algo, config.env.replace("/", "-"))
        check_writable(run_dir, "--run-dir", folder=True)  # before the line that announces it
        taught = f", distilled from {config.pretrain.teacher} first" if config.pretrain is not None else ""
        console.print(f"training {config.algo} on {config.env} for {config.n_timesteps} steps{taught} -> {run_dir}")
        path = training.train(config, run_dir, overwrite=overwrite, progress_bar=progress)
    summary = json.loads((path / "eval.json").read_text())
    print_summary(summary, f"eval: {path}")


@app.command("tune-baseline")
@user_errors
def tune_baseline(
    env: Annotated[str, typer.Option(help="An HVAC env id: its plant (modulating or staged) and building.")],
    controller: Annotated[str, typer.Option(help="thermostat or pi.")] = "pi",
    preset: Annotated[str | None, typer.Option(help="Building preset (default: the env's).")] = None,
    trials: Annotated[int, typer.Option(help="Parameter sets tried by Optuna's TPE sampler.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and of the initial temperatures.")] = 0,
    out: Annotated[
        Path | None, typer.Option(help="File to write (default: baselines/<preset>.yaml, where eval finds it).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Tune a rule-based HVAC baseline on the building's training weeks only, and keep it as a preset.

    The objective is the env's mean return over every training week, each played once; the test
    weeks are never seen. `smoothrl eval --baselines` and `--controller` then run the tuned one."""
    from smoothrl.checks import Range, check_number, check_seed, check_writable
    from smoothrl.envs import HVAC_FAMILY
    from smoothrl.envs.eplus import EPLUS_IDS
    from smoothrl.envs.hvac import HVAC_IDS
    from smoothrl.envs.hvac.control.tuning import save_tuned, tune
    from smoothrl.envs.hvac.env import DEFAULT_PRESET
    from smoothrl.envs.hvac.spec import load_spec
    from smoothrl.envs.registration import has_controllers

    check_seed("--seed", seed)
    check_number("--trials", trials, Range(1, 100_000, integer=True))
    if not has_controllers(env):
        raise SmoothRLError(f"--env must be an HVAC env ({', '.join(HVAC_FAMILY)}), got {env}")
    fixed = {**HVAC_IDS, **EPLUS_IDS}.get(env, {"discrete": False})
    discrete = bool(fixed["discrete"])
    default = fixed.get("preset", "office_5zone_denver" if env in EPLUS_IDS else DEFAULT_PRESET)
    spec = load_spec(preset, default)
    if out is not None:
        check_writable(out, "--out")
    plant = "staged" if discrete else "modulating"
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"tuning {controller} on {spec.name} ({plant})", total=trials)
        result = tune(
            controller, spec, discrete, trials, seed, lambda i, best: bar.update(task, completed=i, best=best)
        )
    command = f"smoothrl tune-baseline --env {env} --controller {controller} --trials {trials} --seed {seed}"
    if preset is not None:
        command += f" --preset {preset}"
    path = save_tuned(spec.name, controller, discrete, result, command, out)
    result["file"] = str(path)
    summary = {"controller": controller, "preset": spec.name, "plant": plant, **result}
    if as_json:
        print_json_or(summary, True, lambda: None)
        return
    table = Table(title=f"tune-baseline: {controller} on {spec.name} ({plant}) -> {path}")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for key, value in result["params"].items():
        table.add_row(key, fmt(value))
    table.add_row("training weeks' mean return", f"{result['train_mean_return']:.3f}")
    table.add_row("untuned", f"{result['default_train_mean_return']:.3f}")
    console.print(table)
