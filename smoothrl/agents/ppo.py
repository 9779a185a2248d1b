"""smoothrl's PPO: :class:`stable_baselines3.PPO` plus action-smoothness loss terms and trust-region
modes for the importance ratio (all off by default)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO as _SB3PPO
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from smoothrl.agents.ratio import RatioMode, check_ratio, surrogate_loss
from smoothrl.agents.regularizers import OnPolicyActionRegMixin
from smoothrl.agents.sde import ResamplingPredictMixin, SmoothActorCriticPolicy


class PPO(ResamplingPredictMixin, OnPolicyActionRegMixin, _SB3PPO):
    """
    Stable-Baselines3's PPO (on-policy) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness loss terms (:class:`~smoothrl.agents.regularizers.ActionReg`
        or its keywords as a dict): temporal differences of order 1-3 along consecutive rollout
        states of the same env (never across an episode start) and the CAPS spatial term
    :param ratio: the policy surrogate (:mod:`smoothrl.agents.ratio`): ``"clip"`` (SB3's PPO, the
        default), ``"none"`` (unclipped), ``"pspo"`` (smoothed ratio ``(1 - alpha) r + alpha``),
        ``"pspo_clip"`` (smoothed, then clipped) or ``"spo"`` (Simple Policy Optimization)
    :param pspo_alpha: PSPO's smoothing weight ``alpha`` in [0, 1) (0.1 in the published code)
    :param kwargs: SB3's keyword arguments
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {  # type: ignore[misc]
        **_SB3PPO.policy_aliases,
        "MlpPolicy": SmoothActorCriticPolicy,
    }

    def __init__(self, *args: Any, ratio: RatioMode = "clip", pspo_alpha: float = 0.1, **kwargs: Any) -> None:
        check_ratio(ratio, pspo_alpha, kwargs.get("clip_range", 0.2))
        self.ratio = ratio
        self.pspo_alpha = pspo_alpha
        super().__init__(*args, **kwargs)

    def _policy_grad_norm(self, policy_loss: th.Tensor) -> float:
        """
        The norm of the policy term's own gradient (without the value, entropy and smoothness
        terms), logged as ``train/pg_grad_norm`` from the first minibatch of each epoch;
        ``train/grad_norm`` is the whole loss's norm before clipping, from every minibatch.

        :param policy_loss: the minibatch's policy surrogate
        :return: its gradient's L2 norm over all policy parameters
        """
        params = [p for p in self.policy.parameters() if p.requires_grad]
        grads = th.autograd.grad(policy_loss, params, retain_graph=True, allow_unused=True)
        norms = [th.linalg.vector_norm(g) for g in grads if g is not None]
        return th.linalg.vector_norm(th.stack(norms)).item() if norms else 0.0

    def train(self) -> None:
        """
        SB3's PPO update, unchanged but for the policy surrogate (``ratio``), one added loss term
        (``action_reg``) and more diagnostics: the structure below follows
        ``stable_baselines3.ppo.PPO.train`` line for line.
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
        ratio_logs: dict[str, list[float]] = {}

        continue_training = True
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for batch_index, rollout_data in enumerate(self.rollout_buffer.get(self.batch_size)):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = rollout_data.actions.long().flatten()

                values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
                values = values.flatten()
                advantages = rollout_data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # smoothrl: the surrogate of the ratio mode ("clip" is SB3's expression)
                policy_loss, stats = surrogate_loss(
                    self.ratio, log_prob, rollout_data.old_log_prob, advantages, clip_range, self.pspo_alpha
                )
                if batch_index == 0:  # one extra backward pass per epoch, not per minibatch
                    stats["pg_grad_norm"] = self._policy_grad_norm(policy_loss)

                pg_losses.append(policy_loss.item())
                if "clip_fraction" in stats:
                    clip_fractions.append(stats.pop("clip_fraction"))

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
                grad_norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                stats["grad_norm"] = grad_norm.item()
                for key, value in stats.items():
                    ratio_logs.setdefault(key, []).append(value)

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        if clip_fractions:
            self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        for key, values in ratio_logs.items():
            reduce = np.max if key.endswith("_max") else np.mean
            self.logger.record(f"train/{key}", float(reduce(values)))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self._record_action_reg(reg_logs)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
