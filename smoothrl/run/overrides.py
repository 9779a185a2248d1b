"""A run's configuration assembled: the algorithm's preset entry for the env (``agents/<algo>.yaml``),
then ``--set KEY=VALUE`` overrides (``key.sub=value`` reaches into dict keys), validated into one
:class:`~smoothrl.run.config.RunConfig` before anything is built or written."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from smoothrl.envs import check_env_id
from smoothrl.errors import SmoothRLError
from smoothrl.registry import get_entry
from smoothrl.run.config import DERIVED_FIELDS, DICT_KEYS, RunConfig, one_line, refuse_renamed
from smoothrl.run.hyperparams import (
    parse_policy_kwargs,
    parse_value,
)


def _auto_freq(n_timesteps: int) -> int:
    """Ten evaluations / checkpoints per run, rounded to a thousand steps (at least 1000)."""
    return max(1000, (n_timesteps // 10) // 1000 * 1000)


def _set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    head, _, sub = key.partition(".")
    refuse_renamed(head)
    if sub:
        if head not in DICT_KEYS:
            raise SmoothRLError(f"'{key}': only {', '.join(DICT_KEYS)} take a sub-key; write {head}=value")
        current = raw.get(head)
        if head == "policy_kwargs":
            current = parse_policy_kwargs(current)
        elif head == "normalize":
            current = {} if current in (None, False, True) else dict(current)
        else:
            current = dict(current or {})
        current[sub] = value
        raw[head] = current
    else:
        raw[key] = value


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """
    Parse ``--set key=value`` items.

    :param items: ``["learning_rate=3e-4", "policy_kwargs.net_arch=[64, 64]"]``
    :return: ``[(key, value), ...]``
    :raises SmoothRLError: for an item without ``=``
    """
    out = []
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise SmoothRLError(f"@set '{item}' is not key=value; write e.g. @set learning_rate=3e-4")
        out.append((key.strip(), parse_value(text.strip())))
    return out


def resolve_config(
    algo: str,
    env: str,
    preset: str | None = None,
    overrides: Sequence[str] = (),
    **fields: Any,
) -> RunConfig:
    """
    Build the RunConfig of a new run: preset, then ``--set`` overrides, then explicit fields.

    :param algo: algorithm name
    :param env: gymnasium id
    :param preset: preset entry of ``agents/<algo>.yaml`` (default: the entry keyed by ``env``,
        or SB3's defaults when there is none)
    :param overrides: ``key=value`` items
    :param fields: RunConfig fields given explicitly (``seed``, ``n_timesteps``, ``n_envs``,
        ``device``, ...); ``None`` values are ignored
    :return: the validated config
    :raises SmoothRLError: for any unknown name or bad value
    """
    entry = get_entry(algo)
    check_env_id(env)
    presets = entry.presets()
    if preset is not None and preset not in presets:
        raise SmoothRLError(
            f"no preset '{preset}' in agents/{entry.name}.yaml; choose one of: {', '.join(presets) or '(none)'}"
        )
    raw: dict[str, Any] = dict(presets.get(preset or env, {}))
    for key, value in parse_overrides(overrides):
        _set_key(raw, key, value)
    for key, value in fields.items():
        if value is not None:
            raw[key] = value
    return build_config(entry.name, env, preset, raw)


def build_config(algo: str, env: str, preset: str | None, raw: Mapping[str, Any]) -> RunConfig:
    """
    Split a flat rl-zoo3 style dict into RunConfig fields and validate it.

    :param algo: algorithm name
    :param env: gymnasium id
    :param preset: the preset name recorded in the config
    :param raw: zoo keys, RunConfig fields and constructor keywords, flat
    :return: the validated config
    :raises SmoothRLError: for any unknown name or bad value
    """
    entry = get_entry(algo)
    raw = dict(raw)
    for key in ("initial_normalization", "freeze_normalization"):
        if key in raw:
            raise SmoothRLError(f"'{key}' is set by the algorithm (S-DQN: from its base_model), not by hand; remove it")
    top = {k: raw.pop(k) for k in list(raw) if k in RunConfig.model_fields and k not in DERIVED_FIELDS}
    if isinstance(top.get("normalize"), str):
        try:
            top["normalize"] = ast.literal_eval(top["normalize"])
        except (ValueError, SyntaxError):
            raise SmoothRLError(f"normalize '{top['normalize']}' is not a bool or a dict; fix it") from None
    if isinstance(top.get("n_timesteps"), float) and float(top["n_timesteps"]).is_integer():
        top["n_timesteps"] = int(top["n_timesteps"])
    hyperparams = {k: v for k, v in raw.items() if k not in DERIVED_FIELDS}
    if "policy_kwargs" in hyperparams:
        hyperparams["policy_kwargs"] = parse_policy_kwargs(hyperparams["policy_kwargs"])
    n_timesteps = top.get("n_timesteps")
    if isinstance(n_timesteps, int) and n_timesteps >= 0:
        top.setdefault("eval_freq", _auto_freq(n_timesteps) if n_timesteps else 0)
        top.setdefault("checkpoint_freq", _auto_freq(n_timesteps) if n_timesteps else 0)
    if "n_timesteps" not in top:
        raise SmoothRLError(
            f"no training budget for {entry.name} on {env}: the preset has no n_timesteps; pass @timesteps N"
        )
    try:
        config = RunConfig(algo=entry.name, env=env, preset=preset, hyperparams=hyperparams, **top)
    except ValidationError as e:
        raise one_line(e) from None
    if entry.run_fields is not None:  # fields the algorithm derives from its keywords (S-DQN's base run)
        try:
            fields = entry.run_fields(config.hyperparams, config.normalize_kwargs is not None)
        except SmoothRLError:
            raise
        except ValueError as e:
            raise SmoothRLError(str(e)) from None
        config = RunConfig.model_validate({**config.model_dump(), **fields})
    return config
