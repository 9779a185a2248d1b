"""PPO's ratio modes: the facts the docs state, SB3 equivalence, diagnostics and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import stable_baselines3 as sb3
import torch as th
from gymnasium import spaces
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from smoothrl.agents import PPO
from smoothrl.agents.ratio import RATIO_MODES, check_ratio, mixed_log_ratio, surrogate_loss
from smoothrl.errors import SmoothRLError
from smoothrl.run.build import make_env, make_model, model_kwargs
from smoothrl.run.overrides import resolve_config


def _batch(seed: int = 0, n: int = 64) -> tuple[ActorCriticPolicy, th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """A small Gaussian policy, a batch, and old log-probs a step away from the current ones."""
    th.manual_seed(seed)
    box = spaces.Box(-1.0, 1.0, (3,))
    policy = ActorCriticPolicy(box, spaces.Box(-1.0, 1.0, (2,)), lambda _: 1e-3, net_arch=[16])
    obs = th.randn(n, 3)
    actions = th.randn(n, 2)
    advantages = th.randn(n)
    with th.no_grad():
        _, log_prob, _ = policy.evaluate_actions(obs, actions)
    old_log_prob = log_prob + 0.3 * th.randn(n)  # ratios spread around 1, some outside 1 +- 0.2
    return policy, obs, actions, advantages, old_log_prob


def _grads(mode: str, clip_range: float = 0.2, alpha: float = 0.0) -> tuple[float, list[th.Tensor]]:
    policy, obs, actions, advantages, old_log_prob = _batch()
    _, log_prob, _ = policy.evaluate_actions(obs, actions)
    loss, _ = surrogate_loss(mode, log_prob, old_log_prob, advantages, clip_range, alpha)
    grads = th.autograd.grad(loss, [p for p in policy.parameters()], allow_unused=True)
    return loss.item(), [th.zeros_like(p) if g is None else g for p, g in zip(policy.parameters(), grads, strict=True)]


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_pspo_gradient_is_one_minus_alpha_times_the_unclipped_gradient(alpha: float):
    _, none = _grads("none")
    _, pspo = _grads("pspo", alpha=alpha)
    assert any(g.abs().sum() > 0 for g in none)
    for a, b in zip(pspo, none, strict=True):
        th.testing.assert_close(a, (1 - alpha) * b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_pspo_clip_is_scaled_clip_with_a_wider_range_plus_a_constant(alpha: float):
    eps = 0.2
    _, _, _, advantages, _ = _batch()
    loss, grads = _grads("pspo_clip", clip_range=eps, alpha=alpha)
    wide_loss, wide_grads = _grads("clip", clip_range=eps / (1 - alpha))
    assert loss == pytest.approx((1 - alpha) * wide_loss - alpha * advantages.mean().item(), abs=1e-6)
    for a, b in zip(grads, wide_grads, strict=True):
        th.testing.assert_close(a, (1 - alpha) * b, rtol=1e-5, atol=1e-7)
    # and it differs from plain clip at the same eps: the clip range really is wider
    _, narrow = _grads("clip", clip_range=eps)
    assert not all(th.allclose(a, (1 - alpha) * b) for a, b in zip(grads, narrow, strict=True))


def test_clip_mode_is_sb3s_expression_and_clip_fraction():
    log_prob = th.log(th.tensor([1.0, 1.5, 0.5, 1.1]))
    adv = th.tensor([1.0, 1.0, -1.0, 2.0])
    loss, stats = surrogate_loss("clip", log_prob, th.zeros(4), adv, 0.2)
    # min(r A, clip(r) A): 1*1, min(1.5, 1.2), min(-0.5, -0.8), min(2.2, 2.2)
    assert loss.item() == pytest.approx(-(1.0 + 1.2 - 0.8 + 2.2) / 4)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    assert stats["ratio_dev_max"] == pytest.approx(0.5)
    assert stats["ratio_dev_mean"] == pytest.approx((0 + 0.5 + 0.5 + 0.1) / 4)


def test_spo_known_values_and_gradient_at_ratio_one():
    adv = th.tensor([2.0, -1.0])
    log_prob = th.log(th.tensor([1.5, 0.5])).requires_grad_(True)
    loss, stats = surrogate_loss("spo", log_prob, th.zeros(2), adv, 0.25)
    # -(A r - |A| (r - 1)^2 / (2 eps)): 2*1.5 - 2*0.25/0.5 = 2;  -0.5 - 1*0.25/0.5 = -1
    assert loss.item() == pytest.approx(-(2.0 - 1.0) / 2)
    assert "clip_fraction" not in stats
    # at r = 1 the penalty's gradient vanishes: SPO's gradient is the plain policy gradient
    at_one = th.zeros(2, requires_grad=True)
    surrogate_loss("spo", at_one, th.zeros(2), adv, 0.25)[0].backward()
    plain = th.zeros(2, requires_grad=True)
    surrogate_loss("none", plain, th.zeros(2), adv, 0.25)[0].backward()
    th.testing.assert_close(at_one.grad, plain.grad)


def test_smoothed_log_ratio_is_stable_in_log_space():
    x = th.tensor([-300.0, -5.0, 0.0, 2.0, 300.0])
    alpha = 0.1
    out = mixed_log_ratio(x, alpha)
    assert th.isfinite(out).all()
    expected = [math.log((1 - alpha) * math.exp(v) + alpha) for v in (-5.0, 0.0, 2.0)]
    np.testing.assert_allclose(out[1:4].numpy(), expected, rtol=1e-6, atol=1e-7)
    assert out[0].item() == pytest.approx(math.log(alpha))  # density far below the old one: r_s -> alpha
    assert out[4].item() == pytest.approx(300.0 + math.log(1 - alpha))
    assert th.equal(mixed_log_ratio(x, 0.0), x)


@pytest.mark.parametrize(
    ("mode", "alpha", "clip_range", "match"),
    [
        ("ppo2", 0.1, 0.2, "unknown ratio mode 'ppo2'"),
        ("pspo", -0.1, 0.2, r"pspo_alpha must be in \[0, 1\)"),
        ("pspo", 1.0, 0.2, r"pspo_alpha must be in \[0, 1\)"),
        ("spo", 0.1, 0.0, "ratio='spo' needs a positive clip_range"),
        ("clip", 0.1, -0.2, "ratio='clip' needs a positive clip_range"),
        ("pspo_clip", 0.1, lambda _: 0.0, "ratio='pspo_clip' needs a positive clip_range"),
    ],
)
def test_bad_ratio_configuration_fails_at_construction(mode, alpha, clip_range, match):
    with pytest.raises(ValueError, match=match):
        check_ratio(mode, alpha, clip_range)
    with pytest.raises(ValueError, match=match):
        PPO("MlpPolicy", "Pendulum-v1", ratio=mode, pspo_alpha=alpha, clip_range=clip_range)
    check_ratio("none", 0.5, None)  # modes without clipping need no clip range
    check_ratio("pspo", 0.0, 0.0)


def test_bad_ratio_in_a_run_config_is_one_clear_error():
    with pytest.raises(SmoothRLError, match="ratio"):
        resolve_config("ppo", "Pendulum-v1", "smoke", ["ratio=ppo2"])
    config = resolve_config("ppo", "Pendulum-v1", "smoke", ["ratio=pspo", "pspo_alpha=1.5"])
    with pytest.raises(SmoothRLError, match=r"pspo_alpha must be in \[0, 1\)"):
        make_model(config, make_env(config))


class _Capture(KVWriter):
    """Keeps every logged dict."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def write(self, key_values, key_excluded, step=0) -> None:  # noqa: ANN001 (SB3's signature)
        self.rows.append(dict(key_values))


