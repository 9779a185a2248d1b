"""smoothrl's DDPG: a subclass of :class:`stable_baselines3.DDPG` (same behaviour when no extension is used)."""

from __future__ import annotations

from stable_baselines3 import DDPG as _SB3DDPG


class DDPG(_SB3DDPG):
    """
    Stable-Baselines3's DDPG (off-policy), as a smoothrl class.

    Constructor, ``learn``, ``save`` and ``load`` are SB3's: every SB3 keyword and every
    rl-zoo3 hyperparameter works unchanged. smoothrl's extensions are added here as keywords
    that are off by default.
    """
