"""History buffers: SB3's rollout and replay buffers whose samples also carry each sample's
previous observations of the same env (masked where an episode started in between), for the
temporal action-smoothness terms of :mod:`smoothrl.agents.losses`."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples, RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


class HistoryRolloutBufferSamples(NamedTuple):
    """``RolloutBufferSamples`` plus each sample's previous observations (for the temporal terms)."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    prev_observations: th.Tensor  # (k, batch, *obs_shape), oldest first
    prev_valid: th.Tensor  # (k, batch) bool


class HistoryRolloutBuffer(RolloutBuffer):
    """
    A rollout buffer whose samples also carry the ``history`` previous observations of the same
    env, with a mask that is false wherever an episode started in between (or before the rollout).

    :param args: as for ``RolloutBuffer``
    :param history: previous observations per sample (the highest temporal order)
    :param kwargs: as for ``RolloutBuffer``
    """

    def __init__(self, *args: Any, history: int = 1, **kwargs: Any) -> None:
        self.history = history
        super().__init__(*args, **kwargs)

    def _previous(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices ``(k, n)`` and validity ``(k, n)`` of each sample's predecessors, before flattening."""
        n_steps, n_envs, k = self.buffer_size, self.n_envs, self.history
        t = np.arange(n_steps)[None, :].repeat(n_envs, 0).ravel()  # flat order: env-major, as swap_and_flatten
        env = np.arange(n_envs)[:, None].repeat(n_steps, 1).ravel()
        starts = self.episode_starts.T.ravel() > 0  # (env, step) flattened the same way
        index = np.empty((k, len(t)), dtype=np.int64)
        valid = np.empty((k, len(t)), dtype=bool)
        ok = np.ones(len(t), dtype=bool)
        for j in range(1, k + 1):  # j-th predecessor: valid if no episode started in (t - j, t]
            ok &= (t - j >= 0) & ~starts[env * n_steps + np.maximum(t - j + 1, 0)]
            index[k - j] = env * n_steps + np.maximum(t - j, 0)
            valid[k - j] = ok
        return index, valid

    def get(self, batch_size: int | None = None) -> Generator[HistoryRolloutBufferSamples, None, None]:  # type: ignore[override]
        if not self.generator_ready:
            self._prev_index, self._prev_valid = self._previous()
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> HistoryRolloutBufferSamples:  # type: ignore[override]
        base: RolloutBufferSamples = super()._get_samples(batch_inds, env)
        prev = self.observations[self._prev_index[:, batch_inds]]  # (k, batch, *obs)
        return HistoryRolloutBufferSamples(
            *base, self.to_torch(prev), th.as_tensor(self._prev_valid[:, batch_inds], device=self.device)
        )


class HistoryReplayBufferSamples(NamedTuple):
    """``ReplayBufferSamples`` plus each sample's previous observations (for the temporal terms)."""

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    prev_observations: th.Tensor  # (k, batch, *obs_shape), oldest first
    prev_valid: th.Tensor  # (k, batch) bool


class HistoryReplayBuffer(ReplayBuffer):
    """
    A replay buffer whose samples also carry the ``history`` previous observations of the same env.

    The ``j``-th predecessor of transition ``i`` is valid when it is still in the buffer (older
    data was not overwritten in between) and none of the transitions ``i - j .. i - 1`` ended
    an episode, so a temporal term never spans a reset.

    :param args: as for ``ReplayBuffer``
    :param history: previous observations per sample (the highest temporal order)
    :param kwargs: as for ``ReplayBuffer``
    """

    def __init__(self, *args: Any, history: int = 1, **kwargs: Any) -> None:
        self.history = history
        super().__init__(*args, **kwargs)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> HistoryReplayBufferSamples:  # type: ignore[override]
        # SB3's _get_samples draws the env of each sample itself; we need it, so it is drawn here
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        if self.optimize_memory_usage:
            next_obs = self.observations[(batch_inds + 1) % self.buffer_size, env_indices, :]
        else:
            next_obs = self.next_observations[batch_inds, env_indices, :]
        base = ReplayBufferSamples(
            *map(
                self.to_torch,
                (
                    self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
                    self.actions[batch_inds, env_indices, :],
                    self._normalize_obs(next_obs, env),
                    (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
                    self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
                ),
            )
        )
        k = self.history
        oldest = self.pos if self.full else 0
        age = (batch_inds - oldest) % self.buffer_size  # 0 = the oldest transition still stored
        prev = np.empty((k, len(batch_inds), *self.obs_shape), dtype=self.observations.dtype)
        valid = np.empty((k, len(batch_inds)), dtype=bool)
        ok = np.ones(len(batch_inds), dtype=bool)
        for j in range(1, k + 1):
            index = (batch_inds - j) % self.buffer_size
            ok &= (age >= j) & (self.dones[index, env_indices] == 0)
            prev[k - j] = self.observations[index, env_indices]
            valid[k - j] = ok
        return HistoryReplayBufferSamples(
            *base[:5],
            base.discounts,
            self.to_torch(self._normalize_obs(prev, env)),
            th.as_tensor(valid, device=self.device),
        )
