"""Randomized smoothing, attacks and certificates: known answers, invariants and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch as th
from scipy import stats
from typer.testing import CliRunner

from smoothrl.cli import app
from smoothrl.errors import SmoothRLError
from smoothrl.robust import ATTACKS, Attack, PolicyView, SmoothedPolicy, perturb, project
from smoothrl.robust.certify import (
    certified_radius,
    certify_continuous,
    certify_discrete,
    clopper_pearson,
    lower_bound,
    order_statistic_indices,
    reward_lower_bound,
    upper_bound,
)
from smoothrl.robust.smoothing import aggregate
from smoothrl.robustness import attack_run, certify_run
from smoothrl.training import load_run
from tests.conftest import tiny_run

runner = CliRunner()
#: a linear CartPole controller that balances for 500 steps: push right iff W . obs > 0
W = np.array([0.1, 0.5, 10.0, 2.0], dtype=np.float32)


def _linear_cartpole(root: Path, algo: str) -> Path:
    """A real run directory whose model is the linear controller above (a toy with a known answer)."""
    extra = ("policy_kwargs=dict(net_arch=[])", *(("learning_starts=0",) if algo == "dqn" else ()))
    run_dir = tiny_run(root, algo, "CartPole-v1", extra)
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


@pytest.fixture(scope="module")
def cartpole_ppo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _linear_cartpole(tmp_path_factory.mktemp("robust"), "ppo")


@pytest.fixture(scope="module")
def cartpole_dqn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _linear_cartpole(tmp_path_factory.mktemp("robust"), "dqn")


# --- certificates: formulas --------------------------------------------------------------


def test_radius_formula_hand_values_and_monotonicity():
    assert certified_radius(np.array(0.9), np.array(0.1), 1.0) == pytest.approx(1.2815516)
    assert certified_radius(np.array(0.9), np.array(0.1), 0.5) == pytest.approx(0.5 * 1.2815516)
    # Cohen's special case pB = 1 - pA: R = sigma * PhiInv(pA)
    assert certified_radius(np.array(0.8), np.array(0.2), 0.25) == pytest.approx(0.25 * stats.norm.ppf(0.8))
    pa = np.linspace(0.5, 0.999, 50)
    assert np.all(np.diff(certified_radius(pa, 1 - pa, 1.0)) > 0)
    pb = np.linspace(0.001, 0.4, 50)
    assert np.all(np.diff(certified_radius(np.full(50, 0.6), pb, 1.0)) < 0)
    assert certified_radius(np.array(0.5), np.array(0.5), 1.0) == 0.0


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (97, 100), (5000, 10000)])
def test_clopper_pearson_matches_scipy(k: int, n: int):
    low, high = clopper_pearson(k, n, 0.05)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)
    one_sided = stats.binomtest(k, n, alternative="greater").proportion_ci(confidence_level=0.99, method="exact")
    assert lower_bound(np.array(k), n, 0.01) == pytest.approx(one_sided.low, abs=1e-12)
    assert upper_bound(np.array(k), n, 0.01) >= k / n


def test_hoeffding_bounds():
    assert lower_bound(np.array(90), 100, 0.01, "hoeffding") == pytest.approx(0.9 - np.sqrt(np.log(100) / 200))
    assert upper_bound(np.array(10), 100, 0.01, "hoeffding") == pytest.approx(0.1 + np.sqrt(np.log(100) / 200))
    assert lower_bound(np.array(0), 100, 0.01, "hoeffding") == 0.0


def test_order_statistics_cover_the_quantiles():
    """Uniform samples: the true p-quantile is p; the chosen order statistics bracket it as promised."""
    rng = np.random.default_rng(0)
    n, alpha, p_low, p_high = 200, 0.1, 0.3, 0.7
    lo, hi = order_statistic_indices(n, p_low, p_high, alpha)
    ordered = np.sort(rng.uniform(size=(4000, n)), axis=1)
    assert np.mean(ordered[:, lo] <= p_low) >= 1 - alpha / 2 - 0.01
    assert np.mean(ordered[:, hi] >= p_high) >= 1 - alpha / 2 - 0.01
    assert order_statistic_indices(5, 0.01, 0.99, 0.001) == (None, None)  # too few samples: no bound


def test_reward_bound_falls_with_the_budget_and_is_the_median_at_zero():
    returns = np.arange(1000, dtype=float)
    bounds = [reward_lower_bound(returns, 0.2, b, 0.5, 0.05) for b in (0.0, 0.1, 0.2, 0.4)]
    assert bounds == sorted(bounds, reverse=True)
    assert 440 <= bounds[0] <= 500  # the median, minus the finite-sample margin
    assert reward_lower_bound(returns[:3], 0.2, 1.0, 0.5, 0.05) == -np.inf


# --- smoothing ---------------------------------------------------------------------------


def test_aggregate_median_mean_vote_known_answers():
    outputs = th.tensor([[[0.0, 5.0]], [[1.0, 1.0]], [[2.0, 0.0]], [[10.0, 0.5]]])  # m=4, batch=1, k=2
    assert th.equal(aggregate(outputs, "median", False), th.tensor([[1.0, 0.5]]))  # lower median
    assert th.allclose(aggregate(outputs, "mean", False), th.tensor([[3.25, 1.625]]))
    # argmaxes 1, 0 (tie -> lowest), 0, 0: the vote is action 0
    assert aggregate(outputs, "vote", True).tolist() == [0]


def test_smoothed_policy_is_deterministic_for_a_seed_and_batched(ppo_norm_run: Path, cartpole_ppo: Path):
    model = load_run(ppo_norm_run).model
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    a = SmoothedPolicy(model, 0.3, m=50, seed=1).predict(obs)[0]
    b = SmoothedPolicy(model, 0.3, m=50, seed=1).predict(obs)[0]
    c = SmoothedPolicy(model, 0.3, m=50, seed=2).predict(obs)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (5, 1)
    # one state at a time gives the same median as the batch when the noise is the same
    policy = SmoothedPolicy(model, 0.3, m=50, seed=1)
    outs = policy.outputs(policy.view.tensor(obs[:1]))
    assert outs.shape == (50, 1, 1)
    # vote: far from the decision boundary every copy agrees with the base policy
    vote = SmoothedPolicy(load_run(cartpole_ppo).model, 0.05, m=20, seed=0)
    far = np.array([[0.0, 0.0, 0.2, 0.0], [0.0, 0.0, -0.2, 0.0]], dtype=np.float32)
    assert vote.predict(far)[0].tolist() == [1, 0]


def test_smoothing_bad_input(ppo_norm_run: Path):
    model = load_run(ppo_norm_run).model
    for kwargs, match in [
        ({"sigma": 0.0}, "sigma > 0"),
        ({"sigma": -1.0}, "sigma > 0"),
        ({"sigma": 0.2, "m": 0}, "at least 1 noisy copy"),
        ({"sigma": 0.2, "mode": "vote"}, "'vote' needs discrete actions"),
        ({"sigma": 0.2, "mode": "mode"}, "unknown smoothing mode"),
    ]:
        with pytest.raises(SmoothRLError, match=match):
            SmoothedPolicy(model, **kwargs)


# --- attacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_attacks_never_exceed_their_budget(ppo_norm_run: Path, cartpole_dqn: Path, norm: str):
    rng = np.random.default_rng(0)
    for run_dir in (ppo_norm_run, cartpole_dqn):
        view = PolicyView(load_run(run_dir).model)
        for name in ATTACKS:
            if name == "min_q" and not view.has_q():
                continue
            for _ in range(3):
                eps = float(rng.uniform(0.01, 1.0))
                obs = view.tensor(rng.normal(size=(16, *view.obs_shape)) * rng.uniform(0.1, 5))
                attack = Attack(name, eps, norm, steps=int(rng.integers(1, 6)), sigma=0.3, samples=4)
                delta = (perturb(attack, view, obs, th.Generator().manual_seed(0)) - obs).reshape(16, -1)
                size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
                assert (size <= eps * (1 + 1e-5)).all(), (name, eps)
                assert (size > 0).any()


def test_projection_is_the_nearest_point_of_the_ball():
    delta = th.tensor([[3.0, 4.0], [0.1, 0.1]])
    assert th.allclose(project(delta, 1.0, "l2"), th.tensor([[0.6, 0.8], [0.1, 0.1]]))
    assert th.allclose(project(delta, 0.5, "linf"), th.tensor([[0.5, 0.5], [0.1, 0.1]]))


def test_attacks_reduce_a_vanilla_policys_return(cartpole_ppo: Path, cartpole_dqn: Path):
    clean = attack_run(cartpole_ppo, Attack("pgd", 0.0), episodes=2)
    assert clean["mean_return"] == 500.0 and clean["mean_action_deviation"] == 0.0
    pgd = attack_run(cartpole_ppo, Attack("pgd", 0.1, steps=5), episodes=2)
    assert pgd["mean_return"] < 250 and pgd["max_perturbation"] <= 0.1 + 1e-6
    assert pgd["mean_action_deviation"] > 0.3
    noise = attack_run(cartpole_ppo, Attack("random", 0.1), episodes=2)
    assert noise["mean_return"] > pgd["mean_return"]
    min_q = attack_run(cartpole_dqn, Attack("min_q", 0.1, steps=5), episodes=2)
    assert min_q["mean_return"] < 250
    with pytest.raises(SmoothRLError, match="PPO has no Q-function for the min_q attack"):
        attack_run(cartpole_ppo, Attack("min_q", 0.1), episodes=1)


def test_attack_definitions_reject_bad_input():
    for kwargs, match in [
        ({"name": "boom", "eps": 0.1}, "unknown attack 'boom'"),
        ({"name": "pgd", "eps": -0.1}, "--eps must be >= 0"),
        ({"name": "pgd", "eps": 0.1, "norm": "l1"}, "unknown norm 'l1'"),
        ({"name": "pgd", "eps": 0.1, "steps": 0}, "at least 1 step"),
        ({"name": "smoothed", "eps": 0.1, "sigma": 0.0}, "sigma > 0"),
    ]:
        with pytest.raises(SmoothRLError, match=match):
            Attack(**kwargs)


# --- certification of runs ---------------------------------------------------------------


def test_certify_discrete_far_states_certify_and_boundary_states_abstain(cartpole_dqn: Path):
    view = PolicyView(load_run(cartpole_dqn).model)
    obs = view.tensor(np.array([[0.0, 0.0, 0.5, 0.0], [0.0, 0.0, -0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    cert = certify_discrete(view, obs, 0.1, 2000, 100, 0.001, "cp", th.Generator().manual_seed(0))
    assert cert["action"].tolist() == [1, 0, -1]
    # W . obs = +-5 with ||W|| ~ 10.2: the exact radius is 0.49; the bound must not exceed it
    assert 0.2 < cert["radius"][0] <= 5 / np.linalg.norm(W)
    assert cert["radius"][2] == 0.0
    hoeffding = certify_discrete(view, obs, 0.1, 2000, 100, 0.001, "hoeffding", th.Generator().manual_seed(0))
    assert hoeffding["radius"][0] < cert["radius"][0]  # Hoeffding is looser than Clopper-Pearson


def test_certify_continuous_bounds_widen_with_eps_and_contain_the_median(ppo_norm_run: Path):
    view = PolicyView(load_run(ppo_norm_run).model)
    obs = view.tensor(np.random.default_rng(0).normal(size=(8, 3)))
    cert = certify_continuous(view, obs, 0.25, 5000, [0.0, 0.05, 0.2, 2.0], 0.001, th.Generator().manual_seed(0))
    assert np.all(np.diff(cert["width"]) >= 0)
    assert np.all(cert["lower"] <= cert["median"][None]) and np.all(cert["upper"] >= cert["median"][None])
    assert cert["width"][-1] == pytest.approx(2.0)  # eps = 8 sigma: the sample cannot bound it


def test_certify_run_summaries(cartpole_dqn: Path, ppo_norm_run: Path):
    discrete = certify_run(cartpole_dqn, 0.1, 500, n_states=20, reward_episodes=3)
    assert discrete["kind"] == "discrete" and discrete["states"] == 20
    fractions = list(discrete["certified_fraction"].values())
    assert fractions == sorted(fractions, reverse=True)
    assert discrete["certified_fraction"]["0.0"] == pytest.approx(1 - discrete["abstain_fraction"])
    bounds = list(discrete["reward"]["lower_bound_median"].values())
    assert bounds == sorted(bounds, reverse=True)
    continuous = certify_run(ppo_norm_run, 0.2, 500, n_states=10)
    widths = list(continuous["mean_bound_width"].values())
    assert continuous["kind"] == "continuous" and widths == sorted(widths)


# --- CLI -------------------------------------------------------------------------------


def test_cli_attack_and_certify_json(cartpole_ppo: Path):
    result = runner.invoke(app, ["attack", str(cartpole_ppo), "--attack", "fgsm", "--eps", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["attack"] == "fgsm" and summary["max_perturbation"] <= 0.05 + 1e-6
    result = runner.invoke(app, ["certify", str(cartpole_ppo), "--samples", "200", "--states", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "discrete"
    args = [
        "eval",
        str(cartpole_ppo),
        "--episodes",
        "1",
        "--smoothing-sigma",
        "0.01",
        "--smoothing-samples",
        "5",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["smoothing"] == {"sigma": 0.01, "samples": 5, "mode": "vote"} and summary["mean_return"] == 500.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["certify", "{run}", "--sigma", "0"], "certify needs sigma > 0"),
        (["certify", "{run}", "--samples", "0"], "certify needs at least 1 noisy copy"),
        (["certify", "{run}", "--alpha", "1.5"], "--alpha must be in (0, 1)"),
        (["certify", "{run}", "--bound", "chernoff"], "--bound must be cp or hoeffding"),
        (["attack", "{run}", "--eps", "-0.1"], "--eps must be >= 0"),
        (["attack", "{run}", "--attack", "min_q"], "PPO has no Q-function for the min_q attack"),
        (["attack", "{run}", "--attack", "nope"], "unknown attack 'nope'"),
        (["attack", "{run}", "--smoothing-sigma", "-1"], "sigma > 0"),
        (["attack", "/nonexistent/run"], "does not exist"),
        (["eval", "{run}", "--smoothing-sigma", "0"], "smoothing needs sigma > 0"),
        (["eval", "{run}", "--smoothing-sigma", "0.1", "--smoothing-mode", "median3"], "unknown smoothing mode"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(cartpole_ppo: Path, args: list[str], message: str):
    result = runner.invoke(app, [a.replace("{run}", str(cartpole_ppo)) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


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
    policy.learning = True
    assert policy.smoothed_mean(obs).shape == (4, 1)


@pytest.mark.parametrize(
    ("env_id", "extra"), [("Pendulum-v1", ["use_sde=true", "action_reg.order=3"]), ("CartPole-v1", [])]
)
def test_sppo_trains_saves_loads_and_predicts(tmp_path: Path, env_id: str, extra: list[str]):
    from smoothrl.robust.sppo import SPPO

    run_dir = tiny_run(tmp_path, "sppo", env_id, ("smoothing_samples=4", "smoothing_samples_eval=8", *extra))
    run = load_run(run_dir)
    assert isinstance(run.model, SPPO) and run.model.policy.smoothing_samples_eval == 8
    obs = run.model.env.reset() if run.model.env is not None else np.zeros((1, *run.model.observation_space.shape))
    th.manual_seed(0)
    a = run.model.predict(obs, deterministic=True)[0]
    th.manual_seed(0)
    np.testing.assert_array_equal(a, run.model.predict(obs, deterministic=True)[0])
    summary = attack_run(run, Attack("smoothed", 0.05, steps=2, samples=4), episodes=1)
    assert summary["max_perturbation"] <= 0.05 + 1e-6
    assert certify_run(run, run.model.smoothing_sigma, 100, n_states=3)["states"] == 3


def test_sppo_bad_smoothing_is_a_construction_error():
    from smoothrl.config import resolve_config
    from smoothrl.training import make_env, make_model

    config = resolve_config("sppo", "Pendulum-v1", "smoke", ["smoothing_sigma=0"])
    with pytest.raises(SmoothRLError, match="S-PPO needs sigma > 0"):
        make_model(config, make_env(config))


# --- S-DQN -------------------------------------------------------------------------------


def test_sdqn_trains_only_the_denoiser_and_votes(tmp_path: Path, cartpole_dqn: Path):
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
    from smoothrl.config import resolve_config
    from smoothrl.training import train

    with pytest.raises(SmoothRLError, match="S-DQN needs base_model"):
        train(resolve_config("sdqn", "CartPole-v1", "smoke"), tmp_path / "a", progress_bar=False)
    with pytest.raises(SmoothRLError, match="normalizes observations; set normalize=true"):
        train(resolve_config("sdqn", "Pendulum-v1", "smoke", [f"base_model={ppo_norm_run}"]), tmp_path / "b")
    with pytest.raises(SmoothRLError, match="has no model.zip"):
        train(resolve_config("sdqn", "CartPole-v1", "smoke", [f"base_model={tmp_path}"]), tmp_path / "c")
    config = resolve_config("sdqn", "CartPole-v1", "smoke", [f"base_model={cartpole_dqn}", "smoothing_samples=0"])
    with pytest.raises(SmoothRLError, match="S-DQN needs at least 1 noisy copy"):
        train(config, tmp_path / "d", progress_bar=False)
    assert not (tmp_path / "d").exists()  # nothing half-written


def test_noise_augmentation_perturbs_training_observations_only(tmp_path: Path):
    from smoothrl.config import resolve_config
    from smoothrl.envs.vec_wrappers import VecObservationNoise
    from smoothrl.training import _training_env, make_env

    config = resolve_config("ppo", "Pendulum-v1", "smoke", ["obs_noise=0.5", "normalize=true"])
    env = _training_env(config)
    assert isinstance(env, VecObservationNoise)
    clean = make_env(config, training=True, seed=config.seed)
    noisy_obs, clean_obs = env.reset(), clean.reset()
    assert 0 < np.abs(noisy_obs - clean_obs).max() < 5 * 0.5
    run_dir = tiny_run(tmp_path, "ppo", extra=("obs_noise=0.3",))
    assert json.loads((run_dir / "eval.json").read_text())["episodes"] == 2  # evaluation ran on the clean env
    with pytest.raises(SmoothRLError, match="obs_noise with normalize is not supported for off-policy sac"):
        _training_env(resolve_config("sac", "Pendulum-v1", "smoke", ["obs_noise=0.1", "normalize=true"]))


def test_sdqn_adversarial_training_attacks_the_noisy_batch(tmp_path: Path, cartpole_dqn: Path, monkeypatch):
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
