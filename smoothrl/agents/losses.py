"""Action-smoothness loss terms shared by the algorithms (CAPS style, extended to orders 1-3).

Temporal term: the finite difference of order ``j`` (velocity, acceleration, jerk) of the
policy's deterministic action along *real consecutive states of the same env*, never across an
episode start (the history buffers of :mod:`smoothrl.agents.buffers` supply those states).
Spatial term: ``||pi(s) - pi(s + N(0, sigma^2))||^2`` (CAPS). Actions are measured in normalized
units (divided by ``high - low``; action probabilities for discrete spaces), squared and
averaged over action dimensions, like the smoothness metrics.

References: Mysore et al., "Regularizing Action Policies for Smooth Control with
Reinforcement Learning" (CAPS, ICRA 2021).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from smoothrl.metrics import check_derivative_weights, difference_coefficients


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
        temporal = dict(self.temporal)
        if self.order is not None:
            temporal[self.order] = self.weight if self.weight is not None else 1.0
        temporal = check_derivative_weights(temporal, "action_reg")
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
    :raises ValueError: for unknown keys or bad orders and weights
    """
    if value is None or isinstance(value, ActionReg):
        return value if value is None or value.active else None
    try:
        reg = ActionReg(**dict(value))
    except TypeError as e:  # an unknown keyword
        raise ValueError(str(e).replace("ActionReg.__init__()", "action_reg")) from None
    return reg if reg.active else None


def finite_difference(seq: th.Tensor, order: int) -> th.Tensor:
    """
    Backward finite difference of order ``j`` at the newest position of a sequence.

    :param seq: ``(k + 1, batch, dim)``, oldest first, ``k >= order``
    :param order: 1, 2 or 3
    :return: ``(batch, dim)``, with :func:`smoothrl.metrics.difference_coefficients`
    """
    window = seq[-(order + 1) :]
    return sum(c * window[i] for i, c in enumerate(difference_coefficients(order)))


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


def reg_inputs(reg: ActionReg, obs: th.Tensor, prev_obs: th.Tensor | None) -> tuple[th.Tensor, slice]:
    """
    Every state the terms need, in one batch: the ``k`` previous states of each sample (oldest
    first), the batch itself, and its noisy copy for the spatial term. One pass of the policy
    over them costs far less than one pass per group on small networks.

    :param reg: the weights
    :param obs: the batch's observations ``(batch, ...)``
    :param prev_obs: ``(k, batch, ...)`` the previous observations (``None`` without temporal terms)
    :return: the states and the rows of the batch itself among them
    """
    k, n = reg.history, len(obs)
    groups = []
    if k > 0:
        assert prev_obs is not None, "temporal terms need the previous observations"
        groups.append(prev_obs[-k:].reshape(-1, *obs.shape[1:]))
    groups.append(obs)
    if reg.spatial_weight > 0:
        groups.append(obs + reg.spatial_sigma * th.randn_like(obs))
    return (th.cat(groups, dim=0) if len(groups) > 1 else obs), slice(k * n, (k + 1) * n)


def action_reg_loss(
    reg: ActionReg,
    actions_of: Callable[[th.Tensor], th.Tensor],
    obs: th.Tensor,
    prev_obs: th.Tensor | None,
    prev_valid: th.Tensor | None,
    actions: th.Tensor | None = None,
) -> tuple[th.Tensor, dict[str, float]]:
    """
    The weighted smoothness loss of one batch.

    :param reg: the weights
    :param actions_of: maps observations ``(batch, ...)`` to normalized actions ``(batch, dim)``
    :param obs: the batch's observations
    :param prev_obs: ``(k, batch, ...)`` the ``k`` previous observations of each sample, oldest first
    :param prev_valid: ``(k, batch)`` bool: ``prev_valid[k - j]`` says the ``j``-th previous state
        is real and in the same episode (then so are all nearer ones)
    :param actions: the normalized actions on :func:`reg_inputs` when the caller has computed them
        (TD3 shares its actor pass); ``None``: computed here with ``actions_of``, in one pass
    :return: the loss and the value of each term (for logging)
    """
    k, n = reg.history, len(obs)
    if actions is None:
        inputs, _ = reg_inputs(reg, obs, prev_obs)
        actions = actions_of(inputs)
    current = actions[k * n : (k + 1) * n]
    loss = th.zeros((), device=obs.device)
    logs: dict[str, float] = {}
    if k > 0:
        assert prev_valid is not None, "temporal terms need the previous observations"
        seq = th.cat([actions[: k * n].reshape(k, n, -1), current[None]], dim=0)
        for order, weight in sorted(reg.temporal.items()):
            if weight <= 0:
                continue
            valid = prev_valid[-order].float()
            per_sample = finite_difference(seq, order).pow(2).mean(dim=1)
            term = (per_sample * valid).sum() / valid.sum().clamp(min=1.0)
            loss = loss + weight * term
            logs[f"order{order}"] = term.item()
    if reg.spatial_weight > 0:
        term = (actions[(k + 1) * n :] - current).pow(2).mean()
        loss = loss + reg.spatial_weight * term
        logs["spatial"] = term.item()
    return loss, logs
