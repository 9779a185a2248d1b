"""smoothrl's DQN: a subclass of :class:`stable_baselines3.DQN` (same behaviour when no extension is used)."""

from __future__ import annotations

from stable_baselines3 import DQN as _SB3DQN


class DQN(_SB3DQN):
    """
    Stable-Baselines3's DQN (off-policy), as a smoothrl class.

    Constructor, ``learn``, ``save`` and ``load`` are SB3's: every SB3 keyword and every
    rl-zoo3 hyperparameter works unchanged. smoothrl's extensions are added here as keywords
    that are off by default.
    """
