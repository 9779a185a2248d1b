"""smoothrl's env registrations: gymnasium's, plus what the pipeline needs to know of an id.

An id registered here may name a *vectorized* entry point (a batched simulator that steps many
envs at once, used instead of ``gymnasium.make`` per env) and the keyword arguments its
evaluation uses (HVAC envs evaluate on their test weeks). Only gymnasium is imported here, so
registering costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from smoothrl.errors import SmoothRLError


@dataclass(frozen=True)
class EnvRegistration:
    """
    :param env_id: the gymnasium id
    :param vec_entry_point: ``"module:function"`` building its batched VecEnv as
        ``function(env_id, n_envs, seed, **kwargs)``, or ``None`` (one ``gymnasium.make`` per env)
    :param eval_kwargs: env keyword arguments of evaluation (e.g. ``{"split": "test"}``)
    :param splits: the values ``split`` takes (empty: the env has no split)
    :param kpis: the KPIs the env reports in ``info["kpis"]`` at an episode's end
    :param controllers: whether the building controllers that are not learned (the rule
        baselines and the MPC: :mod:`smoothrl.envs.hvac.control`) run on it, which makes it an env
        for ``eval --baselines``, ``tune-baseline`` and ``train --pretrain`` (its simulator's
        interface: ``sim``, the observation layout, the KPIs)
    """

    env_id: str
    vec_entry_point: str | None = None
    eval_kwargs: Mapping[str, Any] = field(default_factory=dict)
    splits: tuple[str, ...] = ()
    kpis: tuple[str, ...] = ()
    controllers: bool = False


#: id -> registration, for every id smoothrl registers
REGISTERED: dict[str, EnvRegistration] = {}


def register(
    env_id: str,
    entry_point: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    vec_entry_point: str | None = None,
    eval_kwargs: Mapping[str, Any] | None = None,
    splits: tuple[str, ...] = (),
    max_episode_steps: int | None = None,
    kpis: tuple[str, ...] = (),
    controllers: bool = False,
) -> None:
    """
    Register an id with gymnasium and with smoothrl (idempotent).

    :param env_id: the id
    :param entry_point: gymnasium's ``"module:Class"``
    :param kwargs: constructor keywords fixed by the id
    :param vec_entry_point: see :class:`EnvRegistration`
    :param eval_kwargs: see :class:`EnvRegistration`
    :param splits: see :class:`EnvRegistration`
    :param max_episode_steps: gymnasium's ``TimeLimit`` (``None``: the env ends its episodes itself)
    :param kpis: see :class:`EnvRegistration`
    :param controllers: see :class:`EnvRegistration`
    """
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry_point, kwargs=dict(kwargs or {}), max_episode_steps=max_episode_steps)
    REGISTERED[env_id] = EnvRegistration(
        env_id, vec_entry_point, dict(eval_kwargs or {}), splits, tuple(kpis), controllers
    )


def with_controllers() -> tuple[str, ...]:
    """:return: the ids the building controllers run on (see :class:`EnvRegistration`)"""
    return tuple(env_id for env_id, reg in REGISTERED.items() if reg.controllers)


def has_controllers(env_id: str) -> bool:
    """:return: whether the building controllers run on ``env_id`` (see :class:`EnvRegistration`)"""
    reg = REGISTERED.get(env_id)
    return reg is not None and reg.controllers


def eval_env_kwargs(env_id: str, split: str | None = None) -> dict[str, Any]:
    """
    The env keyword arguments of an evaluation.

    :param env_id: a gymnasium id
    :param split: the days to evaluate on, for envs with a split (default: the registration's)
    :return: keyword arguments to add to the run's ``env_kwargs``
    :raises SmoothRLError: for a split the env does not have
    """
    reg = REGISTERED.get(env_id)
    if split is None:
        return dict(reg.eval_kwargs) if reg is not None else {}
    if reg is None or not reg.splits:
        raise SmoothRLError(
            f"@split applies to the HVAC envs only (they have train/test days), not to {env_id}; drop it"
        )
    if split not in reg.splits:
        raise SmoothRLError(f"@split must be one of {', '.join(reg.splits)}, got {split!r}")
    return {**reg.eval_kwargs, "split": split}


def env_kpis(env_id: str) -> tuple[str, ...]:
    """:return: the KPIs an env registered here reports (empty for other envs)"""
    reg = REGISTERED.get(env_id)
    return reg.kpis if reg is not None else ()
