"""``smoothrl tune``: hyperparameter search with Optuna, inside Ray Tune or on its own.

rl-zoo3's ``--optimize`` is the anchor: a search space per algorithm (rl-zoo3's samplers, with
narrower ranges), a TPE (or random) sampler, median pruning on intermediate evaluations, and the
best hyperparameters written as a preset entry in the ``agents/<algo>.yaml`` format. What no other
tool offers: the objective may combine the return with smoothness metrics and env KPIs, e.g.
``--objective "return - 10 * jerk_rms"``.

With ``--backend ray`` Optuna's sampler runs as Ray Tune's search algorithm (``OptunaSearch``)
and pruning is Tune's median stopping rule on the same intermediate evaluations; with
``--backend local`` Optuna runs alone (its ``MedianPruner``). Each trial trains ``timesteps``
steps in ``evals`` chunks and is evaluated after each (deterministic episodes on the run's
evaluation env, seed + 10000).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from smoothrl import rundir
from smoothrl.errors import SmoothRLError
from smoothrl.experiments.executor import INSTALL_HINT, Resources, check_backend
from smoothrl.experiments.objective import compile_objective
from smoothrl.experiments.sweep import BASE_METRICS

BEST = "best.yaml"
TRIALS = "trials.csv"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")


def _ppo(t: Any) -> dict[str, Any]:
    return {
        "learning_rate": t.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "n_steps": t.suggest_categorical("n_steps", [64, 128, 256, 512, 1024]),
        "batch_size": t.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "gamma": t.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995]),
        "gae_lambda": t.suggest_categorical("gae_lambda", [0.8, 0.9, 0.95, 0.98, 1.0]),
        "ent_coef": t.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": t.suggest_categorical("clip_range", [0.1, 0.2, 0.3]),
        "n_epochs": t.suggest_categorical("n_epochs", [5, 10, 20]),
    }


def _a2c(t: Any) -> dict[str, Any]:
    return {
        "learning_rate": t.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "n_steps": t.suggest_categorical("n_steps", [5, 8, 16, 32, 64]),
        "gamma": t.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995]),
        "gae_lambda": t.suggest_categorical("gae_lambda", [0.8, 0.9, 0.95, 1.0]),
        "ent_coef": t.suggest_float("ent_coef", 1e-8, 0.1, log=True),
    }


def _off_policy(t: Any) -> dict[str, Any]:
    return {
        "learning_rate": t.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "batch_size": t.suggest_categorical("batch_size", [64, 128, 256, 512]),
        "gamma": t.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99]),
        "tau": t.suggest_categorical("tau", [0.005, 0.01, 0.02, 0.05]),
        "train_freq": t.suggest_categorical("train_freq", [1, 4, 8]),
        "learning_starts": t.suggest_categorical("learning_starts", [0, 100, 1000]),
    }


def _dqn(t: Any) -> dict[str, Any]:
    return {
        "learning_rate": t.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "batch_size": t.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "gamma": t.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99]),
        "exploration_fraction": t.suggest_float("exploration_fraction", 0.0, 0.5),
        "exploration_final_eps": t.suggest_float("exploration_final_eps", 0.0, 0.2),
        "target_update_interval": t.suggest_categorical("target_update_interval", [1, 100, 1000]),
        "train_freq": t.suggest_categorical("train_freq", [1, 4, 8]),
        "learning_starts": t.suggest_categorical("learning_starts", [0, 100, 1000]),
    }


#: algorithm -> define-by-run search space (an Optuna trial in, hyperparameters out)
SEARCH_SPACES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "ppo": _ppo,
    "a2c": _a2c,
    "sac": _off_policy,
    "td3": _off_policy,
    "ddpg": _off_policy,
    "dqn": _dqn,
}


@dataclass(frozen=True)
class DefineByRun:
    """An algorithm's search space as Ray Tune's ``OptunaSearch`` takes it (module level: it pickles)."""

    algo: str

    def __call__(self, trial: Any) -> None:
        SEARCH_SPACES[self.algo](trial)


@dataclass(frozen=True)
class TuneSpec:
    """
    :param algo: algorithm
    :param env: env id
    :param trials: trials to run
    :param timesteps: training steps per trial
    :param evals: intermediate evaluations per trial (pruning points)
    :param episodes: episodes per evaluation
    :param objective: the objective expression
    :param sampler: ``tpe`` or ``random``
    :param pruner: ``median`` or ``none``
    :param seed: seed of the sampler and of every trial's training
    :param preset: the agents preset the search starts from (default: the env's)
    """

    algo: str
    env: str
    trials: int
    timesteps: int
    evals: int = 4
    episodes: int = 3
    objective: str = "return"
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    preset: str | None = None


def check_spec(spec: TuneSpec) -> Callable[[dict[str, float]], float]:
    """:return: the compiled objective; :raises SmoothRLError: for any bad setting"""
    from smoothrl.checks import COUNT, Range, check_number
    from smoothrl.envs.registration import env_kpis
    from smoothrl.registry import get_entry
    from smoothrl.run.overrides import resolve_config

    entry = get_entry(spec.algo)
    if entry.name not in SEARCH_SPACES:
        raise SmoothRLError(f"tune has no search space for {entry.name}; choose one of {', '.join(SEARCH_SPACES)}")
    if spec.sampler not in SAMPLERS:
        raise SmoothRLError(f"@sampler must be one of {', '.join(SAMPLERS)}, got {spec.sampler!r}")
    if spec.pruner not in PRUNERS:
        raise SmoothRLError(f"@pruner must be one of {', '.join(PRUNERS)}, got {spec.pruner!r}")
    check_number("@trials", spec.trials, Range(1, 100_000, integer=True))
    check_number("@evals", spec.evals, COUNT)
    check_number("@episodes", spec.episodes, COUNT)
    check_number("@timesteps", spec.timesteps, Range(spec.evals, 1e9, integer=True))
    resolve_config(entry.name, spec.env, spec.preset, [], seed=spec.seed, n_timesteps=spec.timesteps)
    return compile_objective(spec.objective, set(BASE_METRICS) | set(env_kpis(spec.env)))


def run_trial(
    spec: TuneSpec,
    params: dict[str, Any],
    objective: Callable[[dict[str, float]], float],
    report: Callable[[int, float], bool],
    metrics: dict[str, float] | None = None,
) -> float:
    """
    Train one trial in ``evals`` chunks, evaluating after each.

    :param spec: the search
    :param params: this trial's hyperparameters
    :param objective: from :func:`compile_objective`
    :param report: called with (evaluation number, objective); returns ``False`` to stop the trial
    :param metrics: filled with the last evaluation's metrics (what the objective was computed from)
    :return: the last objective
    """
    import torch
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    from smoothrl.envs.registration import eval_env_kwargs
    from smoothrl.run.build import EVAL_SEED_OFFSET, make_env, make_model
    from smoothrl.run.episodes import run_episodes, summarize
    from smoothrl.run.overrides import resolve_config

    torch.set_num_threads(1)
    items = [f"{k}={json.dumps(v)}" for k, v in params.items()]
    config = resolve_config(spec.algo, spec.env, spec.preset, items, seed=spec.seed, n_timesteps=spec.timesteps)
    env = make_env(config, training=True)
    evaluation = make_env(
        config, n_envs=1, training=False, seed=config.seed + EVAL_SEED_OFFSET, env_overrides=eval_env_kwargs(config.env)
    )
    model = make_model(config, env)
    value = math.nan
    try:
        chunk = spec.timesteps // spec.evals
        for k in range(1, spec.evals + 1):
            model.learn(chunk, reset_num_timesteps=k == 1, progress_bar=False)
            if isinstance(env, VecNormalize):
                sync_envs_normalization(env, evaluation)
            summary = summarize(run_episodes(model, evaluation, spec.episodes, deterministic=True))
            if metrics is not None:
                metrics.clear()
                metrics.update({k: float(v) for k, v in summary.items() if isinstance(v, int | float)})
            value = float(objective(summary))
            if not report(k, value):
                break
    finally:
        env.close()
        evaluation.close()
    return value


def _sampler(spec: TuneSpec) -> Any:
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=min(5, max(1, spec.trials // 2)))


def tune_local(spec: TuneSpec, objective: Callable, on_trial: Callable[[dict], None]) -> list[dict[str, Any]]:
    """Optuna alone: a study with its sampler and ``MedianPruner``, trials one after another."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if spec.pruner == "median" else None
    study = optuna.create_study(
        direction="maximize", sampler=_sampler(spec), pruner=pruner or optuna.pruners.NopPruner()
    )
    records: list[dict[str, Any]] = []

    def fn(trial: Any) -> float:
        params = SEARCH_SPACES[spec.algo](trial)

        def report(step: int, value: float) -> bool:
            trial.report(value, step)
            return not trial.should_prune()

        metrics: dict[str, float] = {}
        record = {"trial": trial.number, "params": params, "metrics": metrics}
        try:
            value = run_trial(spec, params, objective, report, metrics)
        except Exception as e:  # the trial's own failure: recorded, and the search goes on
            records.append({**record, "state": "failed", "objective": math.nan, "error": _reason(e)})
            on_trial(records[-1])
            raise
        if trial.should_prune():
            records.append({**record, "state": "pruned", "objective": value})
            on_trial(records[-1])
            raise optuna.TrialPruned()
        records.append({**record, "state": "complete", "objective": value})
        on_trial(records[-1])
        return value

    study.optimize(fn, n_trials=spec.trials, catch=(Exception,))
    return records


def _reason(error: BaseException) -> str:
    """One line saying why a trial failed."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text and not isinstance(error, SmoothRLError) else (text or [""])[0]


def tune_ray(
    spec: TuneSpec,
    objective: Callable,
    out: Path,
    max_parallel: int,
    resources: Resources,
    address: str | None,
    on_trial: Callable[[dict], None],
) -> list[dict[str, Any]]:
    """Optuna's sampler as Ray Tune's search algorithm, Tune's median stopping rule as the pruner."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        import ray
        from ray import tune
        from ray.tune.schedulers import MedianStoppingRule

        from smoothrl.experiments.ray_search import PruningOptunaSearch
    except ImportError:
        raise SmoothRLError(f"@backend ray needs Ray and Optuna; {INSTALL_HINT}, or use @backend local") from None

    def trainable(config: dict[str, Any]) -> None:
        metrics: dict[str, float] = {}

        def report(step: int, value: float) -> bool:
            tune.report({"objective": value, "evaluation": step, **{f"metric/{k}": v for k, v in metrics.items()}})
            return True  # Tune stops a pruned trial itself

        run_trial(spec, dict(config), objective, report, metrics)

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address or "local",  # "local": a new instance, never a cluster found on this machine
            num_cpus=None if address else max(1, max_parallel),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )
    try:
        scheduler = (
            MedianStoppingRule(
                time_attr="training_iteration", metric="objective", mode="max", grace_period=1, min_samples_required=2
            )
            if spec.pruner == "median"
            else None
        )
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": resources.cpu, "gpu": resources.gpu}),
            tune_config=tune.TuneConfig(
                search_alg=PruningOptunaSearch(
                    spec.evals, space=DefineByRun(spec.algo), metric="objective", mode="max", sampler=_sampler(spec)
                ),
                scheduler=scheduler,
                num_samples=spec.trials,
                max_concurrent_trials=max(1, max_parallel),
            ),
            run_config=tune.RunConfig(storage_path=str((out / ".ray").resolve()), name="tune", verbose=0),
        )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    records = []
    for i, result in enumerate(grid):
        done = result.metrics.get("evaluation") == spec.evals
        state = "failed" if result.error else ("complete" if done else "pruned")
        params = {k: v for k, v in (result.config or {}).items()}
        metrics = {k.removeprefix("metric/"): v for k, v in result.metrics.items() if k.startswith("metric/")}
        record = {
            "trial": i,
            "state": state,
            "objective": result.metrics.get("objective", math.nan),
            "params": params,
            "metrics": metrics,
        }
        if result.error:
            record["error"] = _reason(result.error)
        records.append(record)
        on_trial(records[-1])
    return records


