"""``smoothrl``: the command line. Thin: parses, then calls ``smoothrl.training`` and friends."""

from __future__ import annotations

import functools
import json
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer._click.exceptions as click_errors  # typer's own click (its parse errors are these)
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from typer.core import TyperGroup

from smoothrl.errors import SmoothRLError, TrainingInterrupted

#: Options renamed in smoothrl 0.1 (one word per meaning) -> their new spelling.
RENAMED_OPTIONS = {
    "--smooth-sigma": "--smoothing-sigma",
    "--smooth-samples": "--smoothing-samples",
    "--smooth-mode": "--smoothing-mode",
}


INTERRUPTED_EARLY = "interrupted (Ctrl-C) before anything was written"
#: whether a command has printed its own interruption line (typer turns a Ctrl-C it catches into exit 130 silently)
_reported = types.SimpleNamespace(interrupt=False)


class _Commands(TyperGroup):
    """The command group: an option spelled the old way fails with one line naming the new one,
    and every parse error (a bad option value, an unknown option or command) is one line on
    stderr with exit code 2, instead of typer's framed usage box."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as e:  # `smoothrl` alone, `smoothrl bridge`: the help
            e.show()
            sys.exit(e.exit_code)
        except click_errors.ClickException as e:
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            typer.echo(f"error: {e.format_message().rstrip('.')}{hint}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        if code == 130 and not _reported.interrupt:  # Ctrl-C that typer caught before a command could say so
            typer.echo(INTERRUPTED_EARLY, err=True)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        for arg in args:
            old = arg.split("=", 1)[0]
            if old in RENAMED_OPTIONS:
                typer.echo(f"error: {old} is now {RENAMED_OPTIONS[old]}; rename it", err=True)
                ctx.exit(2)
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_Commands,
    help="smoothrl: smooth, robust, deployable RL control on Stable-Baselines3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a :class:`SmoothRLError` into one line on stderr and exit code 2 (130 when interrupted)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrainingInterrupted as e:
            _reported.interrupt = True
            typer.echo(f"interrupted: {e}", err=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:  # outside the writing phases (those say what they saved themselves)
            _reported.interrupt = True
            typer.echo(INTERRUPTED_EARLY, err=True)
            raise typer.Exit(130) from None
        except SmoothRLError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4g}"
    return str(value)


def print_summary(summary: dict[str, Any], title: str) -> None:
    """
    Print an evaluation summary as a table.

    :param summary: from :func:`smoothrl.training.evaluate`
    :param title: table title (the run directory)
    """
    mode = "deterministic" if summary["deterministic"] else "stochastic"
    table = Table(
        title=title, caption=f"{summary['env']}, {mode}, {summary['episodes']} episodes, seed {summary['seed']}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("return", f"{summary['mean_return']:.2f} ± {summary['std_return']:.2f}")
    table.add_row("episodes", str(summary["episodes"]))
    table.add_row("continuity cost (x100)", _fmt(summary["continuity_cost"]))
    table.add_row("jerk RMS", _fmt(summary["jerk_rms"]))
    table.add_row("Sm", _fmt(summary["sm"]))
    skip = {
        "mean_return",
        "std_return",
        "episodes",
        "continuity_cost",
        "jerk_rms",
        "sm",
        "env",
        "deterministic",
        "seed",
    }
    for key, value in summary.items():
        if key not in skip and not isinstance(value, list | dict):  # per-episode lists: in --json
            table.add_row(key, _fmt(value))
    console.print(table)


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
    from smoothrl import training
    from smoothrl.checks import check_writable
    from smoothrl.config import resolve_config
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
    from smoothrl.config import parse_overrides
    from smoothrl.training import EVAL_SEED_OFFSET, compare_runs, evaluate, evaluate_controller, load_run

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
        _print_json_or(summary, as_json, lambda: print_summary(summary, f"eval: {controller} controller"))
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
        if smoothing_sigma is not None:
            from smoothrl.robust.smoothing import SmoothedPolicy

            policy = SmoothedPolicy(run.model, smoothing_sigma, smoothing_samples, smoothing_mode, seed or 0)  # type: ignore[arg-type]
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
        _print_json_or(summary, as_json, lambda: print_summary(summary, f"eval: {run_dirs[0]}"))
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
    _print_json_or(comparison, as_json, lambda: print_comparison(comparison))


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
    from smoothrl.checks import check_seed, check_writable
    from smoothrl.envs import HVAC_FAMILY
    from smoothrl.envs.eplus import EPLUS_IDS
    from smoothrl.envs.hvac import HVAC_IDS
    from smoothrl.envs.hvac.control.tuning import save_tuned, tune
    from smoothrl.envs.hvac.env import DEFAULT_PRESET
    from smoothrl.envs.hvac.spec import load_spec

    check_seed("--seed", seed)
    if env not in HVAC_FAMILY:
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
        _print_json_or(summary, True, lambda: None)
        return
    table = Table(title=f"tune-baseline: {controller} on {spec.name} ({plant}) -> {path}")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for key, value in result["params"].items():
        table.add_row(key, _fmt(value))
    table.add_row("training weeks' mean return", f"{result['train_mean_return']:.3f}")
    table.add_row("untuned", f"{result['default_train_mean_return']:.3f}")
    console.print(table)


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

    if env_id not in HVAC_FAMILY:
        raise SmoothRLError(f"--baselines needs HVAC runs ({', '.join(HVAC_FAMILY)}), got {env_id}")
    names = ["thermostat"]
    if "Discrete" not in env_id:
        names.append("pi")
    if mpc:
        names += ["mpc-realistic"] if env_id in EPLUS_IDS else ["mpc-oracle", "mpc-realistic"]
    return names


def print_comparison(comparison: dict[str, Any]) -> None:
    """
    Print several runs and controllers side by side: each one's change beside the reference run,
    the weeks each won against it, and the gap to the oracle MPC.

    :param comparison: from :func:`smoothrl.training.compare_runs`
    """
    runs, reference = comparison["runs"], comparison["reference"]
    first = runs[reference]
    days = first.get("episode_start_days")
    caption = f"{first.get('env')}, {first.get('episodes')} episodes"
    if days is not None:
        caption += f" on distinct days {sorted(days)} (seed {first.get('seed')})"
    table = Table(title=f"eval: {len(runs)} controllers (changes against {reference})", caption=caption)
    table.add_column("metric")
    for name in runs:
        table.add_column(Path(name).name + (" (reference)" if name == reference else ""), justify="right")
    from smoothrl.training import COMPARED

    extra = ("atvl_tot", "min_onoff_violations_requested")  # the rest is in --json
    keys = [k for k in (*COMPARED, *extra) if k in runs[reference]]
    for key in keys:
        cells = []
        for name, summary in runs.items():
            change = comparison["change"].get(name, {}).get(key)
            cells.append(_fmt(summary.get(key)) + (f" ({change:+.0%})" if change is not None else ""))
        table.add_row(key, *cells)
    if comparison.get("wins"):
        wins = comparison["wins"]
        table.add_row("weeks won vs reference", *(f"{wins[n][0]}/{wins[n][1]}" if n in wins else "-" for n in runs))
    if comparison.get("oracle"):
        gap = comparison["oracle_gap"]
        table.add_row("gap to oracle MPC", *(f"{gap[n]:.0%}" for n in runs))
    timing = [runs[n].get("ms_per_decision") for n in runs]
    if any(t is not None for t in timing):
        table.add_row("ms per decision", *("-" if t is None else f"{t:.3g}" for t in timing))
    console.print(table)


def _print_json_or(summary: dict[str, Any], as_json: bool, show: Callable[[], None]) -> None:
    from smoothrl.rundir import json_safe

    if as_json:
        typer.echo(json.dumps(json_safe(summary)))
    else:
        show()


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
    from smoothrl.robustness import attack_run

    spec = Attack(attack_name, eps, norm, steps, smoothing_sigma, attack_samples)
    with console.status(f"attacking {run_dir} with {attack_name} (eps {eps}, {norm})", spinner="dots"):
        summary = attack_run(run_dir, spec, episodes, seed, smoothing_sigma, smoothing_samples, smoothing_mode)
    _print_json_or(summary, as_json, lambda: print_summary(summary, f"attack: {run_dir}"))


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
    from smoothrl.robustness import DEFAULT_EPS, certify_run

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
    _print_json_or(summary, as_json, lambda: _print_certificate(summary, f"certify: {run_dir}"))


def _print_certificate(summary: dict[str, Any], title: str) -> None:
    table = Table(
        title=title,
        caption=f"{summary['env']}, sigma {summary['sigma']}, {summary['samples']} samples, "
        f"alpha {summary['alpha']}, {summary['states']} states",
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    if summary["kind"] == "discrete":
        table.add_row("abstain fraction", _fmt(summary["abstain_fraction"]))
        table.add_row("mean certified radius (L2)", _fmt(summary["mean_radius"]))
        for r, frac in summary["certified_fraction"].items():
            table.add_row(f"certified at radius {r}", _fmt(frac))
    else:
        for e, width in summary["mean_bound_width"].items():
            table.add_row(f"mean action bound width, eps {e}", _fmt(width))
    table.add_row("ms per state", _fmt(summary["ms_per_state"]))
    if "reward" in summary:
        reward = summary["reward"]
        table.add_row("noisy median return", _fmt(reward["noisy_median_return"]))
        for e, low in reward["lower_bound_median"].items():
            table.add_row(f"certified median return, eps {e}", _fmt(low))
    console.print(table)


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `smoothrl train`.")],
    out: Annotated[Path, typer.Option(help="The artefact directory to write.")],
    format_: Annotated[str, typer.Option("--format", help="onnx (what `deploy` loads) or torchscript.")] = "onnx",
    smoothing_sigma: Annotated[
        float | None, typer.Option(help="Put randomized smoothing at this noise in the graph (default: S-PPO/S-DQN's).")
    ] = None,
    smoothing_samples: Annotated[int | None, typer.Option(help="Noisy copies per smoothed decision.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the graph's fixed smoothing noise.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an artefact already in --out.")] = False,
    certify: Annotated[bool, typer.Option(help="Attach `smoothrl certify` numbers for the graph's smoothing.")] = False,
    certify_samples: Annotated[int, typer.Option(help="With --certify: noise samples per state.")] = 10_000,
    certify_states: Annotated[int, typer.Option(help="With --certify: states to certify.")] = 100,
) -> None:
    """Export a run to a self-contained policy artefact (policy.onnx + manifest.json) for `smoothrl deploy`."""
    from smoothrl.export import export_run

    options = {"samples": certify_samples, "n_states": certify_states} if certify else None
    path = export_run(run_dir, out, format_, smoothing_sigma, smoothing_samples, seed, overwrite, options)  # type: ignore[arg-type]
    manifest = json.loads((path / "manifest.json").read_text())
    smoothing = manifest["smoothing"]
    extra = f", smoothing sigma {smoothing['sigma']} x {smoothing['samples']}" if smoothing else ""
    typer.echo(
        f"wrote {path}/{manifest['file']} and manifest.json ({manifest['source']['algo']} on "
        f"{manifest['source']['env']}{extra})"
    )


@app.command()
@user_errors
def deploy(
    artefact: Annotated[Path, typer.Argument(help="An artefact directory written by `smoothrl export`.")],
    hardware: Annotated[str, typer.Option(help="Controller profile: hardware/NAME.yaml or a shipped NAME.")],
    duration: Annotated[float | None, typer.Option(help="Seconds to run (lock-step: simulated seconds).")] = None,
    lockstep: Annotated[
        bool | None, typer.Option("--lockstep/--realtime", help="Sim backend: step per command, or in real time.")
    ] = None,
    speedup: Annotated[float, typer.Option(help="Real-time sim: run this many times faster than the clock.")] = 1.0,
    log: Annotated[Path | None, typer.Option(help="Write a per-period CSV log here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Run an artefact on hardware (or its simulator) at the profile's rate, behind the safety filter."""
    from smoothrl.hardware.deploy import deploy as run_deploy

    summary = run_deploy(artefact, hardware, duration, lockstep, speedup, log, status=None if as_json else console)
    interrupted = summary["stopped_by"] == "interrupt"  # Ctrl-C: the safe action was written, then deactivated
    if interrupted:
        _reported.interrupt = True
        saved = f"; the log is complete in {log}" if log is not None else ""
        typer.echo(f"interrupted: the safe action was written and the hardware deactivated{saved}", err=True)
    if as_json:
        typer.echo(json.dumps(summary))
        if interrupted:
            raise typer.Exit(130)
        return
    table = Table(title=f"deploy: {artefact} on {summary['profile']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key not in ("profile", "interventions"):
            table.add_row(key, _fmt(value))
    for key, value in summary["interventions"].items():
        table.add_row(f"interventions: {key}", str(value))
    console.print(table)
    if interrupted:
        raise typer.Exit(130)


bridge_app = typer.Typer(
    help="Far ends for `smoothrl deploy` to talk to (robots, plants), on loopback by default.", no_args_is_help=True
)
app.add_typer(bridge_app, name="bridge")


@bridge_app.command("pybullet")
@user_errors
def bridge_pybullet(
    env: Annotated[str, typer.Option(help="The robot: a PyBullet id (any gymnasium / smoothrl id works).")],
    port: Annotated[int, typer.Option(help="UDP port to listen on.")] = 5555,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you mean it).")] = "127.0.0.1",
    lockstep: Annotated[bool, typer.Option("--lockstep/--realtime", help="Step per command, or in real time.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the first episode.")] = 10_000,
    episodes: Annotated[int | None, typer.Option(help="Stop after this many episodes (default: never).")] = None,
) -> None:
    """Run a robot env as the far end of the udp backend (protocol: smoothrl.hardware.backends.udp)."""
    from smoothrl.envs import check_env_id
    from smoothrl.hardware.backends.udp import serve_env

    check_env_id(env)
    typer.echo(f"bridge: {env} on udp://{host}:{port} ({'lock-step' if lockstep else 'real time'}); Ctrl-C stops")
    try:
        returns = serve_env(env, port, host, lockstep, seed, episodes=episodes)
    except OSError as e:
        raise SmoothRLError(f"cannot listen on udp://{host}:{port}: {e.strerror}; pick another --port") from None
    typer.echo(json.dumps({"episode_returns": returns}))


