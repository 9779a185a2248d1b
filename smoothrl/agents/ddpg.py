"""smoothrl's DDPG: :class:`stable_baselines3.DDPG` plus gSDE and action-smoothness loss terms (off by default)."""

from __future__ import annotations

from stable_baselines3 import DDPG as _SB3DDPG

from smoothrl.agents.td3 import TD3Extensions


class DDPG(TD3Extensions, _SB3DDPG):
    """
    Stable-Baselines3's DDPG (off-policy; SB3 implements it as TD3 with one critic, no policy
    delay and no target smoothing) with smoothrl's extensions as keywords, all off by default.

    :param args: SB3's positional arguments (``policy``, ``env``)
    :param action_reg: action-smoothness terms on the actor's action, as for :class:`smoothrl.SAC`
    :param use_sde: explore with gSDE, as for :class:`smoothrl.TD3`
    :param kwargs: SB3's keyword arguments
    """
