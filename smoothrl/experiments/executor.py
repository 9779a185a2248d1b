"""The executor every batch of jobs runs on: ``smoothrl sweep``, ``smoothrl tune``'s trials and the
study scripts. ``execute(items, fn)`` runs a module-level function on every item, on a local pool of
spawned processes or as Ray Tune trials (a local instance or a cluster at ``--address``), one torch
thread per job so that a job's numbers depend on its seed only."""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from smoothrl import rundir
from smoothrl.errors import SmoothRLError

INSTALL_HINT = "install the sweep extra: pip install 'smoothrl[ray]'"


class Resources(BaseModel):
    """:param cpu: CPUs per trial; :param gpu: GPUs per trial (Ray schedules trials on nodes that have them)"""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


def check_address(address: str) -> None:
    """
    :param address: ``HOST:PORT`` of a Ray cluster's head (GCS)
    :raises SmoothRLError: when it is malformed or nothing listens there
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SmoothRLError(f"@address must be HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as e:
        raise SmoothRLError(
            f"no Ray head at {address} ({e.strerror or type(e).__name__}); start one with `ray start --head` "
            "or drop @address for a local Ray instance"
        ) from None


def check_backend(backend: str, address: str | None) -> None:
    """
    :param backend: ``--backend``
    :param address: ``--address`` (or ``None``)
    :raises SmoothRLError: for an unknown backend, an address without Ray, or no Ray head there
    """
    if backend not in ("ray", "local"):
        raise SmoothRLError(f"@backend must be ray or local, got {backend!r}")
    if address is not None:
        if backend != "ray":
            raise SmoothRLError("@address applies to @backend ray only; drop it or use @backend ray")
        check_address(address)


def node_name() -> str:
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
        raise SmoothRLError(f"@backend ray needs Ray; {INSTALL_HINT}, or use @backend local") from None

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
