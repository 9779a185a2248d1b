"""gSDE for TD3 and DDPG: train/save/load/predict, per-env matrices, redraw schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from smoothrl.agents.policies import GSDEActor
from smoothrl.run.build import make_env, make_model
from smoothrl.run.overrides import resolve_config


@pytest.mark.parametrize("algo", ["td3", "ddpg"])
def test_gsde_trains_saves_loads_and_predicts(algo: str, tmp_path):
    config = resolve_config(
        algo,
        "Pendulum-v1",
        "smoke",
        ["use_sde=true", "sde_sample_freq=4", "sde_std=0.2", "n_envs=2", "n_timesteps=300", "learning_starts=50"],
    )
    assert config.hyperparams["noise_type"] == "normal"  # the preset's, which gSDE replaces
    env = make_env(config)
    model = make_model(config, env)
    assert isinstance(model.actor, GSDEActor) and model.use_sde and model.action_noise is None
    model.learn(300)
    model.save(tmp_path / "m.zip")
    loaded = type(model).load(tmp_path / "m.zip", env=env)
    assert loaded.use_sde and loaded.sde_sample_freq == 4 and isinstance(loaded.actor, GSDEActor)
    assert loaded.actor.sde_std == 0.2
    obs = env.reset()
    det = model.predict(obs, deterministic=True)[0]
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], det)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], det)  # no noise when deterministic
    assert not np.allclose(model.predict(obs, deterministic=False)[0], det)  # noise when exploring


def test_noise_matrices_are_per_env_and_redrawn_on_schedule_and_at_episode_start():
    config = resolve_config("td3", "Pendulum-v1", "smoke", ["use_sde=true", "n_envs=3"])
    model = make_model(config, make_env(config))
    actor: GSDEActor = model.actor
    actor.reset_noise(3)
    first = actor.matrices.clone()
    assert not th.allclose(first[0], first[1])  # independent per env
    actor.reset_noise(3)  # SB3's call at every rollout start: keeps the matrices
    assert th.equal(actor.matrices, first)
    for _ in range(3):
        actor.step_noise(np.array([False, False, False]), sample_freq=4)
    assert th.equal(actor.matrices, first)  # 3 steps < sample_freq: kept
    actor.step_noise(np.array([False, False, False]), sample_freq=4)
    assert all(not th.equal(actor.matrices[i], first[i]) for i in range(3))  # 4th step: all redrawn
    after = actor.matrices.clone()
    actor.step_noise(np.array([False, True, False]), sample_freq=10)  # env 1's episode ended
    assert th.equal(actor.matrices[0], after[0]) and th.equal(actor.matrices[2], after[2])
    assert not th.equal(actor.matrices[1], after[1])
    after = actor.matrices.clone()
    actor.step_noise(np.array([False, False, True]), sample_freq=-1)  # -1: only at episode start
    assert th.equal(actor.matrices[:2], after[:2]) and not th.equal(actor.matrices[2], after[2])


def test_exploration_noise_has_the_set_scale():
    config = resolve_config("td3", "Pendulum-v1", "smoke", ["use_sde=true", "sde_std=0.05", "n_envs=64"])
    model = make_model(config, make_env(config))
    obs = th.as_tensor(np.tile(make_env(config, n_envs=1).reset(), (64, 1)))
    with th.no_grad():
        noise = model.actor.explore(obs) - model.actor(obs)
    assert float(noise.std()) == pytest.approx(0.05, rel=0.3)


def test_learn_features_is_exposed_for_ppo_and_a2c(tmp_path):
    for algo in ("ppo", "a2c"):
        config = resolve_config(
            algo, "Pendulum-v1", "smoke", ["use_sde=true", "policy_kwargs.learn_features=true", "n_timesteps=256"]
        )
        model = make_model(config, make_env(config))
        assert model.policy.action_dist.learn_features is True
        model.learn(256)
        model.save(tmp_path / f"{algo}.zip")
        loaded = type(model).load(tmp_path / f"{algo}.zip")
        assert loaded.policy.action_dist.learn_features is True
        plain = make_model(resolve_config(algo, "Pendulum-v1", "smoke", ["use_sde=true"]), make_env(config))
        assert plain.policy.action_dist.learn_features is False  # SB3's default unchanged


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
def test_stochastic_predict_resamples_gsde_noise_when_asked(algo: str):
    overrides = ["use_sde=true"] + (["learning_starts=10"] if algo != "ppo" else [])
    config = resolve_config(algo, "Pendulum-v1", "smoke", overrides)
    model = make_model(config, make_env(config))
    obs = make_env(config, n_envs=1).reset()
    model.policy.reset_noise(1)
    a, b = (model.predict(obs, deterministic=False)[0] for _ in range(2))
    if algo != "sac":  # SAC samples its Gaussian on top of the gSDE noise; PPO with gSDE and TD3 do not
        np.testing.assert_array_equal(a, b)  # same noise matrix: same action for the same state
    c = model.predict(obs, deterministic=False, resample_noise=True)[0]
    d = model.predict(obs, deterministic=False, resample_noise=True)[0]
    assert not np.array_equal(c, d) and not np.array_equal(a, c)


@pytest.mark.parametrize("algo", ["td3", "ddpg"])
def test_gsde_replaces_the_presets_action_noise(algo: str):
    plain = resolve_config(algo, "Pendulum-v1", "smoke", ["n_envs=1"])
    env = make_env(plain)
    assert plain.hyperparams["noise_type"] == "normal" and model_noise(plain, env) is not None
    gsde = resolve_config(algo, "Pendulum-v1", "smoke", ["n_envs=1", "use_sde=true"])
    assert gsde.noise is None and model_noise(gsde, env) is None
    sac = resolve_config("sac", "Pendulum-v1", "smoke", ["n_envs=1", "use_sde=true", "noise_type=normal"])
    assert sac.noise is not None  # SAC adds action noise on top of its gSDE, as in SB3


def model_noise(config, env):
    return make_model(config, env).action_noise
