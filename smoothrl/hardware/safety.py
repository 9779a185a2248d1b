"""The safety filter between the policy and the hardware: limits enforced in one place.

For continuous commands, per dimension and every period, whatever the policy outputs (NaN,
inf, huge values, adversarial sequences) the command written satisfies

- ``low <= a_t <= high``;
- ``|a_t - a_{t-1}| <= max_rate`` (when set);
- ``|a_t - 3 a_{t-1} + 3 a_{t-2} - a_{t-3}| <= max_jerk`` (when set; the third difference, the
  jerk the smoothness metrics measure).

Bounds and rate alone are a clip. With a jerk limit the three can conflict (a command moving
fast towards a bound cannot stop in one period without an illegal jerk), so the filter keeps
an invariant instead: from every state it leaves, a fixed *braking* sequence (jerk-limited,
reaching rest, within bounds and rate) exists. Each period it tries the jerk that moves toward
the policy's command, then smaller steps toward the braking jerk, and keeps the first whose
state still has a feasible braking sequence (checked by simulating it); the braking jerk itself
is always admissible, since its successor's braking sequence is the tail of the current one.
Starting at rest within bounds, no limit is ever violated (a hypothesis test checks it).

Non-finite policy outputs are replaced by the last command, then the command is clipped to the
bounds and an optional exponential low-pass smooths it, before the rate and jerk limits. Every
intervention is counted. The emergency stop's safe action is written as is (bounds applied):
stopping wins over smoothness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: numerical slack of the feasibility checks (commands are float64 sums)
TOL = 1e-12


def _brake_jerk(v: np.ndarray, acc: np.ndarray, jerk: np.ndarray) -> np.ndarray:
    """The braking law: the jerk that brings velocity and acceleration to rest, within ``jerk``."""
    # the acceleration to reach now so that unwinding it at full jerk ends at v = 0 (continuous approximation)
    s_up = (-jerk + np.sqrt(np.maximum(jerk * jerk - 8 * jerk * v, 0.0))) / 2  # v <= 0: accelerate up
    s_down = (jerk - np.sqrt(np.maximum(jerk * jerk + 8 * jerk * v, 0.0))) / 2  # v >= 0: accelerate down
    j = np.clip(np.where(v > 0, s_down, s_up) - acc, -jerk, jerk)
    finish = -v - acc  # deadbeat: v reaches 0 now and acc the period after
    can_finish = (np.abs(finish) <= jerk) & (np.abs(v) <= jerk)
    return np.where(can_finish, finish, j)


@dataclass
class Interventions:
    """What the filter changed, counted over a run."""

    nonfinite: int = 0
    clipped: int = 0
    rate_limited: int = 0
    jerk_limited: int = 0
    safe_actions: int = 0

    def total(self) -> int:
        """:return: periods in which the filter changed the policy's command"""
        return self.nonfinite + self.clipped + self.rate_limited + self.jerk_limited


