"""Shared fixtures: tiny runs trained once per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th

from smoothrl.run.build import load_run
from smoothrl.run.overrides import resolve_config
from smoothrl.run.training import train

#: Small enough to train in seconds, long enough for several 200-step Pendulum episodes.
TINY = ["n_timesteps=600", "eval_freq=300", "checkpoint_freq=300", "eval_episodes=2"]


def _tiny_run(root: Path, algo: str, env: str = "Pendulum-v1", extra: tuple[str, ...] = ()) -> Path:
    """Train a tiny run of ``algo`` with its ``smoke`` preset into ``root/algo``."""
    config = resolve_config(algo, env, "smoke", TINY + list(extra))
    return train(config, root / algo, progress_bar=False)


@pytest.fixture(scope="session")
def sac_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished SAC run on Pendulum-v1 (no normalization)."""
    return _tiny_run(tmp_path_factory.mktemp("runs"), "sac")


@pytest.fixture(scope="session")
def ppo_norm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished PPO run on Pendulum-v1 with VecNormalize and two envs."""
    return _tiny_run(tmp_path_factory.mktemp("runs"), "ppo", extra=("normalize=true",))


@pytest.fixture
def tiny_run():
    """``tiny_run(root, algo, env="Pendulum-v1", extra=())``: train a tiny run with the ``smoke`` preset."""
    return _tiny_run


#: a linear CartPole controller that balances for 500 steps: push right iff W . obs > 0
W = np.array([0.1, 0.5, 10.0, 2.0], dtype=np.float32)


def _linear_cartpole(root: Path, algo: str) -> Path:
    """A real run directory whose model is the linear controller above (a toy with a known answer)."""
    extra = ("policy_kwargs=dict(net_arch=[])", *(("learning_starts=0",) if algo == "dqn" else ()))
    run_dir = _tiny_run(root, algo, "CartPole-v1", extra)
    run = load_run(run_dir)
    weight = th.as_tensor(np.stack([-5 * W, 5 * W]))
    with th.no_grad():
        layer = run.model.policy.action_net if algo == "ppo" else run.model.policy.q_net.q_net[0]
        layer.weight.copy_(weight)
        layer.bias.zero_()
        if algo == "dqn":
            run.model.policy.q_net_target.load_state_dict(run.model.policy.q_net.state_dict())
    run.model.save(run_dir / "model.zip")
    return run_dir


@pytest.fixture(scope="session")
def cartpole_ppo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _linear_cartpole(tmp_path_factory.mktemp("robust"), "ppo")


@pytest.fixture(scope="session")
def cartpole_dqn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _linear_cartpole(tmp_path_factory.mktemp("robust"), "dqn")


@pytest.fixture
def cartpole_w() -> np.ndarray:
    """The weights of the linear CartPole controller in ``cartpole_ppo`` / ``cartpole_dqn``."""
    return W.copy()


@pytest.fixture
def tiny_overrides() -> list[str]:
    """The ``--set`` items of a tiny run (seconds to train, several evaluations and checkpoints)."""
    return list(TINY)
