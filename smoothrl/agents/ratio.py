"""PPO's policy surrogate and its trust-region variants (``ratio`` keyword of :class:`smoothrl.PPO`).

With ``r = pi_theta(a|s) / pi_old(a|s)`` and advantage ``A``, the policy loss is:

- ``clip`` (SB3's PPO): ``-E[min(r A, clip(r, 1 - eps, 1 + eps) A)]``;
- ``none``: the unclipped importance-weighted surrogate ``-E[r A]``;
- ``pspo`` (PSPO 2025, which calls it probability smoothing; here: *mixing*, to keep it apart from
  action smoothness and randomized smoothing): the policy's probability (density, for continuous
  actions) is mixed with the old one, ``pi_s = (1 - alpha) pi_theta + alpha pi_old``, so the ratio
  becomes ``r_s = (1 - alpha) r + alpha`` and the loss ``-E[r_s A]``, with no min and no clip;
- ``pspo_clip``: the mixed ratio ``r_s`` in PPO's clipped surrogate;
- ``spo`` (Simple Policy Optimization): ``-E[r A - |A| (r - 1)^2 / (2 eps)]``.

What the mixing does, exactly: ``d(-E[r_s A]) = (1 - alpha) d(-E[r A])``, so ``pspo`` is ``none``
with its gradient scaled by ``1 - alpha``; and ``min(r_s A, clip(r_s) A) = (1 - alpha) min(r A,
clip(r, 1 +- eps / (1 - alpha)) A) + alpha A``, so ``pspo_clip`` is PPO-clip with the wider clip
range ``eps / (1 - alpha)``, scaled by ``1 - alpha``, plus a constant. Adam is nearly invariant to a
constant scale of the whole gradient; what remains of the mixing is the policy term's smaller
weight against the value and entropy terms (when they share parameters or the gradient-norm
clip) and, for ``pspo_clip``, the wider clip range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch as th

RatioMode = Literal["clip", "none", "pspo", "pspo_clip", "spo"]
RATIO_MODES: tuple[str, ...] = get_args(RatioMode)
#: the modes whose loss uses ``clip_range`` (``eps``)
USES_CLIP_RANGE = ("clip", "pspo_clip", "spo")


def check_ratio(mode: str, alpha: float, clip_range: float | Callable[[float], float] | None) -> None:
    """
    Check a ``ratio`` configuration; raise at construction rather than in the first update.

    :param mode: one of :data:`RATIO_MODES`
    :param alpha: PSPO's mixing weight, in [0, 1)
    :param clip_range: PPO's clip range (a number or a schedule of the remaining progress)
    :raises ValueError: with what is wrong and how to fix it
    """
    if mode not in RATIO_MODES:
        raise ValueError(f"unknown ratio mode {mode!r}; use one of {', '.join(RATIO_MODES)}")
    if not (isinstance(alpha, int | float) and 0.0 <= alpha < 1.0):
        raise ValueError(f"pspo_alpha must be in [0, 1), got {alpha!r}")
    if mode in USES_CLIP_RANGE:
        eps = clip_range(1.0) if callable(clip_range) else clip_range
        if eps is None or not (isinstance(eps, int | float) and eps > 0):
            raise ValueError(f"ratio={mode!r} needs a positive clip_range, got {eps!r}")


def mixed_log_ratio(log_ratio: th.Tensor, alpha: float) -> th.Tensor:
    """
    ``log r_s`` with ``r_s = (1 - alpha) r + alpha``, computed in log space: the mixture
    ``(1 - alpha) pi_theta + alpha pi_old`` divided by ``pi_old`` never exponentiates a density.

    :param log_ratio: ``log pi_theta(a|s) - log pi_old(a|s)``
    :param alpha: mixing weight in [0, 1)
    :return: the log of the mixed ratio, same shape
    """
    if alpha == 0.0:
        return log_ratio
    return th.logaddexp(log_ratio + math.log1p(-alpha), th.full_like(log_ratio, math.log(alpha)))


def surrogate_loss(
    mode: str,
    log_prob: th.Tensor,
    old_log_prob: th.Tensor,
    advantages: th.Tensor,
    clip_range: float,
    alpha: float = 0.0,
    diagnostics: bool = True,
) -> tuple[th.Tensor, dict[str, float]]:
    """
    The policy loss of one minibatch under a ratio mode, and its diagnostics.

    ``clip`` evaluates exactly SB3's expression (same operations, same order), so that smoothrl's
    PPO stays bit-identical to SB3's by default.

    :param mode: one of :data:`RATIO_MODES`
    :param log_prob: log-probabilities of the batch's actions under the current policy
    :param old_log_prob: the same under the policy that collected them
    :param advantages: (normalized) advantages
    :param clip_range: ``eps`` (used by ``clip``, ``pspo_clip`` and ``spo``)
    :param alpha: PSPO's mixing weight (``pspo`` and ``pspo_clip``)
    :param diagnostics: also compute ``ratio_dev_mean``, ``ratio_dev_max`` and ``mixed_ratio_dev_mean``
    :return: the loss and its statistics: ``"clip_fraction"`` for the modes that clip, plus
        ``{"ratio_dev_mean", "ratio_dev_max", "mixed_ratio_dev_mean"}`` with ``diagnostics``
    """
    ratio = th.exp(log_prob - old_log_prob)
    stats: dict[str, float] = {}
    if mode == "clip":
        policy_loss_1 = advantages * ratio
        policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
        loss = -th.min(policy_loss_1, policy_loss_2).mean()
        mixed = ratio
    elif mode == "none":
        loss = -(advantages * ratio).mean()
        mixed = ratio
    elif mode in ("pspo", "pspo_clip"):
        mixed = th.exp(mixed_log_ratio(log_prob - old_log_prob, alpha))
        if mode == "pspo":
            loss = -(advantages * mixed).mean()
        else:
            clipped = advantages * th.clamp(mixed, 1 - clip_range, 1 + clip_range)
            loss = -th.min(advantages * mixed, clipped).mean()
    elif mode == "spo":
        loss = -(advantages * ratio - advantages.abs() * (ratio - 1) ** 2 / (2 * clip_range)).mean()
        mixed = ratio
    else:
        raise ValueError(f"unknown ratio mode {mode!r}; use one of {', '.join(RATIO_MODES)}")
    with th.no_grad():
        if mode in ("clip", "pspo_clip"):  # SB3's clip fraction, always (SB3 logs it)
            stats["clip_fraction"] = th.mean((th.abs(mixed - 1) > clip_range).float()).item()
        if diagnostics:
            dev = (ratio - 1).abs()
            stats["ratio_dev_mean"] = dev.mean().item()
            stats["ratio_dev_max"] = dev.max().item()
            stats["mixed_ratio_dev_mean"] = (mixed - 1).abs().mean().item()
    return loss, stats
