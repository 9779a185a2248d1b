"""The trained controllers shipped in ``models/``: each evaluates from the repository to the numbers
its card and ``eval.json`` state (one test week here), and its exported artefact decides as the
run does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smoothrl.run.build import EVAL_SEED_OFFSET, load_run, make_env
from smoothrl.run.evaluation import evaluate

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(p.parent for p in MODELS.glob("*/model.zip"))


def test_models_are_shipped():
    assert SHIPPED, "models/ holds no trained controller"


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.name)
def test_shipped_model_evaluates_to_its_recorded_week(model: Path):
    """The first test week, played from the recorded seed, returns what ``eval.json`` recorded."""
    recorded = json.loads((model / "eval.json").read_text())
    run = load_run(model)
    summary, _ = evaluate(run, episodes=1, seed=recorded["seed"])
    assert summary["episode_start_days"][0] == recorded["episode_start_days"][0]
    assert summary["episode_returns"][0] == pytest.approx(recorded["episode_returns"][0], rel=1e-5, abs=1e-6)
    card = (model / "README.md").read_text()
    assert f"{recorded['mean_return']:.2f}" in card, "the card states the recorded mean return"


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.name)
def test_shipped_artefact_decides_as_the_run(model: Path):
    from smoothrl.hardware.artefact import Artefact

    artefact = Artefact.load(model / "artefact")
    run = load_run(model)
    venv = make_env(
        run.config, n_envs=1, training=False, seed=EVAL_SEED_OFFSET, vecnormalize_path=run.vecnormalize_path
    )
    obs = venv.reset()
    policy = artefact.policy()
    for _ in range(96):
        raw = venv.get_original_obs()
        expected, _ = run.model.predict(obs, deterministic=True)
        got = policy.act(raw[0])
        np.testing.assert_allclose(got, expected[0], atol=1e-4)
        obs, *_ = venv.step(expected)
    venv.close()
