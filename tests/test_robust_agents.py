"""S-PPO, S-DQN and noise augmentation: training, saving, acting, bad configuration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch as th

from smoothrl.errors import SmoothRLError
from smoothrl.robust import Attack
from smoothrl.run.build import load_run, make_env
from smoothrl.tools.robustness import attack_run, certify_run

# --- S-PPO -------------------------------------------------------------------------------


def test_sppo_actor_is_the_median_over_noisy_copies_and_the_critic_sees_clean_obs():
    from smoothrl.robust.sppo import SPPO

    model = SPPO("MlpPolicy", "Pendulum-v1", smoothing_sigma=0.3, smoothing_samples=7, smoothing_samples_eval=9, seed=0)
    policy = model.policy
    obs = th.randn(4, 3)
    th.manual_seed(5)
    smoothed = policy.get_distribution(obs).mode()  # (SB3's distribution objects are reused: read it now)
    th.manual_seed(5)
    noisy = obs.unsqueeze(0) + 0.3 * th.randn(9, 4, 3)  # the same draw: m = smoothing_samples_eval outside learn
    with policy.unsmoothed():
        base = policy.get_distribution(noisy.reshape(36, 3)).mode().reshape(9, 4, 1)
        clean_value = policy.predict_values(obs)
    th.testing.assert_close(smoothed, base.median(0).values)
    th.testing.assert_close(policy.predict_values(obs), clean_value)
    policy.learning = True  # inside learn: m = smoothing_samples copies
    th.manual_seed(6)
    learning = policy.smoothed_mean(obs)
    th.manual_seed(6)
    noisy = obs.unsqueeze(0) + 0.3 * th.randn(7, 4, 3)
    with policy.unsmoothed():
        base = policy.get_distribution(noisy.reshape(28, 3)).mode().reshape(7, 4, 1)
    th.testing.assert_close(learning, base.median(0).values)


@pytest.mark.parametrize(
    ("env_id", "extra"), [("Pendulum-v1", ["use_sde=true", "action_reg.order=3"]), ("CartPole-v1", [])]
)
def test_sppo_trains_saves_loads_and_predicts(tiny_run, tmp_path: Path, env_id: str, extra: list[str]):
    from smoothrl.robust.sppo import SPPO

    run_dir = tiny_run(tmp_path, "sppo", env_id, ("smoothing_samples=4", "smoothing_samples_eval=8", *extra))
    run = load_run(run_dir)
    assert isinstance(run.model, SPPO) and run.model.policy.smoothing_samples_eval == 8
    obs = make_env(run.config, n_envs=3, training=False, vecnormalize_path=run.vecnormalize_path).reset()
    th.manual_seed(0)
    a = run.model.predict(obs, deterministic=True)[0]
    th.manual_seed(0)
    np.testing.assert_array_equal(a, run.model.predict(obs, deterministic=True)[0])
    summary = attack_run(run, Attack("smoothed", 0.05, steps=2, samples=4), episodes=1)
    assert summary["max_perturbation"] <= 0.05 + 1e-6
    assert certify_run(run, run.model.smoothing_sigma, 100, n_states=3)["states"] == 3


def test_sppo_bad_smoothing_is_refused_by_the_config_and_by_the_constructor():
    from smoothrl.robust.sppo import SPPO
    from smoothrl.run.overrides import resolve_config

    with pytest.raises(SmoothRLError, match="smoothing_sigma must be a finite number > 0, got 0"):
        resolve_config("sppo", "Pendulum-v1", "smoke", ["smoothing_sigma=0"])
    with pytest.raises(SmoothRLError, match=r"S-PPO: smoothing_sigma .* must be a finite number in \(0"):
        SPPO("MlpPolicy", "Pendulum-v1", smoothing_sigma=0.0)


# --- S-DQN -------------------------------------------------------------------------------


def test_sdqn_trains_only_the_denoiser_and_votes(tiny_run, tmp_path: Path, cartpole_dqn: Path):
    from smoothrl.robust.sdqn import SDQN

    run_dir = tiny_run(tmp_path, "sdqn", "CartPole-v1", (f"base_model={cartpole_dqn}", "denoiser_arch=[16]"))
    run = load_run(run_dir)
    assert isinstance(run.model, SDQN)
    base = load_run(cartpole_dqn).model
    for ours, theirs in zip(run.model.policy.q_net.parameters(), base.policy.q_net.parameters(), strict=True):
        assert th.equal(ours, theirs)  # the Q-network stayed frozen
    out = run.model.policy.denoiser.net[-1]
    assert out.weight.abs().sum() > 0  # the denoiser learned (it starts at the identity)
    obs = np.array([[0.0, 0.0, 0.1, 0.0], [0.0, 0.0, -0.1, 0.0]], dtype=np.float32)
    th.manual_seed(0)
    a = run.model.predict(obs)[0]
    th.manual_seed(0)
    np.testing.assert_array_equal(a, run.model.predict(obs)[0])
    summary = attack_run(run, Attack("pgd", 0.01, steps=2), episodes=1)
    assert summary["max_perturbation"] <= 0.01 + 1e-6
    cert = certify_run(run, run.model.smoothing_sigma, 200, n_states=4)
    assert cert["kind"] == "discrete" and cert["states"] == 4


def test_sdqn_bad_configuration(tmp_path: Path, cartpole_dqn: Path, ppo_norm_run: Path):
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train

    with pytest.raises(SmoothRLError, match="S-DQN needs base_model"):
        train(resolve_config("sdqn", "CartPole-v1", "smoke"), tmp_path / "a", progress_bar=False)
    with pytest.raises(SmoothRLError, match="normalizes observations; set normalize=true"):
        train(resolve_config("sdqn", "Pendulum-v1", "smoke", [f"base_model={ppo_norm_run}"]), tmp_path / "b")
    with pytest.raises(SmoothRLError, match="has no model.zip"):
        train(resolve_config("sdqn", "CartPole-v1", "smoke", [f"base_model={tmp_path}"]), tmp_path / "c")
    with pytest.raises(SmoothRLError, match="smoothing_samples must be a whole number >= 1"):
        resolve_config("sdqn", "CartPole-v1", "smoke", [f"base_model={cartpole_dqn}", "smoothing_samples=0"])


def test_noise_augmentation_perturbs_training_observations_only(tiny_run, tmp_path: Path):
    from smoothrl.envs.vec_wrappers import VecObservationNoise
    from smoothrl.run.build import make_env
    from smoothrl.run.config import RunConfig
    from smoothrl.run.evaluation import evaluate
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import _callbacks, _training_env

    config = resolve_config("ppo", "Pendulum-v1", "smoke", ["obs_noise=0.5", "normalize=true"])
    env = _training_env(config)
    assert isinstance(env, VecObservationNoise)
    clean = make_env(config, training=True, seed=config.seed)
    noisy_obs, clean_obs = env.reset(), clean.reset()
    assert 0 < np.abs(noisy_obs - clean_obs).max() < 5 * 0.5
    # evaluation (the final one and the periodic callback's) sees clean observations: the run
    # evaluates exactly as the same model does under a config without noise augmentation
    run = load_run(tiny_run(tmp_path, "ppo", extra=("obs_noise=0.3",)))
    summary, _ = evaluate(run, episodes=2)
    no_noise = RunConfig.model_validate({**run.config.model_dump(), "obs_noise": 0.0})
    clean_summary, _ = evaluate(type(run)(run.path, no_noise, run.model), episodes=2)
    assert summary["mean_return"] == clean_summary["mean_return"]
    assert json.loads((run.path / "eval.json").read_text())["mean_return"] == summary["mean_return"]
    eval_callback = [c for c in _callbacks(run.config, run.path) if hasattr(c, "eval_env")][0]
    venv = eval_callback.eval_env
    while hasattr(venv, "venv"):
        assert not isinstance(venv, VecObservationNoise)
        venv = venv.venv
    with pytest.raises(SmoothRLError, match="obs_noise with normalize is not supported for off-policy sac"):
        _training_env(resolve_config("sac", "Pendulum-v1", "smoke", ["obs_noise=0.1", "normalize=true"]))


def test_sdqn_adversarial_training_attacks_the_noisy_batch(tiny_run, tmp_path: Path, cartpole_dqn: Path, monkeypatch):
    from smoothrl.robust import attacks
    from smoothrl.robust.sdqn import SDQN

    calls = []
    original = attacks.perturb

    def counting(attack, view, obs, *args, **kwargs):
        calls.append((attack.name, attack.eps, attack.steps))
        out = original(attack, view, obs, *args, **kwargs)
        assert (out - obs).abs().max() <= attack.eps + 1e-6
        return out

    monkeypatch.setattr(attacks, "perturb", counting)
    extra = (f"base_model={cartpole_dqn}", "denoiser_arch=[8]", "adv_fraction=1.0", "adv_eps=0.02", "adv_steps=2")
    run = load_run(tiny_run(tmp_path, "sdqn", "CartPole-v1", extra))
    assert isinstance(run.model, SDQN) and run.model.adv_fraction == 1.0
    assert set(calls) == {("pgd", 0.02, 2)}
    assert len(calls) == run.model._n_updates > 0  # adv_fraction 1: every gradient step trains on PGD
