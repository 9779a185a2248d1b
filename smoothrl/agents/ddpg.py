"""smoothrl's DDPG: :class:`stable_baselines3.DDPG` plus action-smoothness loss terms (off by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch as th
from stable_baselines3 import DDPG as _SB3DDPG

from smoothrl.agents.regularizers import ActionReg, OffPolicyActionRegMixin
from smoothrl.agents.sde import DeterministicSDEMixin, ResamplingPredictMixin
from smoothrl.agents.td3 import td3_train


class DDPG(ResamplingPredictMixin, DeterministicSDEMixin, OffPolicyActionRegMixin, _SB3DDPG):
    """
    Stable-Baselines3's DDPG (off-policy; SB3 implements it as TD3 with one critic, no policy
    delay and no target smoothing) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness terms on the actor's action, as for :class:`smoothrl.SAC`
    :param use_sde: explore with gSDE instead of action noise (see :mod:`smoothrl.agents.sde`)
    :param sde_sample_freq: redraw each env's noise matrix every this many steps (-1: at episode
        start only)
    :param use_sde_at_warmup: explore with gSDE instead of uniform actions before ``learning_starts``
    :param sde_std: standard deviation of the noise per action (fixed: no entropy objective learns it)
    :param kwargs: SB3's keyword arguments
    """

    def __init__(
        self,
        policy: Any,
        *args: Any,
        action_reg: ActionReg | Mapping[str, Any] | None = None,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        sde_std: float = 0.1,
        **kwargs: Any,
    ) -> None:
        self._setup_action_reg(action_reg, kwargs)
        policy = self._sde_policy(policy, use_sde, sde_std, kwargs)
        super().__init__(policy, *args, **kwargs)
        self.use_sde, self.sde_sample_freq, self.use_sde_at_warmup = use_sde, sde_sample_freq, use_sde_at_warmup

    def _deterministic_actions(self, obs: th.Tensor) -> th.Tensor:
        return self.actor(obs)

    train = td3_train
