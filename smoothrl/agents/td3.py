"""smoothrl's TD3: a subclass of :class:`stable_baselines3.TD3` (same behaviour when no extension is used)."""

from __future__ import annotations

from stable_baselines3 import TD3 as _SB3TD3


class TD3(_SB3TD3):
    """
    Stable-Baselines3's TD3 (off-policy), as a smoothrl class.

    Constructor, ``learn``, ``save`` and ``load`` are SB3's: every SB3 keyword and every
    rl-zoo3 hyperparameter works unchanged. smoothrl's extensions are added here as keywords
    that are off by default.
    """
