"""The contract between a decision-dependent environment and whatever retrains against it.

Within a deployment the environment's dynamics are frozen: it is an ordinary gymnasium env.
Between deployments it is told the deployed policy (and, for an env whose response depends on
what happened rather than on the policy itself, what each of its copies experienced during the
deployment) and updates its dynamics. The dynamics are a small picklable value, so that the one
who retrains computes the response once and hands the same dynamics to every copy of the env
(training copies, evaluation copies, subprocesses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class PerformativeEnv(Protocol):
    """What :mod:`smoothrl.performative` and ``smoothrl performative`` need of an env."""

    def respond(self, policy: Any, experience: Sequence[Mapping[str, float]] | None = None) -> dict[str, float]:
        """
        End a deployment: update the dynamics for the next one.

        :param policy: the deployed policy (a table, or anything with ``action_probabilities``
            or SB3's ``predict`` on the env's raw observations)
        :param experience: the :meth:`experience` of every copy of the env during the deployment
        :return: scalars that describe the response (logged per deployment)
        """

    def get_dynamics(self) -> Any:
        """:return: the current dynamics (picklable)"""

    def set_dynamics(self, dynamics: Any) -> None:
        """:param dynamics: from :meth:`get_dynamics` of another copy"""

    def experience(self) -> dict[str, float]:
        """:return: what this copy recorded since the last response (sums, so copies add up)"""


def as_table(policy: Any, observations: np.ndarray, n_actions: int) -> np.ndarray:
    """
    A tabular view of a discrete-action policy.

    :param policy: a ``(S, A)`` array, or an object with ``action_probabilities(observations)``
    :param observations: the observation of each state
    :param n_actions: A
    :return: ``(S, A)`` probabilities
    :raises ValueError: when the policy gives no probabilities of the right shape
    """
    if hasattr(policy, "action_probabilities"):
        table = np.asarray(policy.action_probabilities(observations), dtype=np.float64)
    else:
        table = np.asarray(policy, dtype=np.float64)
    shape = (len(observations), n_actions)
    if table.shape != shape or (table < -1e-9).any() or not np.allclose(table.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"a tabular policy must be {shape} probabilities per state, got shape {table.shape}")
    return table


def merge_experience(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """:return: the records of several env copies added up key by key (numbers or arrays)"""
    merged: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            merged[key] = merged[key] + value if key in merged else value
    return merged
