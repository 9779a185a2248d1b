"""Algorithms: drop-in subclasses of the Stable-Baselines3 classes, and their registry."""

from __future__ import annotations

from stable_baselines3.common.base_class import BaseAlgorithm

from smoothrl.agents.a2c import A2C
from smoothrl.agents.ddpg import DDPG
from smoothrl.agents.dqn import DQN
from smoothrl.agents.ppo import PPO
from smoothrl.agents.sac import SAC
from smoothrl.agents.td3 import TD3
from smoothrl.errors import SmoothRLError
from smoothrl.robust.sdqn import SDQN
from smoothrl.robust.sppo import SPPO

#: Algorithm name (as the CLI and presets spell it) -> class.
ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "dqn": DQN,
    "sppo": SPPO,
    "sdqn": SDQN,
}


def get_algo(name: str) -> type[BaseAlgorithm]:
    """
    Look an algorithm up by name.

    :param name: e.g. ``"sac"`` (case-insensitive)
    :return: its class
    :raises SmoothRLError: for an unknown name
    """
    try:
        return ALGOS[name.lower()]
    except KeyError:
        raise SmoothRLError(f"unknown algorithm '{name}'; choose one of: {', '.join(ALGOS)}") from None


def is_off_policy(algo: type[BaseAlgorithm]) -> bool:
    """
    :param algo: an algorithm class
    :return: whether it learns from a replay buffer
    """
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    return issubclass(algo, OffPolicyAlgorithm)


__all__ = ["ALGOS", "A2C", "DDPG", "DQN", "PPO", "SAC", "SDQN", "SPPO", "TD3", "get_algo", "is_off_policy"]
