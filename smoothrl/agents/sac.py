"""smoothrl's SAC: a subclass of :class:`stable_baselines3.SAC` (same behaviour when no extension is used)."""

from __future__ import annotations

from stable_baselines3 import SAC as _SB3SAC


class SAC(_SB3SAC):
    """
    Stable-Baselines3's SAC (off-policy), as a smoothrl class.

    Constructor, ``learn``, ``save`` and ``load`` are SB3's: every SB3 keyword and every
    rl-zoo3 hyperparameter works unchanged. smoothrl's extensions are added here as keywords
    that are off by default.
    """
