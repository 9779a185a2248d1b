"""Shared fixtures: tiny runs trained once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoothrl.config import resolve_config
from smoothrl.training import train

#: Small enough to train in seconds, long enough for several 200-step Pendulum episodes.
TINY = ["n_timesteps=600", "eval_freq=300", "checkpoint_freq=300", "eval_episodes=2"]


def tiny_run(root: Path, algo: str, env: str = "Pendulum-v1", extra: tuple[str, ...] = ()) -> Path:
    """Train a tiny run of ``algo`` with its ``smoke`` preset into ``root/algo``."""
    config = resolve_config(algo, env, "smoke", TINY + list(extra))
    return train(config, root / algo, progress_bar=False)


@pytest.fixture(scope="session")
def sac_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished SAC run on Pendulum-v1 (no normalization)."""
    return tiny_run(tmp_path_factory.mktemp("runs"), "sac")


@pytest.fixture(scope="session")
def ppo_norm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished PPO run on Pendulum-v1 with VecNormalize and two envs."""
    return tiny_run(tmp_path_factory.mktemp("runs"), "ppo", extra=("normalize=true",))