@bridge_app.command("modbus-hvac")
@user_errors
def bridge_modbus_hvac(
    preset: Annotated[str | None, typer.Option(help="HVAC preset (envs/NAME.yaml; default: the env's).")] = None,
    env: Annotated[
        str, typer.Option(help="HVAC id: smoothrl/HVAC-v0, smoothrl/HVACMultiZone-v0 or smoothrl/EPlus-v0.")
    ] = "smoothrl/HVAC-v0",
    port: Annotated[int, typer.Option(help="Modbus TCP port.")] = 5020,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you mean it).")] = "127.0.0.1",
    lockstep: Annotated[bool, typer.Option("--lockstep/--realtime", help="Step per command, or in real time.")] = True,
    speedup: Annotated[float, typer.Option(help="Real time: simulated time runs this many times faster.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the episode's start day.")] = 10_000,
    split: Annotated[str, typer.Option(help="test (evaluation weeks) or train.")] = "test",
) -> None:
    """Run the HVAC simulator behind a Modbus TCP server, as the plant of the modbus backend."""
    from smoothrl.hardware.backends.hvac_plant import HVACPlantServer

    modulating = ("smoothrl/HVAC-v0", "smoothrl/HVACMultiZone-v0", "smoothrl/EPlus-v0")
    if env not in modulating:
        raise SmoothRLError(f"--env must be a modulating HVAC id ({', '.join(modulating)}), not {env}")
    if speedup <= 0:
        raise SmoothRLError(f"--speedup must be positive, got {speedup}")
    plant = HVACPlantServer(preset, port, host, lockstep, speedup, seed, split, env)
    typer.echo(f"plant: {env} on modbus://{host}:{port} ({'lock-step' if lockstep else f'real time x{speedup:g}'})")
    typer.echo(json.dumps(plant.register_map()))
    stop = __import__("threading").Event()
    try:
        result = plant.serve(stop)
    except KeyboardInterrupt:
        result = {"steps": plant.steps, "episode_return": plant.episode_return, "kpis": plant.kpis}
    typer.echo(json.dumps(result))


