"""smoothrl's A2C: :class:`stable_baselines3.A2C` plus action-smoothness loss terms (off by default)."""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from stable_baselines3 import A2C as _SB3A2C
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from smoothrl.agents.extensions import OnPolicyExtensions


class A2C(OnPolicyExtensions, _SB3A2C):
    """
    Stable-Baselines3's A2C (on-policy) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness loss terms, as for :class:`smoothrl.PPO`
    :param kwargs: SB3's keyword arguments
    """

    def train(self) -> None:
        """
        SB3's A2C update (``stable_baselines3.a2c.A2C.train``, SB3 2.9), with SB3's comments,
        unchanged but for one added loss term (``action_reg``); lines marked ``smoothrl`` are the
        changes. A plain A2C never gets here: it runs SB3's own ``train``.
        """
        if self._plain_update():  # every extension off: SB3's own update, at SB3's cost
            return super().train()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)
        reg_logs: dict[str, list[float]] = {}  # smoothrl: action-smoothness terms

        # This will only loop once (get all data in one go)
        for rollout_data in self.rollout_buffer.get(batch_size=None):
            actions = rollout_data.actions
            if isinstance(self.action_space, spaces.Discrete):
                # Convert discrete action from float to long
                actions = actions.long().flatten()

            values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
            values = values.flatten()

            # Normalize advantage (not present in the original implementation)
            advantages = rollout_data.advantages
            if self.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

            # Policy gradient loss
            policy_loss = -(advantages * log_prob).mean()

            # Value loss using the TD(gae_lambda) target
            value_loss = F.mse_loss(rollout_data.returns, values)

            # Entropy loss favor exploration
            if entropy is None:  # noqa: SIM108  (SB3's structure, kept recognisable)
                # Approximate entropy when no analytical form
                entropy_loss = -th.mean(-log_prob)
            else:
                entropy_loss = -th.mean(entropy)

            loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
            loss = loss + self._action_reg_term(rollout_data, reg_logs)  # smoothrl: action smoothness

            # Optimization step
            self.policy.optimizer.zero_grad()
            loss.backward()

            # Clip grad norm
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self._record_action_reg(reg_logs)  # smoothrl
