"""``smoothrl sweep``, ``smoothrl tune`` and ``smoothrl performative``: many runs at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import Progress
from rich.table import Table

from smoothrl.cli.app import app, console, user_errors
from smoothrl.cli.tables import fmt
from smoothrl.errors import SmoothRLError


@app.command()
@user_errors
@app.command()
@user_errors
def performative(
    env: Annotated[str, typer.Option(help="A performative env id.")] = "smoothrl/PerformativeGridworld-v0",
    method: Annotated[
        str, typer.Option(help="rr, rga, finite, mdrr (tabular, exact model) or deep (any algorithm).")
    ] = "rr",
    lam: Annotated[float | None, typer.Option(help="L2 regularization lambda (tabular methods).")] = None,
    beta: Annotated[
        float | None, typer.Option(help="The env's sensitivity: the gridworld's beta, the occupants' sensitivity.")
    ] = None,
    eta: Annotated[float | None, typer.Option(help="Step size of rga.")] = None,
    samples: Annotated[int | None, typer.Option(help="Trajectories per deployment (finite, mdrr).")] = None,
    rounds: Annotated[int, typer.Option(help="Retrainings (deep: rounds + 1 deployments).")] = 100,
    algo: Annotated[str | None, typer.Option(help="Algorithm of --method deep.")] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps per retraining (deep).")] = None,
    episodes: Annotated[int, typer.Option(help="Evaluation episodes per deployment (deep).")] = 5,
    delay: Annotated[int, typer.Option(help="Deployments per retraining (mdrr).")] = 1,
    adaptation: Annotated[
        float, typer.Option(help="How far the env moves toward its response per deployment, (0, 1].")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default: runs/performative/<method>_<n>).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one hyperparameter (deep): key=value.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a run already in --run-dir.")] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue the unfinished run in --run-dir from its last finished round.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Repeated retraining against an env that reacts to the deployed policy, to a performatively stable one."""
    from smoothrl.checks import check_writable
    from smoothrl.experiments.retraining import SETTINGS, make_settings
    from smoothrl.experiments.retraining_run import performative as run_performative
    from smoothrl.experiments.retraining_run import resumed_settings
    from smoothrl.rundir import next_free_run_dir

    if resume:  # the run's own settings: only --run-dir (and --progress) matter
        if run_dir is None:
            raise SmoothRLError("--resume continues the run in --run-dir; give --run-dir")
        check_writable(run_dir, "--run-dir", folder=True)
        if not (run_dir / SETTINGS).is_file():
            raise SmoothRLError(f"{run_dir} holds no performative run to resume; drop --resume")
        settings, set_ = resumed_settings(run_dir)
    else:
        settings = make_settings(
            env=env, method=method, lam=lam, beta=beta, eta=eta, samples=samples, rounds=rounds, algo=algo,
            steps=steps, episodes=episodes, delay=delay, adaptation=adaptation, seed=seed,
        )  # fmt: skip
    if run_dir is None:
        run_dir = next_free_run_dir(Path("runs") / "performative", settings.method)
    check_writable(run_dir, "--run-dir", folder=True)
    verb = "resuming" if resume else "performative"
    console.print(f"{verb} {settings.method} on {settings.env}, {settings.rounds} rounds -> {run_dir}")
    path, results = run_performative(
        None if resume else settings, run_dir, overrides=set_ or [], overwrite=overwrite, resume=resume,
        progress_bar=progress,
    )  # fmt: skip
    first = results["rounds_to_tolerance"]
    last = results["rounds"][-1]
    table = Table(title=f"performative: {path}", caption=f"{settings.env}, {settings.method}, seed {settings.seed}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("rounds", str(settings.rounds))
    table.add_row(
        "rounds to a relative change < 1e-3", f"not in {settings.rounds} rounds" if first is None else str(first)
    )
    table.add_row("final relative change", fmt(results["final_relative_change"]))
    key = "performative_return" if "performative_return" in last else "deployment_return"
    table.add_row(key.replace("_", " "), fmt(last[key]))
    console.print(table)


@app.command()
@user_errors
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="The sweep YAML (base run, variants or grid, seeds, metrics).")],
    out: Annotated[
        Path | None, typer.Option(help="Folder of the sweep's runs (default: runs/sweeps/<file name>).")
    ] = None,
    backend: Annotated[str, typer.Option(help="ray (Ray Tune) or local (a process pool, no Ray).")] = "ray",
    address: Annotated[
        str | None, typer.Option(help="HOST:PORT of an existing Ray cluster's head (default: a local Ray instance).")
    ] = None,
    max_parallel: Annotated[int, typer.Option(help="Trials at once.")] = 2,
    report: Annotated[bool, typer.Option(help="Run nothing: summarize the trials finished so far.")] = False,
    variant: Annotated[
        list[str] | None,
        typer.Option(help="Run only this variant's trials (repeatable); the others are reported where finished."),
    ] = None,
    seed: Annotated[list[int] | None, typer.Option(help="Run only this seed's trials (repeatable).")] = None,
) -> None:
    """Run every (variant, seed) of a sweep as a train + eval trial; summarize with IQM and 95% CIs (rliable)."""

    from smoothrl.checks import COUNT, check_number, check_writable
    from smoothrl.errors import SmoothRLError
    from smoothrl.experiments.executor import check_backend
    from smoothrl.experiments.report import SUMMARY, few_seeds_warning
    from smoothrl.experiments.sweep import check_selection, load_sweep, make_trials, selected
    from smoothrl.experiments.sweep import sweep as run_sweep
    from smoothrl.rundir import check_unlocked, is_run_dir

    check_number("--max-parallel", max_parallel, COUNT)
    check_backend(backend, address)
    spec = load_sweep(sweep_file)
    out = out or Path("runs") / "sweeps" / sweep_file.stem
    check_writable(out, "--out", folder=True)
    if is_run_dir(out):
        raise SmoothRLError(f"{out} holds a training run; a sweep writes its own folder of runs: pick a new --out")
    check_unlocked(out)
    check_selection(spec, variant or (), seed or ())
    trials = make_trials(spec, out)
    total = len(trials)
    chosen = sum(selected(t, variant or (), seed or ()) for t in trials)
    subset = f" ({chosen} of {total} trials selected)" if chosen < total else ""
    where = f" at {address}" if address else ""
    console.print(f"sweep {sweep_file}: {total} trials on {backend}{where}{subset} -> {out}")
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("trials", total=chosen)

        def done(record: dict[str, Any]) -> None:
            if record.get("status") != "ok":
                console.print(f"[red]failed[/red] {record['variant']} seed {record['seed']}: {record.get('error', '')}")
            progress.advance(bar)

        result = run_sweep(
            spec,
            out,
            backend=backend,
            max_parallel=max_parallel,
            address=address,
            on_done=done,
            sweep_text=sweep_file.read_text(encoding="utf-8"),
            report_only=report,
            only_variants=variant or (),
            only_seeds=seed or (),
        )
    failed = [r for r in result.records if r.get("status") != "ok"]
    if report:
        console.print(f"{len(result.records)} of {total} trials finished so far; nothing was run (--report)")
    table = Table(
        title=f"sweep: {out}", caption=f"interquartile mean [95% CI] over the seeds finished; {out / SUMMARY}"
    )
    table.add_column("variant")
    metrics = list(result.summary["metrics"])
    for metric in metrics:
        table.add_column(metric, justify="right")
    for variant in [v.name for v in spec.expanded()]:
        cells = []
        for metric in metrics:
            row = result.summary["metrics"][metric].get(variant)
            cells.append("-" if row is None else f"{row['iqm']:.4g} [{row['low']:.4g}, {row['high']:.4g}]")
        table.add_row(variant, *cells)
    console.print(table)
    seeds = [row["n"] for rows in result.summary["metrics"].values() for row in rows.values()]
    warning = few_seeds_warning(min(seeds)) if seeds else None
    if warning:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(
        f"{len(result.records) - len(failed)} of {len(result.records)} trials finished "
        f"({result.skipped} from an earlier run){f', {len(failed)} failed' if failed else ''}"
    )
    if failed:
        raise typer.Exit(1)