def best_preset(spec: TuneSpec, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """
    :return: ``{env_id: hyperparameters}``: the env's preset with the best complete trial's
        hyperparameters on top and the search's budget, in the ``agents/<algo>.yaml`` format
    :raises SmoothRLError: when no trial completed
    """
    from smoothrl.presets import agent_presets

    complete = [r for r in records if r["state"] == "complete" and math.isfinite(r["objective"])]
    failed = [r for r in records if r["state"] == "failed"]
    if not complete and failed:
        raise SmoothRLError(
            f"every trial that was not pruned failed ({len(failed)} of {len(records)}), the first with: "
            f"{failed[0].get('error', 'no reason given')}; fix that (see trials.csv), then search again"
        )
    if not complete:
        raise SmoothRLError("no trial completed; raise @trials or @timesteps, or use @pruner none")
    best = max(complete, key=lambda r: r["objective"])
    entry = dict(agent_presets(spec.algo).get(spec.preset or spec.env, {}))
    entry.update(best["params"])
    entry["n_timesteps"] = spec.timesteps
    return {spec.env: entry}


def tune(
    spec: TuneSpec,
    out: str | Path,
    *,
    backend: str = "ray",
    max_parallel: int = 2,
    address: str | None = None,
    resources: Resources | None = None,
    on_trial: Callable[[dict], None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """
    Search, then write ``OUT/trials.csv`` and ``OUT/best.yaml``.

    :return: the best preset entry and every trial's record
    :raises SmoothRLError: for bad settings, a bad address or a missing extra
    """
    out = Path(out)
    objective = check_spec(spec)
    check_backend(backend, address)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise SmoothRLError(f"tune needs Optuna; {INSTALL_HINT}") from None
    check_out(out)
    with rundir.locked(out):
        check_out(out)  # again, holding the lock: a second search into it is refused, not merged
        collected: list[dict[str, Any]] = []

        def notify(record: dict[str, Any]) -> None:  # every finished trial is on disk before it is shown
            collected.append(record)
            _write_trials(out, collected)
            if on_trial is not None:
                on_trial(record)

        if backend == "local":
            records = tune_local(spec, objective, notify)
        else:
            records = tune_ray(spec, objective, out, max_parallel, resources or Resources(), address, notify)
        _write_trials(out, records)
        preset = best_preset(spec, records)
        _write_best(spec, out, records, preset)
    return preset, records


def check_out(out: Path) -> None:
    """
    :param out: a search's folder
    :raises SmoothRLError: when it holds a search already, or another kind of result (a training run)
    """
    rundir.check_unlocked(out)
    if (out / BEST).exists() or (out / TRIALS).exists():
        raise SmoothRLError(f"{out} already holds a search ({TRIALS}); pick a new @out")
    if rundir.is_run_dir(out):
        raise SmoothRLError(f"{out} holds a training run; a search writes its own folder: pick a new @out")
    if out.is_file():
        raise SmoothRLError(f"{out} is a file; @out must be a folder")


def _write_trials(out: Path, records: list[dict[str, Any]]) -> None:
    """``trials.csv``: one row per trial with its state, objective, the metrics behind it, its parameters."""
    names = sorted({k for r in records for k in r.get("metrics", {})})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "state", "objective", *names, "params", "error"])
    for r in records:
        metrics = r.get("metrics", {})
        row = [r["trial"], r["state"], r["objective"], *(metrics.get(n, "") for n in names)]
        writer.writerow([*row, json.dumps(r["params"], sort_keys=True), r.get("error", "")])
    rundir.atomic_write_text(out / TRIALS, buffer.getvalue())


def _write_best(spec: TuneSpec, out: Path, records: list[dict[str, Any]], preset: dict[str, Any]) -> None:
    """``best.yaml``: the best trial's preset entry, headed by the command that found it."""
    header = (
        f"# smoothrl tune --algo {spec.algo} --env {spec.env} --trials {spec.trials} --timesteps {spec.timesteps} "
        f"--objective {spec.objective!r} --sampler {spec.sampler} --pruner {spec.pruner} --seed {spec.seed}\n"
        f"# best of {len(records)} trials; copy the entry into agents/{spec.algo}.yaml (or pass its keys with --set)\n"
    )
    rundir.atomic_write_text(out / BEST, header + yaml.safe_dump(preset, sort_keys=False))
