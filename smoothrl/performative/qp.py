"""The regularized occupancy-measure problem as a quadratic program, solved with cvxpy.

``maximize c . d - q / 2 ||d||^2`` over the occupancy measures of a tabular MDP (flow
constraints, ``d >= 0``; absorbing states keep a uniform policy, the norm skips them).
Repeated retraining solves it with ``c = r``, ``q = lambda``; repeated gradient ascent's
projection with ``c = target``, ``q = 1``. Every solution comes with its KKT residual, computed
here from the solver's multipliers, so a loose solve is seen, not trusted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from smoothrl.performative.occupancy import TabularMDP, flow_matrix

#: solvers the problem is handed to (cvxpy names); Clarabel is an interior-point method
#: (accurate to ~1e-8), OSQP an ADMM method (polished), SCS a conic splitting method
SOLVERS = ("CLARABEL", "OSQP", "SCS")
#: Clarabel's tolerances tightened from its defaults (1e-8): with a small lambda the objective is
#: flat along some directions, and at the defaults the solution moved by ~1e-6 while the KKT
#: residual stayed ~1e-10; at these, Clarabel, OSQP and SCS agree to ~1e-10
CLARABEL_OPTIONS = {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "tol_ktratio": 1e-9}


@dataclass(frozen=True)
class QPSolution:
    """
    :param d: the optimal occupancy measure ``(S, A)``
    :param objective: its objective value
    :param kkt_residual: the largest violation of the KKT conditions (stationarity, primal and
        dual feasibility, complementarity)
    :param seconds: wall time of the solve (with cvxpy's compilation)
    """

    d: np.ndarray
    objective: float
    kkt_residual: float
    seconds: float


def _uniform_rows(mdp: TabularMDP) -> sp.csr_matrix:
    """``E d = 0``: every action of an absorbing state gets the same mass."""
    S, A = mdp.r.shape
    rows, cols, vals = [], [], []
    k = 0
    for s in np.flatnonzero(mdp.absorbing):
        for a in range(1, A):
            rows += [k, k]
            cols += [s * A, s * A + a]
            vals += [1.0, -1.0]
            k += 1
    return sp.csr_matrix((vals, (rows, cols)), shape=(k, S * A))


def solve_occupancy_qp(
    mdp: TabularMDP, linear: np.ndarray, quad: float, solver: str = "CLARABEL", **solver_options
) -> QPSolution:
    """
    :param mdp: the MDP whose flow constraints bound ``d``
    :param linear: ``c`` ``(S, A)``
    :param quad: ``q >= 0`` (0: a linear program)
    :param solver: one of :data:`SOLVERS`
    :param solver_options: passed to the solver (e.g. ``eps_abs`` for OSQP; Clarabel's default to
        :data:`CLARABEL_OPTIONS`)
    :return: the solution with its KKT residual
    :raises ValueError: for a negative ``quad`` or an unknown solver
    :raises RuntimeError: when the solver finds no optimal solution
    """
    if not quad >= 0:
        raise ValueError(f"the quadratic weight must be >= 0, got {quad}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    S, A = mdp.r.shape
    F = sp.csr_matrix(flow_matrix(mdp))
    E = _uniform_rows(mdp)
    mask = mdp.transient.ravel().astype(np.float64)
    c = np.asarray(linear, dtype=np.float64).ravel()
    x = cp.Variable(S * A)
    flow, positive = F @ x == mdp.rho, x >= 0
    constraints = [flow, positive]
    if E.shape[0]:
        uniform = E @ x == 0
        constraints.append(uniform)
    objective = c @ x - (quad / 2) * cp.sum_squares(cp.multiply(mask, x)) if quad > 0 else c @ x
    problem = cp.Problem(cp.Maximize(objective), constraints)
    start = time.perf_counter()
    options = {**(CLARABEL_OPTIONS if solver == "CLARABEL" else {}), **solver_options}
    problem.solve(solver=solver, **options)
    seconds = time.perf_counter() - start
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
        raise RuntimeError(f"the occupancy QP was not solved ({solver}: {problem.status})")
    d = np.asarray(x.value)
    # KKT of  min -c.x + q/2 x'Mx  s.t. Fx = rho, Ex = 0, x >= 0 (cvxpy's duals: y for Fx = rho,
    # u for Ex = 0, z >= 0 for x >= 0):  -c + qMx + F'y + E'u - z = 0
    y = np.asarray(flow.dual_value).ravel()
    z = np.asarray(positive.dual_value).ravel()
    stationarity = -c + quad * mask * d + F.T @ y - z
    if E.shape[0]:
        stationarity = stationarity + E.T @ np.asarray(uniform.dual_value).ravel()
    residual = max(
        float(np.abs(stationarity).max()),
        float(np.abs(F @ d - mdp.rho).max()),
        float(np.abs(E @ d).max()) if E.shape[0] else 0.0,
        float(max(-d.min(), 0.0)),
        float(max(-z.min(), 0.0)),
        float(np.abs(d * z).max()),
    )
    d = np.maximum(d, 0.0).reshape(S, A)
    value = float((c * d.ravel()).sum() - quad / 2 * np.sum((mask * d.ravel()) ** 2))
    return QPSolution(d, value, residual, seconds)
