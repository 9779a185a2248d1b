"""Env ids by name, the ActionTrace wrapper, and action normalization bounds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from smoothrl.envs import BULLET_IDS, CLASSIC_CONTROL_IDS, list_env_ids
from smoothrl.envs.wrappers import ACTION_INFO_KEY, ActionTrace, action_bounds
from smoothrl.run.build import make_env, make_model
from smoothrl.run.overrides import resolve_config


@pytest.mark.parametrize("env_id", BULLET_IDS + CLASSIC_CONTROL_IDS)
def test_every_listed_env_builds_and_steps_through_the_pipeline(env_id: str):
    algo = "ppo"
    config = resolve_config(algo, env_id, "smoke", ["n_envs=2"])
    venv = make_env(config)
    obs = venv.reset()
    assert obs.shape == (2, *venv.observation_space.shape)
    actions = np.stack([venv.action_space.sample() for _ in range(2)])
    _, _, _, infos = venv.step(actions)
    unit = infos[0][ACTION_INFO_KEY]
    assert np.all(unit >= 0.0) and np.all(unit <= 1.0)
    make_model(config, venv)  # the smoke preset builds on every env
    venv.close()


def test_bullet_presets_build_their_models():
    config = resolve_config("sac", "HopperBulletEnv-v0", overrides=["buffer_size=1000"])
    model = make_model(config, make_env(config))
    assert model.use_sde and model.policy.actor.latent_pi[0].out_features == 400
    ppo = resolve_config("ppo", "HalfCheetahBulletEnv-v0", overrides=["n_envs=2"])
    model = make_model(ppo, make_env(ppo))
    assert model.use_sde and model.sde_sample_freq == 4


def test_list_groups_ids():
    ids = list_env_ids()
    assert set(BULLET_IDS) <= set(ids["pybullet"])
    assert "Pendulum-v1" in ids["classic control"]


def test_action_trace_normalizes_box_and_discrete_actions():
    env = ActionTrace(gym.make("Pendulum-v1"))  # Box(-2, 2)
    env.reset(seed=0)
    for action, expected in ((-2.0, 0.0), (0.0, 0.5), (2.0, 1.0), (5.0, 1.0)):
        info = env.step(np.array([action], dtype=np.float32))[4]
        assert info[ACTION_INFO_KEY] == pytest.approx([expected])
    env = ActionTrace(gym.make("Acrobot-v1"))  # Discrete(3)
    env.reset(seed=0)
    assert env.step(2)[4][ACTION_INFO_KEY] == pytest.approx([1.0])
    assert env.step(1)[4][ACTION_INFO_KEY] == pytest.approx([0.5])


def test_action_bounds():
    low, high = action_bounds(gym.spaces.Discrete(4, start=1))
    assert low.tolist() == [1.0] and high.tolist() == [4.0]
    low, high = action_bounds(gym.spaces.MultiDiscrete([2, 5]))
    assert low.tolist() == [0.0, 0.0] and high.tolist() == [1.0, 4.0]
    assert action_bounds(gym.spaces.Box(-np.inf, np.inf, (2,))) is None
