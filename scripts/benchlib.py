"""The skeleton every benchmark script in ``scripts/`` stands on: its command line (``--quick``
and the budget options), one (config, seed) training job, a process pool with a progress bar,
aggregation over seeds with confidence intervals, and the JSON + table output. A script declares
only its tasks, variants and columns."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy import stats

#: PPO on PyBullet tasks with one common, fast configuration (the benchmarks that compare
#: exploration or trust-region variants change only their own keys on top of it)
BULLET_PPO_COMMON = (
    "n_envs=8",
    "n_steps=256",
    "batch_size=256",
    "n_epochs=5",
    "learning_rate=3e-4",
    "gamma=0.99",
    "normalize=true",
    "policy_kwargs=dict(log_std_init=-1, net_arch=[64, 64])",
)


@dataclass(frozen=True)
class Job:
    """
    One training run of a benchmark and what to keep of it.

    :param key: the caller's label, returned with the result (e.g. ``(task, variant, seed)``)
    :param algo: algorithm name
    :param env: gymnasium id
    :param overrides: ``--set`` overrides on the env's preset
    :param timesteps: training budget
    :param seed: run seed (evaluation uses seed + 10000)
    :param episodes: evaluation episodes
    :param summary_keys: keys of the evaluation summary to keep (all when empty)
    :param scalars: TensorBoard tags to keep, as ``{name: (tag, reduction)}`` with reduction
        ``"mean"`` (over the run), ``"last"`` or ``"max"``
    :param preset: agents preset entry (default: the env's)
    """

    key: tuple
    algo: str
    env: str
    overrides: tuple[str, ...]
    timesteps: int
    seed: int
    episodes: int = 10
    summary_keys: tuple[str, ...] = ()
    scalars: dict[str, tuple[str, str]] = field(default_factory=dict)
    preset: str | None = None


def run_job(job: Job) -> dict[str, Any]:
    """
    Train and evaluate one job in a temporary folder (nothing is kept on disk).

    :param job: the job
    :return: the kept evaluation summary entries and scalars
    """
    import torch as th

    from smoothrl.run.evaluation import evaluate
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.plotting import read_scalar_tags

    th.set_num_threads(1)  # one core per job: the pool supplies the parallelism
    config = resolve_config(
        job.algo,
        job.env,
        job.preset,
        overrides=[*job.overrides, f"eval_episodes={job.episodes}", "eval_freq=0"],
        n_timesteps=job.timesteps,
        seed=job.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = train(config, Path(tmp) / "run", progress_bar=False)
        summary, _ = evaluate(run, episodes=job.episodes)
        result = {k: summary[k] for k in job.summary_keys} if job.summary_keys else dict(summary)
        series = read_scalar_tags(run, [tag for tag, _ in job.scalars.values()])
        for name, (tag, reduction) in job.scalars.items():
            _, values = series[tag]
            if len(values) == 0:
                result[name] = float("nan")
            else:
                result[name] = float({"mean": np.mean, "last": lambda v: v[-1], "max": np.max}[reduction](values))
    return result


def run_jobs(
    jobs: Sequence[Any],
    workers: int,
    console: Console | None = None,
    fn: Callable[[Any], dict[str, Any]] = run_job,
    backend: str = "local",
    address: str | None = None,
) -> dict[tuple, dict[str, Any]]:
    """
    Run jobs ``workers`` at once with a progress bar, on the sweep machinery
    (:func:`smoothrl.experiments.executor.execute`): a local pool of processes (one thread each) or Ray.

    :param jobs: the jobs (anything with a ``key``; :class:`Job` for the default ``fn``)
    :param workers: jobs at once (1 with ``local``: in this process, in order)
    :param console: where the progress bar goes
    :param fn: what runs one job (a module-level function, so that it pickles)
    :param backend: ``local`` or ``ray`` (``--backend``)
    :param address: a Ray cluster's ``HOST:PORT`` (``--address``)
    :return: ``{job.key: result}``
    """
    from smoothrl.experiments.executor import check_address, execute

    results: dict[tuple, dict[str, Any]] = {}
    with Progress(console=console) as progress:
        bar = progress.add_task("training", total=len(jobs))
        if workers <= 1 and backend == "local":
            for job in jobs:
                results[job.key] = fn(job)
                progress.advance(bar)
            return results
        if address is not None:
            check_address(address)

        def done(job: Any, result: dict[str, Any]) -> None:
            results[job.key] = result
            progress.advance(bar)

        execute(jobs, fn, backend=backend, workers=workers, address=address, on_done=done)
    return results


#: where studies keep one JSON per trial of their sweeps (``<sweep folder>/<variant>/seed_<s>.json``)
KEPT_TRIALS = Path("results/trials")


def keep_trials(
    sweep_dir: Path, kept_dir: Path, read: Callable[[Path], dict[str, Any] | None]
) -> dict[str, dict[int, dict[str, Any]]]:
    """
    Keep what a sweep's trials have to show in the repository, then read back every kept trial.

    A sweep's run directories live under ``runs/``, which a new machine does not have; a study
    run on several machines over days reads its trials from ``kept_dir`` instead, refreshed here from every
    trial still on disk. A finished trial's record is never replaced by an unfinished one (a
    rerun of the same sweep on a new machine), nor a record by one that has done fewer steps.

    :param sweep_dir: the sweep's folder (``OUT/<variant>/seed_<s>/`` run directories); may be gone
    :param kept_dir: the trials' records (``<variant>/seed_<s>.json``)
    :param read: a trial's run directory -> its record (JSON-serializable, with ``finished``
        and ``steps_done`` where it can be unfinished), or ``None`` for nothing to keep yet
    :return: ``{variant: {seed: record}}`` for every kept trial
    """
    from smoothrl.rundir import atomic_write_json

    for run in sorted(sweep_dir.glob("*/seed_*")):
        record = read(run)
        if record is None:
            continue
        path = kept_dir / run.parent.name / f"{run.name}.json"
        if path.is_file():
            old = json.loads(path.read_text())
            if old.get("finished", True) and not record.get("finished", True):
                continue
            if old.get("steps_done", 0) > record.get("steps_done", 0):
                continue
        atomic_write_json(path, record)
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(kept_dir.glob("*/seed_*.json")):
        out.setdefault(path.parent.name, {})[int(path.stem.removeprefix("seed_"))] = json.loads(path.read_text())
    return out


#: the non-learned HVAC controllers (baselines tuned on training weeks, MPCs) on every plant's test weeks
HVAC_CONTROL_BENCH = Path("results/bench_hvac_control.json")


def bench_controllers(env: str, seed: int, episodes: int, path: Path = HVAC_CONTROL_BENCH) -> dict[str, dict[str, Any]]:
    """
    The non-learned controllers' records on ``env`` from ``scripts/bench_hvac_control.py``'s
    results, when that benchmark played the same weeks (``episodes`` from evaluation ``seed``).

    :param env: the env id (``smoothrl/HVAC-v0`` or ``HVAC-v0``)
    :param seed: the evaluation seed the weeks were drawn from
    :param episodes: the number of test weeks
    :param path: the benchmark's results
    :return: ``{controller: record}``; empty when the file is missing, played other weeks or has no ``env``
    """
    if not path.is_file():
        return {}
    bench = json.loads(path.read_text())
    if bench["settings"]["seed"] != seed or bench["settings"]["episodes"] != episodes:
        return {}
    return dict(bench["results"].get(env.removeprefix("smoothrl/"), {}))


def pool_seeds(
    earlier: Mapping[str, Any] | None, trials: Mapping[int, Mapping[str, float]], keys: Sequence[str], spread: str
) -> dict[str, Any]:
    """
    One variant's means over its seeds, from an earlier aggregate and per-seed results.

    A study whose early runs kept only per-variant means (the seeds, the mean of every key,
    the standard deviation of one) goes on with per-seed results; the means and that standard
    deviation over all seeds follow exactly from both.

    :param earlier: ``{"seeds": [...], "mean": {key: value}, "std": <spread's std over those seeds>}``,
        or ``None``
    :param trials: seed -> results (``keys``); seeds already in ``earlier`` are not counted twice
    :param keys: the keys to average
    :param spread: the key whose standard deviation over seeds (``ddof=0``) is reported
    :return: the means, ``seeds`` (how many), ``seed_list`` and ``<spread>_std``
    """
    seeds = list(earlier["seeds"]) if earlier else []
    n = len(seeds)
    sums = {k: n * earlier["mean"][k] for k in keys} if earlier else dict.fromkeys(keys, 0.0)
    squares = n * (earlier["std"] ** 2 + earlier["mean"][spread] ** 2) if earlier else 0.0
    for seed, trial in sorted(trials.items()):
        if seed in seeds:
            continue
        seeds.append(seed)
        sums = {k: sums[k] + trial[k] for k in keys}
        squares += trial[spread] ** 2
    if not seeds:
        raise ValueError("pool_seeds needs an earlier aggregate or at least one trial")
    mean = {k: sums[k] / len(seeds) for k in keys}
    std = math.sqrt(max(squares / len(seeds) - mean[spread] ** 2, 0.0))
    return mean | {"seeds": len(seeds), "seed_list": sorted(seeds), f"{spread}_std": std}


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """
    Mean and half-width of the Student-t confidence interval of the mean over seeds.

    :param values: one value per seed
    :param confidence: the interval's confidence level
    :return: ``(mean, half_width)``; the half-width is ``nan`` for fewer than two values
    """
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()) if len(x) else math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def study_args(
    doc: str,
    name: str,
    *,
    seeds: tuple[int, int] | None = None,
    timesteps: tuple[int | None, int | None] | None = None,
    episodes: tuple[int, int] | None = None,
    workers: int | None = None,
    quick: str = "",
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """
    Parse a benchmark's command line: ``--quick``, ``--out results/<name>.json`` and, where the
    study has them, ``--seeds``, ``--timesteps``, ``--episodes`` and ``--workers``. A budget left
    unset takes its full value, or its quick value with ``--quick``.

    :param doc: the script's docstring (its first line is the description)
    :param name: the results file's name
    :param seeds: ``(full, quick)`` seeds per variant
    :param timesteps: ``(full, quick)`` steps per run (``None``: per task, decided by the script)
    :param episodes: ``(full, quick)`` evaluation episodes
    :param workers: default number of parallel processes
    :param quick: what ``--quick`` does, for ``--help``
    :param extra: adds the script's own options
    :return: the parsed arguments, budgets resolved
    """
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick or "a smaller budget, in minutes")
    budgets = {"seeds": seeds, "timesteps": timesteps, "episodes": episodes}
    for option, values in budgets.items():
        if values is not None:
            parser.add_argument(
                f"--{option}", type=int, default=None, help=f"default {values[0]} (--quick: {values[1]})"
            )
    if workers is not None:
        parser.add_argument("--workers", type=int, default=workers, help="parallel training processes")
        parser.add_argument("--backend", choices=("local", "ray"), default="local", help="job pool or Ray Tune")
        parser.add_argument("--address", default=None, help="HOST:PORT of a Ray cluster (with --backend ray)")
    parser.add_argument("--out", type=Path, default=Path(f"results/{name}.json"))
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    for option, values in budgets.items():
        if values is not None and getattr(args, option) is None:
            setattr(args, option, values[1] if args.quick else values[0])
    return args


def seed_summary(per_seed: Sequence[Mapping[str, float]], keys: Iterable[str] = ()) -> dict[str, Any]:
    """
    Aggregate one variant's per-seed results: the key-wise mean, ``<key>_std`` for ``keys``, and
    the per-seed values themselves.

    :param per_seed: one result per seed
    :param keys: the keys whose standard deviation over seeds is reported too
    :return: ``{key: mean, ..., "<key>_std": std, ..., "per_seed": [...]}``
    """
    from smoothrl.metrics import mean_report

    row: dict[str, Any] = mean_report(per_seed)
    row.update({f"{k}_std": float(np.std([s[k] for s in per_seed])) for k in keys})
    row["per_seed"] = [dict(s) for s in per_seed]
    return row


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """
    :param title: the table's title (budget and seeds belong in it)
    :param columns: column names (the first is left-aligned)
    :param rows: formatted cells
    :return: a rich table
    """
    out = Table(title=title)
    for i, col in enumerate(columns):
        out.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def save_results(results: Mapping[str, Any], out: Path, tables: Iterable[Table], console: Console) -> None:
    """
    Write ``results`` to ``out`` (atomically) and print the tables.

    :param results: JSON-serializable results (``settings`` first: budget, seeds, commands)
    :param out: ``results/<name>.json``
    :param tables: what to print
    :param console: where
    """
    from smoothrl.rundir import atomic_write_json

    atomic_write_json(out, results)
    for t in tables:
        console.print(t)
    console.print(f"wrote {out}")


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
