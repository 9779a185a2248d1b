"""The RUN DIR: its file layout, atomic writes and checkpoint discovery.

A run directory holds ``model.zip``, ``config.yaml``, ``vecnormalize.pkl`` (when observations
or rewards are normalized), ``tb/`` (TensorBoard), ``checkpoints/``, ``eval.json`` and, for a
policy distilled from a teacher, ``pretrain.json``. Every file is written to a temporary name
in the same folder and renamed into place, so an interrupted write never leaves a half-written
file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoothrl.errors import SmoothRLError

MODEL = "model.zip"
CONFIG = "config.yaml"
VECNORMALIZE = "vecnormalize.pkl"
EVAL = "eval.json"
PRETRAIN = "pretrain.json"
TB = "tb"
CHECKPOINTS = "checkpoints"
TB_RUN_NAME = "run"
LOCK = ".lock"

#: ``model_<steps>_steps.zip``, ``model_replay_buffer_<steps>_steps.pkl``, ``model_vecnormalize_<steps>_steps.pkl``
_CKPT_RE = re.compile(r"^model_(?:(replay_buffer|vecnormalize)_)?(\d+)_steps\.(?:zip|pkl)$")


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """
    Write a file through a temporary path in the same folder, then rename it into place.

    :param path: the final path
    :param write: called with the temporary path (which keeps ``path``'s suffix, so libraries
        that append suffixes leave it alone) and must create that file
    :return: the final path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """
    Write text atomically.

    :param path: the final path
    :param text: the content
    :return: the final path
    """
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def json_safe(data: Any) -> Any:
    """
    Replace non-finite floats (``nan``, ``inf``) by ``None``, so the JSON is standard.

    :param data: JSON-serializable data
    :return: the same data with ``None`` for non-finite floats
    """
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """
    Write JSON atomically (indented, keys in insertion order, non-finite floats as ``null``).

    :param path: the final path
    :param data: JSON-serializable data
    :return: the final path
    """
    return atomic_write_text(path, json.dumps(json_safe(data), indent=2) + "\n")


@dataclass(frozen=True)
class Checkpoint:
    """
    One complete checkpoint: the model and, where the run has them, the replay buffer and the
    normalization statistics saved at the same step.

    :param steps: environment steps done when it was saved
    :param model: path of the model zip
    :param replay_buffer: path of the replay buffer pickle (off-policy algorithms)
    :param vecnormalize: path of the ``VecNormalize`` statistics
    """

    steps: int
    model: Path
    replay_buffer: Path
    vecnormalize: Path


def checkpoint_paths(run_dir: str | Path, steps: int) -> Checkpoint:
    """
    The paths of the checkpoint taken at ``steps``.

    :param run_dir: the run directory
    :param steps: environment steps
    :return: the checkpoint's paths (which may not exist)
    """
    d = Path(run_dir) / CHECKPOINTS
    return Checkpoint(
        steps=steps,
        model=d / f"model_{steps}_steps.zip",
        replay_buffer=d / f"model_replay_buffer_{steps}_steps.pkl",
        vecnormalize=d / f"model_vecnormalize_{steps}_steps.pkl",
    )


def checkpoint_steps(run_dir: str | Path, part: str = "model") -> list[int]:
    """
    The steps at which a checkpoint part was saved (the one place checkpoint names are parsed).

    :param run_dir: the run directory
    :param part: ``"model"``, ``"replay_buffer"`` or ``"vecnormalize"``
    :return: the steps, ascending
    """
    d = Path(run_dir) / CHECKPOINTS
    if not d.is_dir():
        return []
    found = ((m.group(1) or "model", int(m.group(2))) for p in d.iterdir() if (m := _CKPT_RE.match(p.name)))
    return sorted(steps for kind, steps in found if kind == part)


def latest_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """
    The checkpoint with the most steps, or ``None`` when there is none.

    A checkpoint counts once its model zip exists: the model is written last.

    :param run_dir: the run directory
    :return: the latest checkpoint
    """
    steps = checkpoint_steps(run_dir)
    return checkpoint_paths(run_dir, steps[-1]) if steps else None


def next_free_run_dir(root: str | Path, name: str) -> Path:
    """
    ``root/name_1``, ``root/name_2``, ... : the first that does not exist (rl-zoo3 style).

    :param root: parent folder
    :param name: run name
    :return: a fresh path
    """
    i = 1
    while (Path(root) / f"{name}_{i}").exists():
        i += 1
    return Path(root) / f"{name}_{i}"


def is_empty_dir(path: str | Path) -> bool:
    """
    :param path: a path
    :return: whether it does not exist or is an empty folder (a lock file, and temporary files of
        writers that are gone, count as empty: what a killed first write leaves)
    """
    p = Path(path)
    return not p.exists() or (p.is_dir() and all(child.name == LOCK or _dead_temp(child) for child in p.iterdir()))


_TEMP = re.compile(r"^\..+\.tmp(\d+)(\.[^.]*)?$")


