"""Observation attacks within an Lp budget, in the normalized observation space the policy sees.

- ``random``: a uniformly random point of the Linf ball (random direction at radius eps for L2);
- ``fgsm``: one signed-gradient step of size eps from a random start (the one-step PGD);
- ``pgd``: projected gradient ascent (``steps`` steps of ``2.5 eps / steps``, random start) on the
  deviation of the policy's action: squared distance for continuous actions, cross-entropy of
  the clean decision for discrete ones;
- ``mad``: maximal action difference, PGD on KL(pi(.|s) || pi(.|s')) (on the squared action
  distance for deterministic actors);
- ``min_q``: PGD that minimizes the true state's Q-value of the action taken at the perturbed
  state, ``Q(s, pi(s'))`` (needs a Q-function: DQN, SAC, TD3, DDPG);
- ``smoothed``: the Smoothed Attack (Sun et al., ICML 2024): PGD against the *smoothed*
  decision, the action deviation averaged over ``samples`` noisy copies with a fresh noise draw
  at every step.

Every attack returns ``s + delta`` with ``||delta||_p <= eps`` (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal, get_args

import numpy as np
import torch as th

from smoothrl.checks import BUDGET, COUNT, check_number
from smoothrl.errors import SmoothRLError
from smoothrl.robust.smoothing import check_smoothing, noisy_copies
from smoothrl.robust.views import PolicyView

AttackName = Literal["random", "fgsm", "pgd", "mad", "min_q", "smoothed"]
ATTACKS: tuple[str, ...] = get_args(AttackName)
NORMS = ("linf", "l2")


@dataclass(frozen=True)
class Attack:
    """
    An attack and its budget.

    :param name: one of :data:`ATTACKS`
    :param eps: perturbation budget per step, in normalized observation units
    :param norm: ``"linf"`` or ``"l2"``
    :param steps: gradient steps (PGD-type attacks; FGSM takes one)
    :param sigma: noise of the smoothed attack (default: the attacked smoothed policy's)
    :param samples: noisy copies per gradient step of the smoothed attack
    """

    name: str
    eps: float
    norm: str = "linf"
    steps: int = 10
    sigma: float | None = None
    samples: int = 20

    def __post_init__(self) -> None:
        if self.name not in ATTACKS:
            raise SmoothRLError(f"unknown attack {self.name!r}; use one of {', '.join(ATTACKS)}")
        check_number("@eps", self.eps, BUDGET)
        if self.norm not in NORMS:
            raise SmoothRLError(f"unknown norm {self.norm!r}; use linf or l2")
        check_number("@steps", self.steps, COUNT)
        if self.name == "smoothed" and self.sigma is not None:
            check_smoothing(self.sigma, self.samples, "the smoothed attack", ("@smoothing_sigma", "@attack_samples"))


def _flat_norm(x: th.Tensor) -> th.Tensor:
    return x.reshape(x.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (x.dim() - 1)))


def project(delta: th.Tensor, eps: float, norm: str) -> th.Tensor:
    """
    :param delta: ``(batch, *shape)`` perturbations
    :param eps: budget
    :param norm: ``"linf"`` or ``"l2"``
    :return: each row's nearest point in the ball of radius ``eps``
    """
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)


def _random_in_ball(like: th.Tensor, eps: float, norm: str, generator: th.Generator | None) -> th.Tensor:
    if norm == "linf":
        return (2 * th.rand(like.shape, generator=generator, device=like.device) - 1) * eps
    direction = th.randn(like.shape, generator=generator, device=like.device)
    return eps * direction / _flat_norm(direction).clamp_min(1e-12)


def _ascent_step(delta: th.Tensor, grad: th.Tensor, size: float, norm: str) -> th.Tensor:
    if norm == "linf":
        return delta + size * grad.sign()
    return delta + size * grad / _flat_norm(grad).clamp_min(1e-12)


def _objective(attack: Attack, view: PolicyView, clean: th.Tensor, smoothing: Any) -> Callable[[th.Tensor], th.Tensor]:
    """The per-sample quantity the attack maximizes, as a function of the perturbed observations."""
    if attack.name == "mad":
        return lambda adv: view.distribution_shift(clean, adv)
    if attack.name == "min_q":
        view.require_q()  # fail before any gradient work
        return lambda adv: -view.q_of_decision(clean, view.output(adv))
    with th.no_grad():
        reference = view.output(clean)
        target = reference.argmax(-1) if view.discrete else reference

    def deviation(out: th.Tensor) -> th.Tensor:
        if view.discrete:
            return th.nn.functional.cross_entropy(out, target, reduction="none")
        return (out - target).pow(2).sum(-1)

    if attack.name != "smoothed":
        return lambda adv: deviation(view.output(adv))
    sigma = attack.sigma if attack.sigma is not None else getattr(smoothing, "sigma", None)
    if sigma is None:
        raise SmoothRLError(
            "the smoothed attack needs a noise level: attack a smoothed policy or pass @smoothing_sigma"
        )
    generator = getattr(smoothing, "generator", None)

    def smoothed_deviation(adv: th.Tensor) -> th.Tensor:
        out = view.output(noisy_copies(adv, sigma, attack.samples, generator))  # fresh noise each call
        copies = out.reshape(attack.samples, adv.shape[0], -1)
        return th.stack([deviation(o) for o in copies]).mean(0)

    return smoothed_deviation


def perturb(
    attack: Attack,
    view: PolicyView,
    obs: th.Tensor,
    generator: th.Generator | None = None,
    smoothing: Any = None,
) -> th.Tensor:
    """
    Attack a batch of observations.

    :param attack: the attack and its budget
    :param view: the attacked model's decision
    :param obs: ``(batch, *shape)`` clean normalized observations
    :param generator: torch generator for random starts and the random attack
    :param smoothing: the :class:`~smoothrl.robust.smoothing.SmoothedPolicy` under attack, if any
        (gives the smoothed attack its noise level)
    :return: the perturbed observations, within ``eps`` of ``obs`` in the attack's norm
    :raises SmoothRLError: for an attack the model cannot take (min_q without a Q-function)
    """
    obs = obs.detach()
    if attack.eps == 0:
        return obs.clone()
    if attack.name == "random":
        return obs + _random_in_ball(obs, attack.eps, attack.norm, generator)
    objective = _objective(attack, view, obs, smoothing)
    # random start: the squared action distance has a zero gradient at delta = 0
    delta = _random_in_ball(obs, attack.eps, attack.norm, generator)
    steps, size = (1, attack.eps) if attack.name == "fgsm" else (attack.steps, 2.5 * attack.eps / attack.steps)
    for _ in range(steps):
        delta = delta.detach().requires_grad_(True)
        with th.enable_grad():
            (grad,) = th.autograd.grad(objective(obs + delta).sum(), delta)
        delta = project(_ascent_step(delta.detach(), grad, size, attack.norm), attack.eps, attack.norm)
    return (obs + delta).detach()


class AttackedPolicy:
    """
    A policy (model or smoothed policy) whose observations pass through an attack first; keeps
    the perturbation sizes and the action deviations it caused.

    :param policy: the model or :class:`~smoothrl.robust.smoothing.SmoothedPolicy` acting
    :param view: the attacked model's decision (the base model's, for a smoothed policy)
    :param attack: the attack
    :param seed: seed of the attack's randomness
    """

    def __init__(self, policy: Any, view: PolicyView, attack: Attack, seed: int = 0) -> None:
        self.policy = policy
        self.view = view
        self.attack = attack
        self.generator = th.Generator(device=view.device)
        self.generator.manual_seed(seed)
        # the smoothed attack's noise: a SmoothedPolicy's sigma, or the smoothing of S-PPO / S-DQN
        sigma = getattr(policy, "sigma", None) or getattr(policy, "smoothing_sigma", None)
        self.smoothing = policy if hasattr(policy, "sigma") else SimpleNamespace(sigma=sigma) if sigma else None
        self.perturbation_norms: list[float] = []
        self.action_deviations: list[float] = []

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict`` on the attacked observations; see :class:`AttackedPolicy`."""
        clean = self.view.tensor(observation)
        adv = perturb(self.attack, self.view, clean, self.generator, self.smoothing)
        delta = (adv - clean).reshape(clean.shape[0], -1)
        norms = delta.abs().amax(1) if self.attack.norm == "linf" else delta.norm(dim=1)
        self.perturbation_norms.extend(norms.tolist())
        shape = np.asarray(observation).shape
        clean_action, _ = self.policy.predict(observation, state, episode_start, deterministic)
        action, state = self.policy.predict(adv.cpu().numpy().reshape(shape), state, episode_start, deterministic)
        self.action_deviations.extend(self._deviation(clean_action, action))
        return action, state

    def _deviation(self, clean: np.ndarray, adv: np.ndarray) -> list[float]:
        if self.view.discrete:
            return (np.asarray(clean).reshape(-1) != np.asarray(adv).reshape(-1)).astype(float).tolist()
        space = self.view.model.action_space
        scale = (space.high - space.low) / 2.0
        diff = (np.asarray(adv) - np.asarray(clean)).reshape(-1, *space.shape) / scale
        return np.linalg.norm(diff.reshape(diff.shape[0], -1), axis=1).tolist()
