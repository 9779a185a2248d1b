"""Certificates for smoothed policies.

- Discrete actions (vote smoothing; Cohen et al. 2019, as used for S-DQN): with ``pA`` the
  probability of the top action under noise and ``pB`` that of any other, the smoothed decision
  cannot change under any L2 perturbation smaller than
  ``R = sigma / 2 * (PhiInv(pA_lower) - PhiInv(pB_upper))``; the bounds come from separate
  estimation samples (Clopper-Pearson, or Hoeffding as in the reference code), the top action
  from selection samples, and the state is an abstention when ``R <= 0``.
- Continuous actions (median smoothing, percentile smoothing of Chiang et al. 2020): under any
  L2 perturbation of size ``eps`` the median-smoothed action stays between the
  ``Phi(-eps / sigma)`` and ``Phi(eps / sigma)`` percentiles of the noisy outputs at the clean
  state, taken as order statistics valid with probability ``1 - alpha``.
- Reward (policy smoothing, Kumar et al. 2022, the reference's method): for the policy that acts
  on ``s_t + N(0, sigma^2 I)`` with one fresh draw per step, an adversary whose perturbations
  over the whole episode have total L2 norm at most ``B`` cannot push the ``p``-th percentile of
  the return below the ``Phi(PhiInv(p) - B / sigma)``-th percentile of the noisy clean returns.
  Assumptions: the adversary is bounded in the L2 norm over the episode (per-step budget
  ``eps`` over ``T`` steps: ``B = eps sqrt(T)``), it cannot touch the smoothing noise, the bound
  is on a percentile (not the mean) of the return, and it holds for the single-draw smoothed
  policy, not for the median over ``m`` copies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch as th
from scipy import stats

from smoothrl.checks import BUDGET, PROBABILITY, check_number
from smoothrl.errors import SmoothRLError
from smoothrl.robust.smoothing import check_smoothing, noisy_copies
from smoothrl.robust.views import PolicyView

Bound = Literal["cp", "hoeffding"]
#: noisy observations per forward pass: big enough to amortize the call, small enough to stay in
#: the CPU's cache (measured by scripts/bench_certify.py: 64k-row passes were slower than 16k)
CHUNK = 1 << 14


def check_alpha(alpha: float) -> None:
    """:raises SmoothRLError: unless ``0 < alpha < 1``"""
    check_number("@alpha (0.001 is the usual choice)", alpha, PROBABILITY)


def clopper_pearson(k: np.ndarray | int, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Two-sided exact (Clopper-Pearson) confidence interval of a binomial proportion.

    :param k: successes (array or int)
    :param n: trials
    :param alpha: 1 - confidence level
    :return: ``(low, high)``
    """
    k = np.asarray(k, dtype=float)
    low = np.where(k > 0, stats.beta.ppf(alpha / 2, np.maximum(k, 1e-12), n - k + 1), 0.0)
    high = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, np.maximum(n - k, 1e-12)), 1.0)
    return low, high


def lower_bound(k: np.ndarray, n: int, alpha: float, bound: str = "cp") -> np.ndarray:
    """
    One-sided lower confidence bound of a proportion, valid with probability ``1 - alpha``.

    :param k: successes
    :param n: trials
    :param alpha: error probability
    :param bound: ``"cp"`` (Clopper-Pearson) or ``"hoeffding"``
    :return: the bound, in [0, 1]
    """
    if bound == "hoeffding":
        return np.clip(np.asarray(k, dtype=float) / n - math.sqrt(math.log(1 / alpha) / (2 * n)), 0.0, 1.0)
    return clopper_pearson(k, n, 2 * alpha)[0]


def upper_bound(k: np.ndarray, n: int, alpha: float, bound: str = "cp") -> np.ndarray:
    """One-sided upper confidence bound (see :func:`lower_bound`)."""
    return 1.0 - lower_bound(n - np.asarray(k), n, alpha, bound)