def _dead_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_write` whose writer's process is gone."""
    m = _TEMP.match(path.name)
    return bool(m) and not _alive(int(m.group(1))) and path.is_file()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def lock_owner(run_dir: str | Path) -> tuple[int, str] | None:
    """
    The live process that holds a run directory's lock.

    :param run_dir: the run directory
    :return: ``(pid, command)``, or ``None`` when the run is not locked (or its lock is stale)
    """
    path = Path(run_dir) / LOCK
    try:
        pid_text, host, command = (path.read_text().split("\n", 2) + ["", ""])[:3]
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():  # its process cannot be checked from here: taken as alive
        return pid, f"{command.strip()} on {host}"
    if pid == os.getpid() or not _alive(pid):
        return None
    return pid, command.strip()


def check_unlocked(run_dir: str | Path) -> None:
    """
    :param run_dir: a folder that may be written by another process
    :raises SmoothRLError: when a live process holds its lock, naming it
    """
    owner = lock_owner(run_dir)
    if owner is not None:
        raise SmoothRLError(
            f"{run_dir} is being written by process {owner[0]} ({owner[1]}); wait for it to finish or stop it"
        ) from None


@contextlib.contextmanager
def locked(run_dir: str | Path) -> Iterator[Path]:
    """
    Hold a run directory's exclusive lock (``.lock``: pid, host and command of the writer)
    while writing into it; a stale lock (its process is gone) is taken over. Creates the folder.

    :param run_dir: the run directory
    :raises SmoothRLError: when another live process holds the lock, naming it
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    content = f"{os.getpid()}\n{socket.gethostname()}\n{' '.join(sys.argv)}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            check_unlocked(run_dir)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its writer is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(content)
        break
    else:
        raise SmoothRLError(f"cannot take the lock of {run_dir}; retry")
    try:
        yield run_dir
    finally:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == content:
                path.unlink()


def clean_temp_files(run_dir: str | Path) -> list[Path]:
    """
    Remove the temporary files that an interrupted writer left in a run directory (their
    writer's process is gone); call it while holding the lock.

    :param run_dir: the run directory
    :return: the files removed
    """
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINTS):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if _dead_temp(path):
                path.unlink()
                removed.append(path)
    return removed


def is_run_dir(path: str | Path) -> bool:
    """:return: whether ``path`` is a folder holding a smoothrl run (its ``config.yaml``)"""
    return (Path(path) / CONFIG).is_file()


@dataclass(frozen=True)
class RunDir:
    """
    One run directory and its whole write transaction, in the order a run goes through it:
    :meth:`check_fresh` (new, empty, or a run that ``overwrite`` replaces), :meth:`writing` (the
    lock, temporary files of a dead writer removed), :meth:`replacing` (the old run set aside, put
    back if the new one fails, removed once it has finished), and :meth:`finished` (whether the
    final model and evaluation came after the latest checkpoint).

    :param path: the folder
    """

    path: Path

    def check_fresh(self, overwrite: bool) -> bool:
        """
        :param overwrite: whether a run already there may be replaced
        :return: whether the folder holds a run that will be replaced (``False``: new or empty)
        :raises SmoothRLError: for a folder holding files but no run, or a run without ``overwrite``
        """
        if is_empty_dir(self.path):
            return False
        if not is_run_dir(self.path):
            raise SmoothRLError(
                f"{self.path} holds files but no smoothrl run (no {CONFIG}); "
                "@overwrite replaces runs only: pass another @run_dir"
            )
        if not overwrite:
            raise SmoothRLError(
                f"{self.path} already holds a run; pass @resume to continue it or @overwrite to replace it"
            )
        return True

    @contextlib.contextmanager
    def writing(self) -> Iterator[RunDir]:
        """Hold the lock while writing (see :func:`locked`), after removing a dead writer's temporary files."""
        with locked(self.path):
            clean_temp_files(self.path)
            yield self

    @contextlib.contextmanager
    def replacing(self, replace: bool) -> Iterator[None]:
        """
        Write a new run in place of the one there: the old one's files (all but the lock) are
        moved to a sibling folder first, put back if the body raises, and removed once it returns.
        Call it holding the lock (:meth:`writing`).

        :param replace: whether there is a run to replace (``False``: the body runs as it is)
        """
        if not replace:
            yield
            return
        aside = self.path.with_name(f".{self.path.name}.replaced-{os.getpid()}")
        if aside.exists():
            shutil.rmtree(aside)
        aside.mkdir()
        for child in self.path.iterdir():
            if child.name != LOCK:
                os.replace(child, aside / child.name)
        try:
            yield
        except BaseException:
            for child in self.path.iterdir():
                if child.name != LOCK:
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            for child in aside.iterdir():
                os.replace(child, self.path / child.name)
            aside.rmdir()
            raise
        shutil.rmtree(aside)

    def finished(self, ckpt: Checkpoint) -> tuple[bool, bool]:
        """
        :param ckpt: its latest checkpoint
        :return: whether the final model was saved after that checkpoint, and whether the final
            evaluation was written after that model (both: the run finished)
        """
        final, summary = self.path / MODEL, self.path / EVAL
        # the final files are written after the last checkpoint, in this order: newer means finished
        saved = final.is_file() and final.stat().st_mtime_ns >= ckpt.model.stat().st_mtime_ns
        evaluated = saved and summary.is_file() and summary.stat().st_mtime_ns >= final.stat().st_mtime_ns
        return saved, evaluated
