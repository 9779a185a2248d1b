"""smoothrl's PPO: a subclass of :class:`stable_baselines3.PPO` (same behaviour when no extension is used)."""

from __future__ import annotations

from stable_baselines3 import PPO as _SB3PPO


class PPO(_SB3PPO):
    """
    Stable-Baselines3's PPO (on-policy), as a smoothrl class.

    Constructor, ``learn``, ``save`` and ``load`` are SB3's: every SB3 keyword and every
    rl-zoo3 hyperparameter works unchanged. smoothrl's extensions are added here as keywords
    that are off by default.
    """
