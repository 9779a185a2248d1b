"""Algorithms: drop-in subclasses of the Stable-Baselines3 classes and what they share.

``ppo``, ``a2c``, ``sac``, ``td3``, ``ddpg``, ``dqn``: one module per algorithm, small diffs of
SB3; ``extensions`` (one mixin per family), ``sde`` (gSDE for deterministic actors),
``policies``, ``buffers``, ``losses``, ``noise``, ``ratio``. The name -> class registry lives
above this package, in :mod:`smoothrl.registry`.
"""

from __future__ import annotations

from smoothrl.agents.a2c import A2C
from smoothrl.agents.ddpg import DDPG
from smoothrl.agents.dqn import DQN
from smoothrl.agents.ppo import PPO
from smoothrl.agents.sac import SAC
from smoothrl.agents.td3 import TD3

__all__ = ["A2C", "DDPG", "DQN", "PPO", "SAC", "TD3"]