def certified_radius(pa_lower: np.ndarray, pb_upper: np.ndarray, sigma: float) -> np.ndarray:
    """
    :param pa_lower: lower bound of the top action's probability under noise
    :param pb_upper: upper bound of every other action's probability
    :param sigma: smoothing noise
    :return: ``sigma / 2 * (PhiInv(pa_lower) - PhiInv(pb_upper))``; ``<= 0`` means abstain
    """
    return sigma / 2 * (stats.norm.ppf(pa_lower) - stats.norm.ppf(pb_upper))


def _vote_counts(
    view: PolicyView, obs: th.Tensor, sigma: float, n: int, generator: th.Generator | None, chunk: int
) -> np.ndarray:
    """``(batch, n_actions)`` counts of the base model's argmax over ``n`` noisy copies per state.

    Passes of at most ``chunk`` rows: groups of whole states when ``n`` is small, else one state's
    samples split over passes."""
    n_actions = int(view.model.action_space.n)
    counts = th.zeros(obs.shape[0], n_actions, dtype=th.long, device=obs.device)
    group = max(1, chunk // n)
    with th.no_grad():
        for i in range(0, obs.shape[0], group):
            states = obs[i : i + group]
            per_pass = max(1, chunk // states.shape[0])
            for done in range(0, n, per_pass):
                m = min(per_pass, n - done)
                out = view.output(noisy_copies(states, sigma, m, generator))
                votes = out.argmax(-1).reshape(m, states.shape[0])
                counts[i : i + group] += th.nn.functional.one_hot(votes, n_actions).sum(0)
    return counts.cpu().numpy()


def certify_discrete(
    view: PolicyView,
    obs: th.Tensor,
    sigma: float,
    n: int,
    n0: int = 100,
    alpha: float = 0.001,
    bound: Bound = "cp",
    generator: th.Generator | None = None,
    chunk: int = CHUNK,
) -> dict[str, np.ndarray]:
    """
    Certify the vote-smoothed decision at each state of a batch.

    :param view: the base model
    :param obs: ``(batch, *shape)`` normalized observations
    :param sigma: smoothing noise
    :param n: estimation samples per state
    :param n0: selection samples per state (pick the top action)
    :param alpha: probability that a certificate is wrong (split over the bounds by a union bound)
    :param bound: ``"cp"`` or ``"hoeffding"``
    :param generator: torch generator of the noise
    :param chunk: noisy observations per forward pass
    :return: ``action`` (top action, -1 when abstaining), ``radius`` (0 when abstaining),
        ``pa_lower``, ``pb_upper``
    """
    check_smoothing(sigma, n, "certify", ("@sigma", "@samples"))
    check_alpha(alpha)
    if not view.discrete:
        raise SmoothRLError("certify_discrete needs discrete actions; use certify_continuous")
    top = _vote_counts(view, obs, sigma, n0, generator, chunk).argmax(1)
    counts = _vote_counts(view, obs, sigma, n, generator, chunk)
    rows = np.arange(len(top))
    k = counts.shape[1]
    pa_lower = lower_bound(counts[rows, top], n, alpha / 2, bound)
    others = counts.copy()
    others[rows, top] = -1
    runner_up = others.max(1)
    pb_upper = upper_bound(np.maximum(runner_up, 0), n, alpha / (2 * max(k - 1, 1)), bound) if k > 1 else 0 * pa_lower
    pb_upper = np.minimum(pb_upper, 1 - pa_lower)
    radius = certified_radius(pa_lower, pb_upper, sigma)
    certified = radius > 0
    return {
        "action": np.where(certified, top, -1),
        "radius": np.where(certified, radius, 0.0),
        "pa_lower": pa_lower,
        "pb_upper": pb_upper,
    }


def order_statistic_indices(n: int, p_low: float, p_high: float, alpha: float) -> tuple[int | None, int | None]:
    """
    0-based indices of the sorted samples that bound the ``p_low`` and ``p_high`` quantiles from
    below and above, each with probability ``1 - alpha / 2``; ``None`` when ``n`` is too small.

    :param n: samples
    :param p_low: the lower quantile level
    :param p_high: the upper quantile level
    :param alpha: error probability of the pair
    :return: ``(lower index, upper index)``
    """
    k_low = int(stats.binom.ppf(alpha / 2, n, p_low))  # P(Bin(n, p_low) <= k_low - 1) <= alpha / 2
    k_high = int(stats.binom.ppf(1 - alpha / 2, n, p_high)) + 1
    return (k_low - 1 if k_low >= 1 else None), (k_high - 1 if k_high <= n else None)


def certify_continuous(
    view: PolicyView,
    obs: th.Tensor,
    sigma: float,
    n: int,
    eps: Sequence[float],
    alpha: float = 0.001,
    generator: th.Generator | None = None,
    chunk: int = CHUNK,
) -> dict[str, np.ndarray]:
    """
    Per-dimension bounds of the median-smoothed action under every L2 perturbation of size ``eps``.

    Actions are in units where the action box is [-1, 1]; a bound that the sample size cannot
    support is the box's edge.

    :param view: the base model
    :param obs: ``(batch, *shape)`` normalized observations
    :param sigma: smoothing noise
    :param n: samples per state
    :param eps: perturbation sizes (L2, normalized observation units)
    :param alpha: probability that a bound is wrong
    :param generator: torch generator of the noise
    :param chunk: noisy observations per forward pass (whole states: at least one state's ``n``)
    :return: ``median`` ``(batch, d)``, ``lower`` and ``upper`` ``(len(eps), batch, d)``, ``width``
        ``(len(eps),)`` (mean over states and dimensions)
    """
    check_smoothing(sigma, n, "certify", ("@sigma", "@samples"))
    check_alpha(alpha)
    for e in eps:
        check_number("@eps", e, BUDGET)
    if view.discrete:
        raise SmoothRLError("certify_continuous needs continuous actions; use certify_discrete")
    group = max(1, chunk // n)  # states per pass
    parts = []
    with th.no_grad():
        for i in range(0, obs.shape[0], group):
            states = obs[i : i + group]
            out = view.unit(view.output(noisy_copies(states, sigma, n, generator))).reshape(n, states.shape[0], -1)
            parts.append(out.sort(dim=0).values.cpu().numpy())
    ordered = np.concatenate(parts, axis=1)
    median = ordered[(n - 1) // 2]
    lower = np.full((len(eps), *median.shape), -1.0)
    upper = np.full((len(eps), *median.shape), 1.0)
    for i, e in enumerate(eps):
        lo, hi = order_statistic_indices(n, stats.norm.cdf(-e / sigma), stats.norm.cdf(e / sigma), alpha)
        if lo is not None:
            lower[i] = np.clip(ordered[lo], -1.0, 1.0)
        if hi is not None:
            upper[i] = np.clip(ordered[hi], -1.0, 1.0)
    return {"median": median, "lower": lower, "upper": upper, "width": (upper - lower).mean(axis=(1, 2))}


def reward_lower_bound(
    returns: Sequence[float], sigma: float, budget: float, percentile: float = 0.5, alpha: float = 0.05
) -> float:
    """
    Certified lower bound of the ``percentile`` of the smoothed policy's return under any
    observation attack of total L2 norm ``budget`` (over the whole episode), from returns of
    episodes played with the smoothing noise (see the module docstring for the assumptions).

    :param returns: returns of the noisy clean episodes
    :param sigma: smoothing noise
    :param budget: total L2 budget ``B`` (``eps * sqrt(T)`` for a per-step budget ``eps``)
    :param percentile: the return percentile bounded (0.5: the median)
    :param alpha: probability that the bound is wrong
    :return: the bound, or ``-inf`` when too few episodes support it
    """
    check_alpha(alpha)
    if not 0 < percentile < 1:
        raise SmoothRLError(f"percentile must be in (0, 1), got {percentile}")
    x = np.sort(np.asarray(returns, dtype=float))
    level = stats.norm.cdf(stats.norm.ppf(percentile) - budget / sigma)
    k = int(stats.binom.ppf(alpha, len(x), level))  # P(Bin(n, level) <= k - 1) <= alpha
    return float(x[k - 1]) if k >= 1 else -math.inf
