"""Cross-cutting tests over every algorithm, as SB3 writes them: SB3 equivalence, save/load of
every algorithm x extension, log dumps, plain models that SB3 alone can load, and the SB3
sources smoothrl copies."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import stable_baselines3 as sb3
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.logger import Logger

from smoothrl.run.build import make_env, make_model, model_kwargs
from smoothrl.run.overrides import resolve_config


def env_of(algo: str) -> str:
    return "CartPole-v1" if algo in ("dqn", "sdqn") else "Pendulum-v1"


def build(algo: str, overrides: list[str] = (), steps: int = 300):
    extra = ["learning_starts=50"] if algo in ("sac", "td3", "ddpg", "dqn") else []
    config = resolve_config(algo, env_of(algo), "smoke", [f"n_timesteps={steps}", *extra, *overrides])
    return config, make_model(config, make_env(config))


def assert_same_parameters(ours, theirs) -> None:
    for a, b in zip(ours.policy.parameters(), theirs.policy.parameters(), strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


# --------------------------------------------------------------------------------------------
# SB3 equivalence


@pytest.mark.parametrize("copied_update", [False, True], ids=["sb3-update", "copied-update"])
@pytest.mark.parametrize("algo", ["ppo", "a2c", "sac", "td3", "ddpg", "dqn"])
def test_plain_smoothrl_algorithms_learn_exactly_what_sb3_learns(algo: str, copied_update: bool):
    """With no extension, a smoothrl class learns SB3's parameters bit for bit; so does smoothrl's
    copy of SB3's ``train()`` (forced on), which proves the copy faithful where it carries terms."""
    config, ours = build(algo)
    if copied_update and algo == "dqn":
        pytest.skip("DQN has no copied update")
    ours._force_copied_update = copied_update
    ours.learn(300)
    sb3_cls = getattr(sb3, type(ours).__name__)
    assert issubclass(type(ours), sb3_cls)
    env = make_env(config)
    theirs = sb3_cls(config.policy, env, seed=config.seed, verbose=0, **model_kwargs(config, env))
    theirs.learn(300)
    assert_same_parameters(ours, theirs)
    obs = make_env(config).reset()
    np.testing.assert_array_equal(ours.predict(obs, deterministic=True)[0], theirs.predict(obs, deterministic=True)[0])


class _Keys(Logger):
    """Collects the keys each ``dump`` writes."""

    def __init__(self) -> None:
        super().__init__(folder=None, output_formats=[])
        self.keys: set[str] = set()
        self.dumps = 0

    def dump(self, step: int = 0) -> None:
        self.keys |= set(self.name_to_value)
        self.dumps += 1
        super().dump(step)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_plain_on_policy_models_log_sb3s_keys_and_use_sb3s_policy(algo: str):
    config, ours = build(algo, ["n_steps=64", "n_envs=1"], steps=256)
    env = make_env(config)
    theirs = getattr(sb3, algo.upper())(config.policy, env, seed=config.seed, **model_kwargs(config, env))
    for model in (ours, theirs):
        model.set_logger(_Keys())
        model.learn(256)
    assert ours.logger.keys == theirs.logger.keys
    assert not any(k.endswith(("grad_norm", "ratio_dev_mean", "ratio_dev_max")) for k in ours.logger.keys)
    assert type(ours.policy) is type(theirs.policy)  # SB3's own ActorCriticPolicy


def test_ppo_diagnostics_are_logged_only_when_asked():
    _, ours = build("ppo", ["n_steps=64", "n_envs=1", "diagnostics=true"], steps=256)
    ours.set_logger(_Keys())
    ours.learn(256)
    expected = {"train/pg_grad_norm", "train/grad_norm", "train/ratio_dev_mean", "train/mixed_ratio_dev_mean"}
    assert expected <= ours.logger.keys and "train/clip_fraction" in ours.logger.keys


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_sb3s_gpu_warning_still_fires_for_mlp_policy(algo: str):
    """SB3 recommends the CPU for an ``MlpPolicy`` on a GPU (its ``test_ppo_warnings``)."""
    _, model = build(algo)
    model.device = th.device("cuda")  # as if built on a GPU machine
    with pytest.warns(UserWarning, match=f"You are trying to run {algo.upper()} on the GPU"):
        model._maybe_recommend_cpu()
    _, gsde = build(algo, ["use_sde=true", "policy_kwargs.learn_features=true"])
    assert type(gsde.policy).__name__ == "GSDEActorCriticPolicy"  # asked for: smoothrl's policy