@app.command()
@user_errors
def tune(
    algo: Annotated[str, typer.Option(help="Algorithm (ppo, a2c, sac, td3, ddpg, dqn).")],
    env: Annotated[str, typer.Option(help="Environment id.")],
    trials: Annotated[int, typer.Option(help="Trials to run.")] = 20,
    timesteps: Annotated[int, typer.Option(help="Training steps per trial.")] = 20_000,
    evals: Annotated[int, typer.Option(help="Intermediate evaluations per trial (the pruning points).")] = 4,
    episodes: Annotated[int, typer.Option(help="Episodes per evaluation.")] = 3,
    objective: Annotated[
        str, typer.Option(help="What to maximize: metrics and arithmetic, e.g. 'return - 10 * jerk_rms'.")
    ] = "return",
    sampler: Annotated[str, typer.Option(help="tpe or random.")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median or none.")] = "median",
    preset: Annotated[str | None, typer.Option(help="Preset the search starts from (default: the env's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and of every trial.")] = 0,
    backend: Annotated[str, typer.Option(help="ray (Optuna inside Ray Tune) or local (Optuna alone).")] = "ray",
    address: Annotated[str | None, typer.Option(help="HOST:PORT of an existing Ray cluster's head.")] = None,
    max_parallel: Annotated[int, typer.Option(help="Trials at once (ray).")] = 2,
    out: Annotated[Path | None, typer.Option(help="Folder for trials.csv and best.yaml.")] = None,
) -> None:
    """Search hyperparameters with Optuna (pruning on intermediate evaluations); write the best as a preset entry."""
    from smoothrl.checks import COUNT, check_number, check_seed, check_writable
    from smoothrl.experiments.executor import check_backend
    from smoothrl.experiments.tuning import BEST, TuneSpec, check_out, check_spec
    from smoothrl.experiments.tuning import tune as run_tune
    from smoothrl.rundir import next_free_run_dir

    check_number("--max-parallel", max_parallel, COUNT)
    check_seed("--seed", seed)
    spec = TuneSpec(algo, env, trials, timesteps, evals, episodes, objective, sampler, pruner, seed, preset)
    check_spec(spec)  # before the line that announces the search
    check_backend(backend, address)
    out = out or next_free_run_dir(Path("runs") / "tune", f"{algo}_{env.replace('/', '-')}")
    check_writable(out, "--out", folder=True)
    check_out(out)
    console.print(f"tune {algo} on {env}: {trials} trials of {timesteps} steps, maximizing {objective} -> {out}")

    def shown(record: dict[str, Any]) -> None:
        why = f" ({record['error']})" if record.get("error") else ""
        console.print(f"trial {record['trial']}: {record['state']}, objective {fmt(record['objective'])}{why}")

    best, records = run_tune(spec, out, backend=backend, max_parallel=max_parallel, address=address, on_trial=shown)
    pruned = sum(r["state"] == "pruned" for r in records)
    console.print(f"{len(records)} trials ({pruned} pruned); best preset entry in {out / BEST}:")
    console.print(yaml.safe_dump(best, sort_keys=False).rstrip())
