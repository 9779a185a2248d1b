"""Smoothness metrics of action signals, pure numpy.

Every function takes an action trace ``actions`` of shape ``(T,)`` or ``(T, d)`` (time first)
together with the action bounds ``low`` and ``high`` (scalars or arrays of shape ``(d,)``), and
measures it in *normalized action units*: ``u = (a - low) / (high - low)``, so a full-range
swing is 1 whatever the physical unit. Traces too short for a metric give ``nan``.

Definitions (DESIGN.md, "Metrics"):

- continuity cost: ``mean_t mean_j ((a_t - a_{t-1}) / (high - low))^2``; reports multiply by 100.
- jerk RMS: ``sqrt(mean_t mean_j ((a_t - 3 a_{t-1} + 3 a_{t-2} - a_{t-3}) / (high - low))^2)``.
- Sm (FFT smoothness, Mysore et al. 2021, CAPS): ``2 / (n f_s) * sum_i M_i f_i`` over the
  single-sided amplitude spectrum ``(f_i, M_i)``, ``n`` its number of bins; averaged over
  action dimensions. It does not depend on ``f_s``.
- switches per day: on/off transitions of each piece of equipment per simulated day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from math import comb

import numpy as np

ArrayLike = np.ndarray | Sequence[float] | Sequence[Sequence[float]]

#: The keys of :func:`smoothness_report`, in the order reports show them.
SMOOTHNESS_KEYS = ("continuity_cost", "jerk_rms", "sm")


def normalize_actions(actions: ArrayLike, low: ArrayLike | float = 0.0, high: ArrayLike | float = 1.0) -> np.ndarray:
    """
    Map actions to normalized units ``(a - low) / (high - low)``, as a ``(T, d)`` float array.

    :param actions: action trace, shape ``(T,)`` or ``(T, d)``
    :param low: lower action bound (scalar or per dimension)
    :param high: upper action bound (scalar or per dimension)
    :return: the trace in normalized units, shape ``(T, d)``
    """
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"actions must have shape (T,) or (T, d), got {a.shape}")
    low_a = np.asarray(low, dtype=np.float64)
    span = np.asarray(high, dtype=np.float64) - low_a
    if np.any(~np.isfinite(span)) or np.any(span <= 0):
        raise ValueError("action bounds must be finite with high > low")
    return (a - low_a) / span


#: The derivative orders of the action-smoothness terms: 1 velocity, 2 acceleration, 3 jerk.
DERIVATIVE_ORDERS = (1, 2, 3)


def difference_coefficients(order: int) -> tuple[int, ...]:
    """
    The coefficients of the backward finite difference of order ``k``, oldest sample first:
    ``Delta^k u_t = sum_i c_i u_{t-k+i}`` with ``c_i = (-1)^(k - i) C(k, i)``. The one definition
    that the metrics, the loss terms (:mod:`smoothrl.agents.losses`) and reward shaping
    (:mod:`smoothrl.envs.wrappers`) share.

    :param order: ``k >= 0``
    :return: ``k + 1`` integers, e.g. ``(-1, 3, -3, 1)`` for ``k = 3``
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return tuple((-1) ** (order - i) * comb(order, i) for i in range(order + 1))


def check_derivative_weights(weights: Mapping[int, float] | None, name: str) -> dict[int, float]:
    """
    Validate weights per derivative order (what ``action_reg`` and ``smoothness_reward`` take).

    :param weights: ``{order: weight}``, orders in :data:`DERIVATIVE_ORDERS`, weights ``>= 0``
    :param name: the parameter's name, for the error message
    :return: the weights with ``int`` orders and ``float`` weights
    :raises ValueError: naming the parameter, the bad entry and what is allowed
    """
    out: dict[int, float] = {}
    for order, weight in dict(weights or {}).items():
        try:
            k, w = int(order), float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"{name} maps orders to weights, got {order!r}: {weight!r}") from None
        if isinstance(order, bool) or k != float(order) or k not in DERIVATIVE_ORDERS:
            raise ValueError(f"{name} orders are 1, 2 or 3, got {order!r}")
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"{name} weights must be finite and >= 0, got {weight!r} for order {k}")
        out[k] = w
    return out


