"""Gymnasium wrappers, each doing one thing."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: ``info`` key holding the action the wrapped env received, in normalized units (``[0, 1]``).
ACTION_INFO_KEY = "action_unit"


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
