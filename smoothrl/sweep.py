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

import contextlib
import csv
import io
import itertools
import json
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smoothrl import rundir
from smoothrl.config import RunConfig, one_line
from smoothrl.errors import SmoothRLError

TRIAL = "trial.json"
RESULTS = "results.csv"
SUMMARY = "summary.md"
PLOT = "sweep.png"
SWEEP_COPY = "sweep.yaml"
#: what every evaluation reports (``smoothrl.episodes.summarize``); env KPIs come on top
BASE_METRICS = ("mean_return", "std_return", "mean_length", "continuity_cost", "jerk_rms", "sm")
ALIASES = {"return": "mean_return"}
#: bootstrap replications of the intervals (rliable's default is 50000; 2000 keeps a summary fast)
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")
INSTALL_HINT = "install the sweep extra: pip install 'smoothrl[ray]'"


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


class Resources(_Strict):
    """:param cpu: CPUs per trial; :param gpu: GPUs per trial (Ray schedules trials on nodes that have them)"""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


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
        if isinstance(self.seeds, int) and self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if isinstance(self.seeds, list) and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError("seeds must be a non-empty list of distinct seeds (or a count)")
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
    from smoothrl.config import resolve_config
    from smoothrl.envs.registration import env_kpis

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
    for variant in spec.expanded():  # every trial's config must build (keys, values) before anything runs
        resolve_config(spec.base.algo, spec.base.env, spec.base.preset, overrides(spec, variant), seed=0)
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

    :param config: the trial's resolved :class:`~smoothrl.config.RunConfig`
    :param run_dir: the trial's run directory
    :return: the checkpoint's steps it continued from, or ``None`` when it did not
    """
    from smoothrl.training import final_files, read_config, resume

    ckpt = rundir.latest_checkpoint(run_dir)
    if ckpt is None:
        return None
    try:
        if read_config(run_dir).to_yaml() != config.to_yaml():
            return None
        if ckpt.steps >= config.n_timesteps and final_files(run_dir, ckpt)[1]:
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
    from smoothrl.config import resolve_config
    from smoothrl.training import train

    start = time.perf_counter()
    record: dict[str, Any] = {
        "variant": trial.variant,
        "seed": trial.seed,
        "node": _node(),
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


def check_address(address: str) -> None:
    """
    :param address: ``HOST:PORT`` of a Ray cluster's head (GCS)
    :raises SmoothRLError: when it is malformed or nothing listens there
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SmoothRLError(f"--address must be HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as e:
        raise SmoothRLError(
            f"no Ray head at {address} ({e.strerror or type(e).__name__}); start one with `ray start --head` "
            "or drop --address for a local Ray instance"
        ) from None


def check_backend(backend: str, address: str | None) -> None:
    """
    :param backend: ``--backend``
    :param address: ``--address`` (or ``None``)
    :raises SmoothRLError: for an unknown backend, an address without Ray, or no Ray head there
    """
    if backend not in ("ray", "local"):
        raise SmoothRLError(f"--backend must be ray or local, got {backend!r}")
    if address is not None:
        if backend != "ray":
            raise SmoothRLError("--address applies to --backend ray only; drop it or use --backend ray")
        check_address(address)


def _node() -> str:
    """Where this process runs: Ray's node id inside a Ray worker, else the host name."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return socket.gethostname()


def _call(fn: Callable[[Any], dict[str, Any]], item: Any) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # one thread per job: the same numbers on every backend
    return fn(item)


def execute(
    items: Sequence[Any],
    fn: Callable[[Any], dict[str, Any]],
    *,
    backend: Literal["ray", "local"] = "local",
    workers: int = 1,
    address: str | None = None,
    resources: Resources | None = None,
    storage: Path | None = None,
    on_done: Callable[[Any, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """
    Run ``fn(item)`` for every item, ``workers`` at once: on a pool of spawned processes
    (``local``) or as Ray Tune trials (``ray``: resources per trial, a local instance or the
    cluster at ``address``). Sweeps and the benchmark scripts both run on it.

    :param items: picklable jobs
    :param fn: a module-level function (it pickles) returning a JSON-safe dict
    :param backend: ``local`` or ``ray``
    :param workers: jobs at once
    :param address: a Ray head's ``HOST:PORT`` (``ray`` only)
    :param resources: CPUs/GPUs per job (``ray``)
    :param storage: where Ray Tune keeps its experiment (default: a temp folder)
    :param on_done: called with (item, result) as each job finishes
    :return: the results, in the order of ``items``
    """
    results: list[dict[str, Any] | None] = [None] * len(items)

    def done(i: int, result: dict[str, Any]) -> None:
        results[i] = result
        if on_done is not None:
            on_done(items[i], result)

    if backend == "local":
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_call, fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                done(futures[future], future.result())
        return results  # type: ignore[return-value]
    _run_tune(items, fn, workers, resources or Resources(), address, storage, done)
    return results  # type: ignore[return-value]


def _run_tune(
    items: Sequence[Any],
    fn: Callable[[Any], dict[str, Any]],
    workers: int,
    resources: Resources,
    address: str | None,
    storage: Path | None,
    done: Callable[[int, dict[str, Any]], None],
) -> None:
    import tempfile

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's quiet reporter: the caller shows its own progress
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SmoothRLError(f"--backend ray needs Ray; {INSTALL_HINT}, or use --backend local") from None

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address or "local",  # "local": a new instance, never a cluster found on this machine
            num_cpus=None if address else max(1, workers) * int(math.ceil(resources.cpu)),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
        )

    def trainable(config: dict[str, Any]) -> None:
        result = _call(fn, items[config["job"]])
        tune.report({"payload": json.dumps(rundir.json_safe(result))})

    with tempfile.TemporaryDirectory(prefix="smoothrl-ray-") as tmp:
        try:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": resources.cpu, "gpu": resources.gpu}),
                param_space={"job": tune.grid_search(list(range(len(items))))},
                tune_config=tune.TuneConfig(max_concurrent_trials=max(1, workers), reuse_actors=False),
                run_config=tune.RunConfig(
                    storage_path=str((storage or Path(tmp)).resolve()),
                    name="jobs",
                    failure_config=tune.FailureConfig(max_failures=0),
                    verbose=0,
                ),
            )
            grid = tuner.fit()
        finally:
            if started:
                ray.shutdown()
        for result in grid:
            job = (result.config or {}).get("job")
            if job is None:
                continue
            if result.error is None and "payload" in (result.metrics or {}):
                done(job, json.loads(result.metrics["payload"]))
            else:
                done(
                    job, {"status": "failed", "error": f"the job's worker failed: {str(result.error).splitlines()[0]}"}
                )


def aggregate(records: Sequence[dict[str, Any]], variants: Sequence[str], metrics: Sequence[str]) -> dict:
    """
    Interquartile mean with 95% stratified-bootstrap intervals (rliable), per variant and metric,
    over the finished trials; and the probability that each variant improves on the first one's
    return (when the return is a metric).

    :param records: trial records
    :param variants: in order (the first is the reference)
    :param metrics: metric names
    :return: ``{"metrics": {metric: {variant: {iqm, low, high, mean, n}}}, "improvement": {...}}``
    """
    try:
        from rliable import library
        from rliable import metrics as rly
    except ImportError:
        raise SmoothRLError(f"aggregating a sweep needs rliable; {INSTALL_HINT}") from None

    ok = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {"metrics": {}, "improvement": {}}
    for metric in metrics:
        scores = {}
        for v in variants:
            values = [r[metric] for r in ok if r["variant"] == v and r.get(metric) is not None]
            values = [x for x in values if math.isfinite(x)]
            if values:
                scores[v] = np.asarray(values, dtype=np.float64)[:, None]  # (runs, tasks=1)
        if not scores:
            continue
        # rliable's stratified bootstrap draws its indices from numpy's global generator (the
        # random_state it takes is handed to arch and not used for them): seed it, then restore it
        state = np.random.get_state()
        np.random.seed(BOOTSTRAP_SEED)
        try:
            with warnings.catch_warnings():  # arch deprecates the RandomState rliable hands it
                warnings.simplefilter("ignore", FutureWarning)
                points, intervals = library.get_interval_estimates(
                    scores,
                    lambda x: np.array([rly.aggregate_iqm(x)]),
                    reps=BOOTSTRAP_REPS,
                    random_state=np.random.RandomState(BOOTSTRAP_SEED),
                )
        finally:
            np.random.set_state(state)
        out["metrics"][metric] = {
            v: {
                "iqm": float(points[v][0]),
                "low": float(intervals[v][0, 0]),
                "high": float(intervals[v][1, 0]),
                "mean": float(scores[v].mean()),
                "n": int(len(scores[v])),
            }
            for v in scores
        }
    returns = {v: np.asarray([r["mean_return"] for r in ok if r["variant"] == v], dtype=np.float64) for v in variants}
    if "mean_return" in metrics and len(variants) > 1 and len(returns[variants[0]]):
        ref = returns[variants[0]][:, None]
        for v in variants[1:]:
            if len(returns[v]):
                out["improvement"][v] = float(rly.probability_of_improvement(returns[v][:, None], ref))
    return out


def write_results(out: Path, records: Sequence[dict[str, Any]], metrics: Sequence[str]) -> Path:
    """``results.csv``: one row per trial (variant, seed, status, metrics, seconds, node, error)."""
    columns = ["variant", "seed", "status", *metrics, "seconds", "resumed_from", "node", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"])):
        writer.writerow({c: r.get(c, "") for c in columns})
    return rundir.atomic_write_text(out / RESULTS, buffer.getvalue())


def write_summary(out: Path, spec: SweepSpec, records: Sequence[dict[str, Any]], agg: dict) -> Path:
    """``summary.md``: the sweep, its failed trials, IQM and 95% CIs per variant and metric."""
    failed = [r for r in records if r.get("status") != "ok"]
    lines = [
        f"# Sweep {spec.name or ''}".rstrip(),
        "",
        f"{spec.base.algo} on {spec.base.env}, {spec.base.timesteps or 'preset'} steps per trial, "
        f"seeds {spec.seed_list()}, {spec.base.episodes} evaluation episodes; "
        f"{len(records) - len(failed)} of {len(records)} trials finished.",
        "",
        "Interquartile mean over seeds with its 95% stratified-bootstrap interval (rliable, "
        f"{BOOTSTRAP_REPS} replications).",
        "",
    ]
    for metric, rows in agg["metrics"].items():
        lines += [
            f"## {metric}",
            "",
            "| variant | IQM | 95% CI | mean | trials |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for v, row in rows.items():
            lines.append(
                f"| {v} | {row['iqm']:.4g} | [{row['low']:.4g}, {row['high']:.4g}] | {row['mean']:.4g} | {row['n']} |"
            )
        lines.append("")
    if agg["improvement"]:
        first = spec.expanded()[0].name
        lines += [f"## Probability of improvement over {first} (return)", ""]
        lines += [f"- {v}: {p:.2f}" for v, p in agg["improvement"].items()] + [""]
    if failed:
        lines += ["## Failed trials", ""]
        lines += [f"- {r['variant']} seed {r['seed']}: {r.get('error', '')}" for r in failed] + [""]
    return rundir.atomic_write_text(out / SUMMARY, "\n".join(lines))


def plot_sweep(out: Path, records: Sequence[dict[str, Any]], agg: dict, variants: Sequence[str]) -> Path:
    """``sweep.png``: IQM with CI per metric, the return's performance profile, return vs jerk RMS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(agg["metrics"])
    ok = [r for r in records if r.get("status") == "ok"]
    fig, axes = plt.subplots(1, len(metrics) + 2, figsize=(3.6 * (len(metrics) + 2), 3.4))
    for ax, metric in zip(axes, metrics, strict=False):
        rows = agg["metrics"][metric]
        names = [v for v in variants if v in rows]
        iqm = np.array([rows[v]["iqm"] for v in names])
        err = np.array([[rows[v]["iqm"] - rows[v]["low"], rows[v]["high"] - rows[v]["iqm"]] for v in names]).T
        ax.barh(names, iqm, xerr=err, color="tab:blue", alpha=0.7)
        ax.set(title=f"{metric} (IQM, 95% CI)")
    profile_ax, scatter_ax = axes[-2], axes[-1]
    returns = {
        v: np.array([r["mean_return"] for r in ok if r["variant"] == v and "mean_return" in r]) for v in variants
    }
    returns = {v: x[np.isfinite(x)] for v, x in returns.items() if len(x)}
    if returns:
        everything = np.concatenate(list(returns.values()))
        taus = np.linspace(everything.min(), everything.max(), 50)
        for v, x in returns.items():
            profile_ax.plot(taus, [(x > t).mean() for t in taus], label=v)
        profile_ax.set(title="performance profile (return)", xlabel="return tau", ylabel="fraction of runs > tau")
        profile_ax.legend(fontsize=7)
    for v in variants:
        points = [(r.get("jerk_rms"), r.get("mean_return")) for r in ok if r["variant"] == v]
        points = [(a, b) for a, b in points if a is not None and b is not None]
        if points:
            x, y = np.array(points, dtype=np.float64).T
            scatter_ax.scatter(x, y, label=v, s=16)
    scatter_ax.set(title="return vs jerk RMS (each trial)", xlabel="jerk RMS", ylabel="return")
    if scatter_ax.get_legend_handles_labels()[0]:
        scatter_ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    rundir.atomic_write(out / PLOT, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    return out / PLOT


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
        still reported where they have finished (a sweep split across machines or sessions)
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
            raise SmoothRLError(f"--backend ray needs Ray; {INSTALL_HINT}, or use --backend local") from None
    try:
        import rliable  # noqa: F401
    except ImportError:
        raise SmoothRLError(f"a sweep needs rliable; {INSTALL_HINT}") from None
    trials = make_trials(spec, out)
    unknown = sorted(set(only_variants) - {t.variant for t in trials})
    unknown += sorted(str(s) for s in set(only_seeds) - {t.seed for t in trials})
    if unknown:  # before anything is written
        raise SmoothRLError(
            f"the sweep has no variant or seed {', '.join(unknown)}; choose from its variants "
            f"({', '.join(v.name for v in spec.expanded())}) and seeds ({', '.join(map(str, spec.seed_list()))})"
        )
    copy = out / SWEEP_COPY
    text = sweep_text if sweep_text is not None else yaml.safe_dump(spec.model_dump(), sort_keys=False)
    if copy.exists() and yaml.safe_load(copy.read_text()) != yaml.safe_load(text):
        raise SmoothRLError(
            f"{out} holds another sweep (its {SWEEP_COPY} differs); pick a new --out or restore the sweep file"
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


@contextlib.contextmanager
def loopback_cluster(nodes: int = 2, cpus_per_node: int = 1, timeout: float = 120.0) -> Iterator[str]:
    """
    A real multi-process Ray cluster on this machine, on loopback only: ``ray start --head`` and
    ``nodes - 1`` worker nodes (``ray start --address``), each a process group of its own,
    stopped (and waited for) on exit. What the tests and ``scripts/bench_sweep.py`` run against;
    on real machines the same ``ray start`` commands run on each host (see the README).

    :param nodes: nodes, the head included
    :param cpus_per_node: CPUs each node offers
    :param timeout: seconds to wait for the head to answer and every node to join
    :return: the head's ``HOST:PORT`` (for ``--address``)
    :raises RuntimeError: when the cluster does not come up in time
    """
    import subprocess
    import sys

    ray_cli = str(Path(sys.executable).with_name("ray"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus", str(cpus_per_node), "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started: list[subprocess.Popen] = []

    def start(args: list[str]) -> None:
        started.append(
            subprocess.Popen(
                [ray_cli, "start", *common, *args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        )

    try:
        start(["--head", "--port", str(port), "--include-dashboard", "false"])
        deadline = time.time() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or started[0].poll() is not None:
                    raise RuntimeError("the Ray head did not start") from None
                time.sleep(0.5)
        for _ in range(nodes - 1):
            start(["--address", address])
        import ray

        ray.init(address=address, log_to_driver=False, configure_logging=False)
        try:
            while len([n for n in ray.nodes() if n["Alive"]]) < nodes:
                if time.time() > deadline:
                    raise RuntimeError(f"only {len(ray.nodes())} of {nodes} Ray nodes joined")
                time.sleep(0.5)
        finally:
            ray.shutdown()
        yield address
    finally:
        import signal

        for node in reversed(started):
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in reversed(started):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
