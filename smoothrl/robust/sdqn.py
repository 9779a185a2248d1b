"""S-DQN (Sun, Gao, Weng, ICML 2024): a denoiser in front of a frozen, trained Q-network.

The denoiser ``D`` maps a noisy observation ``s + N(0, sigma^2 I)`` back towards ``s``; it is
trained with the TD loss of ``Q(D(s + noise))`` against targets from the frozen Q-network on
clean next observations, plus ``recon_weight * ||D(s + noise) - s||^2``, on data collected by
the denoised agent itself (one noisy copy per step while learning). Optionally a fraction of
the updates train on PGD-perturbed noisy observations (adversarial training of the denoiser).
At test time the agent votes: the most frequent ``argmax_a Q(D(s + noise), a)`` over
``smoothing_samples`` copies (published: 100).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import DQN as _SB3DQN
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn
from torch.nn import functional as F

from smoothrl import rundir
from smoothrl.agents.dqn import DQN
from smoothrl.agents.policies import add_policy_kwargs
from smoothrl.robust.smoothing import SmoothingSwitch, aggregate, check_smoothing, noisy_copies


class Denoiser(nn.Module):
    """
    A residual MLP ``D(x) = x + f(x)`` whose last layer starts at zero, so that training starts
    from the identity (the frozen Q-network's own input).

    :param dim: observation size (flattened)
    :param arch: hidden layer sizes
    """

    def __init__(self, dim: int, arch: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = dim
        for size in arch:
            layers += [nn.Linear(last, size), nn.ReLU()]
            last = size
        out = nn.Linear(last, dim)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*layers, out)

    def forward(self, x: th.Tensor) -> th.Tensor:
        flat = x.reshape(x.shape[0], -1)
        return (flat + self.net(flat)).reshape(x.shape)


class SDQNPolicy(SmoothingSwitch, DQNPolicy):
    """
    DQN's policy with a denoiser before the (frozen) Q-network and vote smoothing in ``predict``.

    :param args: as for ``DQNPolicy``
    :param denoiser_arch: the denoiser's hidden layers
    :param smoothing_sigma: noise standard deviation (normalized observation units)
    :param smoothing_samples: noisy copies voting per decision outside ``learn``
    :param kwargs: as for ``DQNPolicy``
    """

    def __init__(
        self,
        *args: Any,
        denoiser_arch: list[int] | None = None,
        smoothing_sigma: float = 0.2,
        smoothing_samples: int = 100,
        **kwargs: Any,
    ) -> None:
        self.denoiser_arch = list(denoiser_arch) if denoiser_arch is not None else [256, 256]
        self.smoothing_sigma = smoothing_sigma
        self.smoothing_samples = smoothing_samples
        self.acting_samples: int | None = None  # set by SDQN.learn: copies per decision while learning
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.denoiser = Denoiser(int(np.prod(self.observation_space.shape)), self.denoiser_arch).to(self.device)
        for net in (self.q_net, self.q_net_target):
            net.requires_grad_(False)
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.denoiser.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            **super()._get_constructor_parameters(),
            "denoiser_arch": self.denoiser_arch,
            "smoothing_sigma": self.smoothing_sigma,
            "smoothing_samples": self.smoothing_samples,
        }

    def set_training_mode(self, mode: bool) -> None:
        super().set_training_mode(mode)
        self.denoiser.train(mode)

    def denoised_q(self, obs: th.Tensor) -> th.Tensor:
        """:param obs: (noisy) observations
        :return: ``Q(D(obs))``, the base classifier that smoothing votes over"""
        return self.q_net(self.denoiser(obs.float()))

    def _predict(self, obs: Any, deterministic: bool = True) -> th.Tensor:
        if not self.smoothing:
            return self.denoised_q(obs).argmax(dim=1).reshape(-1)
        m = self.acting_samples or self.smoothing_samples
        scores = self.denoised_q(noisy_copies(obs.float(), self.smoothing_sigma, m))
        return aggregate(scores.reshape(m, obs.shape[0], -1), "vote", True).reshape(-1)


def _load_base(path: str | Path) -> _SB3DQN:
    """The trained DQN model of a run directory or a model file."""
    path = Path(path)
    model_path = path / rundir.MODEL if path.is_dir() else path
    if not model_path.exists():
        raise ValueError(f"base_model {path} has no model.zip; pass a DQN run directory written by `smoothrl train`")
    try:
        base = DQN.load(str(model_path), device="cpu")
    except Exception as e:
        raise ValueError(f"base_model {model_path} is not a DQN model ({type(e).__name__})") from None
    if isinstance(base.policy, SDQNPolicy):
        raise ValueError(f"base_model {model_path} is an S-DQN; pass the plain DQN run it was built on")
    return base


def base_run_fields(hyperparams: Mapping[str, Any], normalizes: bool) -> dict[str, Any]:
    """
    The run-level fields an S-DQN run takes from its base DQN run: it starts from the base run's
    normalization statistics and never updates them (its frozen Q-network was trained on them).

    :param hyperparams: the S-DQN run's keywords (``base_model`` among them)
    :param normalizes: whether the S-DQN run normalizes observations
    :return: ``{"initial_normalization": path or None, "freeze_normalization": True}``
    :raises ValueError: without ``base_model``, or when the two runs disagree about normalization
    """
    if not hyperparams.get("base_model"):
        raise ValueError("S-DQN needs base_model, a trained DQN run: set base_model=runs/dqn/<run>")
    base = Path(hyperparams["base_model"])
    stats = (base if base.is_dir() else base.parent) / rundir.VECNORMALIZE
    if normalizes and not stats.exists():
        raise ValueError(f"S-DQN normalizes but base_model {base} has no vecnormalize.pkl; set normalize=false")
    if not normalizes and stats.exists():
        raise ValueError(f"base_model {base} normalizes observations; set normalize=true for the S-DQN run too")
    return {"initial_normalization": str(stats) if stats.exists() else None, "freeze_normalization": True}


class SDQN(DQN):
    """
    S-DQN: trains a denoiser for a frozen DQN (``base_model``) so that vote smoothing over noisy
    observations keeps the base agent's return, then acts by majority vote.

    :param args: as for :class:`smoothrl.DQN`
    :param base_model: the trained DQN: a run directory written by ``smoothrl train`` or a model file
    :param smoothing_sigma: noise standard deviation, normalized observation units
    :param smoothing_samples: noisy copies voting per decision at test time (published: 100)
    :param denoiser_arch: the denoiser's hidden layers
    :param recon_weight: weight of the reconstruction loss ``||D(s + noise) - s||^2``
    :param adv_fraction: fraction of gradient steps that train on PGD-perturbed noisy observations
    :param adv_eps: Linf budget of that PGD
    :param adv_steps: its steps
    :param kwargs: as for :class:`smoothrl.DQN`
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": SDQNPolicy}  # type: ignore[misc]

    def __init__(
        self,
        *args: Any,
        base_model: str | None = None,
        smoothing_sigma: float = 0.2,
        smoothing_samples: int = 100,
        denoiser_arch: list[int] | None = None,
        recon_weight: float = 1.0,
        adv_fraction: float = 0.0,
        adv_eps: float = 0.05,
        adv_steps: int = 3,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        check_smoothing(smoothing_sigma, smoothing_samples, "S-DQN", ("smoothing_sigma", "smoothing_samples"))
        if recon_weight < 0 or not 0 <= adv_fraction <= 1 or adv_eps < 0 or adv_steps < 1:
            raise ValueError("S-DQN needs recon_weight >= 0, adv_fraction in [0, 1], adv_eps >= 0 and adv_steps >= 1")
        base = None
        if _init_setup_model:
            if not base_model:
                raise ValueError("S-DQN needs base_model, a trained DQN run: set base_model=runs/dqn/<run>")
            base = _load_base(base_model)
            net = base.policy.net_args
            add_policy_kwargs(kwargs, net_arch=net["net_arch"], activation_fn=net["activation_fn"])
        add_policy_kwargs(
            kwargs, denoiser_arch=denoiser_arch, smoothing_sigma=smoothing_sigma, smoothing_samples=smoothing_samples
        )
        self.base_model = None if base_model is None else str(base_model)
        self.recon_weight = recon_weight
        self.adv_fraction = adv_fraction
        self.adv_eps = adv_eps
        self.adv_steps = adv_steps
        super().__init__(*args, _init_setup_model=_init_setup_model, **kwargs)
        if base is not None:
            if base.observation_space != self.observation_space or base.action_space != self.action_space:
                raise ValueError(
                    f"base_model {base_model} was trained on {base.observation_space} -> {base.action_space}, "
                    f"not {self.observation_space} -> {self.action_space}"
                )
            self.policy.q_net.load_state_dict(base.policy.q_net.state_dict())
            self.policy.q_net_target.load_state_dict(base.policy.q_net.state_dict())

    @property
    def smoothing_sigma(self) -> float:
        """The smoothing noise (read by the attacks and certificates)."""
        return self.policy.smoothing_sigma

    def learn(self, *args: Any, **kwargs: Any) -> SDQN:
        """SB3's ``learn``; the agent collecting data acts on one noisy, denoised copy per step."""
        self.policy.acting_samples = 1
        try:
            return super().learn(*args, **kwargs)
        finally:
            self.policy.acting_samples = None

    def _adversarial(self, noisy: th.Tensor) -> th.Tensor:
        from smoothrl.robust.attacks import Attack, perturb
        from smoothrl.robust.views import PolicyView

        view = PolicyView(self)  # (puts the policy in eval mode for the attack)
        adv = perturb(Attack("pgd", self.adv_eps, "linf", self.adv_steps), view, noisy)
        self.policy.set_training_mode(True)
        return adv

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """
        Denoiser updates, following ``stable_baselines3.dqn.DQN.train``: TD loss of the denoised
        noisy observation against the frozen network's targets, plus the reconstruction loss.
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        policy: SDQNPolicy = self.policy  # type: ignore[assignment]
        td_losses, recon_losses, losses = [], [], []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            with th.no_grad():
                next_q_values, _ = policy.q_net_target(replay_data.next_observations).max(dim=1)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values.reshape(
                    -1, 1
                )
            clean = replay_data.observations.float()
            noisy = clean + policy.smoothing_sigma * th.randn_like(clean)
            if self.adv_fraction > 0 and np.random.random() < self.adv_fraction:
                noisy = self._adversarial(noisy)
            denoised = policy.denoiser(noisy)
            current_q_values = th.gather(policy.q_net(denoised), dim=1, index=replay_data.actions.long())
            td_loss = F.smooth_l1_loss(current_q_values, target_q_values)
            recon_loss = F.mse_loss(denoised, clean)
            loss = td_loss + self.recon_weight * recon_loss
            td_losses.append(td_loss.item())
            recon_losses.append(recon_loss.item())
            losses.append(loss.item())
            policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(policy.denoiser.parameters(), self.max_grad_norm)
            policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
        self.logger.record("train/td_loss", np.mean(td_losses))
        self.logger.record("train/recon_loss", np.mean(recon_losses))
