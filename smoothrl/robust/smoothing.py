"""Randomized smoothing of any run's policy: the decision over ``m`` noisy copies of the observation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm

from smoothrl.checks import COUNT, NOISE, check_number
from smoothrl.errors import SmoothRLError
from smoothrl.robust.views import PolicyView

SmoothingMode = Literal["median", "mean", "vote"]
SMOOTHING_MODES: tuple[str, ...] = get_args(SmoothingMode)


def check_smoothing(
    sigma: float,
    m: int,
    what: str = "smoothing",
    names: tuple[str, str] = ("@smoothing_sigma", "@smoothing_samples"),
) -> None:
    """
    :param sigma: noise standard deviation (normalized observation units)
    :param m: noisy copies per decision
    :param what: the name in the message
    :param names: how the user spells sigma and m (options or keywords)
    :raises SmoothRLError: unless ``0 < sigma <= 1e6`` (finite) and ``m >= 1``
    """
    check_number(f"{what}: {names[0]} (a noise level such as 0.2)", sigma, NOISE)
    check_number(f"{what}: {names[1]} (noisy copies per decision)", m, COUNT)


def noisy_copies(obs: th.Tensor, sigma: float, m: int, generator: th.Generator | None = None) -> th.Tensor:
    """
    :param obs: ``(batch, *shape)`` observations
    :param sigma: noise standard deviation
    :param m: copies
    :param generator: torch generator (``None``: the global one)
    :return: ``(m * batch, *shape)``: copy ``j`` of observation ``i`` at row ``j * batch + i``
    """
    noise = th.randn((m, *obs.shape), generator=generator, device=obs.device, dtype=obs.dtype)
    return (obs.unsqueeze(0) + sigma * noise).reshape(m * obs.shape[0], *obs.shape[1:])


def aggregate(outputs: th.Tensor, mode: str, discrete: bool) -> th.Tensor:
    """
    Combine the ``m`` copies' outputs into one decision per observation.

    :param outputs: ``(m, batch, k)`` actions (continuous) or scores (discrete)
    :param mode: ``median`` (coordinate-wise; the lower median for even ``m``), ``mean``, or
        ``vote`` (discrete: the most frequent argmax, ties to the lowest index)
    :param discrete: whether ``outputs`` are scores
    :return: ``(batch, k)`` actions, or ``(batch,)`` action indices for discrete actions
    """
    if mode == "vote":
        votes = th.nn.functional.one_hot(outputs.argmax(-1), outputs.shape[-1]).sum(0)
        return votes.argmax(-1)
    combined = outputs.median(dim=0).values if mode == "median" else outputs.mean(dim=0)
    return combined.argmax(-1) if discrete else combined


class SmoothedPolicy:
    """
    A model's policy smoothed over Gaussian observation noise: the decision for ``s`` combines
    the model's decisions at ``m`` copies ``s + N(0, sigma^2 I)``, all in one batched forward
    pass. Noise lives in the normalized observation space (what the network sees). Use it
    wherever a model goes: ``predict`` has SB3's signature.

    :param model: a trained model
    :param sigma: noise standard deviation, normalized observation units
    :param m: noisy copies per decision
    :param mode: ``"median"`` (default for continuous actions), ``"mean"``, or ``"vote"`` (default
        and only sensible choice for certified discrete actions: majority over the copies' argmax)
    :param seed: seed of the smoothing noise (a fixed seed makes the decisions reproducible)
    :raises SmoothRLError: for ``sigma <= 0``, ``m < 1``, an unknown mode or vote on continuous actions
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        sigma: float,
        m: int = 100,
        mode: SmoothingMode | None = None,
        seed: int | None = 0,
    ) -> None:
        check_smoothing(sigma, m)
        self.view = PolicyView(model)
        mode = mode or ("vote" if self.view.discrete else "median")
        if mode not in SMOOTHING_MODES:
            raise SmoothRLError(f"unknown smoothing mode {mode!r}; use one of {', '.join(SMOOTHING_MODES)}")
        if mode == "vote" and not self.view.discrete:
            raise SmoothRLError("smoothing mode 'vote' needs discrete actions; use median or mean")
        self.model = model
        self.sigma = float(sigma)
        self.m = int(m)
        self.mode = mode
        self.generator = th.Generator(device=model.device)
        if seed is not None:
            self.generator.manual_seed(seed)
        else:
            self.generator.seed()

    @property
    def observation_space(self):  # noqa: ANN201 (gymnasium space)
        """The model's observation space."""
        return self.model.observation_space

    @property
    def action_space(self):  # noqa: ANN201
        """The model's action space."""
        return self.model.action_space

    def outputs(self, obs: th.Tensor, m: int | None = None) -> th.Tensor:
        """
        :param obs: ``(batch, *shape)`` normalized observations
        :param m: copies (default: the policy's)
        :return: ``(m, batch, k)`` the base model's outputs at the noisy copies (differentiable)
        """
        m = m or self.m
        out = self.view.output(noisy_copies(obs, self.sigma, m, self.generator))
        return out.reshape(m, obs.shape[0], -1)

    def decide(self, obs: th.Tensor) -> th.Tensor:
        """:param obs: ``(batch, *shape)`` normalized observations
        :return: the smoothed decisions (actions in the policy's units, or indices)"""
        with th.no_grad():
            return aggregate(self.outputs(obs), self.mode, self.view.discrete)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """
        SB3's ``predict``: the smoothed decision for each observation of the batch. Decisions are
        deterministic given the noise; ``deterministic=False`` changes nothing.

        :param observation: a batch of (normalized) observations
        :param state: unused (no recurrent policies)
        :param episode_start: unused
        :param deterministic: unused
        :return: ``(actions, None)``
        """
        return self.view.to_env(self.decide(self.view.tensor(observation))), None


class SmoothingSwitch:
    """
    For policies that smooth themselves (S-PPO, S-DQN): ``smoothing`` is on by default, and
    :meth:`unsmoothed` turns it off for a block, exposing the base policy (what attacks
    differentiate and certificates sample).
    """

    smoothing: bool = True

    @contextmanager
    def unsmoothed(self) -> Iterator[None]:
        """Within this block the policy decides on the clean observation, without smoothing."""
        previous, self.smoothing = self.smoothing, False
        try:
            yield
        finally:
            self.smoothing = previous