@dataclass
class SafetyFilter:
    """
    Continuous commands: bounds, rate limit, jerk limit, low-pass (see the module docstring).

    :param low: lowest command per dimension
    :param high: highest command per dimension
    :param max_rate: largest change per period (``None``: none)
    :param max_jerk: largest third difference per period (``None``: none)
    :param lowpass_alpha: exponential low-pass weight in (0, 1] (``None``: none)
    :param safe_action: ``"hold"``, ``"zero"`` or a vector
    """

    low: np.ndarray
    high: np.ndarray
    max_rate: np.ndarray | None = None
    max_jerk: np.ndarray | None = None
    lowpass_alpha: float | None = None
    safe_action: str | np.ndarray = "hold"
    counts: Interventions = field(default_factory=Interventions)

    def __post_init__(self) -> None:
        self.low = np.asarray(self.low, dtype=np.float64).ravel()
        self.high = np.asarray(self.high, dtype=np.float64).ravel()
        d = len(self.low)
        self.rate = np.full(d, np.inf) if self.max_rate is None else np.broadcast_to(self.max_rate, (d,)).astype(float)
        self.jerk = None if self.max_jerk is None else np.broadcast_to(self.max_jerk, (d,)).astype(float)
        self.reset(self.clip(np.zeros(d)))

    @property
    def dim(self) -> int:
        """Command dimensions."""
        return len(self.low)

    def clip(self, command: np.ndarray) -> np.ndarray:
        """:return: the command within the bounds"""
        return np.minimum(np.maximum(command, self.low), self.high)

    def reset(self, command: np.ndarray) -> None:
        """
        Start at rest at ``command`` (clipped to the bounds): the last three commands equal it.

        :param command: where the actuator is
        """
        command = np.asarray(command, dtype=np.float64).ravel()
        command = np.where(np.isfinite(command), command, 0.0)  # never rest at NaN: zero, clipped to the bounds
        self.last = self.clip(command).copy()
        self.velocity = np.zeros(self.dim)
        self.acceleration = np.zeros(self.dim)
        self._lowpass: np.ndarray | None = None

    def safe(self) -> np.ndarray:
        """
        The safe action, within bounds; the filter restarts at rest there.

        :return: the command to write
        """
        if isinstance(self.safe_action, str):
            command = self.last.copy() if self.safe_action == "hold" else np.zeros(self.dim)
        else:
            command = np.broadcast_to(np.asarray(self.safe_action, dtype=np.float64), (self.dim,)).copy()
        self.reset(command)
        self.counts.safe_actions += 1
        return self.last.copy()

    def _feasible(self, a: np.ndarray, v: np.ndarray, acc: np.ndarray) -> np.ndarray:
        """Whether each state has a braking sequence to rest within bounds and rate (``(n, d)`` bool)."""
        jerk = self.jerk
        ok = (a >= self.low - TOL) & (a <= self.high + TOL) & (np.abs(v) <= self.rate + TOL)
        steps = int(min(10_000, np.ceil(np.max(2 * np.sqrt(np.abs(v) / jerk) + 2 * np.abs(acc) / jerk)) + 4))
        a, v, acc = a.copy(), v.copy(), acc.copy()
        for _ in range(steps):
            acc = acc + _brake_jerk(v, acc, jerk)
            v = v + acc
            a = a + v
            ok &= (a >= self.low - TOL) & (a <= self.high + TOL) & (np.abs(v) <= self.rate + TOL)
        return ok & (np.abs(v) <= TOL) & (np.abs(acc) <= TOL)

    def __call__(self, command: np.ndarray) -> np.ndarray:
        """
        Filter one period's policy command.

        :param command: what the policy asks for, ``(dim,)`` (anything, NaN included)
        :return: the command to write, within every limit
        """
        x = np.asarray(command, dtype=np.float64).ravel().copy()
        if x.shape != (self.dim,):
            raise ValueError(f"the policy's command has {x.size} values, the profile has {self.dim} channels")
        bad = ~np.isfinite(x)
        if bad.any():
            self.counts.nonfinite += 1
            x[bad] = self.last[bad]
        target = self.clip(x)  # first: a low-pass of in-bound values stays in bounds (and finite)
        if np.any(target != x):
            self.counts.clipped += 1
        if self.lowpass_alpha is not None:
            previous = self._lowpass
            self._lowpass = target if previous is None else previous + self.lowpass_alpha * (target - previous)
            target = self._lowpass
        if self.jerk is None:
            step = np.clip(target - self.last, -self.rate, self.rate)
            if np.any(step != target - self.last):
                self.counts.rate_limited += 1
            return self._advance(self.last + step)
        # jerk-limited: the jerk toward the target, then steps back toward the braking jerk
        v1, acc1 = self.velocity, self.acceleration
        ideal = np.clip(np.clip(target - self.last, -self.rate, self.rate) - v1 - acc1, -self.jerk, self.jerk)
        brake = _brake_jerk(v1, acc1, self.jerk)
        weights = np.array([1.0, 0.5, 0.25, 0.125, 0.0])[:, None]
        jerks = weights * ideal + (1 - weights) * brake  # (5, d), each within +-jerk
        acc = acc1 + jerks
        v = v1 + acc
        a = self.last + v
        ok = self._feasible(a, v, acc)
        ok[-1] = True  # the braking jerk: admissible by the invariant
        choice = np.argmax(ok, axis=0)  # the first admissible candidate per dimension
        new = a[choice, np.arange(self.dim)]
        if np.any(choice > 0) or np.any(ideal != target - self.last - v1 - acc1):
            self.counts.jerk_limited += 1
        return self._advance(new)

    def _advance(self, command: np.ndarray) -> np.ndarray:
        command = self.clip(command)  # exact: last + (target - last) can round a hair past a bound
        v = command - self.last
        self.acceleration = v - self.velocity
        self.velocity = v
        self.last = command
        return command.copy()


@dataclass
class DiscreteSafetyFilter:
    """
    Discrete commands (action indices): an index outside ``[start, start + n)`` or non-finite
    is replaced by the safe action.

    :param n: number of actions
    :param start: the first index
    :param safe_action: ``"hold"`` (the last index), ``"zero"`` (``start``), or an index
    """

    n: int
    start: int = 0
    safe_action: str | np.ndarray = "hold"
    counts: Interventions = field(default_factory=Interventions)

    def __post_init__(self) -> None:
        self.reset(np.array([self.start]))

    @property
    def dim(self) -> int:
        """One command."""
        return 1

    def reset(self, command: np.ndarray) -> None:
        """:param command: the index the actuator is at"""
        self.last = np.array([int(np.clip(np.asarray(command).ravel()[0], self.start, self.start + self.n - 1))])

    def safe(self) -> np.ndarray:
        """:return: the safe index"""
        if isinstance(self.safe_action, str):
            index = self.last if self.safe_action == "hold" else np.array([self.start])
        else:
            index = np.asarray(self.safe_action).ravel()[:1].astype(np.int64)
        self.reset(index)
        self.counts.safe_actions += 1
        return self.last.copy()

    def __call__(self, command: np.ndarray) -> np.ndarray:
        """:param command: the policy's index
        :return: the index to write"""
        x = np.asarray(command, dtype=np.float64).ravel()
        if x.size != 1 or not np.isfinite(x[0]) or not self.start <= x[0] < self.start + self.n:
            self.counts.nonfinite += 1
            return self.last.copy()
        self.last = np.array([int(x[0])])
        return self.last.copy()
