"""smoothrl's PPO: :class:`stable_baselines3.PPO` plus action-smoothness loss terms, trust-region
modes for the importance ratio and optional diagnostics (all off by default)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO as _SB3PPO
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from smoothrl.agents.extensions import OnPolicyExtensions
from smoothrl.agents.ratio import RatioMode, check_ratio, surrogate_loss


class PPO(OnPolicyExtensions, _SB3PPO):
    """
    Stable-Baselines3's PPO (on-policy) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness loss terms (:class:`~smoothrl.agents.losses.ActionReg`
        or its keywords as a dict): temporal differences of order 1-3 along consecutive rollout
        states of the same env (never across an episode start) and the CAPS spatial term
    :param ratio: the policy surrogate (:mod:`smoothrl.agents.ratio`): ``"clip"`` (SB3's PPO, the
        default), ``"none"`` (unclipped), ``"pspo"`` (PSPO's mixed ratio ``(1 - alpha) r + alpha``),
        ``"pspo_clip"`` (mixed, then clipped) or ``"spo"`` (Simple Policy Optimization)
    :param pspo_alpha: PSPO's mixing weight ``alpha`` in [0, 1) (0.1 in the published code)
    :param diagnostics: also log ``train/ratio_dev_mean``, ``train/ratio_dev_max``,
        ``train/mixed_ratio_dev_mean``, ``train/grad_norm`` (every minibatch) and
        ``train/pg_grad_norm`` (one extra backward pass per epoch); off by default, so that a
        plain PPO costs what SB3's costs and logs SB3's keys
    :param kwargs: SB3's keyword arguments
    """

    def __init__(
        self,
        *args: Any,
        ratio: RatioMode = "clip",
        pspo_alpha: float = 0.1,
        diagnostics: bool = False,
        **kwargs: Any,
    ) -> None:
        check_ratio(ratio, pspo_alpha, kwargs.get("clip_range", 0.2))
        self.ratio = ratio
        self.pspo_alpha = pspo_alpha
        self.diagnostics = diagnostics
        super().__init__(*args, **kwargs)

    def _plain_update(self) -> bool:
        return super()._plain_update() and self.ratio == "clip" and not self.diagnostics

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
        SB3's PPO update (``stable_baselines3.ppo.PPO.train``, SB3 2.9), with SB3's comments,
        unchanged but for the policy surrogate (``ratio``), one added loss term (``action_reg``)
        and the diagnostics asked for (``diagnostics``); lines marked ``smoothrl`` are the changes.
        A plain PPO never gets here: it runs SB3's own ``train``.
        """
        if self._plain_update():  # every extension off: SB3's own update, at SB3's cost
            return super().train()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)
        # Compute current clip range
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        # Optional: clip range for the value function
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        entropy_losses = []
        pg_losses, value_losses = [], []
        clip_fractions = []
        reg_logs: dict[str, list[float]] = {}  # smoothrl: action-smoothness terms
        diagnostics: dict[str, list[float]] = {}  # smoothrl: ratio and gradient diagnostics

        continue_training = True
        # train for n_epochs epochs
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            # Do a complete pass on the rollout buffer
            for batch_index, rollout_data in enumerate(self.rollout_buffer.get(self.batch_size)):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    # Convert discrete action from float to long
                    actions = rollout_data.actions.long().flatten()

                values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
                values = values.flatten()
                # Normalize advantage
                advantages = rollout_data.advantages
                # Normalization does not make sense if mini batchsize == 1, see GH issue #325
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # smoothrl: the surrogate of the ratio mode ("clip" is SB3's clipped surrogate loss)
                policy_loss, stats = surrogate_loss(
                    self.ratio,
                    log_prob,
                    rollout_data.old_log_prob,
                    advantages,
                    clip_range,
                    self.pspo_alpha,
                    diagnostics=self.diagnostics,
                )
                if self.diagnostics and batch_index == 0:  # one extra backward pass per epoch
                    stats["pg_grad_norm"] = self._policy_grad_norm(policy_loss)

                # Logging
                pg_losses.append(policy_loss.item())
                if "clip_fraction" in stats:
                    clip_fractions.append(stats.pop("clip_fraction"))

                if self.clip_range_vf is None:
                    # No clipping
                    values_pred = values
                else:
                    # Clip the difference between old and new value
                    # NOTE: this depends on the reward scaling
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                # Value loss using the TD(gae_lambda) target
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())

                # Entropy loss favor exploration
                if entropy is None:  # noqa: SIM108  (SB3's structure, kept recognisable)
                    # Approximate entropy when no analytical form
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)

                entropy_losses.append(entropy_loss.item())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                loss = loss + self._action_reg_term(rollout_data, reg_logs)  # smoothrl: action smoothness

                # Calculate approximate form of reverse KL Divergence for early stopping
                # see issue #417: https://github.com/DLR-RM/stable-baselines3/issues/417
                # and discussion in PR #419: https://github.com/DLR-RM/stable-baselines3/pull/419
                # and Schulman blog: http://joschu.net/blog/kl-approx.html
                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                # Optimization step
                self.policy.optimizer.zero_grad()
                loss.backward()
                # Clip grad norm
                grad_norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                if self.diagnostics:  # smoothrl: the whole loss's gradient norm, before clipping
                    stats["grad_norm"] = grad_norm.item()
                for key, value in stats.items():
                    diagnostics.setdefault(key, []).append(value)

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        # Logs
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        if clip_fractions:  # smoothrl: the modes without a clip have no clip fraction
            self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        for key, values in diagnostics.items():  # smoothrl: only with diagnostics=True
            reduce = np.max if key.endswith("_max") else np.mean
            self.logger.record(f"train/{key}", float(reduce(values)))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        self._record_action_reg(reg_logs)  # smoothrl

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