def finite_difference(u: np.ndarray, order: int) -> np.ndarray:
    """
    Backward finite difference of order ``k`` along time: ``sum_i (-1)^i C(k, i) u_{t-i}``.

    Order 1 is ``u_t - u_{t-1}``, order 2 ``u_t - 2u_{t-1} + u_{t-2}``, order 3 (jerk)
    ``u_t - 3u_{t-1} + 3u_{t-2} - u_{t-3}``.

    :param u: signal, time on axis 0
    :param order: 1, 2 or 3 (any non-negative integer works)
    :return: the differences, ``T - order`` rows
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return np.diff(np.asarray(u, dtype=np.float64), n=order, axis=0)


def continuity_cost(actions: ArrayLike, low: ArrayLike | float = 0.0, high: ArrayLike | float = 1.0) -> float:
    """
    Continuity cost: ``mean over t and dimensions of ((a_t - a_{t-1}) / (high - low))^2``.

    0 for a constant signal, 1 for a signal that jumps across the full range every step.
    Reports show it multiplied by 100.

    :param actions: action trace, shape ``(T,)`` or ``(T, d)``
    :param low: lower action bound
    :param high: upper action bound
    :return: the cost, ``nan`` when ``T < 2``
    """
    u = normalize_actions(actions, low, high)
    if len(u) < 2:
        return float("nan")
    return float(np.mean(finite_difference(u, 1) ** 2))


def jerk_rms(actions: ArrayLike, low: ArrayLike | float = 0.0, high: ArrayLike | float = 1.0) -> float:
    """
    Jerk RMS: ``sqrt(mean over t and dimensions of (a_t - 3a_{t-1} + 3a_{t-2} - a_{t-3})^2)``.

    Measured in normalized action units; 0 for any signal that is a polynomial of degree <= 2
    in time.

    :param actions: action trace, shape ``(T,)`` or ``(T, d)``
    :param low: lower action bound
    :param high: upper action bound
    :return: the RMS, ``nan`` when ``T < 4``
    """
    u = normalize_actions(actions, low, high)
    if len(u) < 4:
        return float("nan")
    return float(np.sqrt(np.mean(finite_difference(u, 3) ** 2)))


def amplitude_spectrum(signal: ArrayLike, fs: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """
    Single-sided amplitude spectrum of a real signal (per column).

    ``M_0 = |X_0| / T`` (the mean), ``M_i = 2 |X_i| / T`` for the bins strictly between 0 and
    Nyquist, and ``|X_{T/2}| / T`` at Nyquist for even ``T``: a sine of amplitude ``A`` on a
    bin shows ``M = A`` there.

    :param signal: shape ``(T,)`` or ``(T, d)``
    :param fs: sampling frequency (Hz, or 1 for "per step")
    :return: ``(f, M)`` with ``f`` of shape ``(n,)`` and ``M`` of shape ``(n,)`` or ``(n, d)``
    """
    x = np.asarray(signal, dtype=np.float64)
    t = x.shape[0]
    mag = np.abs(np.fft.rfft(x, axis=0)) / t
    if t % 2 == 0:
        mag[1:-1] *= 2.0
    else:
        mag[1:] *= 2.0
    return np.fft.rfftfreq(t, d=1.0 / fs), mag


def sm(actions: ArrayLike, low: ArrayLike | float = 0.0, high: ArrayLike | float = 1.0, fs: float = 1.0) -> float:
    """
    FFT smoothness ``Sm = 2 / (n f_s) * sum_i M_i f_i`` (Mysore et al. 2021), averaged over dimensions.

    ``(f_i, M_i)`` is the single-sided amplitude spectrum (:func:`amplitude_spectrum`) of the
    trace in normalized units and ``n`` its number of frequency bins. Lower is smoother: a
    constant signal scores 0, and high-frequency content weighs more than low.

    :param actions: action trace, shape ``(T,)`` or ``(T, d)``
    :param low: lower action bound
    :param high: upper action bound
    :param fs: sampling frequency; the result does not depend on it
    :return: Sm, ``nan`` when ``T < 2``
    """
    u = normalize_actions(actions, low, high)
    if len(u) < 2:
        return float("nan")
    f, mag = amplitude_spectrum(u, fs)
    per_dim = 2.0 / (len(f) * fs) * (f[:, None] * mag).sum(axis=0)
    return float(per_dim.mean())


def switches_per_day(on: ArrayLike, steps_per_day: float, initial: ArrayLike | None = None) -> np.ndarray:
    """
    On/off transitions of each piece of equipment, per day.

    ``on[t]`` is the state during control step ``t``, so ``T`` samples span ``T / steps_per_day``
    days. Transitions are counted between consecutive samples, and from ``initial`` (the state
    before the first step) to ``on[0]`` when it is given: that is how the HVAC simulator counts
    its ``switches_per_day`` KPI (a test checks that the two agree).

    :param on: on/off state trace, shape ``(T,)`` or ``(T, k)`` for ``k`` pieces of equipment;
        any non-zero value counts as "on"
    :param steps_per_day: control steps per simulated day (e.g. 96 for 15-minute steps)
    :param initial: the state before the first step, shape ``()`` or ``(k,)`` (``None``: unknown)
    :return: switches per day for each piece of equipment, shape ``(k,)``
    """
    s = np.asarray(on) != 0
    if s.ndim == 1:
        s = s[:, None]
    if steps_per_day <= 0:
        raise ValueError(f"steps_per_day must be > 0, got {steps_per_day}")
    days = len(s) / steps_per_day
    if days == 0:
        return np.full(s.shape[1], np.nan)
    if initial is not None:
        s = np.concatenate([np.broadcast_to(np.asarray(initial) != 0, (1, s.shape[1])), s])
    return np.count_nonzero(s[1:] != s[:-1], axis=0) / days


def smoothness_report(
    actions: ArrayLike, low: ArrayLike | float = 0.0, high: ArrayLike | float = 1.0
) -> dict[str, float]:
    """
    The three smoothness metrics of one trace as reports show them.

    ``continuity_cost`` is multiplied by 100 (percent of the full range, squared).

    :param actions: action trace, shape ``(T,)`` or ``(T, d)``
    :param low: lower action bound
    :param high: upper action bound
    :return: ``{"continuity_cost": ..., "jerk_rms": ..., "sm": ...}``
    """
    return {
        "continuity_cost": 100.0 * continuity_cost(actions, low, high),
        "jerk_rms": jerk_rms(actions, low, high),
        "sm": sm(actions, low, high),
    }


def mean_report(reports: Iterable[dict[str, float]]) -> dict[str, float]:
    """
    Mean of each key over several reports (episodes), ignoring ``nan`` entries.

    :param reports: per-episode reports with the same keys
    :return: the key-wise mean; ``nan`` where no report had a value
    """
    reports = list(reports)
    keys = list(dict.fromkeys(k for r in reports for k in r))
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in reports if k in r], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[k] = float(vals.mean()) if len(vals) else float("nan")
    return out
