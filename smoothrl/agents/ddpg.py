"""smoothrl's DDPG: :class:`stable_baselines3.DDPG` plus action-smoothness loss terms (off by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch as th
from stable_baselines3 import DDPG as _SB3DDPG

from smoothrl.agents.regularizers import ActionReg, OffPolicyActionRegMixin
from smoothrl.agents.td3 import td3_train


class DDPG(OffPolicyActionRegMixin, _SB3DDPG):
    """
    Stable-Baselines3's DDPG (off-policy; SB3 implements it as TD3 with one critic, no policy
    delay and no target smoothing) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness terms on the actor's action, as for :class:`smoothrl.SAC`
    :param kwargs: SB3's keyword arguments
    """

    def __init__(self, *args: Any, action_reg: ActionReg | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self._setup_action_reg(action_reg, kwargs)
        super().__init__(*args, **kwargs)

    def _deterministic_actions(self, obs: th.Tensor) -> th.Tensor:
        return self.actor(obs)

    train = td3_train
