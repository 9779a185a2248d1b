"""Tabular performative RL in occupancy-measure space (Mandal et al., ICML 2023; Rank et al., UAI 2024).

Each method is a sequence of deployments: the learner deploys a policy, the environment responds
(its follower best-responds), the learner retrains in the environment the deployment induced.

- ``rr``: repeated retraining, ``d_{t+1} = argmax_{d in C(M_t)} d . r_t - lambda / 2 ||d||^2`` (a QP);
- ``rga``: repeated gradient ascent, ``d_{t+1} = Proj_{C(M_t)}((1 - eta lambda) d_t + eta r_t)``;
- ``finite``: repeated retraining on the plug-in MDP estimated from ``n`` trajectories per round;
- ``mdrr``: Mixed Delayed Repeated Retraining for an environment that moves gradually toward its
  response (``adaptation < 1``): the policy stays deployed for ``delay`` deployments, then the
  learner retrains on the samples of all of them, deployment ``j`` weighted by how far the
  environment has moved toward its response to the deployed policy, ``1 - (1 - w)^j``. (The
  weighting is smoothrl's reading of the method: the paper's own weights could not be checked.)

Per round the result holds the relative occupancy change ``||d_{t+1} - d_t|| / ||d_t||``, the
performative return (the deployed policy's return in the environment it induces, exact), the
regularized objective, RGA's suboptimality gap, the QP's KKT residual and the round's wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from smoothrl.performative.occupancy import (
    TabularMDP,
    occupancy,
    policy_from_occupancy,
    regularized_objective,
    relative_change,
    value,
)
from smoothrl.performative.qp import solve_occupancy_qp

METHODS = ("rr", "rga", "finite", "mdrr")


class TabularWorld(Protocol):
    """What the solvers need of a decision-dependent tabular environment (the gridworld has it)."""

    adaptation: float

    def initial_policy(self) -> np.ndarray: ...

    def response(self, pi: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray: ...

    def learner_mdp(self, follower: np.ndarray) -> TabularMDP: ...

    def sample(self, pi: np.ndarray, follower: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def estimate_mdp(self, transitions: np.ndarray, weights: np.ndarray | None = None) -> TabularMDP: ...


@dataclass
class Retraining:
    """
    The outcome of a tabular run.

    :param method: one of :data:`METHODS`
    :param rounds: one dict per retraining (``round``, ``relative_change``, ``performative_return``,
        ``objective``, ``kkt_residual``, ``seconds``, and ``suboptimality_gap`` for ``rga``,
        ``deployments`` for ``mdrr``)
    :param occupancies: ``d_0, d_1, ...`` (the first: the initial policy's)
    :param policy: the last policy
    """

    method: str
    rounds: list[dict[str, float]] = field(default_factory=list)
    occupancies: list[np.ndarray] = field(default_factory=list)
    policy: np.ndarray | None = None

    def series(self, key: str) -> np.ndarray:
        """:return: one value per round"""
        return np.array([r[key] for r in self.rounds], dtype=np.float64)

    def rounds_to(self, tolerance: float = 1e-3) -> int | None:
        """:return: the first round whose relative change is below ``tolerance``, or ``None``"""
        below = np.flatnonzero(self.series("relative_change") < tolerance)
        return int(self.rounds[below[0]]["round"]) if len(below) else None

    def distance_to_stable(self, tolerance: float = 1e-8) -> np.ndarray | None:
        """
        :return: ``||d_t - d_PS|| / ||d_PS||`` per round, with the last occupancy as the stable
            point ``d_PS``, when the run converged (last relative change below ``tolerance``);
            else ``None`` (the stable point is not known)
        """
        if not self.rounds or self.rounds[-1]["relative_change"] >= tolerance:
            return None
        stable = self.occupancies[-1]
        mask = np.ones(stable.shape, dtype=bool)
        return np.array([relative_change(d, stable, mask) for d in self.occupancies[1:]])


def _check(method: str, lam: float, eta: float | None, samples: int | None, delay: int, rounds: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (isinstance(lam, int | float) and np.isfinite(lam) and lam >= 0):
        raise ValueError(f"lambda must be a finite number >= 0, got {lam!r}")
    if method == "rga" and not (eta is not None and np.isfinite(eta) and eta > 0):
        raise ValueError(f"rga needs a step size eta > 0, got {eta!r}")
    if method in ("finite", "mdrr") and not (isinstance(samples, int) and samples >= 1):
        raise ValueError(f"{method} needs samples >= 1 trajectories per deployment, got {samples!r}")
    if not (isinstance(delay, int) and delay >= 1):
        raise ValueError(f"delay must be a whole number >= 1, got {delay!r}")
    if not (isinstance(rounds, int) and rounds >= 1):
        raise ValueError(f"rounds must be a whole number >= 1, got {rounds!r}")


def retrain(
    world: TabularWorld,
    method: str,
    lam: float,
    rounds: int,
    *,
    eta: float | None = None,
    samples: int | None = None,
    delay: int = 1,
    seed: int = 0,
    initial_policy: np.ndarray | None = None,
    on_round: Callable[[dict[str, float]], Any] | None = None,
) -> Retraining:
    """
    Run one method for ``rounds`` retrainings.

    :param world: the environment model
    :param method: one of :data:`METHODS`
    :param lam: the L2 regularization ``lambda >= 0``
    :param rounds: retrainings
    :param eta: RGA's step size
    :param samples: trajectories per deployment (``finite``, ``mdrr``)
    :param delay: deployments per retraining (``mdrr``; 1 elsewhere)
    :param seed: seed of the trajectory sampling
    :param initial_policy: the learner's first policy (default: the world's)
    :param on_round: called with each round's record (a progress bar, TensorBoard)
    :return: the run
    :raises ValueError: for a bad parameter
    """
    _check(method, lam, eta, samples, delay, rounds)
    if method != "mdrr":
        delay = 1
    rng = np.random.default_rng(seed)
    pi = world.initial_policy() if initial_policy is None else initial_policy
    follower = world.response(pi)
    sampled = method in ("finite", "mdrr")

    def observe(pi: np.ndarray, follower: np.ndarray, deployments: int) -> tuple[TabularMDP, np.ndarray]:
        """The MDP the learner retrains in (exact, or estimated from this policy's deployments) and
        the follower after them (a gradually shifting follower moves at each deployment)."""
        if not sampled:
            return world.learner_mdp(follower), follower
        batches, weights = [], []
        for j in range(1, deployments + 1):
            if j > 1:
                follower = world.response(pi, follower)
            transitions = world.sample(pi, follower, samples, rng)
            batches.append(transitions)
            weights.append(np.full(len(transitions), 1.0 - (1.0 - world.adaptation) ** j))
        return world.estimate_mdp(np.concatenate(batches), np.concatenate(weights)), follower

    mdp, follower = observe(pi, follower, delay)
    run = Retraining(method)
    run.occupancies.append(occupancy(mdp, pi))
    d_last = run.occupancies[0]
    for t in range(1, rounds + 1):
        start = time.perf_counter()
        record: dict[str, float] = {"round": t}
        if method == "rga":
            target = (1.0 - eta * lam) * d_last + eta * mdp.r
            solution = solve_occupancy_qp(mdp, target * mdp.transient, 1.0)
            optimum = solve_occupancy_qp(mdp, mdp.r, lam).objective
            reached = regularized_objective(mdp, solution.d, lam)
            record["suboptimality_gap"] = max((optimum - reached) / abs(optimum), 0.0) if optimum else 0.0
        else:
            solution = solve_occupancy_qp(mdp, mdp.r, lam)
        d = solution.d
        record["relative_change"] = relative_change(d, d_last, mdp.transient)
        record["objective"] = regularized_objective(mdp, d, lam)
        record["kkt_residual"] = solution.kkt_residual
        pi = policy_from_occupancy(d)
        follower = world.response(pi, follower)  # the next deployment
        record["performative_return"] = value(world.learner_mdp(follower), pi)
        mdp, follower = observe(pi, follower, delay)
        record["seconds"] = time.perf_counter() - start
        if method == "mdrr":
            record["deployments"] = t * delay
        run.rounds.append(record)
        run.occupancies.append(d)
        d_last = d
        if on_round is not None:
            on_round(record)
    run.policy = pi
    return run
