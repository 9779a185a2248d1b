"""Tabular MDPs in occupancy-measure space: the objects the performative solvers work on.

A state-action occupancy measure of a policy ``pi`` in an MDP ``(P, r, rho, gamma)`` is
``d(s, a) = sum_t gamma^t Pr(s_t = s, a_t = a)``. It satisfies the flow constraints
``sum_a d(s, a) = rho(s) + gamma sum_{s', a'} P(s', a', s) d(s', a')`` at every state, sums to
``1 / (1 - gamma)``, and gives its policy back as ``pi(a | s) = d(s, a) / sum_a d(s, a)``.

Absorbing states (a goal: zero reward, every action stays) are kept in the measure, so it sums
to ``1 / (1 - gamma)``; their policy is fixed uniform (it changes nothing) and they are left out
of the regularizer and of the relative change, as the paper's code leaves the goal out of its
flow constraints: on the other states the solutions are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TabularMDP:
    """
    :param P: transition probabilities ``(S, A, S)``, rows summing to 1
    :param r: expected rewards ``(S, A)``
    :param rho: initial state distribution ``(S,)``
    :param gamma: discount factor in ``[0, 1)``
    :param absorbing: ``(S,)`` states that keep every action in place with zero reward
    """

    P: np.ndarray
    r: np.ndarray
    rho: np.ndarray
    gamma: float
    absorbing: np.ndarray

    @property
    def n_states(self) -> int:
        """S."""
        return self.r.shape[0]

    @property
    def n_actions(self) -> int:
        """A."""
        return self.r.shape[1]

    @property
    def transient(self) -> np.ndarray:
        """``(S, A)`` bool: the entries the regularizer and the relative change read."""
        return np.broadcast_to(~self.absorbing[:, None], self.r.shape)

    def check(self, atol: float = 1e-9) -> None:
        """
        :raises ValueError: when the shapes, the probabilities or the absorbing states are wrong
        """
        S, A = self.r.shape
        if self.P.shape != (S, A, S) or self.rho.shape != (S,) or self.absorbing.shape != (S,):
            raise ValueError(f"shapes do not fit: P {self.P.shape}, r {self.r.shape}, rho {self.rho.shape}")
        if not 0 <= self.gamma < 1:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        if (-atol > self.P).any() or not np.allclose(self.P.sum(axis=2), 1.0, atol=atol):
            raise ValueError("every P[s, a] must be a probability distribution")
        if (self.rho < -atol).any() or not np.isclose(self.rho.sum(), 1.0, atol=atol):
            raise ValueError("rho must be a probability distribution")
        for s in np.flatnonzero(self.absorbing):
            if not (np.allclose(self.P[s, :, s], 1.0) and np.allclose(self.r[s], 0.0)):
                raise ValueError(f"absorbing state {s} must keep every action in place with zero reward")


def state_transitions(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    """:return: ``P_pi[s, s'] = sum_a pi(a | s) P(s, a, s')``"""
    return np.einsum("sa,sat->st", pi, mdp.P)


def occupancy(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    """
    The exact occupancy measure of a policy (one linear solve).

    :param mdp: the MDP
    :param pi: the policy ``(S, A)``, rows summing to 1
    :return: ``d`` ``(S, A)``
    """
    S = mdp.n_states
    d_state = np.linalg.solve(np.eye(S) - mdp.gamma * state_transitions(mdp, pi).T, mdp.rho)
    return np.maximum(d_state, 0.0)[:, None] * pi


def policy_from_occupancy(d: np.ndarray) -> np.ndarray:
    """
    :param d: an occupancy measure ``(S, A)``
    :return: ``pi(a | s) = d(s, a) / sum_a d(s, a)``, uniform where a state has no mass
    """
    d = np.maximum(d, 0.0)
    mass = d.sum(axis=1, keepdims=True)
    uniform = np.full_like(d, 1.0 / d.shape[1])
    return np.divide(d, mass, out=uniform, where=mass > 1e-12)


def flow_matrix(mdp: TabularMDP) -> np.ndarray:
    """
    :return: ``F`` ``(S, S*A)`` with ``F @ d.ravel() = rho`` the flow constraints:
        ``F[s', (s, a)] = 1[s = s'] - gamma P(s, a, s')``
    """
    S, A = mdp.r.shape
    outflow = np.repeat(np.eye(S), A, axis=1)
    return outflow - mdp.gamma * mdp.P.reshape(S * A, S).T


def flow_residual(mdp: TabularMDP, d: np.ndarray) -> float:
    """:return: the largest violation of the flow constraints (0 for an occupancy measure)"""
    return float(np.abs(flow_matrix(mdp) @ d.ravel() - mdp.rho).max())


def value(mdp: TabularMDP, pi: np.ndarray) -> float:
    """:return: the expected discounted return ``sum d(s, a) r(s, a)`` of ``pi`` in ``mdp``"""
    return float((occupancy(mdp, pi) * mdp.r).sum())


def regularized_objective(mdp: TabularMDP, d: np.ndarray, lam: float) -> float:
    """:return: ``d . r - lam / 2 ||d||^2`` (the norm over the transient entries)"""
    return float((d * mdp.r).sum() - lam / 2 * np.sum(d[mdp.transient] ** 2))


def relative_change(d_new: np.ndarray, d_old: np.ndarray, mask: np.ndarray | None = None) -> float:
    """
    :param d_new: this round's occupancy measure
    :param d_old: the last round's
    :param mask: entries to compare (default: all)
    :return: ``||d_new - d_old|| / ||d_old||`` (Euclidean)
    """
    if mask is not None:
        d_new, d_old = d_new[mask], d_old[mask]
    return float(np.linalg.norm(d_new - d_old) / max(np.linalg.norm(d_old), 1e-300))
