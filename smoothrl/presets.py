"""Preset files: ``agents/<algo>.yaml`` (hyperparameters), ``envs/``, ``hardware/``.

Presets live at the top level of the repository and are shipped inside the wheel under
``smoothrl/_presets/``; this module finds them in either place.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from smoothrl.errors import SmoothRLError

_PACKAGE = Path(__file__).resolve().parent


def preset_dir(kind: str) -> Path:
    """
    The folder of one kind of preset.

    :param kind: ``"agents"``, ``"envs"``, ``"hardware"`` or ``"baselines"``
    :return: ``smoothrl/_presets/<kind>`` in an installed wheel, else ``<repo>/<kind>``
    """
    for candidate in (_PACKAGE / "_presets" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    return _PACKAGE.parent / kind


def load_yaml(path: str | Path) -> Any:
    """
    Read a YAML file.

    :param path: the file
    :return: its content
    :raises SmoothRLError: for a missing or malformed file
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise SmoothRLError(f"cannot read {path}: {e.strerror}; check the path") from None
    except UnicodeDecodeError:
        raise SmoothRLError(f"{path} is not a text file (not UTF-8), so not YAML; restore it") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise SmoothRLError(f"{path} is not valid YAML{where}; fix the file") from None


@cache
def _agent_presets(algo: str) -> dict[str, dict[str, Any]]:
    path = preset_dir("agents") / f"{algo}.yaml"
    if not path.exists():
        return {}
    data = load_yaml(path) or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SmoothRLError(f"{path} must map preset names to hyperparameter dicts (rl-zoo3 format); fix the file")
    return data


def agent_presets(algo: str) -> dict[str, dict[str, Any]]:
    """
    The hyperparameter presets of an algorithm, in rl-zoo3 format.

    Entries are keyed by env id (the default for that env) or by a name picked with ``--preset``.

    :param algo: algorithm name
    :return: preset name -> hyperparameters (a fresh copy the caller may change)
    """
    return {k: dict(v) for k, v in _agent_presets(algo).items()}