def test_clip_mode_logs_the_same_losses_and_learns_the_same_parameters_as_sb3():
    config = resolve_config("ppo", "Pendulum-v1", "smoke", ["n_timesteps=512", "n_steps=128", "n_envs=2"])
    logs = {}
    models = {}
    for name, cls in (("ours", PPO), ("sb3", sb3.PPO)):
        env = make_env(config)
        model = cls(config.policy, env, seed=config.seed, verbose=0, **model_kwargs(config, env))
        capture = _Capture()
        model.set_logger(Logger(folder=None, output_formats=[capture]))
        model.learn(512, log_interval=1)
        logs[name], models[name] = capture.rows, model
    keys = ("train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/approx_kl", "train/loss")
    assert len(logs["ours"]) == len(logs["sb3"]) >= 2
    for ours, theirs in zip(logs["ours"], logs["sb3"], strict=True):
        for key in (*keys, "train/clip_fraction"):
            if key in theirs:
                assert ours[key] == theirs[key], key
    for a, b in zip(models["ours"].policy.parameters(), models["sb3"].policy.parameters(), strict=True):
        assert th.equal(a, b)


@pytest.mark.parametrize("mode", RATIO_MODES)
def test_every_mode_trains_with_gsde_target_kl_and_action_reg_and_logs(mode: str, tmp_path: Path):
    overrides = [
        f"ratio={mode}",
        "use_sde=true",
        "target_kl=0.05",
        "action_reg.order=2",
        "diagnostics=true",
        "n_timesteps=256",
        "n_steps=64",
        "n_envs=2",
    ]
    config = resolve_config("ppo", "Pendulum-v1", "smoke", overrides)
    model = make_model(config, make_env(config), tensorboard_log=tmp_path / "tb")
    model.learn(256, log_interval=1)
    acc = EventAccumulator(str(next((tmp_path / "tb").iterdir())))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {"ratio_dev_mean", "ratio_dev_max", "mixed_ratio_dev_mean", "approx_kl", "pg_grad_norm", "grad_norm"}
    assert {f"train/{k}" for k in expected} <= tags
    assert ("train/clip_fraction" in tags) == (mode in ("clip", "pspo_clip"))
    assert "train/action_reg_order2" in tags
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip")
    assert loaded.ratio == mode and loaded.pspo_alpha == pytest.approx(0.1)


@pytest.mark.parametrize("mode", ["pspo", "spo"])
def test_modes_train_on_discrete_actions(mode: str):
    config = resolve_config("ppo", "CartPole-v1", "smoke", [f"ratio={mode}", "n_timesteps=256", "n_steps=128"])
    model = make_model(config, make_env(config))
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(256)
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
