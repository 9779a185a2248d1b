"""How an env id becomes the VecEnv that training, evaluation and every later stage use."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

from smoothrl.envs import check_env_id, make_base_env
from smoothrl.envs.registration import REGISTERED
from smoothrl.envs.vec_wrappers import VecActionSmoothnessReward
from smoothrl.envs.wrappers import ActionSmoothnessReward, ActionTrace
from smoothrl.errors import SmoothRLError


def make_vec_env(
    env_id: str,
    n_envs: int,
    seed: int,
    env_kwargs: dict[str, Any] | None = None,
    smoothness_reward: dict[int, float] | None = None,
) -> VecEnv:
    """
    The vectorized env of an id, before normalization. An id registered with a vectorized entry
    point (the HVAC simulator) is built by it, with ``VecMonitor`` on top; every other id is
    ``gymnasium.make`` + ``ActionTrace`` + ``Monitor`` per env. Reward shaping, when asked for,
    wraps outside the monitor (episode returns stay the env's own).

    :param env_id: a gymnasium id
    :param n_envs: parallel envs
    :param seed: seed of the first env (env ``i`` gets ``seed + i``)
    :param env_kwargs: keyword arguments of the env
    :param smoothness_reward: action-derivative penalty weights per order (``RunConfig.smoothness_reward``)
    :return: the vectorized env
    :raises SmoothRLError: for an unknown id or bad ``env_kwargs``
    """
    check_env_id(env_id)
    env_kwargs = dict(env_kwargs or {})
    registration = REGISTERED.get(env_id)
    try:
        if registration is not None and registration.vec_entry_point is not None:
            module, _, function = registration.vec_entry_point.partition(":")
            build = getattr(import_module(module), function)
            venv: VecEnv = VecMonitor(build(env_id, n_envs, seed, **env_kwargs))
            return VecActionSmoothnessReward(venv, smoothness_reward) if smoothness_reward else venv

        def factory(**kwargs: Any) -> gym.Env:
            return ActionTrace(make_base_env(env_id, **kwargs))

        return sb3_make_vec_env(
            factory,
            n_envs=n_envs,
            seed=seed,
            env_kwargs=env_kwargs,
            vec_env_cls=DummyVecEnv,
            wrapper_class=ActionSmoothnessReward if smoothness_reward else None,
            wrapper_kwargs={"weights": smoothness_reward} if smoothness_reward else None,
        )
    except SmoothRLError:  # the env's own one-line refusal
        raise
    except TypeError as e:
        raise SmoothRLError(f"{env_id} does not accept env_kwargs {env_kwargs} ({e}); fix env_kwargs") from None
    except ValueError as e:  # a wrapper that cannot apply to this env's spaces
        raise SmoothRLError(f"smoothness_reward cannot apply to {env_id}: {e}") from None
