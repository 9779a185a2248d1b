"""S-PPO (Sun, Gao, Weng, ICML 2024): PPO whose action distribution is centred on the median of
the policy's action means over ``m`` noisy copies of the observation, in rollouts and updates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch as th
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import BasePolicy

from smoothrl.agents.policies import GSDEActorCriticPolicy, add_policy_kwargs
from smoothrl.agents.ppo import PPO
from smoothrl.robust.smoothing import SmoothingSwitch, check_smoothing, noisy_copies


class SPPOPolicy(SmoothingSwitch, GSDEActorCriticPolicy):
    """
    An actor-critic policy whose actor is median-smoothed: the action mean (logits for discrete
    actions) is the coordinate-wise median over ``m`` copies ``s + N(0, sigma^2 I)`` of the
    (normalized) observation; the value function sees the clean observation. The median is
    differentiable (the gradient flows through the median copy), so updates train the smoothed
    actor itself. ``m`` is ``smoothing_samples`` while learning and ``smoothing_samples_eval``
    otherwise (published: 20 and 100).

    :param args: as for ``ActorCriticPolicy``
    :param smoothing_sigma: noise standard deviation (published: 0.2)
    :param smoothing_samples: noisy copies while learning
    :param smoothing_samples_eval: noisy copies when predicting outside ``learn``
    :param kwargs: as for ``ActorCriticPolicy``
    """

    def __init__(
        self,
        *args: Any,
        smoothing_sigma: float = 0.2,
        smoothing_samples: int = 20,
        smoothing_samples_eval: int = 100,
        **kwargs: Any,
    ) -> None:
        check_smoothing(smoothing_sigma, smoothing_samples, "S-PPO", ("smoothing_sigma", "smoothing_samples"))
        check_smoothing(smoothing_sigma, smoothing_samples_eval, "S-PPO", ("smoothing_sigma", "smoothing_samples_eval"))
        self.smoothing_sigma = smoothing_sigma
        self.smoothing_samples = smoothing_samples
        self.smoothing_samples_eval = smoothing_samples_eval
        self.learning = False
        self._obs: th.Tensor | None = None
        super().__init__(*args, **kwargs)
        if not isinstance(
            self.action_dist, DiagGaussianDistribution | StateDependentNoiseDistribution | CategoricalDistribution
        ):
            raise ValueError(f"S-PPO supports Box and Discrete action spaces, not {self.action_space}")

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            **super()._get_constructor_parameters(),
            "smoothing_sigma": self.smoothing_sigma,
            "smoothing_samples": self.smoothing_samples,
            "smoothing_samples_eval": self.smoothing_samples_eval,
        }

    @contextmanager
    def _seeing(self, obs: th.Tensor) -> Iterator[None]:
        self._obs = obs
        try:
            yield
        finally:
            self._obs = None

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        with self._seeing(obs):
            return super().forward(obs, deterministic)

    def evaluate_actions(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        with self._seeing(obs):
            return super().evaluate_actions(obs, actions)

    def get_distribution(self, obs: th.Tensor) -> Distribution:
        with self._seeing(obs):
            return super().get_distribution(obs)

    def smoothed_mean(self, obs: th.Tensor) -> th.Tensor:
        """
        :param obs: ``(batch, *shape)`` observations
        :return: the median over the noisy copies of the action mean (or logits)
        """
        m = self.smoothing_samples if self.learning else self.smoothing_samples_eval
        batch = obs.shape[0]
        noisy = noisy_copies(obs.float(), self.smoothing_sigma, m)
        features = BasePolicy.extract_features(self, noisy, self.pi_features_extractor)
        means = self.action_net(self.mlp_extractor.forward_actor(features))
        return means.reshape(m, batch, -1).median(dim=0).values

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        if self._obs is None or not self.smoothing:
            return super()._get_action_dist_from_latent(latent_pi)
        mean = self.smoothed_mean(self._obs)
        if isinstance(self.action_dist, CategoricalDistribution):
            return self.action_dist.proba_distribution(action_logits=mean)
        if isinstance(self.action_dist, StateDependentNoiseDistribution):
            return self.action_dist.proba_distribution(mean, self.log_std, latent_pi)  # gSDE noise: clean features
        return self.action_dist.proba_distribution(mean, self.log_std)


class SPPO(PPO):
    """
    S-PPO: smoothrl's PPO (ratio modes, action regularization, gSDE all available) with a
    median-smoothed actor (:class:`SPPOPolicy`). Rollouts and updates use
    ``smoothing_samples`` noisy copies, ``predict`` outside ``learn`` uses ``smoothing_samples_eval``.

    :param args: as for :class:`smoothrl.PPO`
    :param smoothing_sigma: noise standard deviation in the normalized observation space (published: 0.2)
    :param smoothing_samples: noisy copies while learning (published: 20)
    :param smoothing_samples_eval: noisy copies at test time (published: 100)
    :param kwargs: as for :class:`smoothrl.PPO`
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {  # type: ignore[misc]
        **PPO.policy_aliases,
        "MlpPolicy": SPPOPolicy,
    }

    def __init__(
        self,
        *args: Any,
        smoothing_sigma: float = 0.2,
        smoothing_samples: int = 20,
        smoothing_samples_eval: int = 100,
        **kwargs: Any,
    ) -> None:
        add_policy_kwargs(  # (SPPOPolicy checks them when SB3 builds it)
            kwargs,
            smoothing_sigma=smoothing_sigma,
            smoothing_samples=smoothing_samples,
            smoothing_samples_eval=smoothing_samples_eval,
        )
        super().__init__(*args, **kwargs)

    @property
    def smoothing_sigma(self) -> float:
        """The smoothing noise (read by the attacks and certificates)."""
        return self.policy.smoothing_sigma

    def learn(self, *args: Any, **kwargs: Any) -> SPPO:
        """SB3's ``learn``, with ``smoothing_samples`` copies per decision throughout."""
        self.policy.learning = True
        try:
            return super().learn(*args, **kwargs)
        finally:
            self.policy.learning = False