@app.command("list")
@user_errors
def list_(
    params: Annotated[str | None, typer.Option(help="List the hyperparameters one algorithm takes.")] = None,
) -> None:
    """List algorithms, environment ids and presets."""
    from smoothrl.config import DERIVED_FIELDS, DICT_KEYS, NOISE_KEYS, RESERVED, RunConfig
    from smoothrl.envs import list_env_ids
    from smoothrl.envs.hvac.spec import available_presets
    from smoothrl.registry import ALGOS, get_entry

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
    from smoothrl.plotting import plot_deploy_log, plot_runs

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
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Repeated retraining against an env that reacts to the deployed policy, to a performatively stable one."""
    from smoothrl.checks import check_writable
    from smoothrl.retraining import make_settings
    from smoothrl.retraining import performative as run_performative
    from smoothrl.rundir import next_free_run_dir

    settings = make_settings(
        env=env, method=method, lam=lam, beta=beta, eta=eta, samples=samples, rounds=rounds, algo=algo,
        steps=steps, episodes=episodes, delay=delay, adaptation=adaptation, seed=seed,
    )  # fmt: skip
    if run_dir is None:
        run_dir = next_free_run_dir(Path("runs") / "performative", settings.method)
    check_writable(run_dir, "--run-dir", folder=True)
    console.print(f"performative {settings.method} on {settings.env}, {settings.rounds} rounds -> {run_dir}")
    path, results = run_performative(
        settings, run_dir, overrides=set_ or [], overwrite=overwrite, progress_bar=progress
    )
    first = results["rounds_to_tolerance"]
    last = results["rounds"][-1]
    table = Table(title=f"performative: {path}", caption=f"{settings.env}, {settings.method}, seed {settings.seed}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("rounds", str(settings.rounds))
    table.add_row("rounds to a relative change < 1e-3", "not in T rounds" if first is None else str(first))
    table.add_row("final relative change", _fmt(results["final_relative_change"]))
    key = "performative_return" if "performative_return" in last else "deployment_return"
    table.add_row(key.replace("_", " "), _fmt(last[key]))
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
    from rich.progress import Progress

    from smoothrl.checks import COUNT, check_number, check_writable
    from smoothrl.sweep import SUMMARY, load_sweep, make_trials, selected
    from smoothrl.sweep import sweep as run_sweep

    check_number("--max-parallel", max_parallel, COUNT)
    spec = load_sweep(sweep_file)
    out = out or Path("runs") / "sweeps" / sweep_file.stem
    check_writable(out, "--out", folder=True)
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
    table = Table(title=f"sweep: {out}", caption=f"interquartile mean [95% CI] over seeds; {out / SUMMARY}")
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
    from smoothrl.rundir import next_free_run_dir
    from smoothrl.tuning import BEST, TuneSpec, check_spec
    from smoothrl.tuning import tune as run_tune

    check_number("--max-parallel", max_parallel, COUNT)
    check_seed("--seed", seed)
    spec = TuneSpec(algo, env, trials, timesteps, evals, episodes, objective, sampler, pruner, seed, preset)
    check_spec(spec)  # before the line that announces the search
    out = out or next_free_run_dir(Path("runs") / "tune", f"{algo}_{env.replace('/', '-')}")
    check_writable(out, "--out", folder=True)
    console.print(f"tune {algo} on {env}: {trials} trials of {timesteps} steps, maximizing {objective} -> {out}")

    def shown(record: dict[str, Any]) -> None:
        console.print(f"trial {record['trial']}: {record['state']}, objective {_fmt(record['objective'])}")

    best, records = run_tune(spec, out, backend=backend, max_parallel=max_parallel, address=address, on_trial=shown)
    pruned = sum(r["state"] == "pruned" for r in records)
    console.print(f"{len(records)} trials ({pruned} pruned); best preset entry in {out / BEST}:")
    console.print(yaml.safe_dump(best, sort_keys=False).rstrip())


def main() -> None:
    """Entry point of the ``smoothrl`` command."""
    import signal

    warnings.filterwarnings("ignore", message=".*rich is experimental.*")
    try:
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # from here on, KeyboardInterrupt as usual
            signal.signal(signal.SIGINT, signal.default_int_handler)
        app()
    except KeyboardInterrupt:  # before a command started (while parsing or importing)
        typer.echo(INTERRUPTED_EARLY, err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
