"""``smoothrl export``: the artefact acts as the run does, for every algorithm and pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import VecNormalize

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.artefact import Artefact
from smoothrl.run.build import EVAL_SEED_OFFSET, load_run, make_env
from smoothrl.run.overrides import resolve_config
from smoothrl.run.training import train
from smoothrl.tools.export import build_policy, export_run

CASES = {
    "ppo": ("ppo", "Pendulum-v1", []),
    "ppo-normalized": ("ppo", "Pendulum-v1", ["normalize=true"]),
    "ppo-gsde": ("ppo", "Pendulum-v1", ["use_sde=true", "normalize=true"]),
    "ppo-discrete": ("ppo", "CartPole-v1", []),
    "a2c-normalized": ("a2c", "Pendulum-v1", ["normalize=true"]),
    "sac": ("sac", "Pendulum-v1", []),
    "sac-gsde": ("sac", "Pendulum-v1", ["use_sde=true"]),
    "td3": ("td3", "Pendulum-v1", []),
    "td3-gsde": ("td3", "Pendulum-v1", ["use_sde=true"]),
    "ddpg": ("ddpg", "Pendulum-v1", ["normalize=true"]),
    "ddpg-gsde": ("ddpg", "Pendulum-v1", ["use_sde=true"]),
    "dqn": ("dqn", "CartPole-v1", []),
    "dqn-normalized": ("dqn", "CartPole-v1", ["normalize=true"]),
    "ppo-history": ("ppo", "Pendulum-v1", ["smoothness_reward.3=0.1", "normalize=true"]),
    "dqn-history": ("dqn", "CartPole-v1", ["smoothness_reward.1=0.1"]),
}


def tiny(root: Path, algo: str, env: str, extra: list[str]) -> Path:
    warmup = ["learning_starts=100"] if algo in ("sac", "td3", "ddpg", "dqn") else []
    overrides = ["n_timesteps=600", "eval_freq=0", "checkpoint_freq=0", "eval_episodes=1", *warmup, *extra]
    return train(resolve_config(algo, env, "smoke", overrides), root / "run", progress_bar=False)


def played(run_dir: Path, steps: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Raw observations of an evaluation episode (what the hardware would give) and the run's actions."""
    run = load_run(run_dir)
    env = make_env(
        run.config,
        n_envs=1,
        training=False,
        seed=run.config.seed + EVAL_SEED_OFFSET,
        vecnormalize_path=run.vecnormalize_path,
    )
    obs = env.reset()
    raws, actions = [], []
    for _ in range(steps):
        raw = env.get_original_obs() if isinstance(env, VecNormalize) else obs
        action = run.model.predict(obs, deterministic=True)[0]
        raws.append(np.asarray(raw, dtype=np.float32)[0])
        actions.append(np.asarray(action)[0])
        obs, _, _, _ = env.step(action)
    env.close()
    return np.stack(raws), np.stack(actions)


def onnx_actions(artefact_dir: Path, raws: np.ndarray) -> np.ndarray:
    session = Artefact.load(artefact_dir).policy().session
    return session.run(None, {"observation": raws.astype(np.float32)})[0]


@pytest.mark.parametrize("case", list(CASES))
def test_artefact_actions_equal_the_runs_deterministic_actions(case: str, tmp_path: Path):
    algo, env, extra = CASES[case]
    run_dir = tiny(tmp_path, algo, env, extra)
    artefact = export_run(run_dir, tmp_path / "art")
    raws, actions = played(run_dir)
    ours = onnx_actions(artefact, raws)
    if actions.dtype.kind in "iu":
        np.testing.assert_array_equal(ours.reshape(actions.shape), actions)
    else:
        np.testing.assert_allclose(ours.reshape(actions.shape), actions, atol=1e-5, rtol=0)
    manifest = json.loads((artefact / "manifest.json").read_text())
    assert manifest["source"]["algo"] == algo and manifest["smoothing"] is None
    assert (manifest["normalization"] is not None) == ("normalize=true" in extra)
    assert manifest["control_period_s"] == pytest.approx(0.05 if env == "Pendulum-v1" else 0.02)


