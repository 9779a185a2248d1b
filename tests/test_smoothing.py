"""Randomized smoothing of any policy: known answers, determinism, batching, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch as th

from smoothrl.errors import SmoothRLError
from smoothrl.robust import SmoothedPolicy
from smoothrl.robust.smoothing import aggregate
from smoothrl.run.build import load_run

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
    # batched: each state's decision is the median of the model's own action at that state's copies,
    # with the noise the seed gives (row j * batch + i is copy j of state i); nothing mixes states
    noise = th.randn((50, 5, 3), generator=th.Generator().manual_seed(1))
    view = SmoothedPolicy(model, 0.3, m=50, seed=1).view
    for i in range(5):
        copies = view.tensor(obs[i : i + 1]) + 0.3 * noise[:, i]
        with th.no_grad():
            median = view.output(copies).reshape(50, -1).median(0).values
        np.testing.assert_allclose(a[i], view.to_env(median[None])[0], rtol=1e-6)
    # vote: far from the decision boundary every copy agrees with the base policy
    vote = SmoothedPolicy(load_run(cartpole_ppo).model, 0.05, m=20, seed=0)
    far = np.array([[0.0, 0.0, 0.2, 0.0], [0.0, 0.0, -0.2, 0.0]], dtype=np.float32)
    assert vote.predict(far)[0].tolist() == [1, 0]


def test_smoothing_bad_input(ppo_norm_run: Path):
    model = load_run(ppo_norm_run).model
    for kwargs, match in [
        ({"sigma": 0.0}, "smoothing_sigma"),
        ({"sigma": -1.0}, "smoothing_sigma"),
        ({"sigma": float("inf")}, "smoothing_sigma"),
        ({"sigma": 0.2, "m": 0}, "smoothing_samples"),
        ({"sigma": 0.2, "mode": "vote"}, "'vote' needs discrete actions"),
        ({"sigma": 0.2, "mode": "mode"}, "unknown smoothing mode"),
    ]:
        with pytest.raises(SmoothRLError, match=match):
            SmoothedPolicy(model, **kwargs)
