"""smoothrl's SAC: :class:`stable_baselines3.SAC` plus action-smoothness loss terms and colored
exploration noise (off by default)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC as _SB3SAC
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from smoothrl.agents.extensions import OffPolicyExtensions
from smoothrl.agents.noise import ColoredActionNoise, VectorizedColoredActionNoise


class SAC(OffPolicyExtensions, _SB3SAC):
    """
    Stable-Baselines3's SAC (off-policy) with smoothrl's extensions as keywords, all off by default.

    :param policy: SB3's policy
    :param args: SB3's other positional arguments (``env``)
    :param action_reg: action-smoothness terms on the actor's deterministic action, along the
        consecutive states stored in the replay buffer (never across an episode end); as for
        :class:`smoothrl.PPO`
    :param noise_beta: explore with colored noise (the config's ``noise_type: colored`` with
        ``noise_beta``, one spelling for every algorithm): the exploring action is
        ``tanh(mean + std * eps)`` with ``eps`` a unit power-law sequence (``1/f^beta``), one per
        env, renewed at that env's episode end (``None``: SB3's white Gaussian sampling). Only
        exploration uses it: gradient updates draw their own samples. Not with ``use_sde``.
    :param noise_seq_len: steps per generated sequence
    :param kwargs: SB3's keyword arguments
    """

    def __init__(
        self,
        policy: Any,
        *args: Any,
        noise_beta: float | None = None,
        noise_seq_len: int = 1000,
        **kwargs: Any,
    ) -> None:
        if noise_beta is not None and (noise_beta < 0 or kwargs.get("use_sde")):
            raise ValueError("noise_beta must be >= 0 and cannot be combined with use_sde")
        super().__init__(policy, *args, **kwargs)
        self.noise_beta, self.noise_seq_len = noise_beta, noise_seq_len
        self._colored: VectorizedColoredActionNoise | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_colored"]

    def _colored_noise(self, n_envs: int) -> VectorizedColoredActionNoise:
        if self._colored is None or len(self._colored.noises) != n_envs:
            base = ColoredActionNoise(self.noise_beta, 1.0, self.noise_seq_len, int(np.prod(self.action_space.shape)))
            self._colored = VectorizedColoredActionNoise(base, n_envs, seed=self.seed)
        return self._colored

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.noise_beta is None or self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        obs, _ = self.policy.obs_to_tensor(self._last_obs)
        with th.no_grad():
            mean, log_std, _ = self.actor.get_action_dist_params(obs)
            eps = th.as_tensor(self._colored_noise(n_envs)(), dtype=mean.dtype, device=mean.device)
            scaled = th.tanh(mean + log_std.exp() * eps).cpu().numpy()
        if action_noise is not None:
            scaled = np.clip(scaled + action_noise(), -1, 1)
        return self.policy.unscale_action(scaled), scaled

    def _after_env_step(self, dones: np.ndarray) -> None:
        super()._after_env_step(dones)
        if self._colored is not None and dones.any():
            self._colored.reset(indices=np.flatnonzero(dones).tolist())  # a new sequence per new episode

    def _deterministic_actions(self, obs: th.Tensor) -> th.Tensor:
        return self.actor(obs, deterministic=True)

    def _shared_stochastic_pass(
        self, data: Any, logs: dict[str, list[float]]
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        One pass of the actor's network over the batch and every state the smoothness terms
        need: the sampled action and its log-probability on the batch (SB3's
        ``actor.action_log_prob``, the same random draws) and the terms on the deterministic
        action ``tanh(mean)`` of every state.

        :param data: the replay batch (with the previous states)
        :param logs: the terms' values are appended here
        :return: the sampled actions, their log-probabilities, the smoothness loss
        """

        def actor_pass(inputs: th.Tensor) -> tuple[tuple, th.Tensor]:
            params = self.actor.get_action_dist_params(inputs)
            return params, th.tanh(params[0]) / 2.0  # the squashed mode (SAC always squashes)

        (mean, log_std, kwargs), rows, loss = self._with_reg_states(data, logs, actor_pass)
        per_row = log_std.shape == mean.shape and not self.use_sde  # gSDE's log_std is a parameter
        actions, log_prob = self.actor.action_dist.log_prob_from_params(
            mean[rows], log_std[rows] if per_row else log_std, **{k: v[rows] for k, v in kwargs.items()}
        )
        return actions, log_prob, loss

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """
        SB3's SAC update (``stable_baselines3.sac.SAC.train``, SB3 2.9), with SB3's comments,
        unchanged but for one term added to the actor loss (``action_reg``); lines marked
        ``smoothrl`` are the changes. A plain SAC never gets here: it runs SB3's own ``train``.
        """
        if self._plain_update():  # every extension off: SB3's own update, at SB3's cost
            return super().train(gradient_steps, batch_size)
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizers learning rate
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]

        # Update learning rate according to lr schedule
        self._update_learning_rate(optimizers)

        ent_coef_losses, ent_coefs = [], []
        actor_losses, critic_losses = [], []
        reg_logs: dict[str, list[float]] = {}  # smoothrl: action-smoothness terms

        for gradient_step in range(gradient_steps):
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            # We need to sample because `log_std` may have changed between two gradient steps
            if self.use_sde:
                self.actor.reset_noise()

            # Action by the current actor for the sampled state
            if self.action_reg is None:  # smoothrl: SB3's line
                actions_pi, log_prob = self.actor.action_log_prob(replay_data.observations)
            else:  # smoothrl: one actor pass for the sampled action and the action-smoothness terms
                actions_pi, log_prob, reg_loss = self._shared_stochastic_pass(replay_data, reg_logs)
            log_prob = log_prob.reshape(-1, 1)

            ent_coef_loss = None
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                # Important: detach the variable from the graph
                # so we don't change it with other losses
                # see https://github.com/rail-berkeley/softlearning/issues/60
                ent_coef = th.exp(self.log_ent_coef.detach())
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                ent_coef_losses.append(ent_coef_loss.item())
            else:
                ent_coef = self.ent_coef_tensor

            ent_coefs.append(ent_coef.item())

            # Optimize entropy coefficient, also called
            # entropy temperature or alpha in the paper
            if ent_coef_loss is not None and self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            with th.no_grad():
                # Select action according to policy
                next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
                # Compute the next Q values: min over all critics targets
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                # add entropy term
                next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
                # td error + entropy term
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Get current Q-values estimates for each critic network
            # using action from the replay buffer
            current_q_values = self.critic(replay_data.observations, replay_data.actions)

            # Compute critic loss
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)  # for type checker
            critic_losses.append(critic_loss.item())  # type: ignore[union-attr]

            # Optimize the critic
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Compute actor loss
            # Alternative: actor_loss = th.mean(log_prob - qf1_pi)
            # Min over all critic networks
            q_values_pi = th.cat(self.critic(replay_data.observations, actions_pi), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
            actor_losses.append(actor_loss.item())
            if self.action_reg is not None:  # smoothrl: action smoothness
                actor_loss = actor_loss + reg_loss

            # Optimize the actor
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            # Update target networks
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if len(ent_coef_losses) > 0:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
        self._record_action_reg(reg_logs)  # smoothrl