@pytest.mark.parametrize(("algo", "env"), [("sppo", "Pendulum-v1"), ("sppo", "CartPole-v1"), ("sdqn", "CartPole-v1")])
def test_smoothed_agents_export_their_smoothing_with_fixed_noise(algo: str, env: str, tmp_path: Path):
    extra = ["smoothing_samples=4", "smoothing_samples_eval=16"] if algo == "sppo" else ["smoothing_samples=16"]
    if algo == "sdqn":
        base = tiny(tmp_path / "base", "dqn", env, [])
        extra.append(f"base_model={base}")
    run_dir = tiny(tmp_path, algo, env, extra)
    artefact = export_run(run_dir, tmp_path / "art", seed=3)
    manifest = json.loads((artefact / "manifest.json").read_text())
    assert manifest["smoothing"] == {
        "sigma": pytest.approx(0.2),
        "samples": 16,
        "seed": 3,
        "mode": "vote" if env == "CartPole-v1" else "median",
    }
    raws, _ = played(run_dir, steps=30)
    module, venv = build_policy(load_run(run_dir), seed=3)
    venv.close()
    with th.no_grad():
        reference = module(th.as_tensor(raws)).numpy()
    ours = onnx_actions(artefact, raws)
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(ours, onnx_actions(artefact, raws))  # deterministic
    # the median of the base policy's actions at the graph's own noisy copies, computed by hand
    if env == "Pendulum-v1":
        model = load_run(run_dir).model
        copies = th.as_tensor(raws[:1]) + module.noise
        with th.no_grad(), model.policy.unsmoothed():
            base = model.policy._predict(copies, deterministic=True).numpy()
        expected = np.clip(np.sort(base, axis=0)[(16 - 1) // 2], -2, 2)
        np.testing.assert_allclose(ours[0], expected, atol=1e-5)


def test_smoothing_any_run_and_torchscript(tmp_path: Path):
    run_dir = tiny(tmp_path, "ppo", "CartPole-v1", [])
    art = export_run(run_dir, tmp_path / "art", smoothing_sigma=0.1, smoothing_samples=8)
    assert json.loads((art / "manifest.json").read_text())["smoothing"]["mode"] == "vote"
    ts = export_run(run_dir, tmp_path / "ts", fmt="torchscript")
    module = th.jit.load(str(ts / "policy.pt"))
    raws, actions = played(run_dir, steps=20)
    np.testing.assert_array_equal(module(th.as_tensor(raws)).numpy(), actions)
    with pytest.raises(SmoothRLError, match="runtime loads ONNX"):
        Artefact.load(ts).policy()


def test_runtime_rebuilds_the_action_history_the_run_observed(tmp_path: Path):
    run_dir = tiny(tmp_path, "ppo", "Pendulum-v1", ["smoothness_reward.2=0.1"])
    policy = Artefact.load(export_run(run_dir, tmp_path / "art")).policy()
    assert policy.history_k == 2
    run = load_run(run_dir)
    env = make_env(run.config, n_envs=1, training=False, seed=1)
    obs = env.reset()
    policy.reset()
    for _ in range(10):
        np.testing.assert_allclose(policy.observation(obs[0, :3])[0], obs[0], atol=1e-6)
        action = policy.act(obs[0, :3])
        policy.sent(action)
        obs, _, _, _ = env.step(action[None].astype(np.float32))


def test_export_refuses_what_it_cannot_hold(tmp_path: Path, sac_run: Path):
    hvac = ["n_timesteps=256", "n_envs=2", "eval_freq=0", "checkpoint_freq=0", "eval_episodes=1"]
    hvac += ["env_kwargs.episode_days=1", "smoothness_reward.1=0.1"]
    # the modulating plant's action_unit is the normalized action: its history can be rebuilt
    modulating = train(resolve_config("ppo", "smoothrl/HVAC-v0", "smoke", hvac), tmp_path / "m", progress_bar=False)
    assert json.loads((export_run(modulating, tmp_path / "ok") / "manifest.json").read_text())["augmentations"]
    assert json.loads((tmp_path / "ok" / "manifest.json").read_text())["control_period_s"] == 900.0
    # the staged plant reports its signal (off 0.5, heat 1, cool 0), not the action index's position
    staged = train(resolve_config("ppo", "smoothrl/HVACDiscrete-v0", "smoke", hvac), tmp_path / "s", progress_bar=False)
    with pytest.raises(SmoothRLError, match="reports actions in its own units"):
        export_run(staged, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    export_run(sac_run, tmp_path / "b")
    with pytest.raises(SmoothRLError, match="already exists; pass overwrite"):
        export_run(sac_run, tmp_path / "b")
    export_run(sac_run, tmp_path / "b", overwrite=True)
    (tmp_path / "c").mkdir()
    with pytest.raises(SmoothRLError, match="already exists; pass a new folder"):
        export_run(sac_run, tmp_path / "c", overwrite=True)
    with pytest.raises(SmoothRLError, match="smoothing_samples needs smoothing_sigma"):
        export_run(sac_run, tmp_path / "d", smoothing_samples=4)
    (tmp_path / "b" / "policy.onnx").write_bytes(b"tampered")
    with pytest.raises(SmoothRLError, match="does not match its manifest's hash"):
        Artefact.load(tmp_path / "b")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folders left


def test_certify_attaches_the_certificate_of_the_graphs_smoothing(tmp_path: Path):
    run_dir = tiny(tmp_path, "dqn", "CartPole-v1", [])
    art = export_run(
        run_dir, tmp_path / "art", smoothing_sigma=0.1, smoothing_samples=8, certify={"samples": 200, "n_states": 3}
    )
    certificate = json.loads((art / "manifest.json").read_text())["certificate"]
    assert certificate["sigma"] == pytest.approx(0.1) and certificate["states"] == 3 and certificate["samples"] == 200
    assert certificate["kind"] == "discrete" and "fixed draw" in certificate["note"]
    with pytest.raises(SmoothRLError, match="certify needs smoothing"):
        export_run(run_dir, tmp_path / "b", certify={"samples": 100})
    assert not (tmp_path / "b").exists()
