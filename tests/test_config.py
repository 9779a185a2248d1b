"""RunConfig resolution: presets, overrides, validation, YAML round trip."""

import pytest
import torch as th
import yaml
from stable_baselines3.common.utils import LinearSchedule

from smoothrl.errors import SmoothRLError
from smoothrl.presets import agent_presets
from smoothrl.registry import ALGOS
from smoothrl.run.config import RunConfig
from smoothrl.run.hyperparams import build_hyperparam, build_policy_kwargs, parse_policy_kwargs, parse_value
from smoothrl.run.overrides import resolve_config


def test_preset_keyed_by_env_id_is_the_default():
    config = resolve_config("ppo", "HalfCheetahBulletEnv-v0")
    assert config.n_timesteps == 2_000_000 and config.n_envs == 16
    assert config.normalize is True
    assert config.hyperparams["use_sde"] is True
    assert config.hyperparams["policy_kwargs"]["activation_fn"] == "nn.ReLU"
    assert config.preset is None


def test_td3_bullet_preset_uses_gaussian_noise():
    config = resolve_config("td3", "HopperBulletEnv-v0")
    assert config.hyperparams["noise_type"] == "normal" and config.hyperparams["noise_std"] == 0.1


def test_named_preset_overrides_and_flags_in_order():
    config = resolve_config(
        "sac",
        "Pendulum-v1",
        "smoke",
        ["learning_rate=3e-4", "policy_kwargs.net_arch=[8, 8]", "n_timesteps=5000"],
        n_timesteps=700,
        seed=3,
    )
    assert config.preset == "smoke"
    assert config.hyperparams["learning_rate"] == pytest.approx(3e-4)
    assert config.hyperparams["policy_kwargs"] == {"net_arch": [8, 8]}
    assert config.n_timesteps == 700  # the explicit flag wins over --set
    assert config.seed == 3
    assert config.hyperparams["batch_size"] == 64  # from the preset


def test_env_without_preset_uses_sb3_defaults_but_needs_a_budget():
    with pytest.raises(SmoothRLError, match="timesteps"):
        resolve_config("sac", "InvertedPendulumBulletEnv-v0")
    config = resolve_config("sac", "InvertedPendulumBulletEnv-v0", n_timesteps=1000)
    assert config.hyperparams == {} and config.eval_freq == 1000


def test_auto_frequencies_are_a_tenth_of_the_budget():
    config = resolve_config("ppo", "Pendulum-v1")
    assert config.n_timesteps == 100_000 and config.eval_freq == 10_000 and config.checkpoint_freq == 10_000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lerning_rate=0.1"], "did you mean 'learning_rate'"),
        (["batch_size=abc"], "batch_size='abc' has the wrong type"),
        (["batch_size=2.5"], "wrong type"),
        (["learning_rate=lin_x"], "not a schedule"),
        (["seed=3", "verbose=1"], "'verbose' is set by"),
        (["noise_type=pink"], "invalid value for noise_type"),
        (["n_envs=0"], "n_envs"),
        (["normalize.bogus=1"], "unknown keys"),
        (
            ["gamma.x=1"],
            "only env_kwargs, policy_kwargs, normalize, smoothness_reward, action_reg, pretrain take a sub-key",
        ),
        (["no_equals_sign"], "is not key=value"),
        (["policy_kwargs=dict(net_arch=[64,"], "not a valid dict"),
        (["frame_stack=4"], "not supported"),
    ],
)
def test_bad_overrides_fail_with_one_clear_line(overrides, message):
    with pytest.raises(SmoothRLError, match=message) as info:
        resolve_config("sac", "Pendulum-v1", "smoke", overrides)
    assert "\n" not in str(info.value)


def test_unknown_names_fail():
    with pytest.raises(SmoothRLError, match="unknown algorithm 'sax'"):
        resolve_config("sax", "Pendulum-v1")
    with pytest.raises(SmoothRLError, match="did you mean Pendulum-v1"):
        resolve_config("sac", "Pendulum-v2")
    with pytest.raises(SmoothRLError, match="no preset 'fast' in agents/sac.yaml"):
        resolve_config("sac", "Pendulum-v1", "fast")


def test_value_parsing():
    assert parse_value("3e-4") == pytest.approx(3e-4)
    assert parse_value("true") is True
    assert parse_value("[64, 64]") == [64, 64]
    assert parse_value("auto") == "auto"
    assert parse_value("12") == 12


def test_zoo_policy_kwargs_and_schedules_become_sb3_objects():
    stored = parse_policy_kwargs("dict(log_std_init=-2, activation_fn=nn.ReLU, net_arch=dict(pi=[64], vf=[64]))")
    assert stored == {"log_std_init": -2, "activation_fn": "nn.ReLU", "net_arch": {"pi": [64], "vf": [64]}}
    built = build_policy_kwargs(stored)
    assert built["activation_fn"] is th.nn.ReLU
    with pytest.raises(SmoothRLError, match="torch does not have"):
        build_policy_kwargs({"activation_fn": "nn.NoSuchLayer"})
    schedule = build_hyperparam("learning_rate", "lin_0.4")
    assert isinstance(schedule, LinearSchedule)
    assert schedule(1.0) == pytest.approx(0.4) and schedule(0.25) == pytest.approx(0.1)


def test_config_yaml_round_trip():
    config = resolve_config("ppo", "HopperBulletEnv-v0", overrides=["normalize.norm_reward=false"])
    again = RunConfig(**yaml.safe_load(config.to_yaml()))
    assert again == config
    assert again.normalize_kwargs == {"norm_reward": False, "gamma": 0.99}


def test_every_shipped_preset_is_valid():
    for algo in ALGOS:
        presets = agent_presets(algo)
        assert "smoke" in presets
        for name in presets:
            env = name if name != "smoke" else ("CartPole-v1" if algo in ("dqn", "sdqn") else "Pendulum-v1")
            if algo == "sdqn":  # needs its base DQN run, checked when the config is built
                with pytest.raises(SmoothRLError, match="S-DQN needs base_model"):
                    resolve_config(algo, env, name)
                continue
            config = resolve_config(algo, env, name)
            assert config.n_timesteps > 0
