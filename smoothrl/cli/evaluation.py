"""``smoothrl eval``, ``attack``, ``certify``, ``list`` and ``plot``: what is asked of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from smoothrl.cli.app import app, console, user_errors
from smoothrl.cli.tables import print_certificate, print_comparison, print_json_or, print_summary
from smoothrl.errors import SmoothRLError


@app.command("eval")
@user_errors
@app.command("eval")
@user_errors
def eval_(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Run directories written by `smoothrl train`; with several, a comparison.", show_default=False
        ),
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(
            help="Episodes to play (default: every distinct test week of an HVAC env, else the run's eval_episodes)."
        ),
    ] = None,
    env: Annotated[str | None, typer.Option(help="Evaluate on another env with the same spaces.")] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic/--stochastic", help="Action selection.")] = True,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the first run's seed + 10000).")] = None,
    split: Annotated[str | None, typer.Option(help="HVAC days: train or test (default: test).")] = None,
    controller: Annotated[
        str | None,
        typer.Option(
            help="Evaluate a controller that is not learned instead of a run: thermostat, pi, mpc-oracle or "
            "mpc-realistic."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="With --controller or --env: env_kwargs.key=value for that env; with --controller, "
            "controller.key=value for its parameters.",
        ),
    ] = None,
    smoothing_sigma: Annotated[
        float | None, typer.Option(help="Act with the policy smoothed at this noise (randomized smoothing).")
    ] = None,
    smoothing_samples: Annotated[int, typer.Option(help="Noisy copies per smoothed decision.")] = 100,
    smoothing_mode: Annotated[str | None, typer.Option(help="median, mean or vote (default: by action type).")] = None,
    baselines: Annotated[
        bool,
        typer.Option(
            help="HVAC runs: add the tuned rule baselines and the MPCs (oracle and realistic) on the same weeks."
        ),
    ] = False,
    mpc: Annotated[bool, typer.Option("--mpc/--no-mpc", help="With --baselines: include the MPCs (slower).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Evaluate a run (or a controller that is not learned) on its exact pipeline: return, smoothness metrics, KPIs.

    HVAC envs play their distinct test weeks, each once, the same weeks and initial temperatures
    for every run and controller. With several runs (or --baselines), each is put beside the run
    trained without action smoothness (the first such run; else the first run): changes, weeks won
    against it, and the gap to the oracle MPC when it is compared."""
    from smoothrl.run.build import EVAL_SEED_OFFSET, load_run
    from smoothrl.run.evaluation import compare_runs, evaluate, evaluate_controller
    from smoothrl.run.overrides import parse_overrides

    env_kwargs: dict[str, Any] = {}
    controller_params: dict[str, Any] = {}
    for key, value in parse_overrides(set_ or []):
        if key.startswith("controller.") and controller is not None:
            controller_params[key.removeprefix("controller.")] = value
        elif key.startswith("env_kwargs.") and (controller is not None or env is not None):
            env_kwargs[key.removeprefix("env_kwargs.")] = value
        else:
            raise SmoothRLError(
                f"--set {key}: takes env_kwargs.KEY=VALUE with --controller or --env (a run's own env uses its saved "
                "config), and controller.KEY=VALUE with --controller"
            )
    if controller is not None:
        if run_dirs:
            raise SmoothRLError("give either RUN_DIR or --controller, not both")
        if env is None:
            raise SmoothRLError("--controller needs --env, e.g. --env smoothrl/HVAC-v0")
        with console.status(f"evaluating {controller} on {env}", spinner="dots"):
            summary, _ = evaluate_controller(
                controller,
                env,
                env_kwargs,
                episodes,
                EVAL_SEED_OFFSET if seed is None else seed,
                split,
                controller_params,
            )
        print_json_or(summary, as_json, lambda: print_summary(summary, f"eval: {controller} controller"))
        return
    if not run_dirs:
        raise SmoothRLError("eval needs RUN_DIR (a folder written by `smoothrl train`) or --controller")
    summaries, configs = {}, {}
    first_seed = None
    for run_dir in run_dirs:
        run = load_run(run_dir)
        if first_seed is None:  # every run plays the first run's evaluation episodes
            first_seed = run.config.seed + EVAL_SEED_OFFSET if seed is None else seed
        policy = None
        if smoothing_sigma is not None:  # the smoothed policy `attack` acts with, built in one place
            from smoothrl.tools.robustness import acting_policy

            policy = acting_policy(run, smoothing_sigma, smoothing_samples, smoothing_mode, seed or 0)
        summary, _ = evaluate(
            run,
            episodes=episodes,
            env_id=env,
            deterministic=deterministic,
            seed=first_seed,
            split=split,
            policy=policy,
            env_kwargs=env_kwargs,
        )
        if smoothing_sigma is not None:
            summary["smoothing"] = {"sigma": smoothing_sigma, "samples": smoothing_samples, "mode": policy.mode}
        summaries[str(run_dir)], configs[str(run_dir)] = summary, run.config
    if len(run_dirs) == 1 and not baselines:
        print_json_or(summary, as_json, lambda: print_summary(summary, f"eval: {run_dirs[0]}"))
        return
    extra = {}
    if baselines:
        first = configs[str(run_dirs[0])]
        env_id = env or first.env
        kwargs = first.env_kwargs if env_id == first.env else env_kwargs
        for name in baseline_controllers(env_id, mpc):
            with console.status(f"evaluating the {name} baseline", spinner="dots"):
                extra[name], _ = evaluate_controller(name, env_id, kwargs, episodes, first_seed, split)  # type: ignore[arg-type]
    comparison = compare_runs(summaries, configs, extra)
    print_json_or(comparison, as_json, lambda: print_comparison(comparison))


