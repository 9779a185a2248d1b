"""smoothrl: Stable-Baselines3 extensions for smooth, robust and deployable RL control.

``from smoothrl import PPO, SAC, TD3, DDPG, A2C, DQN``: drop-in subclasses of the SB3 classes.
Importing smoothrl registers its ``smoothrl/*`` environment ids with gymnasium.
"""

from __future__ import annotations

from smoothrl import envs  # noqa: F401  (registers the smoothrl/* env ids)
from smoothrl.agents import A2C, ALGOS, DDPG, DQN, PPO, SAC, TD3

__version__ = "0.1.0"

__all__ = ["A2C", "ALGOS", "DDPG", "DQN", "PPO", "SAC", "TD3", "__version__"]
