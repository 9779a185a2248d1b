"""The performative gridworld of Mandal, Triantafyllou and Radanovic, "Performative Reinforcement
Learning" (ICML 2023), as an exact tabular model and as a gymnasium env.

Every constant follows the paper's released code (gradanovic/icml2023-performative-rl-paper-code,
``src/envs/gridworld.py``): an 8x8 grid read row-major, the goal (+1) bottom-right and absorbing,
cells costing -0.01, -0.02 at 7 cells and -0.5 at 11; start states uniform over row 0 and column
0; the learner moves left/right/up/down (a move off the grid stays), and is rewarded with the value
of the cell it reaches (0 once at the goal). A follower, part of the environment, may replace the
learner's move with its own (left/right/up/down) or let it be (action 4); it is rewarded by
perturbed grids (seed k: each non-start cell whose uniform draw is <= 0.3 takes a value drawn from
{-0.5, -0.02, -0.01}; the goal stays) and pays -0.05 per intervention. Its response to a learner
policy: the best-response Q against that policy on every perturbed grid (value iteration),
averaged over the grids, then ``softmax(beta Q)``. The learner's first policy is 0.1-greedy on
the optimum of the unperturbed grid without a follower.

The released experiments pass their ``--num_followers`` option (default 50) to the env, as the
paper describes: 50 perturbed grids, as this module uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from smoothrl.performative.occupancy import TabularMDP, occupancy
from smoothrl.performative.protocol import as_table

H, F, D, GOAL = -0.5, -0.02, -0.01, 1.0
#: the reward grid (row-major, the paper's layout)
GRID = np.array(
    [
        [D, D, D, D, D, D, D, D],
        [D, D, F, D, H, D, D, D],
        [D, D, D, H, D, D, F, D],
        [D, F, D, D, D, H, D, F],
        [D, D, D, H, D, D, F, D],
        [D, H, H, D, F, D, H, D],
        [D, H, D, D, H, D, H, D],
        [D, D, D, H, D, F, D, GOAL],
    ]
)
SIDE = GRID.shape[0]
N_STATES = SIDE * SIDE
GOAL_STATE = N_STATES - 1
#: the learner's moves, as (row, column) steps: left, right, up, down
MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))
N_MOVES = len(MOVES)
#: the follower's actions: the four moves, then "let the learner move"
N_FOLLOWER = N_MOVES + 1
LET_BE = N_MOVES
INTERVENTION_COST = -0.05
PERTURB_PROBABILITY = 0.3
#: the paper's learner horizon when trajectories are sampled
MAX_STEPS = 100


def next_states() -> np.ndarray:
    """:return: ``(S, 4)`` the cell each move reaches (moves off the grid stay; the goal stays)"""
    nxt = np.empty((N_STATES, N_MOVES), dtype=np.int64)
    for s in range(N_STATES):
        row, col = divmod(s, SIDE)
        for m, (dr, dc) in enumerate(MOVES):
            r2, c2 = row + dr, col + dc
            inside = 0 <= r2 < SIDE and 0 <= c2 < SIDE
            nxt[s, m] = r2 * SIDE + c2 if inside and s != GOAL_STATE else s
    return nxt


NEXT = next_states()
START_STATES = np.array([s for s in range(N_STATES) if s // SIDE == 0 or s % SIDE == 0])


def start_distribution() -> np.ndarray:
    """:return: ``rho``: uniform over row 0 and column 0"""
    rho = np.zeros(N_STATES)
    rho[START_STATES] = 1.0 / len(START_STATES)
    return rho


def perturbed_grid(seed: int, probability: float = PERTURB_PROBABILITY) -> np.ndarray:
    """
    One follower's reward grid, drawn exactly as the paper's code draws it (one ``random``
    draw per cell, then a ``choice`` per changed cell in row-major order).

    :param seed: the follower's seed
    :param probability: chance that a non-start cell is changed
    :return: the grid ``(8, 8)``
    """
    rng = np.random.default_rng(seed)
    values = np.unique(GRID)
    values = values[values != GOAL]
    draws = rng.random(GRID.shape)
    grid = GRID.copy()
    starts = set(START_STATES.tolist())
    for i in range(SIDE):
        for j in range(SIDE):
            if i * SIDE + j not in starts and draws[i, j] <= probability:
                grid[i, j] = rng.choice(values)
    grid[-1, -1] = GOAL
    return grid


def optimal_q(grid: np.ndarray, gamma: float, tol: float = 1e-12) -> np.ndarray:
    """:return: ``Q*`` ``(S, 4)`` of the grid without a follower (value iteration)"""
    reward = grid.ravel()[NEXT]
    reward[GOAL_STATE] = 0.0
    v = np.zeros(N_STATES)
    while True:
        q = reward + gamma * v[NEXT]
        q[GOAL_STATE] = 0.0
        v_new = q.max(axis=1)
        if np.abs(v_new - v).max() < tol:
            return q
        v = v_new


def epsilon_greedy(q: np.ndarray, epsilon: float = 0.1) -> np.ndarray:
    """:return: ``1 - epsilon`` on the first best action, ``epsilon / (A - 1)`` on each other"""
    pi = np.full(q.shape, epsilon / (q.shape[1] - 1))
    pi[np.arange(q.shape[0]), q.argmax(axis=1)] = 1.0 - epsilon
    return pi


def softmax(q: np.ndarray, beta: float) -> np.ndarray:
    """:return: ``softmax(beta q)`` per row (stable for any beta)"""
    z = beta * (q - q.max(axis=1, keepdims=True))
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class PerformativeGridworld:
    """
    The exact model: the follower's response to a learner policy, and the learner's MDP under
    a follower policy.

    :param beta: the follower's softmax inverse temperature (the env's sensitivity)
    :param gamma: discount factor (the paper's 0.9)
    :param followers: perturbed grids (seeds ``0..followers-1``)
    :param perturb_probability: chance that a non-start cell of a follower's grid is changed
    :param adaptation: ``w`` in ``(0, 1]``: the follower moves to ``(1 - w) pi_prev + w softmax``
        at each response (1: immediately, as in the ICML paper; < 1: a gradually shifting
        environment as in Rank et al., UAI 2024)
    """

    beta: float = 5.0
    gamma: float = 0.9
    followers: int = 50
    perturb_probability: float = PERTURB_PROBABILITY
    adaptation: float = 1.0
    grids: np.ndarray = field(init=False, repr=False)
    rho: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.followers, int) and self.followers >= 1):
            raise ValueError(f"followers must be a whole number >= 1, got {self.followers!r}")
        if not 0 < self.adaptation <= 1:
            raise ValueError(f"adaptation must be in (0, 1], got {self.adaptation!r}")
        if not 0 <= self.gamma < 1:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma!r}")
        self.grids = np.stack([perturbed_grid(k, self.perturb_probability) for k in range(self.followers)])
        self.rho = start_distribution()
        self.absorbing = np.zeros(N_STATES, dtype=bool)
        self.absorbing[GOAL_STATE] = True

    def initial_policy(self, epsilon: float = 0.1) -> np.ndarray:
        """:return: the learner's first policy: epsilon-greedy on the unperturbed optimum"""
        return epsilon_greedy(optimal_q(GRID, self.gamma), epsilon)

    def follower_q(self, pi: np.ndarray, tol: float = 1e-12) -> np.ndarray:
        """
        The follower's best-response Q against learner policy ``pi``, averaged over the grids.

        :param pi: the learner policy ``(S, 4)``
        :return: ``(S, 5)`` (0 at the goal)
        """
        reward = self.grids.reshape(len(self.grids), N_STATES)[:, NEXT]  # (G, S, 4): value of the cell reached
        gamma = self.gamma
        v = np.zeros((len(self.grids), N_STATES))
        while True:
            q = np.empty((len(self.grids), N_STATES, N_FOLLOWER))
            q[..., :N_MOVES] = reward + INTERVENTION_COST + gamma * v[:, NEXT]
            q[..., LET_BE] = np.einsum("sa,gsa->gs", pi, reward + gamma * v[:, NEXT])
            q[:, GOAL_STATE] = 0.0
            v_new = q.max(axis=2)
            if np.abs(v_new - v).max() < tol:
                return q.mean(axis=0)
            v = v_new

    def response(self, pi: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """
        :param pi: the deployed learner policy ``(S, 4)``
        :param previous: the follower's policy before this deployment (for ``adaptation < 1``)
        :return: the follower's policy ``(S, 5)``
        """
        target = softmax(self.follower_q(pi), self.beta)
        if previous is None or self.adaptation == 1.0:
            return target
        return (1.0 - self.adaptation) * previous + self.adaptation * target

    def learner_mdp(self, follower: np.ndarray) -> TabularMDP:
        """
        :param follower: the follower's policy ``(S, 5)``
        :return: the learner's MDP: ``P(s, a, s')`` and ``r(s, a)`` with the follower's moves
            folded in (the learner is rewarded by the true grid; the cost is the follower's)
        """
        P = np.zeros((N_STATES, N_MOVES, N_STATES))
        rows = np.arange(N_STATES)
        for b in range(N_MOVES):  # the follower moves the learner, whatever it chose
            P[rows, :, NEXT[:, b]] += follower[:, b, None]
        for a in range(N_MOVES):
            P[rows, a, NEXT[:, a]] += follower[:, LET_BE]
        cell = GRID.ravel()
        r = (follower[:, :N_MOVES] * cell[NEXT]).sum(axis=1, keepdims=True) + follower[:, LET_BE, None] * cell[NEXT]
        P[GOAL_STATE] = 0.0
        P[GOAL_STATE, :, GOAL_STATE] = 1.0
        r[GOAL_STATE] = 0.0
        return TabularMDP(P, r, self.rho, self.gamma, self.absorbing)

    def sample(self, pi: np.ndarray, follower: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """
        Play ``n`` trajectories of at most :data:`MAX_STEPS` steps (the paper's sampling).

        :param pi: learner policy ``(S, 4)``
        :param follower: follower policy ``(S, 5)``
        :param n: trajectories
        :param rng: the generator
        :return: transitions ``(N, 4)``: state, action, next state, reward (as float64)
        """
        s = rng.choice(N_STATES, size=n, p=self.rho)
        out = []
        cell = GRID.ravel()
        for _ in range(MAX_STEPS):
            alive = s != GOAL_STATE
            if not alive.any():
                break
            s = s[alive]
            a = _draw(pi[s], rng)
            b = _draw(follower[s], rng)
            move = np.where(b == LET_BE, a, b)
            s2 = NEXT[s, move]
            out.append(np.stack([s, a, s2, cell[s2]], axis=1))
            s = s2
        return np.concatenate(out) if out else np.zeros((0, 4))

    def estimate_mdp(self, transitions: np.ndarray, weights: np.ndarray | None = None) -> TabularMDP:
        """
        The plug-in MDP from sampled transitions, as the paper treats unseen pairs: the mean of the
        negative rewards (-0.5, -0.02, -0.01) and a uniform move to the cells the four moves reach.

        :param transitions: from :meth:`sample` (stacked over deployments)
        :param weights: one weight per transition (default 1)
        :return: the estimated learner MDP
        """
        s, a, s2 = (transitions[:, i].astype(np.int64) for i in range(3))
        w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
        counts = np.zeros((N_STATES, N_MOVES, N_STATES))
        np.add.at(counts, (s, a, s2), w)
        total = np.zeros((N_STATES, N_MOVES))
        np.add.at(total, (s, a), w * transitions[:, 3])
        seen = counts.sum(axis=2)
        negative = np.unique(GRID)
        unseen_reward = float(negative[negative < 0].mean())
        P = np.zeros_like(counts)
        r = np.full((N_STATES, N_MOVES), unseen_reward)
        visited = seen > 0
        P[visited] = counts[visited] / seen[visited][:, None]
        r[visited] = total[visited] / seen[visited]
        for state in range(N_STATES):
            reach = np.unique(NEXT[state])
            for action in np.flatnonzero(~visited[state]):
                P[state, action, reach] = 1.0 / len(reach)
        P[GOAL_STATE] = 0.0
        P[GOAL_STATE, :, GOAL_STATE] = 1.0
        r[GOAL_STATE] = 0.0
        return TabularMDP(P, r, self.rho, self.gamma, self.absorbing)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row."""
    u = rng.random(len(probs))[:, None]
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


class PerformativeGridworldEnv(gym.Env):
    """
    ``smoothrl/PerformativeGridworld-v0``: the learner's view of the gridworld. Observation: the
    cell (``Discrete(64)``, row-major); action: a move (``Discrete(4)``); reward: the value of the
    cell reached; the episode ends at the goal (truncated after 100 steps by the registration).

    Within a deployment the follower's policy is frozen; :meth:`respond` (the
    :class:`~smoothrl.performative.protocol.PerformativeEnv` protocol) makes it respond to the
    deployed learner policy. Before the first response the follower responds to the learner's
    first policy (0.1-greedy on the unperturbed optimum), as in the paper.

    :param beta: see :class:`PerformativeGridworld`
    :param gamma: see :class:`PerformativeGridworld`
    :param followers: see :class:`PerformativeGridworld`
    :param adaptation: see :class:`PerformativeGridworld`
    :param render_mode: accepted for gymnasium's API; the env does not render
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        beta: float = 5.0,
        gamma: float = 0.9,
        followers: int = 50,
        adaptation: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        self.render_mode = render_mode
        self.model = PerformativeGridworld(beta=beta, gamma=gamma, followers=followers, adaptation=adaptation)
        self.observation_space = spaces.Discrete(N_STATES)
        self.action_space = spaces.Discrete(N_MOVES)
        self.follower = self.model.response(self.model.initial_policy())
        self._state = int(START_STATES[0])

    # the performative protocol
    def respond(self, policy: Any, experience: Any = None) -> dict[str, float]:
        """
        :param policy: the deployed learner policy: a ``(64, 4)`` table or anything with
            ``action_probabilities(observations)``
        :param experience: unused (the follower reacts to the policy itself)
        :return: ``follower_change``: the largest change of a follower probability
        """
        pi = as_table(policy, np.arange(N_STATES), N_MOVES)
        new = self.model.response(pi, self.follower)
        change = float(np.abs(new - self.follower).max())
        self.follower = new
        return {"follower_change": change}

    def get_dynamics(self) -> np.ndarray:
        """:return: the follower's policy ``(64, 5)``"""
        return self.follower.copy()

    def set_dynamics(self, dynamics: np.ndarray) -> None:
        """:param dynamics: a follower policy from :meth:`get_dynamics`"""
        self.follower = np.array(dynamics, dtype=np.float64)

    def experience(self) -> dict[str, float]:
        """:return: nothing: the follower needs no record of the deployment"""
        return {}

    def tabular(self) -> TabularMDP:
        """:return: the learner's exact MDP under the current follower"""
        return self.model.learner_mdp(self.follower)

    def occupancy(self, policy: Any) -> np.ndarray:
        """:return: the exact occupancy measure of a learner policy under the current follower"""
        return occupancy(self.tabular(), as_table(policy, np.arange(N_STATES), N_MOVES))

    # gymnasium
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._state = int(self.np_random.choice(N_STATES, p=self.model.rho))
        return self._state, {}

    def step(self, action: Any):
        a = int(action)
        if not 0 <= a < N_MOVES:
            raise ValueError(f"action must be 0..{N_MOVES - 1}, got {action!r}")
        b = int(self.np_random.choice(N_FOLLOWER, p=self.follower[self._state]))
        s2 = int(NEXT[self._state, a if b == LET_BE else b])
        reward = float(GRID.ravel()[s2])
        self._state = s2
        return s2, reward, s2 == GOAL_STATE, False, {"follower_action": b}
