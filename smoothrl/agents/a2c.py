"""smoothrl's A2C: a subclass of :class:`stable_baselines3.A2C` (same behaviour when no extension is used)."""

from __future__ import annotations

from stable_baselines3 import A2C as _SB3A2C


class A2C(_SB3A2C):
    """
    Stable-Baselines3's A2C (on-policy), as a smoothrl class.

    Constructor, ``learn``, ``save`` and ``load`` are SB3's: every SB3 keyword and every
    rl-zoo3 hyperparameter works unchanged. smoothrl's extensions are added here as keywords
    that are off by default.
    """
