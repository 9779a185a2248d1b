"""gSDE for deterministic actors (TD3, DDPG): state-dependent exploration, one noise matrix per env.

Exploration noise ``eps(s) = theta^T z_hat(s)``: ``z(s)`` is the actor's last hidden layer,
``z_hat = z / ||z||``, and ``theta ~ N(0, sigma^2)`` (``latent x action``) is drawn per env
and kept fixed for ``sde_sample_freq`` steps (``-1``: the whole episode) and redrawn at that
env's episode start. The same state gets the same noise until the matrix is redrawn, so
exploration is smooth in time (Raffin et al., "Smooth Exploration for Robotic RL", CoRL 2021).

TD3 and DDPG have no entropy objective that could learn the noise scale, so ``sigma``
(``sde_std``) is a fixed hyperparameter; normalizing ``z`` makes it the per-action standard
deviation whatever the layer width. The noise is added to the squashed action in ``[-1, 1]``
and clipped, like SB3's action noise. Deterministic prediction (evaluation, target actions,
the actor loss) never sees it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import make_proba_distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import is_vectorized_observation
from stable_baselines3.td3.policies import Actor, TD3Policy

from smoothrl.agents.noise import EnvStepHookMixin


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


class DeterministicSDEMixin(EnvStepHookMixin):
    """
    ``use_sde``, ``sde_sample_freq``, ``use_sde_at_warmup`` and ``sde_std`` for TD3 and DDPG
    (SB3 supports gSDE only for PPO, A2C and SAC).

    :param policy: the policy (``"MlpPolicy"`` becomes :class:`GSDETD3Policy` with gSDE)
    :param args: the algorithm's other positional arguments
    :param use_sde: explore with gSDE instead of action noise
    :param sde_sample_freq: redraw each env's noise matrix every this many steps (-1: at episode
        start only)
    :param use_sde_at_warmup: explore with gSDE instead of uniform actions before ``learning_starts``
    :param sde_std: standard deviation of the noise per action (fixed: no entropy objective learns it)
    :param kwargs: the algorithm's keyword arguments
    """

    use_sde: bool
    sde_sample_freq: int
    use_sde_at_warmup: bool

    def __init__(
        self,
        policy: Any,
        *args: Any,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        sde_std: float = 0.1,
        **kwargs: Any,
    ) -> None:
        policy = self._sde_policy(policy, use_sde, sde_std, kwargs)
        super().__init__(policy, *args, **kwargs)  # type: ignore[call-arg]
        self.use_sde, self.sde_sample_freq, self.use_sde_at_warmup = use_sde, sde_sample_freq, use_sde_at_warmup

    @staticmethod
    def _sde_policy(policy: Any, use_sde: bool, sde_std: float, kwargs: dict[str, Any]) -> Any:
        """The policy to build: ``GSDETD3Policy`` for ``"MlpPolicy"`` when gSDE is on."""
        if not use_sde:
            return policy
        if policy not in ("MlpPolicy", GSDETD3Policy):
            raise ValueError(f"use_sde on TD3/DDPG supports policy='MlpPolicy', got {policy!r}")
        kwargs["policy_kwargs"] = {**(kwargs.get("policy_kwargs") or {}), "sde_std": sde_std}
        return GSDETD3Policy

    def _after_env_step(self, dones: np.ndarray) -> None:
        if self.use_sde:
            self.actor.step_noise(dones, self.sde_sample_freq)  # type: ignore[attr-defined]


class SmoothActorCriticPolicy(ActorCriticPolicy):
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


class ResamplingPredictMixin:
    """``predict(..., resample_noise=True)``: draw fresh gSDE noise first (SB3 keeps the last draw)."""

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        resample_noise: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """
        SB3's ``predict``; with ``resample_noise`` and gSDE, stochastic actions use new noise.

        :param observation: as for SB3
        :param state: as for SB3
        :param episode_start: as for SB3
        :param deterministic: as for SB3
        :param resample_noise: redraw the gSDE noise (one draw per observation) before predicting
        :return: as for SB3
        """
        if resample_noise and not deterministic and getattr(self, "use_sde", False):
            space = self.observation_space  # type: ignore[attr-defined]
            n = len(observation) if is_vectorized_observation(observation, space) else 1
            self.policy.reset_noise(n)  # type: ignore[attr-defined]
        return super().predict(observation, state, episode_start, deterministic)  # type: ignore[misc]
