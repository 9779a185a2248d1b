"""Action-smoothness loss terms shared by the algorithms (CAPS style, extended to orders 1-3).

Temporal term: the finite difference of order ``j`` (velocity, acceleration, jerk) of the
policy's deterministic action along *real consecutive states of the same env*, never across an
episode start. Spatial term: ``||pi(s) - pi(s + N(0, sigma^2))||^2`` (CAPS). Actions are
measured in normalized units (divided by ``high - low``; action probabilities for discrete
spaces), squared and averaged over action dimensions, like the smoothness metrics.

References: Mysore et al., "Regularizing Action Policies for Smooth Control with
Reinforcement Learning" (CAPS, ICRA 2021).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from math import comb
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer, RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import ReplayBufferSamples, RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


@dataclass(frozen=True)
class ActionReg:
    """
    Weights of the action-smoothness loss terms.

    ``ActionReg(order=3, weight=0.1)`` is shorthand for ``ActionReg(temporal={3: 0.1})``.

    :param temporal: weight per derivative order (1: velocity, 2: acceleration, 3: jerk)
    :param spatial_weight: weight of the CAPS spatial term
    :param spatial_sigma: standard deviation of the spatial term's observation noise
        (in the units the policy sees, i.e. after normalization)
    :param order: shorthand: one temporal order ...
    :param weight: ... with this weight
    """

    temporal: Mapping[int, float] = field(default_factory=dict)
    spatial_weight: float = 0.0
    spatial_sigma: float = 0.05
    order: int | None = None
    weight: float | None = None

    def __post_init__(self) -> None:
        temporal = {int(k): float(v) for k, v in dict(self.temporal).items()}
        if self.order is not None:
            temporal[int(self.order)] = float(self.weight if self.weight is not None else 1.0)
        for order, weight in temporal.items():
            if order not in (1, 2, 3):
                raise ValueError(f"action_reg orders are 1, 2 or 3, got {order}")
            if weight < 0:
                raise ValueError(f"action_reg weights must be >= 0, got {weight} for order {order}")
        if self.spatial_weight < 0 or self.spatial_sigma <= 0:
            raise ValueError("action_reg needs spatial_weight >= 0 and spatial_sigma > 0")
        object.__setattr__(self, "temporal", temporal)

    @property
    def history(self) -> int:
        """Previous states a sample needs (the highest temporal order)."""
        return max((k for k, w in self.temporal.items() if w > 0), default=0)

    @property
    def active(self) -> bool:
        """Whether any term has a positive weight."""
        return self.history > 0 or self.spatial_weight > 0


def as_action_reg(value: ActionReg | Mapping[str, Any] | None) -> ActionReg | None:
    """
    :param value: an ``ActionReg``, its keyword arguments as a dict (from YAML), or ``None``
    :return: the ``ActionReg`` (``None`` when off)
    """
    if value is None or isinstance(value, ActionReg):
        return value if value is None or value.active else None
    reg = ActionReg(**dict(value))
    return reg if reg.active else None


def finite_difference(seq: th.Tensor, order: int) -> th.Tensor:
    """
    Backward finite difference of order ``j`` at the newest position of a sequence.

    :param seq: ``(k + 1, batch, dim)``, oldest first, ``k >= order``
    :param order: 1, 2 or 3
    :return: ``(batch, dim)``: ``sum_i (-1)^(order - i) C(order, i) seq[-(order + 1) + i]``
    """
    window = seq[-(order + 1) :]
    coeffs = [(-1) ** (order - i) * comb(order, i) for i in range(order + 1)]
    return sum(c * window[i] for i, c in enumerate(coeffs))


def policy_actions(policy: ActorCriticPolicy, obs: th.Tensor, action_space: spaces.Space) -> th.Tensor:
    """
    The policy's deterministic action in normalized units, differentiable.

    :param policy: an actor-critic policy
    :param obs: observations (already preprocessed by SB3's buffer: normalized if VecNormalize is on)
    :param action_space: the env's action space
    :return: ``(batch, dim)``: mean action / (high - low) for Box; action probabilities otherwise
    """
    dist = policy.get_distribution(obs)
    if isinstance(action_space, spaces.Box):
        span = th.as_tensor(action_space.high - action_space.low, dtype=th.float32, device=obs.device)
        return dist.mode().reshape(len(obs), -1) / span
    inner = dist.distribution
    if isinstance(inner, list):  # MultiCategorical
        return th.cat([d.probs for d in inner], dim=1)
    return inner.probs


def action_reg_loss(
    reg: ActionReg, actions_of: Any, obs: th.Tensor, prev_obs: th.Tensor | None, prev_valid: th.Tensor | None
) -> tuple[th.Tensor, dict[str, float]]:
    """
    The weighted smoothness loss of one batch.

    :param reg: the weights
    :param actions_of: callable mapping observations ``(batch, ...)`` to normalized actions ``(batch, dim)``
    :param obs: the batch's observations
    :param prev_obs: ``(k, batch, ...)`` the ``k`` previous observations of each sample, oldest first
    :param prev_valid: ``(k, batch)`` bool: ``prev_valid[k - j]`` says the ``j``-th previous state
        is real and in the same episode (then so are all nearer ones)
    :return: the loss and the value of each term (for logging)
    """
    current = actions_of(obs)
    loss = th.zeros((), device=obs.device)
    logs: dict[str, float] = {}
    k = reg.history
    if k > 0:
        assert prev_obs is not None and prev_valid is not None, "temporal terms need the previous observations"
        flat = prev_obs[-k:].reshape(-1, *obs.shape[1:])
        seq = th.cat([actions_of(flat).reshape(k, len(obs), -1), current[None]], dim=0)
        for order, weight in sorted(reg.temporal.items()):
            if weight <= 0:
                continue
            valid = prev_valid[-order].float()
            per_sample = finite_difference(seq, order).pow(2).mean(dim=1)
            term = (per_sample * valid).sum() / valid.sum().clamp(min=1.0)
            loss = loss + weight * term
            logs[f"order{order}"] = term.item()
    if reg.spatial_weight > 0:
        noisy = obs + reg.spatial_sigma * th.randn_like(obs)
        term = (actions_of(noisy) - current).pow(2).mean()
        loss = loss + reg.spatial_weight * term
        logs["spatial"] = term.item()
    return loss, logs


class SmoothRolloutBufferSamples(NamedTuple):
    """``RolloutBufferSamples`` plus each sample's previous observations (for the temporal terms)."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    prev_observations: th.Tensor  # (k, batch, *obs_shape), oldest first
    prev_valid: th.Tensor  # (k, batch) bool


class SmoothRolloutBuffer(RolloutBuffer):
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

    def get(self, batch_size: int | None = None) -> Generator[SmoothRolloutBufferSamples, None, None]:  # type: ignore[override]
        if not self.generator_ready:
            self._prev_index, self._prev_valid = self._previous()
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> SmoothRolloutBufferSamples:  # type: ignore[override]
        base: RolloutBufferSamples = super()._get_samples(batch_inds, env)
        prev = self.observations[self._prev_index[:, batch_inds]]  # (k, batch, *obs)
        return SmoothRolloutBufferSamples(
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


class ActionRegMixin:
    """
    The ``action_reg`` keyword of smoothrl's algorithms. Subclasses name the buffer that keeps
    each sample's previous states (``_history_buffer``) and the policy's deterministic action in
    normalized units (``_reg_actions``); :meth:`_action_reg_term` gives a batch's loss.

    :param args: the algorithm's positional arguments
    :param action_reg: the loss terms (:class:`ActionReg` or its keywords as a dict); ``None``: off
    :param kwargs: the algorithm's keyword arguments
    """

    action_reg: ActionReg | None
    #: ``(buffer class keyword, buffer kwargs keyword, buffer class)`` of the algorithm family
    _history_buffer: tuple[str, str, type]

    def __init__(self, *args: Any, action_reg: ActionReg | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.action_reg = as_action_reg(action_reg)
        if self.action_reg is not None and self.action_reg.history > 0:
            class_key, kwargs_key, buffer_class = self._history_buffer
            kwargs.setdefault(class_key, buffer_class)
            kwargs[kwargs_key] = {**(kwargs.get(kwargs_key) or {}), "history": self.action_reg.history}
        super().__init__(*args, **kwargs)

    def _reg_actions(self, obs: th.Tensor) -> th.Tensor:
        """The policy's deterministic action in normalized units, differentiable."""
        raise NotImplementedError

    def _action_reg_term(self, data: Any, logs: dict[str, list[float]]) -> th.Tensor | float:
        """The action-smoothness loss of one batch (0 when ``action_reg`` is off); appends to ``logs``."""
        if self.action_reg is None:
            return 0.0
        loss, values = action_reg_loss(
            self.action_reg,
            self._reg_actions,
            data.observations,
            getattr(data, "prev_observations", None),
            getattr(data, "prev_valid", None),
        )
        for key, value in values.items():
            logs.setdefault(key, []).append(value)
        return loss

    def _record_action_reg(self, logs: dict[str, list[float]]) -> None:
        """Log each term's mean as ``train/action_reg_<term>``."""
        for key, values in logs.items():
            self.logger.record(f"train/action_reg_{key}", float(np.mean(values)))  # type: ignore[attr-defined]


class OnPolicyActionRegMixin(ActionRegMixin):
    """``action_reg`` for PPO and A2C: the rollout buffer keeps each sample's previous states."""

    _history_buffer = ("rollout_buffer_class", "rollout_buffer_kwargs", SmoothRolloutBuffer)

    def _reg_actions(self, obs: th.Tensor) -> th.Tensor:
        return policy_actions(self.policy, obs, self.action_space)  # type: ignore[attr-defined]


class OffPolicyActionRegMixin(ActionRegMixin):
    """
    ``action_reg`` for SAC, TD3 and DDPG: the replay buffer keeps each sample's previous states;
    the actor's deterministic action (``_deterministic_actions``, squashed to ``[-1, 1]``) is
    halved into normalized units.
    """

    _history_buffer = ("replay_buffer_class", "replay_buffer_kwargs", HistoryReplayBuffer)

    def _deterministic_actions(self, obs: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    def _reg_actions(self, obs: th.Tensor) -> th.Tensor:
        return self._deterministic_actions(obs) / 2.0
