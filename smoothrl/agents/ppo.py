"""smoothrl's PPO: :class:`stable_baselines3.PPO` plus action-smoothness loss terms (off by default)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO as _SB3PPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from smoothrl.agents.regularizers import OnPolicyActionRegMixin
from smoothrl.agents.sde import ResamplingPredictMixin, SmoothActorCriticPolicy


class PPO(ResamplingPredictMixin, OnPolicyActionRegMixin, _SB3PPO):
    """
    Stable-Baselines3's PPO (on-policy) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness loss terms (:class:`~smoothrl.agents.regularizers.ActionReg`
        or its keywords as a dict): temporal differences of order 1-3 along consecutive rollout
        states of the same env (never across an episode start) and the CAPS spatial term
    :param kwargs: SB3's keyword arguments
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {  # type: ignore[misc]
        **_SB3PPO.policy_aliases,
        "MlpPolicy": SmoothActorCriticPolicy,
    }

    def train(self) -> None:
        """
        SB3's PPO update, unchanged but for one added loss term (``action_reg``): the structure
        below follows ``stable_baselines3.ppo.PPO.train`` line for line.
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        entropy_losses = []
        pg_losses, value_losses = [], []
        clip_fractions = []
        reg_logs: dict[str, list[float]] = {}

        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = rollout_data.actions.long().flatten()

                values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
                values = values.flatten()
                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                ratio = th.exp(log_prob - rollout_data.old_log_prob)
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()

                pg_losses.append(policy_loss.item())
                clip_fraction = th.mean((th.abs(ratio - 1) > clip_range).float()).item()
                clip_fractions.append(clip_fraction)

                if self.clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())

                if entropy is None:  # noqa: SIM108  (SB3's own structure, kept recognisable)
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)
                entropy_losses.append(entropy_loss.item())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                loss = loss + self._action_reg_term(rollout_data, reg_logs)  # smoothrl: action smoothness

                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self._record_action_reg(reg_logs)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
