"""A differentiable view of any smoothrl/SB3 model's decision on the observations it sees.

Attacks, smoothing and certificates all work in the *normalized* observation space, the one the
policy's network receives (after ``VecNormalize``, when the run normalizes): that is where
perturbation budgets and smoothing noise are measured.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy

from smoothrl.errors import SmoothRLError


class PolicyView:
    """
    The decision of a model as a function of a batch of (normalized) observations.

    Continuous actions: :meth:`output` is the deterministic action in the policy's own units
    (the Gaussian's mean for PPO/A2C, ``tanh(mean)`` for SAC, the actor for TD3/DDPG).
    Discrete actions: :meth:`output` is the action scores (PPO/A2C logits, DQN Q-values) and the
    decision is their argmax. For agents that smooth themselves (S-PPO, S-DQN) it is the *base*
    policy's output, the one their smoothing and the certificates are built on.

    :param model: a trained model with a Box observation space and a Box or Discrete action space
    :raises SmoothRLError: for other spaces
    """

    def __init__(self, model: BaseAlgorithm) -> None:
        if not isinstance(model.observation_space, spaces.Box):
            raise SmoothRLError(
                f"robustness tools need a Box observation space, this model has {model.observation_space}"
            )
        if not isinstance(model.action_space, spaces.Box | spaces.Discrete):
            raise SmoothRLError(
                f"robustness tools need a Box or Discrete action space, this model has {model.action_space}"
            )
        self.model = model
        self.policy = model.policy
        self.policy.set_training_mode(False)  # as SB3's predict does
        self.device = model.device
        self.discrete = isinstance(model.action_space, spaces.Discrete)
        self.obs_shape = model.observation_space.shape

    @property
    def algo_name(self) -> str:
        """The model's class name (for messages)."""
        return type(self.model).__name__

    def tensor(self, obs: np.ndarray) -> th.Tensor:
        """:param obs: a batch of observations as the policy sees them
        :return: a float tensor on the model's device, shape ``(batch, *obs_shape)``"""
        return th.as_tensor(np.asarray(obs), dtype=th.float32, device=self.device).reshape(-1, *self.obs_shape)

    def output(self, obs: th.Tensor) -> th.Tensor:
        """
        :param obs: ``(batch, *obs_shape)`` normalized observations
        :return: ``(batch, action_dim)`` deterministic actions or ``(batch, n_actions)`` scores
        """
        policy = self.policy
        with getattr(policy, "unsmoothed", nullcontext)():  # a smoothed agent's base policy
            if not self.discrete:
                return policy._predict(obs, deterministic=True)
            if hasattr(policy, "denoised_q"):  # S-DQN: the denoised Q-values
                return policy.denoised_q(obs)
            if isinstance(self.model, DQN):
                return policy.q_net(obs)
            if isinstance(policy, ActorCriticPolicy):
                return policy.get_distribution(obs).distribution.logits
        raise SmoothRLError(f"{self.algo_name} with discrete actions is not supported by the robustness tools")

    def to_env(self, decision: th.Tensor) -> np.ndarray:
        """
        The actions to send to the env, post-processed as SB3's ``predict`` does.

        :param decision: action indices (discrete actions) or the policy's actions
        :return: numpy actions
        """
        actions = decision.detach().cpu().numpy()
        if self.discrete:
            return actions.astype(np.int64)
        actions = actions.reshape(-1, *self.model.action_space.shape)
        if self.policy.squash_output:
            return self.policy.unscale_action(actions)
        return np.clip(actions, self.model.action_space.low, self.model.action_space.high)

    def unit(self, decision: th.Tensor) -> th.Tensor:
        """:param decision: continuous actions in the policy's units
        :return: the same in units where the action box is [-1, 1] (deviation is measured there)"""
        if self.policy.squash_output:
            return decision
        low = th.as_tensor(self.model.action_space.low, device=decision.device)
        high = th.as_tensor(self.model.action_space.high, device=decision.device)
        return 2.0 * (decision.clamp(low, high) - low) / (high - low) - 1.0

    def has_q(self) -> bool:
        """Whether the model has a Q-function (DQN's Q-network, SAC/TD3/DDPG's critic)."""
        return isinstance(self.model, DQN) or hasattr(self.policy, "critic")

    def require_q(self) -> None:
        """:raises SmoothRLError: when the model has no Q-function (what the min_q attack needs)"""
        if not self.has_q():
            raise SmoothRLError(
                f"{self.algo_name} has no Q-function for the min_q attack; use pgd, mad or smoothed instead"
            )

    def q_of_decision(self, clean: th.Tensor, out: th.Tensor) -> th.Tensor:
        """
        ``Q(s, decision(s'))`` for the min-Q attack: the true state's value of the action the
        (possibly perturbed) output would take; a softmax relaxation of the argmax for DQN.

        :param clean: clean observations ``s``
        :param out: :meth:`output` at the perturbed observations ``s'``
        :return: ``(batch,)`` values
        """
        self.require_q()
        if isinstance(self.model, DQN):
            with th.no_grad():
                q_clean = self.policy.q_net(clean)
            return (th.softmax(out, dim=-1) * q_clean).sum(-1)
        return self.policy.critic.q1_forward(clean, out).flatten()

    def distribution_shift(self, clean: th.Tensor, adv: th.Tensor) -> th.Tensor:
        """
        The MAD objective: KL(pi(.|s) || pi(.|s')) for stochastic policies, the squared action
        distance for deterministic actors, the KL of the softmax of the scores for DQN.

        :param clean: clean observations
        :param adv: perturbed observations
        :return: ``(batch,)`` divergences
        """
        policy = self.policy
        if isinstance(policy, ActorCriticPolicy):
            with getattr(policy, "unsmoothed", nullcontext)():
                with th.no_grad():
                    p = policy.get_distribution(clean).distribution
                q = policy.get_distribution(adv).distribution
            kl = th.distributions.kl_divergence(p, q)
            return kl.sum(-1) if kl.dim() > 1 else kl
        if self.discrete:  # DQN
            with th.no_grad():
                p = th.log_softmax(self.output(clean), -1)
            q = th.log_softmax(self.output(adv), -1)
            return (p.exp() * (p - q)).sum(-1)
        actor = policy.actor
        if hasattr(actor, "get_action_dist_params") and not getattr(actor, "use_sde", False):  # SAC: pre-tanh Gaussian
            with th.no_grad():
                mean_p, log_std_p, _ = actor.get_action_dist_params(clean)
            mean_q, log_std_q, _ = actor.get_action_dist_params(adv)
            p = th.distributions.Normal(mean_p, log_std_p.exp())
            q = th.distributions.Normal(mean_q, log_std_q.exp())
            return th.distributions.kl_divergence(p, q).sum(-1)
        with th.no_grad():
            a = self.output(clean)
        return (self.output(adv) - a).pow(2).sum(-1)