def baseline_controllers(env_id: str, mpc: bool = True) -> list[str]:
    """
    The controllers ``eval --baselines`` puts beside the runs of an env.

    :param env_id: the runs' env
    :param mpc: include the MPCs
    :return: the controller names: the thermostat, the PI on modulating plants, and the MPCs
        (the oracle only where the RC simulator's state exists)
    :raises SmoothRLError: for an env that is not an HVAC env
    """
    from smoothrl.envs import HVAC_FAMILY
    from smoothrl.envs.eplus import EPLUS_IDS
    from smoothrl.envs.registration import has_controllers

    if not has_controllers(env_id):
        raise SmoothRLError(f"--baselines needs HVAC runs ({', '.join(HVAC_FAMILY)}), got {env_id}")
    names = ["thermostat"]
    if "Discrete" not in env_id:
        names.append("pi")
    if mpc:
        names += ["mpc-realistic"] if env_id in EPLUS_IDS else ["mpc-oracle", "mpc-realistic"]
    return names


@app.command()
@user_errors
def attack(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `smoothrl train`.")],
    attack_name: Annotated[
        str, typer.Option("--attack", help="random, fgsm, pgd, mad, min_q or smoothed (see the README).")
    ] = "pgd",
    eps: Annotated[float, typer.Option(help="Budget per step, in normalized observation units.")] = 0.1,
    norm: Annotated[str, typer.Option(help="Budget norm: linf or l2.")] = "linf",
    steps: Annotated[int, typer.Option(help="Gradient steps of pgd, mad, min_q and smoothed.")] = 10,
    episodes: Annotated[
        int | None,
        typer.Option(help="Episodes (default: every distinct HVAC test week, else the run's eval_episodes)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: run seed + 10000).")] = None,
    smoothing_sigma: Annotated[
        float | None, typer.Option(help="Act with the policy smoothed at this noise (randomized smoothing).")
    ] = None,
    smoothing_samples: Annotated[int, typer.Option(help="Noisy copies per smoothed decision.")] = 100,
    smoothing_mode: Annotated[str | None, typer.Option(help="median, mean or vote (default: by action type).")] = None,
    attack_samples: Annotated[int, typer.Option(help="Noisy copies per step of the smoothed attack.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Play a run's evaluation episodes with every observation attacked; report return and action deviation."""
    from smoothrl.robust.attacks import Attack
    from smoothrl.tools.robustness import attack_run

    spec = Attack(attack_name, eps, norm, steps, smoothing_sigma, attack_samples)
    with console.status(f"attacking {run_dir} with {attack_name} (eps {eps}, {norm})", spinner="dots"):
        summary = attack_run(run_dir, spec, episodes, seed, smoothing_sigma, smoothing_samples, smoothing_mode)
    print_json_or(summary, as_json, lambda: print_summary(summary, f"attack: {run_dir}"))


@app.command()
@user_errors
def certify(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `smoothrl train`.")],
    sigma: Annotated[float, typer.Option(help="Smoothing noise, in normalized observation units.")] = 0.2,
    samples: Annotated[int, typer.Option(help="Noise samples per state.")] = 10_000,
    alpha: Annotated[float, typer.Option(help="Probability that a certificate is wrong.")] = 0.001,
    states: Annotated[int, typer.Option(help="States to certify (visited by the clean policy).")] = 100,
    bound: Annotated[str, typer.Option(help="Discrete actions: cp (Clopper-Pearson) or hoeffding.")] = "cp",
    eps: Annotated[
        list[float] | None, typer.Option(help="L2 perturbation sizes for the action and reward bounds.")
    ] = None,
    reward_episodes: Annotated[int, typer.Option(help="Episodes for the certified reward bound (0: skip).")] = 0,
    seed: Annotated[int | None, typer.Option(help="Seed (default: run seed + 10000).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Certify a run's smoothed policy: certified radii (discrete) or action bounds (continuous), and reward."""
    from smoothrl.tools.robustness import DEFAULT_EPS, certify_run

    if bound not in ("cp", "hoeffding"):
        raise SmoothRLError(f"--bound must be cp or hoeffding, got {bound!r}")
    if states < 1:
        raise SmoothRLError(f"--states must be at least 1, got {states}")
    with console.status(f"certifying {run_dir} (sigma {sigma}, {samples} samples)", spinner="dots"):
        summary = certify_run(
            run_dir,
            sigma,
            samples,
            alpha,
            states,
            bound=bound,
            eps=eps or DEFAULT_EPS,  # type: ignore[arg-type]
            reward_episodes=reward_episodes,
            seed=seed,
        )
    print_json_or(summary, as_json, lambda: print_certificate(summary, f"certify: {run_dir}"))


@app.command("list")
@user_errors
def list_(
    params: Annotated[str | None, typer.Option(help="List the hyperparameters one algorithm takes.")] = None,
) -> None:
    """List algorithms, environment ids and presets."""
    from smoothrl.envs import list_env_ids
    from smoothrl.envs.hvac.spec import available_presets
    from smoothrl.registry import ALGOS, get_entry
    from smoothrl.run.config import DERIVED_FIELDS, DICT_KEYS, NOISE_KEYS, RESERVED, RunConfig

    if params is not None:
        entry = get_entry(params)
        algo = entry.name
        keys = [k for k in entry.params if k not in RESERVED]
        typer.echo(f"{algo} hyperparameters: {', '.join(keys)}")
        typer.echo(
            f"rl-zoo3 keys: {', '.join(NOISE_KEYS)}; run keys: "
            f"{', '.join(k for k in RunConfig.model_fields if k not in DERIVED_FIELDS)}"
        )
        typer.echo(f"dict keys reachable with key.sub=value: {', '.join(DICT_KEYS)}")
        return
    table = Table(title="algorithms")
    table.add_column("algo")
    table.add_column("class")
    table.add_column("presets (agents/<algo>.yaml)")
    for name, entry in ALGOS.items():
        table.add_row(name, f"{entry.cls.__module__}.{entry.cls.__name__}", ", ".join(entry.presets()) or "-")
    console.print(table)
    envs = Table(title="environment ids")
    envs.add_column("group")
    envs.add_column("ids")
    for group, ids in list_env_ids().items():
        envs.add_row(group, ", ".join(ids) or "-")
    envs.add_row("HVAC presets (env_kwargs.preset)", ", ".join(available_presets()))
    console.print(envs)


@app.command()
@user_errors
def plot(
    run_dirs: Annotated[list[Path] | None, typer.Argument(help="One or more run directories.")] = None,
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("smoothrl.png"),
    seed: Annotated[int | None, typer.Option(help="Seed of the evaluation episode.")] = None,
    deploy_log: Annotated[Path | None, typer.Option(help="Plot a `deploy --log` file instead of runs.")] = None,
    controller: Annotated[
        list[str] | None,
        typer.Option(help="HVAC runs: also draw this controller's week (thermostat, pi, mpc-oracle, mpc-realistic)."),
    ] = None,
) -> None:
    """Plot learning curves and action traces of runs, or a deployment log (signals, commands, timing)."""
    from smoothrl.checks import check_writable
    from smoothrl.tools.plotting import plot_deploy_log, plot_runs

    check_writable(out, "--out")
    if deploy_log is not None:
        if run_dirs:
            raise SmoothRLError("give either RUN_DIR ... or --deploy-log, not both")
        typer.echo(f"wrote {plot_deploy_log(deploy_log, out)}")
        return
    if not run_dirs:
        raise SmoothRLError("plot needs RUN_DIR ... (folders written by `smoothrl train`) or --deploy-log FILE")
    path = plot_runs(list(run_dirs), out, seed=seed, controllers=controller or [])
    typer.echo(f"wrote {path}")
