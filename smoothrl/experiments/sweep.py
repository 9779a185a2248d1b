"""``smoothrl sweep``: many runs of one pipeline (variants x seeds) on Ray Tune or a local process
pool, aggregated with rliable.

A sweep file (YAML)::

    name: smooth-vs-plain            # optional
    base:                            # one run, as `smoothrl train` takes it
      algo: ppo
      env: Pendulum-v1
      preset: null                   # agents/<algo>.yaml entry (default: the env's)
      timesteps: 20000
      episodes: 5                    # evaluation episodes per trial (eval.json)
      set: {n_envs: 2}               # --set overrides
    variants:                        # a list of named variants ...
      - {name: plain}
      - {name: smooth, set: {action_reg: {order: 1, weight: 1.0}}}
    # grid: {learning_rate: [0.001, 0.0003]}   # ... or a grid (every combination)
    seeds: [0, 1, 2, 3]              # or a count: 4 -> 0..3
    metrics: [mean_return, jerk_rms] # from eval.json: return, smoothness metrics, env KPIs
    resources: {cpu: 1, gpu: 0}      # per trial (Ray)

Every (variant, seed) is a trial: ``smoothrl train`` + its final evaluation into
``OUT/<variant>/seed_<s>/`` (a normal run directory), then ``trial.json`` (status, metrics, the
error of a failed trial, the node it ran on). Re-running the same sweep skips finished trials,
continues interrupted ones from their latest checkpoint (``resumed_from`` in ``trial.json``: such
a trial's numbers need not equal an uninterrupted run's) and reruns failed ones. Results:
``OUT/results.csv`` (one row per trial), ``OUT/summary.md`` (interquartile mean and 95%
stratified-bootstrap interval per variant and metric, probability of improvement over the
first variant), ``OUT/sweep.png``.

Trials use one torch thread each, so a trial's numbers depend on its seed only: the local pool and
Ray give the same results.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smoothrl import rundir
from smoothrl.checks import MAX_SEED
from smoothrl.errors import SmoothRLError
from smoothrl.experiments.executor import INSTALL_HINT, Resources, check_backend, execute, node_name
from smoothrl.experiments.report import aggregate, plot_sweep, write_results, write_summary
from smoothrl.run.config import RunConfig, one_line

TRIAL = "trial.json"
SWEEP_COPY = "sweep.yaml"
#: what every evaluation reports (``smoothrl.run.episodes.summarize``); env KPIs come on top
BASE_METRICS = ("mean_return", "std_return", "mean_length", "continuity_cost", "jerk_rms", "sm")
ALIASES = {"return": "mean_return"}
#: the most seeds a sweep runs per variant
MAX_SEEDS = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SweepBase(_Strict):
    """
    :param algo: algorithm
    :param env: env id
    :param preset: agents preset entry (default: the env's)
    :param timesteps: training budget per trial (default: the preset's)
    :param episodes: evaluation episodes per trial
    :param set: ``--set`` overrides of every trial
    """

    algo: str
    env: str
    preset: str | None = None
    timesteps: int | None = Field(None, ge=1)
    episodes: int = Field(5, ge=1)
    set: dict[str, Any] = Field(default_factory=dict)


class Variant(_Strict):
    """
    :param name: the variant's folder and label
    :param set: its ``--set`` overrides, on top of the base's
    """

    name: str
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"variant name {value!r} must be letters, digits and _.=- (it names a folder)")
        return value


class SweepSpec(_Strict):
    """A sweep file, validated (see the module's docstring)."""

    name: str | None = None
    base: SweepBase
    variants: list[Variant] | None = None
    grid: dict[str, list[Any]] | None = None
    seeds: list[int] | int = 3
    metrics: list[str] = Field(default_factory=lambda: ["mean_return"])
    resources: Resources = Field(default_factory=Resources)

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        if (self.variants is None) == (self.grid is None):
            raise ValueError("give either 'variants' (a list) or 'grid' (key: [values]), not both or neither")
        if self.variants is not None and not self.variants:
            raise ValueError("'variants' is empty: list at least one")
        if self.grid is not None:
            if not self.grid:
                raise ValueError("'grid' is empty: give at least one key with a list of values")
            for key, values in self.grid.items():
                if not values:
                    raise ValueError(f"grid key {key!r} has no values: give at least one")
        names = [v.name for v in self.expanded()]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if isinstance(self.seeds, int) and not 1 <= self.seeds <= MAX_SEEDS:
            raise ValueError(f"seeds must be a count in 1..{MAX_SEEDS} (or a list of seeds), got {self.seeds}")
        if isinstance(self.seeds, list) and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError("seeds must be a non-empty list of distinct seeds (or a count)")
        if isinstance(self.seeds, list) and any(not 0 <= s <= MAX_SEED for s in self.seeds):
            bad = next(s for s in self.seeds if not 0 <= s <= MAX_SEED)
            raise ValueError(f"every seed must be in 0..{MAX_SEED} (what numpy and torch take), got {bad}")
        for variant in [self.base, *self.expanded()]:
            fixed = sorted(set(variant.set) & {"seed", "n_timesteps"})
            if fixed:
                where = "base.set" if variant is self.base else f"variant {variant.name!r}"
                hint = "the sweep's seeds" if fixed[0] == "seed" else "base.timesteps"
                raise ValueError(f"{where} sets {fixed[0]!r}, which {hint} decide for every trial; drop it")
        if not self.metrics:
            raise ValueError("metrics is empty: name at least one (e.g. mean_return)")
        return self

    def seed_list(self) -> list[int]:
        """:return: the seeds"""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def expanded(self) -> list[Variant]:
        """:return: the variants (the grid's combinations, named ``key=value,key=value``)"""
        if self.variants is not None:
            return list(self.variants)
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            name = ",".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in zip(keys, values, strict=True))
            out.append(
                Variant(
                    name=re.sub(r"[^A-Za-z0-9_.=,-]", "_", name).replace(",", "_"),
                    set=dict(zip(keys, values, strict=True)),
                )
            )
        return out

    def metric_names(self) -> list[str]:
        """:return: the metrics with aliases resolved"""
        return [ALIASES.get(m, m) for m in self.metrics]


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def load_sweep(path: str | Path) -> SweepSpec:
    """
    :param path: the sweep file
    :return: the validated spec (algorithm, env, keys and metrics checked too)
    :raises SmoothRLError: one line naming the problem
    """
    from smoothrl.envs import check_env_starts
    from smoothrl.envs.registration import env_kpis
    from smoothrl.run.overrides import resolve_config

    path = Path(path)
    if not path.is_file():
        raise SmoothRLError(f"sweep file {path} not found; give the path of a sweep YAML")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SmoothRLError(f"{path} is not valid YAML ({type(e).__name__}); fix the file") from None
    if not isinstance(raw, dict):
        raise SmoothRLError(f"{path} must hold a mapping with 'base' and 'variants' or 'grid'")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as e:
        raise one_line(e, prefix=f"{path}: ") from None
    known = set(BASE_METRICS) | set(env_kpis(spec.base.env))
    for metric in spec.metric_names():
        if metric not in known:
            raise SmoothRLError(
                f"{path}: unknown metric {metric!r} for {spec.base.env}; choose from {', '.join(sorted(known))}"
            )
    tried: set[str] = set()
    for variant in spec.expanded():  # every trial's config must build (keys, values) before anything runs
        config = resolve_config(spec.base.algo, spec.base.env, spec.base.preset, overrides(spec, variant), seed=0)
        key = json.dumps(config.env_kwargs, sort_keys=True, default=str)
        if key not in tried:  # and its env must start: a bad env keyword fails here, not in every trial
            tried.add(key)
            check_env_starts(config.env, config.env_kwargs, f"{path}: variant {variant.name!r}")
    return spec


def overrides(spec: SweepSpec, variant: Variant) -> list[str]:
    """:return: the ``--set`` items of one variant (the base's, then the variant's)"""
    merged = {**spec.base.set, **variant.set}
    return [f"{key}={json.dumps(value)}" for key, value in merged.items()]


@dataclass(frozen=True)
class Trial:
    """One (variant, seed): everything a worker needs (plain data, so it pickles)."""

    variant: str
    seed: int
    algo: str
    env: str
    preset: str | None
    timesteps: int | None
    episodes: int
    overrides: tuple[str, ...]
    run_dir: str
    metrics: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int]:
        """(variant, seed)"""
        return (self.variant, self.seed)


def make_trials(spec: SweepSpec, out: Path) -> list[Trial]:
    """:return: every trial of the sweep: every variant's first seed, then every variant's second, ..."""
    return [
        Trial(
            v.name,
            seed,
            spec.base.algo,
            spec.base.env,
            spec.base.preset,
            spec.base.timesteps,
            spec.base.episodes,
            tuple(overrides(spec, v)),
            str((out / v.name / f"seed_{seed}").resolve()),
            tuple(spec.metric_names()),
        )
        for seed in spec.seed_list()  # seed-major: an interrupted sweep has compared every variant
        for v in spec.expanded()
    ]


def check_selection(spec: SweepSpec, variants: Sequence[str] = (), seeds: Sequence[int] = ()) -> None:
    """
    :param spec: the sweep
    :param variants: a ``--variant`` selection
    :param seeds: a ``--seed`` selection
    :raises SmoothRLError: naming a variant or seed the sweep does not have
    """
    names = [v.name for v in spec.expanded()]
    unknown = sorted(set(variants) - set(names)) + sorted(str(s) for s in set(seeds) - set(spec.seed_list()))
    if unknown:
        raise SmoothRLError(
            f"the sweep has no variant or seed {', '.join(unknown)}; choose from its variants "
            f"({', '.join(names)}) and seeds ({', '.join(map(str, spec.seed_list()))})"
        )


def selected(trial: Trial, variants: Sequence[str] = (), seeds: Sequence[int] = ()) -> bool:
    """:return: whether a ``--variant``/``--seed`` selection (empty: everything) takes the trial"""
    return (not variants or trial.variant in variants) and (not seeds or trial.seed in seeds)


def read_trial(trial: Trial) -> dict[str, Any] | None:
    """:return: the trial's ``trial.json``, or ``None`` when it has none (never ran, or was interrupted)"""
    path = Path(trial.run_dir) / TRIAL
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _continue(config: RunConfig, run_dir: Path) -> int | None:
    """
    Finish an interrupted trial from its latest checkpoint, when the run there was started with
    the same config (else, or when it cannot be resumed, the trial starts over).

    :param config: the trial's resolved :class:`~smoothrl.run.config.RunConfig`
    :param run_dir: the trial's run directory
    :return: the checkpoint's steps it continued from, or ``None`` when it did not
    """
    from smoothrl.run.build import read_config
    from smoothrl.run.training import resume

    ckpt = rundir.latest_checkpoint(run_dir)
    if ckpt is None:
        return None
    try:
        if read_config(run_dir).to_yaml() != config.to_yaml():
            return None
        if ckpt.steps >= config.n_timesteps and rundir.RunDir(run_dir).finished(ckpt)[1]:
            return ckpt.steps  # it finished, and stopped before its trial.json
        resume(run_dir, progress_bar=False)
    except SmoothRLError:  # a damaged or incomplete checkpoint: start over
        return None
    return ckpt.steps


def run_trial(trial: Trial) -> dict[str, Any]:
    """
    Train and evaluate one trial (in a worker process), then write its ``trial.json``.

    :param trial: the trial
    :return: the record: ``variant``, ``seed``, ``status`` (``ok``/``failed``), ``error``, the
        metrics, ``seconds``, ``node``, ``pid``
    """
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train

    start = time.perf_counter()
    record: dict[str, Any] = {
        "variant": trial.variant,
        "seed": trial.seed,
        "node": node_name(),
        "pid": os.getpid(),
    }
    run_dir = Path(trial.run_dir)
    try:
        config = resolve_config(
            trial.algo,
            trial.env,
            trial.preset,
            list(trial.overrides),
            seed=trial.seed,
            n_timesteps=trial.timesteps,
            eval_episodes=trial.episodes,
        )
        resumed = _continue(config, run_dir)
        if resumed is None:
            train(config, run_dir, overwrite=True, progress_bar=False)
        summary = json.loads((run_dir / rundir.EVAL).read_text())
        record.update(status="ok", error="", resumed_from=resumed or 0)
        record.update({m: float(summary[m]) if m in summary else math.nan for m in trial.metrics})
    except Exception as e:  # a failed trial is reported, the others go on
        record.update(status="failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:500])
        record.update({m: math.nan for m in trial.metrics})
    record["seconds"] = time.perf_counter() - start
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_json(run_dir / TRIAL, record)
    return record


@dataclass
class SweepResult:
    """:param records: one per trial; :param skipped: trials already finished; :param summary: the aggregation"""

    records: list[dict[str, Any]]
    skipped: int
    summary: dict


def sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    backend: Literal["ray", "local"] = "ray",
    max_parallel: int = 2,
    address: str | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    sweep_text: str | None = None,
    report_only: bool = False,
    only_variants: Sequence[str] = (),
    only_seeds: Sequence[int] = (),
) -> SweepResult:
    """
    Run the trials of a sweep that have not finished, then collect every trial's record.

    :param spec: from :func:`load_sweep`
    :param out: the sweep's folder
    :param backend: ``ray`` (Ray Tune) or ``local`` (a process pool)
    :param max_parallel: trials at once
    :param address: a Ray cluster's ``HOST:PORT`` (``ray`` only; default: a local instance)
    :param on_done: called with each finished trial's record (a progress display)
    :param sweep_text: the sweep file's text, kept as ``OUT/sweep.yaml`` (a rerun must be the same sweep)
    :param report_only: run nothing: summarize the trials finished so far (a long sweep's progress)
    :param only_variants: run only these variants' trials (empty: every variant); the others are
        still reported where they have finished (a sweep split across machines or runs of the command)
    :param only_seeds: run only these seeds' trials (empty: every seed)
    :return: the records, how many were skipped, the aggregation
    :raises SmoothRLError: for a folder that holds another sweep, a bad address, a missing extra, a
        variant or seed the sweep does not have
    """
    out = Path(out)
    check_backend(backend, address)
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SmoothRLError(f"@backend ray needs Ray; {INSTALL_HINT}, or use @backend local") from None
    try:
        import rliable  # noqa: F401
    except ImportError:
        raise SmoothRLError(f"a sweep needs rliable; {INSTALL_HINT}") from None
    trials = make_trials(spec, out)
    check_selection(spec, only_variants, only_seeds)  # before anything is written
    if rundir.is_run_dir(out):
        raise SmoothRLError(f"{out} holds a training run; a sweep writes its own folder of runs: pick a new @out")
    with rundir.locked(out):  # a second sweep into the same folder is refused, not raced trial by trial
        return _run_locked(spec, out, trials, backend, max_parallel, address, on_done, sweep_text, report_only,
                           only_variants, only_seeds)  # fmt: skip


def _run_locked(
    spec: SweepSpec,
    out: Path,
    trials: list[Trial],
    backend: str,
    max_parallel: int,
    address: str | None,
    on_done: Callable[[dict[str, Any]], None] | None,
    sweep_text: str | None,
    report_only: bool,
    only_variants: Sequence[str],
    only_seeds: Sequence[int],
) -> SweepResult:
    """The body of :func:`sweep`, holding the sweep folder's lock."""
    copy = out / SWEEP_COPY
    text = sweep_text if sweep_text is not None else yaml.safe_dump(spec.model_dump(), sort_keys=False)
    if copy.exists() and yaml.safe_load(copy.read_text()) != yaml.safe_load(text):
        raise SmoothRLError(
            f"{out} holds another sweep (its {SWEEP_COPY} differs); pick a new @out or restore the sweep file"
        )
    out.mkdir(parents=True, exist_ok=True)
    if not copy.exists():
        rundir.atomic_write_text(copy, text)
    done = {t.key: r for t in trials if (r := read_trial(t)) is not None and r.get("status") == "ok"}
    todo = [t for t in trials if t.key not in done and selected(t, only_variants, only_seeds)]
    records: list[dict[str, Any]] = list(done.values())

    def collect(record: dict[str, Any]) -> None:
        records.append(record)
        if on_done is not None:
            on_done(record)

    if todo and not report_only:

        def finished(trial: Trial, result: dict[str, Any]) -> None:
            # trial.json is the record; a trial whose worker died before writing it is reported as such
            collect(read_trial(trial) or {"variant": trial.variant, "seed": trial.seed, **result})

        execute(
            todo,
            run_trial,
            backend=backend,
            workers=max_parallel,
            address=address,
            resources=spec.resources,
            storage=out / ".ray",
            on_done=finished,
        )
    variants = [v.name for v in spec.expanded()]
    metrics = spec.metric_names()
    summary = aggregate(records, variants, metrics)
    write_results(out, records, metrics)
    write_summary(out, spec, records, summary)
    if summary["metrics"]:
        plot_sweep(out, records, summary, variants)
    return SweepResult(records, len(done), summary)
