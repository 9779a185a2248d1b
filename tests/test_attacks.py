"""Observation attacks: budgets, projections, effect on return, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th

from smoothrl.errors import SmoothRLError
from smoothrl.robust import ATTACKS, Attack, PolicyView, perturb, project
from smoothrl.run.build import load_run
from smoothrl.tools.robustness import attack_run

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
        ({"name": "pgd", "eps": -0.1}, r"^eps must be a finite number in \[0, 1e\+06\], got -0.1"),
        ({"name": "pgd", "eps": float("inf")}, r"^eps must be a finite number"),
        ({"name": "pgd", "eps": 0.1, "norm": "l1"}, "unknown norm 'l1'"),
        ({"name": "pgd", "eps": 0.1, "steps": 0}, "^steps must be a whole number >= 1"),
        ({"name": "smoothed", "eps": 0.1, "sigma": 0.0}, r"smoothed attack: smoothing_sigma .* finite number in \(0"),
    ]:
        with pytest.raises(SmoothRLError, match=match):
            Attack(**kwargs)
