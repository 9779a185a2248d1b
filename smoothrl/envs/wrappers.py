"""Gymnasium wrappers, each doing one thing."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from smoothrl.envs.keys import ACTION_INFO_KEY
from smoothrl.metrics import check_derivative_weights, difference_coefficients


def action_bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray] | None:
    """
    The bounds used to normalize actions of a space.

    A bounded ``Box`` uses its ``low``/``high``; ``Discrete(n, start)`` uses ``start`` and
    ``start + n - 1`` (so a switch between the two extreme actions is 1); ``MultiDiscrete``
    likewise per dimension. Other spaces have no bounds.

    :param space: an action space
    :return: ``(low, high)`` as float arrays, or ``None``
    """
    if isinstance(space, spaces.Box):
        if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
            return space.low.astype(np.float64).ravel(), space.high.astype(np.float64).ravel()
        return None
    if isinstance(space, spaces.Discrete):
        start = float(space.start)
        return np.array([start]), np.array([start + max(int(space.n) - 1, 1)])
    if isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(getattr(space, "start", np.zeros_like(space.nvec)), dtype=np.float64).ravel()
        return start, start + np.maximum(space.nvec.astype(np.float64).ravel() - 1, 1)
    return None


class ActionTrace(gym.Wrapper):
    """
    Put the action this env received into ``info["action_unit"]``, in normalized units.

    Smoothness metrics (training callback, evaluation, plots) are computed from these values,
    so they measure what the environment was actually sent. Wrap it directly around the base
    env. Box actions outside the bounds are clipped first, as the env itself would do.
    Actions of spaces without bounds are recorded as they are.

    :param env: the environment
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._bounds = action_bounds(env.action_space)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        a = np.asarray(action, dtype=np.float64).ravel()
        if self._bounds is not None:
            low, high = self._bounds
            a = (np.clip(a, low, high) - low) / (high - low)
        info = dict(info)
        info[ACTION_INFO_KEY] = a
        return obs, reward, terminated, truncated, info


class ActionHistory:
    """
    The last ``k`` actions of each of ``n`` envs in normalized units, and the derivative penalty on them.

    Shared by :class:`ActionSmoothnessReward` (one env) and
    :class:`~smoothrl.envs.vec_wrappers.VecActionSmoothnessReward` (a VecEnv), so both shape
    rewards identically. The penalty of order ``j`` is ``weight_j * mean over dims of
    (Delta^j u_t)^2`` with ``u`` the action the env received in ``[0, 1]`` units (its
    ``info["action_unit"]``; ``Delta^3 u_t = u_t - 3u_{t-1} + 3u_{t-2} - u_{t-3}``): the same
    signal the smoothness metrics measure. It is zero until the episode has had ``j + 1``
    actions, so it never spans a reset.

    :param n: number of envs
    :param dim: action dimensions
    :param weights: penalty weight per derivative order, e.g. ``{3: 0.1}``
    """

    def __init__(self, n: int, dim: int, weights: dict[int, float]) -> None:
        self.weights = check_derivative_weights(weights, "smoothness_reward")
        self.k = max(self.weights, default=1)
        self.dim = dim
        self.actions = np.zeros((n, self.k + 1, dim))  # newest last
        self.count = np.zeros(n, dtype=np.int64)  # actions seen in the current episode
        self._coeffs = {j: np.array(difference_coefficients(j), dtype=np.float64) for j in self.weights}

    def reset(self, mask: np.ndarray) -> None:
        """
        Forget the masked envs' actions (a new episode starts).

        :param mask: ``(n,)`` bool
        """
        self.actions[mask] = 0.0
        self.count[mask] = 0

    def push(self, unit: np.ndarray) -> np.ndarray:
        """
        Record the actions the envs received and return each env's penalty.

        :param unit: ``(n, dim)`` actions in normalized ``[0, 1]`` units
        :return: ``(n,)`` penalties (to subtract from the reward)
        """
        self.actions[:, :-1] = self.actions[:, 1:]
        self.actions[:, -1] = np.asarray(unit, dtype=np.float64).reshape(len(self.actions), self.dim)
        self.count += 1
        penalty = np.zeros(len(self.actions))
        for order, weight in self.weights.items():
            diff = self.actions[:, -(order + 1) :].transpose(0, 2, 1) @ self._coeffs[order]  # (n, dim)
            penalty += np.where(self.count > order, weight * np.mean(diff**2, axis=1), 0.0)
        return penalty

    def observation(self) -> np.ndarray:
        """:return: ``(n, k * dim)`` the last ``k`` actions (oldest first), zeros before the episode had them"""
        return self.actions[:, 1:].reshape(len(self.actions), -1).astype(np.float32)


def unit_actions(actions: np.ndarray, infos: list[dict[str, Any]], space: spaces.Space) -> np.ndarray:
    """
    The actions the envs received in normalized units: ``info["action_unit"]`` where the env
    reports it, else the actions scaled by the space's bounds.

    :param actions: ``(n, ...)`` actions sent
    :param infos: the step's infos
    :param space: the action space of one env
    :return: ``(n, dim)``
    :raises ValueError: when neither is available
    """
    if all(ACTION_INFO_KEY in info for info in infos):
        return np.stack([np.asarray(info[ACTION_INFO_KEY], dtype=np.float64).ravel() for info in infos])
    bounds = action_bounds(space)
    if bounds is None:
        raise ValueError(f"action smoothness shaping needs a bounded action space, got {space}")
    low, high = bounds
    a = np.asarray(actions, dtype=np.float64).reshape(len(infos), -1)
    return (np.clip(a, low, high) - low) / (high - low)


def action_dim(space: spaces.Space) -> int:
    """
    :param space: an action space
    :return: the number of normalized action entries it has (see :func:`action_bounds`)
    :raises ValueError: for spaces without bounds
    """
    bounds = action_bounds(space)
    if bounds is None:
        raise ValueError(f"action smoothness shaping needs a bounded action space, got {space}")
    return len(bounds[0])


def extended_space(space: spaces.Space, extra: int) -> spaces.Box:
    """
    :param space: a flat Box observation space
    :param extra: entries appended, each in ``[0, 1]``
    :return: the observation space with them
    """
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"action history needs a flat Box observation space, got {space}")
    low = np.concatenate([space.low, np.zeros(extra, dtype=space.dtype)])
    high = np.concatenate([space.high, np.ones(extra, dtype=space.dtype)])
    return spaces.Box(low, high, dtype=space.dtype)


class ActionSmoothnessReward(gym.Wrapper):
    """
    Reward shaping: subtract ``sum_j weight_j * mean (Delta^j u_t)^2`` (normalized action units)
    and append the last ``k`` actions to the observation, so the task stays Markov.

    Put it outside ``ActionTrace`` and ``Monitor``: it penalizes the actions the env received,
    and episode returns stay the env's own. Works with any action space that has bounds,
    discrete ones included.

    :param env: the environment (flat Box observations)
    :param weights: penalty weight per derivative order (1: velocity, 2: acceleration, 3: jerk)
    """

    def __init__(self, env: gym.Env, weights: dict[int, float]) -> None:
        super().__init__(env)
        self.history = ActionHistory(1, action_dim(env.action_space), weights)
        self.observation_space = extended_space(env.observation_space, self.history.k * self.history.dim)

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32), self.history.observation()[0]])

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.history.reset(np.ones(1, dtype=bool))
        return self._obs(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        penalty = float(self.history.push(unit_actions(np.asarray(action)[None], [info], self.action_space))[0])
        info = dict(info)
        info["smoothness_penalty"] = penalty
        return self._obs(obs), float(reward) - penalty, terminated, truncated, info