# --------------------------------------------------------------------------------------------
# save / load of every algorithm x extension

EXTENSIONS = {
    "plain": {a: [] for a in ("ppo", "a2c", "sac", "td3", "ddpg", "dqn")},
    "gsde": {a: ["use_sde=true"] for a in ("ppo", "a2c", "sac", "td3", "ddpg")},
    "action_smoothness": {a: ["action_reg.order=2", "action_reg.weight=0.1"] for a in ("ppo", "a2c", "sac", "td3")}
    | {"ddpg": ["action_reg.order=3", "action_reg.spatial_weight=0.1"]},
    "colored_noise": {a: ["noise_type=colored", "noise_beta=1.0"] for a in ("sac", "td3", "ddpg")},
    "smoothing": {"sppo": ["smoothing_sigma=0.1", "smoothing_samples=4", "smoothing_samples_eval=8"]},
}
CASES = [(ext, algo, overrides) for ext, per_algo in EXTENSIONS.items() for algo, overrides in per_algo.items()]


@pytest.mark.parametrize(("extension", "algo", "overrides"), CASES, ids=[f"{a}-{e}" for e, a, _ in CASES])
def test_save_load_predicts_the_same(extension: str, algo: str, overrides: list[str], tmp_path: Path):
    config, model = build(algo, overrides)
    model.learn(300)
    obs = make_env(config).reset()
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip", env=make_env(config))
    actions = []
    for agent in (model, loaded):
        th.manual_seed(0)  # S-PPO's smoothing draws its noise from torch's generator
        actions.append(agent.predict(obs, deterministic=True)[0])
    np.testing.assert_array_equal(*actions)
    assert_same_parameters(model, loaded)
    assert type(loaded.policy) is type(model.policy)
    for key in ("action_reg", "use_sde", "noise_beta", "ratio"):
        assert getattr(loaded, key, None) == getattr(model, key, None)
    loaded.learn(100, reset_num_timesteps=False)  # and it keeps training


def test_sdqn_saves_loads_and_predicts_the_same(tmp_path: Path):
    from smoothrl.run.training import train

    base = train(resolve_config("dqn", "CartPole-v1", "smoke", ["n_timesteps=300", "eval_freq=0"]), tmp_path / "b")
    config, model = build("sdqn", [f"base_model={base}", "smoothing_samples=8"], steps=200)
    model.learn(200)
    obs = make_env(config).reset()
    model.save(tmp_path / "model.zip")
    loaded = type(model).load(tmp_path / "model.zip")
    th.manual_seed(1)
    a = model.predict(obs, deterministic=True)[0]
    th.manual_seed(1)
    np.testing.assert_array_equal(a, loaded.predict(obs, deterministic=True)[0])
    assert_same_parameters(model, loaded)


# --------------------------------------------------------------------------------------------
# training past SB3's periodic log dumps (TD3/DDPG gSDE used to crash at the first one)

EXPLORATION = [
    ("ppo", []),
    ("ppo", ["use_sde=true"]),
    ("a2c", []),
    ("a2c", ["use_sde=true"]),
    ("sac", []),
    ("sac", ["use_sde=true"]),
    ("sac", ["noise_type=colored"]),
    ("td3", []),
    ("td3", ["use_sde=true"]),
    ("td3", ["noise_type=colored"]),
    ("ddpg", []),
    ("ddpg", ["use_sde=true"]),
    ("ddpg", ["noise_type=normal", "noise_std=0.2"]),
    ("dqn", []),
]


