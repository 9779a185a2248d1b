"""smoothrl's DQN: :class:`stable_baselines3.DQN` itself, under smoothrl's name."""

from __future__ import annotations

from stable_baselines3 import DQN as _SB3DQN


class DQN(_SB3DQN):
    """
    Stable-Baselines3's DQN (off-policy), unchanged: smoothrl has no DQN keyword yet. It exists
    so that every algorithm is importable from ``smoothrl`` and S-DQN
    (:class:`smoothrl.robust.sdqn.SDQN`) has a smoothrl base; models it saves load with SB3.
    """
