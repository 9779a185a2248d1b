"""The building's thermal network, integrated exactly at any step length.

Each zone has an air node ``T_a`` (capacity ``C_a``) and a mass node ``T_m`` (``C_m``)::

    C_a dT_a/dt = H_ao (T_out - T_a) + H_am (T_m - T_a) + sum_j H_zj (T_a,j - T_a) + Q_a
    C_m dT_m/dt = H_am (T_a - T_m) + H_em (T_out - T_m) + Q_m

With the inputs ``u = [T_out, Q_a (per zone), Q_m (per zone)]`` held over a step (zero-order
hold), ``x' = A x + B u`` has the exact solution ``x(dt) = A_d x0 + B_d u`` with
``[A_d, B_d] = expm([[A, B], [0, 0]] dt)``. The same matrix exponential, augmented with
``y' = x``, gives the exact integral of the state over the step, from which the heat lost
through the envelope is computed: heat in = heat stored + heat lost holds to round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

from smoothrl.envs.hvac.spec import HVACSpec


@dataclass(frozen=True)
class ThermalModel:
    """
    The discretized network of one building type.

    State ``x = [T_a (Z), T_m (Z)]``; inputs ``u = [T_out, Q_a (Z), Q_m (Z)]`` in degC and W.

    :param n_zones: Z
    :param dt: step length, s
    :param a: continuous-time state matrix ``(2Z, 2Z)``
    :param b: continuous-time input matrix ``(2Z, 1 + 2Z)``
    :param ad: ``x(dt) = ad @ x0 + bd @ u``
    :param bd: see ``ad``
    :param sx: ``integral of x over the step = sx @ x0 + su @ u`` (K s)
    :param su: see ``sx``
    :param capacity: node capacities ``(2Z,)``, J/K
    :param h_out: node conductances to outdoors ``(2Z,)``, W/K
    """

    n_zones: int
    dt: float
    a: np.ndarray
    b: np.ndarray
    ad: np.ndarray
    bd: np.ndarray
    sx: np.ndarray
    su: np.ndarray
    capacity: np.ndarray
    h_out: np.ndarray

    @classmethod
    def from_spec(cls, spec: HVACSpec, dt: float | None = None) -> ThermalModel:
        """
        :param spec: the HVAC spec
        :param dt: step length in seconds (default: ``spec.step_minutes``)
        :return: the exactly discretized model
        """
        dt = spec.step_minutes * 60.0 if dt is None else dt
        z = len(spec.zones)
        n, m = 2 * z, 1 + 2 * z
        c = np.array([zn.capacity_air for zn in spec.zones] + [zn.capacity_mass for zn in spec.zones])
        h_ao = np.array([zn.h_air_out for zn in spec.zones])
        h_am = np.array([zn.h_air_mass for zn in spec.zones])
        h_em = np.array([zn.h_mass_out for zn in spec.zones])
        g = np.zeros((n, n))  # conductance matrix between nodes
        for i in range(z):
            g[i, z + i] = g[z + i, i] = h_am[i]
        for i, j, h in spec.interzone:
            g[i, j] += h
            g[j, i] += h
        h_out = np.r_[h_ao, h_em]
        a = (g - np.diag(g.sum(axis=1) + h_out)) / c[:, None]
        b = np.zeros((n, m))
        b[:, 0] = h_out / c
        b[:, 1:] = np.diag(1.0 / c)
        big = np.zeros((2 * n + m, 2 * n + m))
        big[:n, :n] = a
        big[:n, n : n + m] = b
        big[n + m :, :n] = np.eye(n)
        e = expm(big * dt)
        return cls(z, dt, a, b, e[:n, :n], e[:n, n : n + m], e[n + m :, :n], e[n + m :, n : n + m], c, h_out)

    def step(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """
        :param x: states ``(batch, 2Z)``
        :param u: inputs ``(batch, 1 + 2Z)``
        :return: states one step later
        """
        return x @ self.ad.T + u @ self.bd.T

    def integral(self, x: np.ndarray, u: np.ndarray) -> np.ndarray:
        """
        :param x: states at the start of the step ``(batch, 2Z)``
        :param u: inputs over the step
        :return: the integral of the state over the step, K s
        """
        return x @ self.sx.T + u @ self.su.T

    def energy_balance(self, x0: np.ndarray, u: np.ndarray) -> dict[str, np.ndarray]:
        """
        The step's heat balance, in J per building.

        :param x0: states at the start of the step ``(batch, 2Z)``
        :param u: inputs over the step
        :return: ``heat_in`` (gains and HVAC), ``stored`` (change of stored heat), ``lost``
            (to outdoors through the envelope and ventilation); ``heat_in = stored + lost``
        """
        x1 = self.step(x0, u)
        integral = self.integral(x0, u)
        heat_in = u[:, 1:].sum(axis=1) * self.dt
        stored = ((x1 - x0) * self.capacity).sum(axis=1)
        lost = ((integral - u[:, :1] * self.dt) * self.h_out).sum(axis=1)
        return {"heat_in": heat_in, "stored": stored, "lost": lost}

    def time_constants(self) -> np.ndarray:
        """:return: the network's time constants ``-1 / eigenvalue(A)``, s, ascending"""
        return np.sort(-1.0 / np.linalg.eigvals(self.a).real)
