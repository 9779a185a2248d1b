"""The same heat-pump signals on EnergyPlus and on the RC model: what ``scripts/calibrate_rc.py``
fits and the tests check."""

from __future__ import annotations

import numpy as np

from smoothrl.envs.eplus.env import EPlusEnv
from smoothrl.envs.hvac.env import HVACEnv
from smoothrl.envs.hvac.spec import HVACSpec

#: the held-out week of the calibration (day of year of its first day)
HELD_OUT_DAY = 105


def excitation(steps: int, zones: int, seed: int) -> np.ndarray:
    """
    :return: ``(steps, zones)`` piecewise constant signals: off, or heating/cooling at 30-100%,
        in blocks of 3-12 hours (12-48 steps of 15 minutes), seeded
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((steps, zones), dtype=np.float32)
    for j in range(zones):
        t = 0
        while t < steps:
            length = int(rng.integers(12, 49))
            kind = rng.choice(3, p=[0.4, 0.35, 0.25])
            level = 0.0 if kind == 0 else float(rng.uniform(0.3, 1.0)) * (1 if kind == 1 else -1)
            out[t : t + length, j] = level
            t += length
    return out


def eplus_trajectory(preset: str, day: int, signals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:return: EnergyPlus's zone temperatures at the start and after each step of ``signals``"""
    env = EPlusEnv(preset=preset)
    try:
        env.reset(seed=0, options={"start_day": day})
        first = env.sim.t_zone[0].copy()
        temps = np.array([env.step(a)[4]["t_zone"] for a in signals])
    finally:
        env.close()
    return first, temps


def rc_trajectory(spec: HVACSpec, day: int, first: np.ndarray, signals: np.ndarray) -> np.ndarray:
    """:return: the RC model's zone temperatures after each step, started at ``first`` (air and mass alike)"""
    env = HVACEnv(spec=spec)
    env.reset(seed=0, options={"start_day": day})
    env.sim.x[0] = np.concatenate([first, first])
    return np.array([env.step(a)[4]["t_zone"] for a in signals])


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    """:return: root mean square difference, K"""
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))
