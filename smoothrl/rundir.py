"""The RUN DIR: its file layout, atomic writes and checkpoint discovery.

A run directory holds ``model.zip``, ``config.yaml``, ``vecnormalize.pkl`` (when observations
or rewards are normalized), ``tb/`` (TensorBoard), ``checkpoints/`` and ``eval.json``. Every
file is written to a temporary name in the same folder and renamed into place, so an
interrupted write never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "model.zip"
CONFIG = "config.yaml"
VECNORMALIZE = "vecnormalize.pkl"
EVAL = "eval.json"
TB = "tb"
CHECKPOINTS = "checkpoints"
TB_RUN_NAME = "run"

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
    :return: whether it does not exist or is an empty folder
    """
    p = Path(path)
    return not p.exists() or (p.is_dir() and not any(p.iterdir()))