@pytest.mark.parametrize(
    ("algo", "overrides"), EXPLORATION, ids=[f"{a}-{'-'.join(o) or 'default'}" for a, o in EXPLORATION]
)
def test_training_passes_many_log_dumps(algo: str, overrides: list[str], tmp_path: Path):
    extra = ["env_kwargs.max_episode_steps=20", "n_steps=32"] if algo in ("ppo", "a2c") else []
    extra = extra or ["env_kwargs.max_episode_steps=20"]
    config, model = build(algo, [*extra, *overrides], steps=400)
    model.set_logger(_Keys())
    model.learn(400, log_interval=1)
    assert model.logger.dumps >= 5, model.logger.dumps  # 20-step episodes (off-policy) or 32-step rollouts (on-policy)
    if "use_sde=true" in overrides and algo != "ppo" and algo != "a2c":
        assert "train/std" in model.logger.keys  # SB3 logs gSDE's noise scale at each dump


# --------------------------------------------------------------------------------------------
# a plain smoothrl model is a plain SB3 model

_LOAD_WITHOUT_SMOOTHRL = """
import sys, importlib.abc, numpy as np
class NoSmoothrl(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "smoothrl" or name.startswith("smoothrl."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NoSmoothrl())
import stable_baselines3 as sb3
model = getattr(sb3, sys.argv[1]).load(sys.argv[2], device="cpu")
data = np.load(sys.argv[3])
np.testing.assert_array_equal(model.predict(data["obs"], deterministic=True)[0], data["actions"])
try:
    import smoothrl  # noqa
except ModuleNotFoundError:
    print("loaded without smoothrl")
"""


@pytest.mark.parametrize("algo", ["ppo", "a2c", "sac", "td3", "ddpg", "dqn"])
def test_plain_models_load_and_predict_identically_where_smoothrl_cannot_be_imported(algo: str, tmp_path: Path):
    config, model = build(algo)
    model.learn(300)
    model.save(tmp_path / "model.zip")
    obs = make_env(config, n_envs=4).reset()
    np.savez(tmp_path / "io.npz", obs=obs, actions=model.predict(obs, deterministic=True)[0])
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(_LOAD_WITHOUT_SMOOTHRL))
    out = subprocess.run(
        [sys.executable, str(script), type(model).__name__, str(tmp_path / "model.zip"), str(tmp_path / "io.npz")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "loaded without smoothrl" in out.stdout


def test_sb3_policy_save_loads_a_plain_policy(tmp_path: Path):
    from stable_baselines3.common.policies import ActorCriticPolicy

    _, model = build("ppo")
    model.policy.save(tmp_path / "policy.pt")
    loaded = ActorCriticPolicy.load(tmp_path / "policy.pt")
    obs = np.zeros((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


# --------------------------------------------------------------------------------------------
# the SB3 sources smoothrl copies

#: SB3 2.9 methods that smoothrl copies (with SB3's comments) to add its terms, and the SHA-256
#: (first 16 hex digits) of their source. A mismatch means SB3 changed the method: diff the new
#: source against smoothrl's copy, port the change, then update the hash.
COPIED_SB3_SOURCES = {
    (sb3.PPO.train, "smoothrl.agents.ppo.PPO.train"): "7c8d09940123242f",
    (sb3.A2C.train, "smoothrl.agents.a2c.A2C.train"): "298ebd063ccbd989",
    (sb3.SAC.train, "smoothrl.agents.sac.SAC.train"): "0ac7abe1c18ba7fe",
    (sb3.TD3.train, "smoothrl.agents.td3.TD3Extensions.train"): "4f3638f813b0efba",
    (ReplayBuffer._get_samples, "smoothrl.agents.buffers.HistoryReplayBuffer._get_samples"): "ffe73ca3cb22fc4c",
}


@pytest.mark.parametrize(("source", "copy"), list(COPIED_SB3_SOURCES), ids=[c for _, c in COPIED_SB3_SOURCES])
def test_copied_sb3_methods_are_unchanged_upstream(source, copy: str):
    digest = hashlib.sha256(inspect.getsource(source).encode()).hexdigest()[:16]
    assert digest == COPIED_SB3_SOURCES[(source, copy)], (
        f"SB3 {sb3.__version__} changed {source.__qualname__}: port the change into {copy}, then update the hash"
    )


def test_sb3_is_the_pinned_minor_version():
    assert sb3.__version__.startswith("2.9."), "smoothrl's copied updates follow SB3 2.9; see COPIED_SB3_SOURCES"
