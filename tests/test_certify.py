"""Certificates: the formulas' known answers, and certification of runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th
from scipy import stats

from smoothrl.robust import PolicyView
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
from smoothrl.run.build import load_run
from smoothrl.tools.robustness import certify_run

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


# --- certification of runs ---------------------------------------------------------------


def test_certify_discrete_far_states_certify_and_boundary_states_abstain(cartpole_w, cartpole_dqn: Path):
    view = PolicyView(load_run(cartpole_dqn).model)
    obs = view.tensor(np.array([[0.0, 0.0, 0.5, 0.0], [0.0, 0.0, -0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    cert = certify_discrete(view, obs, 0.1, 2000, 100, 0.001, "cp", th.Generator().manual_seed(0))
    assert cert["action"].tolist() == [1, 0, -1]
    # W . obs = +-5 with ||W|| ~ 10.2: the exact radius is 0.49; the bound must not exceed it
    assert 0.2 < cert["radius"][0] <= 5 / np.linalg.norm(cartpole_w)
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
