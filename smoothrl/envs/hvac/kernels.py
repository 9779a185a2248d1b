"""Compiled (numba) kernels of the HVAC simulator: the plant rules and one whole control step.

Each rule is written once, as a scalar function, and used both by ``HeatPumps`` (the plant's
public methods) and by :func:`step`, which advances every building of a batch in one call.
A step of one building costs a few microseconds instead of ~80 numpy calls on tiny arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from smoothrl.envs.hvac.spec import PlantSpec

KELVIN = 273.15
REF_T_OUT = 7.0  # degC at which heating capacity is rated
# positions in the plant parameter vector (see plant_params)
(
    P_MIN_FRACTION,
    P_MIN_ON,
    P_MIN_OFF,
    P_CAP_HEAT,
    P_CAP_COOL,
    P_DERATE,
    P_DERATE_FLOOR,
    P_EFF,
    P_LIFT_IN,
    P_LIFT_OUT,
    P_COP_MIN,
    P_COP_MAX,
    P_FAN,
) = range(13)
#: columns of the KPI accumulator
K_TDIS, K_ENERGY, K_COST, K_PEAK, K_SWITCHES, K_REFUSED, K_ATVL, K_CLIPPED = range(8)


def plant_params(spec: PlantSpec, min_fraction: float, min_on_steps: int, min_off_steps: int) -> np.ndarray:
    """
    :param spec: plant parameters
    :param min_fraction: lowest running fraction
    :param min_on_steps: steps the compressor must run before it may stop
    :param min_off_steps: steps it must rest before it may start
    :return: the parameter vector the kernels read
    """
    return np.array(
        [
            min_fraction,
            min_on_steps,
            min_off_steps,
            spec.heating_capacity,
            spec.cooling_capacity,
            spec.derate_per_k,
            spec.derate_floor,
            spec.carnot_efficiency,
            spec.lift_indoor,
            spec.lift_outdoor,
            spec.cop_min,
            spec.cop_max,
            spec.fan_power,
        ],
        dtype=np.float64,
    )


@njit(cache=True)
def heating_capacity(pp: np.ndarray, t_out: float) -> float:
    """Heating capacity at ``t_out``: derated linearly below 7 degC, never below the floor."""
    factor = 1.0 - pp[P_DERATE] * (REF_T_OUT - t_out)
    return pp[P_CAP_HEAT] * min(max(factor, pp[P_DERATE_FLOOR]), 1.0)


@njit(cache=True)
def cop(pp: np.ndarray, mode: int, t_zone: float, t_out: float) -> float:
    """Carnot fraction between the coils (heating: indoor coil condenses; cooling: it evaporates), clipped."""
    sign = 1.0 if mode >= 0 else -1.0
    inside = t_zone + sign * pp[P_LIFT_IN]  # T_cond when heating, T_evap when cooling
    outside = t_out - sign * pp[P_LIFT_OUT]
    lift = max(sign * (inside - outside), 1.0)  # T_cond - T_evap
    return min(max(pp[P_EFF] * (inside + KELVIN) / lift, pp[P_COP_MIN]), pp[P_COP_MAX])


@njit(cache=True)
def protect(pp: np.ndarray, request: float, mode: int, level: float, timer: int):
    """
    One compressor's response to a request, with minimum on/off protection.

    :return: ``(mode, level, timer, switched, refused)`` after the step
    """
    size = abs(request)
    want = 0
    if size >= pp[P_MIN_FRACTION] - 1e-12:
        want = 1 if request > 0 else -1
    on = mode != 0
    may = timer >= (pp[P_MIN_ON] if on else pp[P_MIN_OFF])
    switched = False
    refused = False
    if on:
        if want != mode:  # a stop, or a reversal (which passes through off)
            if may:
                mode, level, switched = 0, 0.0, True
            else:
                level, refused = pp[P_MIN_FRACTION], True  # keeps running at its lowest fraction
        else:
            level = size
    elif want != 0:
        if may:
            mode, level, switched = want, size, True
        else:
            refused = True
    if switched:
        timer = 0
    return mode, level, timer + 1, switched, refused


@njit(cache=True)
def power(pp: np.ndarray, mode: int, level: float, t_zone: float, t_out: float):
    """:return: ``(heat into the zone W, electric W)``; heat is negative when cooling"""
    if mode == 0:
        return 0.0, 0.0
    heat = level * heating_capacity(pp, t_out) if mode > 0 else -level * pp[P_CAP_COOL]
    return heat, abs(heat) / cop(pp, mode, t_zone, t_out) + pp[P_FAN] * level**3


@njit(cache=True)
def apply_all(pp, request, mode, level, timer, signal, switched, refused):
    """:func:`protect` for every compressor of a batch, in place."""
    for b in range(request.shape[0]):
        for j in range(request.shape[1]):
            m, lv, t, sw, rf = protect(pp, request[b, j], mode[b, j], level[b, j], timer[b, j])
            mode[b, j], level[b, j], timer[b, j] = m, lv, t
            signal[b, j] = m * lv
            switched[b, j], refused[b, j] = sw, rf


@njit(cache=True)
def power_all(pp, mode, level, t_zone, t_out, heat, electric):
    """:func:`power` for every compressor of a batch, in place."""
    for b in range(mode.shape[0]):
        for j in range(mode.shape[1]):
            heat[b, j], electric[b, j] = power(pp, mode[b, j], level[b, j], t_zone[b, j], t_out[b])


@njit(cache=True)
def band_deviation(low: float, high: float, t0: float, t1: float) -> float:
    """Degrees outside the comfort band at the start and the end of a step (summed; halved by the trapezoid)."""
    return max(low - t0, 0.0) + max(t0 - high, 0.0) + max(low - t1, 0.0) + max(t1 - high, 0.0)


@njit(cache=True)
def account(kpi, dev, electric, price, dt_h, comfort_weight, switches, refusals, travel, clipped):
    """
    One building's step in money, comfort and the KPI accumulator (in place); shared by the RC
    kernel and the EnergyPlus env, so both report the same KPIs for the same trajectory.

    :param kpi: the building's accumulator row (columns ``K_*``)
    :param dev: :func:`band_deviation` summed over the zones
    :param electric: plant electric power, W
    :param travel: actuator travel of the step, mean over zones
    :return: ``(reward, power kW, cost, discomfort K h)``
    """
    disc = 0.5 * dt_h * dev
    p_kw = electric / 1000.0
    energy = p_kw * dt_h
    c = energy * price
    kpi[K_TDIS] += disc
    kpi[K_ENERGY] += energy
    kpi[K_COST] += c
    kpi[K_PEAK] = max(kpi[K_PEAK], p_kw)
    kpi[K_SWITCHES] += switches
    kpi[K_REFUSED] += refusals
    kpi[K_ATVL] += 0.5 * travel
    kpi[K_CLIPPED] += clipped
    return -(c + comfort_weight * disc), p_kw, c, disc


@njit(cache=True)
def step(
    x,
    k,
    request,
    clipped,
    mode,
    level,
    timer,
    signal,
    exo_inputs,
    exo_band,
    ad,
    bd,
    pp,
    dt_h,
    comfort_weight,
    kpi,
    reward,
    power_kw,
    cost,
    discomfort,
    heat,
    u,
):
    """
    Advance every building one control step, in place.

    Per building: the plant answers the requests (:func:`protect`), delivers heat at the start
    temperatures (:func:`power`), the thermal network moves exactly (``x' = ad x + bd u``), and
    reward, discomfort (trapezoid over the step), energy, cost and the KPI accumulators update.
    """
    n_year = exo_inputs.shape[0]
    n, m = ad.shape[0], bd.shape[1]
    zones = request.shape[1]
    x1 = np.empty(n)
    for b in range(x.shape[0]):
        kb = k[b]
        t_out = exo_inputs[kb, 0]
        electric = 0.0
        switches = 0.0
        refusals = 0.0
        travel = 0.0
        for i in range(m):
            u[b, i] = exo_inputs[kb, i]
        for j in range(zones):
            before = signal[b, j]
            md, lv, tm, sw, rf = protect(pp, request[b, j], mode[b, j], level[b, j], timer[b, j])
            mode[b, j], level[b, j], timer[b, j] = md, lv, tm
            signal[b, j] = md * lv
            switches += sw
            refusals += rf
            travel += abs(signal[b, j] - before)
            h, e = power(pp, md, lv, x[b, j], t_out)
            heat[b, j] = h
            electric += e
            u[b, 1 + j] += h
        for i in range(n):
            acc = 0.0
            for jj in range(n):
                acc += ad[i, jj] * x[b, jj]
            for jj in range(m):
                acc += bd[i, jj] * u[b, jj]
            x1[i] = acc
        low, high, price = exo_band[kb, 0], exo_band[kb, 1], exo_band[kb, 2]
        dev = 0.0
        for j in range(zones):
            dev += band_deviation(low, high, x[b, j], x1[j])
        reward[b], power_kw[b], cost[b], discomfort[b] = account(
            kpi[b], dev, electric, price, dt_h, comfort_weight, switches, refusals, travel / zones, clipped[b]
        )
        for i in range(n):
            x[b, i] = x1[i]
        k[b] = (kb + 1) % n_year
