"""smoothrl's TD3 (and what DDPG shares with it): :class:`stable_baselines3.TD3` plus gSDE and
action-smoothness loss terms (off by default)."""

from __future__ import annotations

import numpy as np
import torch as th
from stable_baselines3 import TD3 as _SB3TD3
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from smoothrl.agents.extensions import OffPolicyExtensions
from smoothrl.agents.sde import DeterministicSDE


class TD3Extensions(DeterministicSDE, OffPolicyExtensions):
    """
    What smoothrl adds to TD3 and DDPG (SB3's DDPG is a TD3): gSDE for the deterministic actor,
    ``action_reg`` on its action, and the update that carries the loss term.
    """

    def _deterministic_actions(self, obs: th.Tensor) -> th.Tensor:
        return self.actor(obs)  # type: ignore[attr-defined]

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """
        SB3's TD3 update (``stable_baselines3.td3.TD3.train``, SB3 2.9; also DDPG's), with SB3's
        comments, unchanged but for one term added to the actor loss (``action_reg``); lines marked
        ``smoothrl`` are the changes. A plain TD3/DDPG never gets here: it runs SB3's own ``train``.
        """
        if self._plain_update():  # every extension off: SB3's own update, at SB3's cost
            return super().train(gradient_steps, batch_size)
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update learning rate according to lr schedule
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])

        actor_losses, critic_losses = [], []
        reg_logs: dict[str, list[float]] = {}  # smoothrl: action-smoothness terms
        for _ in range(gradient_steps):
            self._n_updates += 1
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            with th.no_grad():
                # Select action according to policy and add clipped noise
                noise = replay_data.actions.clone().data.normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(replay_data.next_observations) + noise).clamp(-1, 1)

                # Compute the next Q-values: min over all critics targets
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Get current Q-values estimates for each critic network
            current_q_values = self.critic(replay_data.observations, replay_data.actions)

            # Compute critic loss
            critic_loss = sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            critic_losses.append(critic_loss.item())

            # Optimize the critics
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Delayed policy updates
            if self._n_updates % self.policy_delay == 0:
                # Compute actor loss
                if self.action_reg is None:  # smoothrl: SB3's lines
                    actor_loss = -self.critic.q1_forward(
                        replay_data.observations, self.actor(replay_data.observations)
                    ).mean()  # noqa: E501  (SB3's line)
                    actor_losses.append(actor_loss.item())
                else:  # smoothrl: one actor pass for SB3's loss and the action-smoothness terms
                    actions_pi, reg_loss = self._shared_actor_pass(replay_data, reg_logs)
                    actor_loss = -self.critic.q1_forward(replay_data.observations, actions_pi).mean()
                    actor_losses.append(actor_loss.item())
                    actor_loss = actor_loss + reg_loss

                # Optimize the actor
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()

                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if len(actor_losses) > 0:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        self._record_action_reg(reg_logs)  # smoothrl


class TD3(TD3Extensions, _SB3TD3):
    """
    Stable-Baselines3's TD3 (off-policy) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness terms on the actor's action, as for :class:`smoothrl.SAC`
    :param use_sde: explore with gSDE (see :class:`smoothrl.agents.sde.DeterministicSDE`), with
        ``sde_sample_freq``, ``use_sde_at_warmup`` and ``sde_std``
    :param kwargs: SB3's keyword arguments
    """
