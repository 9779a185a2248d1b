"""The run directory of a ``smoothrl performative`` study: written in place under the folder's
lock (a second writer is refused), every deep round saved so that a killed run resumes from its
last finished round, ``performative.json`` written last (its presence says the run finished), a
finished run being overwritten kept aside until the new one has finished.

The rounds themselves are :mod:`smoothrl.experiments.retraining`'s.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml
from pydantic import ValidationError

from smoothrl import rundir
from smoothrl.checks import check_writable
from smoothrl.errors import SmoothRLError
from smoothrl.experiments.retraining import (
    PLOT,
    PROGRESS,
    RESULTS,
    ROUND_CHECKPOINT,
    SETTINGS,
    TB_TAG,
    TOLERANCE,
    DeployedPolicy,
    PerformativeSettings,
    deep_config,
    env_kwargs,
    log_round,
    make_settings,
    read_progress,
    run_deep,
    run_tabular,
)
from smoothrl.run.config import RunConfig

#: the study's whole API in one place (the rounds' names re-exported beside the run folder's)
__all__ = [
    "DeployedPolicy",
    "PerformativeSettings",
    "deep_config",
    "env_kwargs",
    "make_settings",
    "performative",
    "resumed_settings",
    "run_deep",
    "run_tabular",
]


def performative(
    settings: PerformativeSettings | None,
    run_dir: str | Path,
    *,
    overrides: list[str] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress_bar: bool = True,
) -> tuple[Path, dict]:
    """
    Run one performative study into a run directory, holding its lock (a second writer is
    refused). A deep run saves every finished round there, so ``resume`` continues a killed one;
    tabular rounds take milliseconds and are computed again. With ``overwrite`` a finished run is
    set aside and put back if the new one fails.

    :param settings: from :func:`make_settings` (``None`` with ``resume``: the run's own)
    :param run_dir: the run directory (new or empty, unless ``overwrite`` or ``resume``)
    :param overrides: ``--set`` items for the algorithm of ``deep``
    :param overwrite: replace a run already there
    :param resume: continue the unfinished run there, with its own settings
    :param progress_bar: show a progress bar
    :return: the run directory and the results
    :raises SmoothRLError: for bad input
    """
    run_dir = check_writable(run_dir, "@run_dir", folder=True)
    if overwrite and resume:
        raise SmoothRLError("@resume continues a run and @overwrite replaces it; pass one of them")
    if settings is None and not resume:
        raise SmoothRLError("performative needs its settings, or @resume to continue a run")
    if settings is not None and overrides and settings.tabular:
        raise SmoothRLError("@set applies to @method deep only (the algorithm's settings); drop it")
    config = deep_config(settings, list(overrides or [])) if settings is not None and not settings.tabular else None
    _check_target(run_dir, overwrite, resume)
    with rundir.locked(run_dir):
        _check_target(run_dir, overwrite, resume)  # again, holding the lock: the second writer loses here
        if resume:
            settings, overrides = _resumed_settings(run_dir, settings, overrides)
            config = deep_config(settings, list(overrides or [])) if not settings.tabular else None
        assert settings is not None
        replace = overwrite and (run_dir / RESULTS).is_file()
        with rundir.RunDir(run_dir).replacing(replace):
            if not resume:
                _clear(run_dir)
            return run_dir, _run(settings, config, run_dir, list(overrides or []), resume, progress_bar)


def _check_target(run_dir: Path, overwrite: bool, resume: bool) -> None:
    """What ``run_dir`` holds against what the call asks: new, replace, or continue."""
    if not run_dir.exists() or rundir.is_empty_dir(run_dir) or set(os.listdir(run_dir)) <= {rundir.LOCK}:
        if resume:
            raise SmoothRLError(f"{run_dir} holds no performative run to resume; drop @resume")
        return
    if not (run_dir / SETTINGS).is_file():
        raise SmoothRLError(f"{run_dir} holds files but no performative run ({SETTINGS}); pick a new @run_dir")
    finished = (run_dir / RESULTS).is_file()
    if resume and finished:
        raise SmoothRLError(f"{run_dir} holds a finished run; nothing to resume")
    if not resume and not overwrite:
        what = "a performative run" if finished else "an unfinished performative run (killed?)"
        hint = "pass @overwrite to replace it" if finished else "pass @resume to continue it, or @overwrite"
        raise SmoothRLError(f"{run_dir} already holds {what}; pick a new @run_dir or {hint}")


def _resumed_settings(
    run_dir: Path, settings: PerformativeSettings | None, overrides: list[str] | None
) -> tuple[PerformativeSettings, list[str]]:
    """The unfinished run's own settings and overrides (settings given beside them must not differ)."""
    try:
        saved = yaml.safe_load((run_dir / SETTINGS).read_text(encoding="utf-8"))
        own = PerformativeSettings(**{k: v for k, v in saved.items() if k != "overrides"})
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError, TypeError, AttributeError):
        raise SmoothRLError(f"{run_dir / SETTINGS} is damaged; start the run again with @overwrite") from None
    own_overrides = list(saved.get("overrides") or [])
    if settings is None:
        return own, own_overrides
    if settings != own or (overrides and overrides != own_overrides):
        raise SmoothRLError(
            f"{run_dir} is a {own.method} run on {own.env}; @resume continues it with its own settings "
            "(drop the other options, or start a new @run_dir)"
        )
    return own, own_overrides


def resumed_settings(run_dir: str | Path) -> tuple[PerformativeSettings, list[str]]:
    """
    :param run_dir: an unfinished performative run
    :return: its settings and ``--set`` overrides, as it was started with
    :raises SmoothRLError: when the folder holds no readable run
    """
    return _resumed_settings(Path(run_dir), None, None)


def _clear(run_dir: Path) -> None:
    """An unfinished run being overwritten: its files go (a finished one was set aside already)."""
    for child in run_dir.iterdir():
        if child.name != rundir.LOCK:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def _run(
    settings: PerformativeSettings,
    config: RunConfig | None,
    run_dir: Path,
    overrides: list[str],
    resume: bool,
    progress_bar: bool,
) -> dict:
    """The study itself, into ``run_dir`` (held): settings first, the results last."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    from smoothrl.tools.plotting import plot_performative

    done = len(read_progress(run_dir)["rounds"]) if resume and not settings.tabular else 0  # before any write
    if not resume:
        text = yaml.safe_dump({**settings.model_dump(), "overrides": overrides}, sort_keys=False)
        rundir.atomic_write_text(run_dir / SETTINGS, text)
    writer = SummaryWriter(str(run_dir / rundir.TB / TB_TAG))
    total = settings.rounds if settings.tabular else settings.rounds + 1
    with tqdm(total=total, initial=done, desc=f"{settings.method} deployments", disable=not progress_bar) as bar:

        def on_round(record: dict[str, float]) -> None:
            log_round(writer, record)
            if "relative_change" in record:
                bar.set_postfix(change=f"{record['relative_change']:.2e}")
            bar.update()

        if settings.tabular:
            results = run_tabular(settings, on_round)
        else:
            results = run_deep(settings, config, run_dir, on_round, resume=resume)  # type: ignore[arg-type]
    writer.close()
    results = {"settings": settings.model_dump(), **results}
    plot_performative({settings.method: results["rounds"]}, run_dir / PLOT, TOLERANCE)
    rundir.atomic_write_json(run_dir / RESULTS, results)  # last: its presence says the run finished
    for leftover in (run_dir / PROGRESS, run_dir / ROUND_CHECKPOINT):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    return results
