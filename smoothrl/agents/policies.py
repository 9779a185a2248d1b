"""Policies for smoothrl's policy features; SB3's own classes serve every plain run.

- :class:`GSDEActor` / :class:`GSDETD3Policy`: TD3's actor and policy with state-dependent
  exploration (gSDE), one noise matrix per env (TD3 and DDPG with ``use_sde``);
- :class:`GSDEActorCriticPolicy`: SB3's ``ActorCriticPolicy`` with gSDE's ``learn_features``
  exposed (PPO and A2C with ``policy_kwargs.learn_features``).

gSDE for a deterministic actor: exploration noise ``eps(s) = theta^T z_hat(s)``, with ``z(s)``
the actor's last hidden layer, ``z_hat = z / ||z||``, and ``theta ~ N(0, sigma^2)``
(``latent x action``) drawn per env, kept for ``sde_sample_freq`` steps (``-1``: the whole
episode) and redrawn at that env's episode start. The same state gets the same noise until the
matrix is redrawn, so exploration is smooth in time (Raffin et al., "Smooth Exploration for
Robotic RL", CoRL 2021). TD3 and DDPG have no entropy objective that could learn the noise
scale, so ``sigma`` (``sde_std``) is a fixed hyperparameter; normalizing ``z`` makes it the
per-action standard deviation whatever the layer width. The noise is added to the squashed
action in ``[-1, 1]`` and clipped, like SB3's action noise. Deterministic prediction
(evaluation, target actions, the actor loss) never sees it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import make_proba_distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.td3.policies import Actor, TD3Policy


def add_policy_kwargs(kwargs: MutableMapping[str, Any], **entries: Any) -> None:
    """
    Add entries to an algorithm's ``policy_kwargs`` in place (the one place they are merged):
    what the caller passes is kept unless an entry overrides it.

    :param kwargs: the algorithm's keyword arguments
    :param entries: the policy keywords to set
    """
    kwargs["policy_kwargs"] = {**(kwargs.get("policy_kwargs") or {}), **entries}


class GSDEActor(Actor):
    """
    SB3's TD3 actor plus per-env state-dependent exploration (:meth:`explore`).

    :param args: as for ``Actor``
    :param sde_std: standard deviation ``sigma`` of the noise matrices' entries
    :param kwargs: as for ``Actor``
    """

    def __init__(self, *args: Any, sde_std: float = 0.1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sde_std = sde_std
        self.latent_dim = self.net_arch[-1] if self.net_arch else self.features_dim
        self.matrices: th.Tensor | None = None  # (n_envs, latent, action)
        self.steps = np.zeros(0, dtype=np.int64)  # steps since each env's matrix was drawn

    def _draw(self, n: int) -> th.Tensor:
        action_dim = self.mu[-2].out_features
        return self.sde_std * th.randn(n, self.latent_dim, action_dim, device=self.device)

    def reset_noise(self, n_envs: int = 1) -> None:
        """
        Called by SB3 at every rollout start: draws matrices only when there are none for
        ``n_envs`` envs yet (redrawing is per env, in :meth:`step_noise`).

        :param n_envs: number of envs
        """
        if self.matrices is None or len(self.matrices) != n_envs:
            self.matrices = self._draw(n_envs)
            self.steps = np.zeros(n_envs, dtype=np.int64)

    def step_noise(self, dones: np.ndarray, sample_freq: int) -> None:
        """
        After an env step: redraw the matrix of every env whose episode ended, or that has
        used its matrix for ``sample_freq`` steps (when ``sample_freq > 0``).

        :param dones: ``(n_envs,)`` episode ends of this step
        :param sample_freq: SB3's ``sde_sample_freq``
        """
        self.reset_noise(len(dones))
        self.steps += 1
        redraw = np.asarray(dones, dtype=bool) | ((sample_freq > 0) & (self.steps >= sample_freq))
        if redraw.any():
            index = th.as_tensor(np.flatnonzero(redraw), device=self.device)
            self.matrices[index] = self._draw(len(index))  # type: ignore[index]
            self.steps[redraw] = 0

    def get_std(self) -> th.Tensor:
        """
        The standard deviation of the exploration noise per action dimension (what SB3 logs as
        ``train/std`` for gSDE): ``sde_std``, fixed, since ``z_hat`` has unit norm.

        :return: ``(action_dim,)``
        """
        return th.full((self.mu[-2].out_features,), self.sde_std, device=self.device)

    def explore(self, obs: th.Tensor) -> th.Tensor:
        """
        :param obs: one observation per env (``n_envs`` rows)
        :return: the deterministic action plus each env's state-dependent noise, clipped to ``[-1, 1]``
        """
        features = self.extract_features(obs, self.features_extractor)
        latent = self.mu[:-2](features)
        self.reset_noise(len(obs))
        z_hat = latent / (latent.norm(dim=1, keepdim=True) + 1e-8)
        noise = th.bmm(z_hat.unsqueeze(1), self.matrices).squeeze(1)  # type: ignore[arg-type]
        return (self.mu[-2:](latent) + noise).clamp(-1.0, 1.0)


class GSDETD3Policy(TD3Policy):
    """
    TD3's policy with a :class:`GSDEActor`; stochastic prediction explores with gSDE.

    :param args: as for ``TD3Policy``
    :param sde_std: see :class:`GSDEActor`
    :param kwargs: as for ``TD3Policy``
    """

    def __init__(self, *args: Any, sde_std: float = 0.1, **kwargs: Any) -> None:
        self.sde_std = sde_std
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: Any = None) -> GSDEActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return GSDEActor(**actor_kwargs, sde_std=self.sde_std).to(self.device)

    def reset_noise(self, n_envs: int = 1) -> None:
        """Draw new noise matrices for ``n_envs`` envs (SB3 calls it on load when ``use_sde`` is set)."""
        self.actor.matrices = None
        self.actor.reset_noise(n_envs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "sde_std": self.sde_std}

    def _predict(self, observation: Any, deterministic: bool = False) -> th.Tensor:
        return self.actor(observation) if deterministic else self.actor.explore(observation)


class GSDEActorCriticPolicy(ActorCriticPolicy):
    """
    SB3's ``ActorCriticPolicy`` (PPO, A2C) with ``learn_features`` exposed: with gSDE, let the
    noise's features backpropagate into the policy network (SB3 hardcodes ``False``). With
    ``learn_features=False`` it builds exactly what SB3 builds.

    :param args: as for ``ActorCriticPolicy``
    :param learn_features: whether gSDE's features are learned (only meaningful with ``use_sde``)
    :param kwargs: as for ``ActorCriticPolicy``
    """

    def __init__(self, *args: Any, learn_features: bool = False, **kwargs: Any) -> None:
        self.learn_features = learn_features
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        if self.learn_features and self.use_sde:
            self.dist_kwargs = {**(self.dist_kwargs or {}), "learn_features": True}
            self.action_dist = make_proba_distribution(self.action_space, use_sde=True, dist_kwargs=self.dist_kwargs)
        super()._build(lr_schedule)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "learn_features": self.learn_features}
