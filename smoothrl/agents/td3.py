"""smoothrl's TD3: :class:`stable_baselines3.TD3` plus action-smoothness loss terms (off by default)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import TD3 as _SB3TD3
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from smoothrl.agents.regularizers import OffPolicyActionRegMixin
from smoothrl.agents.sde import DeterministicSDEMixin, ResamplingPredictMixin


def td3_train(self: Any, gradient_steps: int, batch_size: int = 100) -> None:
    """
    SB3's TD3 update (also DDPG's), unchanged but for one term added to the actor loss
    (``action_reg``): the structure follows ``stable_baselines3.td3.TD3.train`` line for line.
    """
    self.policy.set_training_mode(True)
    self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])

    actor_losses, critic_losses = [], []
    reg_logs: dict[str, list[float]] = {}
    for _ in range(gradient_steps):
        self._n_updates += 1
        replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

        with th.no_grad():
            noise = replay_data.actions.clone().data.normal_(0, self.target_policy_noise)
            noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
            next_actions = (self.actor_target(replay_data.next_observations) + noise).clamp(-1, 1)
            next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
            next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
            target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

        current_q_values = self.critic(replay_data.observations, replay_data.actions)
        critic_loss = sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
        assert isinstance(critic_loss, th.Tensor)
        critic_losses.append(critic_loss.item())

        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()

        if self._n_updates % self.policy_delay == 0:
            actor_loss = -self.critic.q1_forward(replay_data.observations, self.actor(replay_data.observations)).mean()
            actor_losses.append(actor_loss.item())
            actor_loss = actor_loss + self._action_reg_term(replay_data, reg_logs)  # smoothrl: action smoothness

            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
            polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
            polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

    self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
    if len(actor_losses) > 0:
        self.logger.record("train/actor_loss", np.mean(actor_losses))
    self.logger.record("train/critic_loss", np.mean(critic_losses))
    if self.use_sde:  # gSDE's noise scale (fixed for deterministic actors), logged as SB3 logs it for SAC/PPO
        self.logger.record("train/std", self.actor.sde_std)
    self._record_action_reg(reg_logs)


class DeterministicActorMixin(ResamplingPredictMixin, DeterministicSDEMixin, OffPolicyActionRegMixin):
    """What smoothrl adds to TD3 and DDPG: gSDE, ``action_reg`` and the update that carries it."""

    def _deterministic_actions(self, obs: th.Tensor) -> th.Tensor:
        return self.actor(obs)  # type: ignore[attr-defined]

    train = td3_train


class TD3(DeterministicActorMixin, _SB3TD3):
    """
    Stable-Baselines3's TD3 (off-policy) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness terms on the actor's action, as for :class:`smoothrl.SAC`
    :param use_sde: explore with gSDE (see :class:`smoothrl.agents.sde.DeterministicSDEMixin`), with
        ``sde_sample_freq``, ``use_sde_at_warmup`` and ``sde_std``
    :param kwargs: SB3's keyword arguments
    """
