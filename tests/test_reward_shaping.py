"""Reward shaping on action derivatives: known answers, episode boundaries, vectorized twin."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from smoothrl.envs.hvac.env import ActionCodec
from smoothrl.envs.vec_wrappers import VecActionSmoothnessReward
from smoothrl.envs.wrappers import ACTION_INFO_KEY, ActionHistory, ActionSmoothnessReward, ActionTrace
from smoothrl.errors import SmoothRLError
from smoothrl.run.build import make_env
from smoothrl.run.overrides import resolve_config


def test_penalties_match_hand_computed_differences():
    history = ActionHistory(1, 1, {1: 2.0, 3: 1.0})
    u = [0.0, 0.25, 1.0, 0.5, 0.75]
    penalties = [history.push(np.array([[x]]))[0] for x in u]
    assert penalties[0] == 0.0  # no previous action yet
    assert penalties[1] == pytest.approx(2.0 * 0.25**2)
    assert penalties[2] == pytest.approx(2.0 * 0.75**2)  # jerk needs 4 actions: none yet
    jerk = u[3] - 3 * u[2] + 3 * u[1] - u[0]  # -1.75
    assert penalties[3] == pytest.approx(2.0 * 0.5**2 + jerk**2)
    jerk = u[4] - 3 * u[3] + 3 * u[2] - u[1]
    assert penalties[4] == pytest.approx(2.0 * 0.25**2 + jerk**2)
    np.testing.assert_allclose(history.observation(), [[1.0, 0.5, 0.75]])  # last 3 actions, oldest first


def test_penalty_never_spans_a_reset():
    history = ActionHistory(2, 1, {2: 1.0})
    for x in (0.0, 1.0, 0.0):
        history.push(np.array([[x], [x]]))
    history.reset(np.array([True, False]))
    penalty = history.push(np.array([[1.0], [1.0]]))
    assert penalty[0] == 0.0 and penalty[1] == pytest.approx((1.0 - 0.0 + 1.0) ** 2)
    assert history.observation()[0].tolist() == [0.0, 1.0]


def test_wrapper_shapes_reward_and_extends_observation():
    env = ActionSmoothnessReward(ActionTrace(gym.make("Pendulum-v1")), {1: 1.0})
    assert env.observation_space.shape == (4,)
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0
    _, r0, *_ = env.step(np.array([-2.0], np.float32))
    obs, r1, _, _, info = env.step(np.array([2.0], np.float32))  # full-range jump: penalty 1
    assert info["smoothness_penalty"] == pytest.approx(1.0)
    assert obs[-1] == pytest.approx(1.0)


def test_vec_wrapper_matches_the_gym_wrapper_across_resets():
    weights = {1: 0.5, 3: 0.2}

    def make_single():
        return ActionSmoothnessReward(ActionTrace(gym.wrappers.TimeLimit(gym.make("Pendulum-v1"), 30)), weights)

    def make_inner():
        return ActionTrace(gym.wrappers.TimeLimit(gym.make("Pendulum-v1"), 30))

    ours = VecActionSmoothnessReward(DummyVecEnv([make_inner, make_inner]), weights)
    theirs = DummyVecEnv([make_single, make_single])
    ours.seed(3)
    theirs.seed(3)
    np.testing.assert_allclose(ours.reset(), theirs.reset())
    rng = np.random.default_rng(0)
    for _ in range(70):  # two episode ends
        actions = rng.uniform(-2, 2, (2, 1)).astype(np.float32)
        o1, r1, d1, i1 = ours.step(actions)
        o2, r2, d2, i2 = theirs.step(actions)
        np.testing.assert_allclose(o1, o2, rtol=1e-6)
        np.testing.assert_allclose(r1, r2, rtol=1e-6)
        assert (d1 == d2).all()
        for a, b, done in zip(i1, i2, d1, strict=True):
            if done:
                np.testing.assert_allclose(a["terminal_observation"], b["terminal_observation"], rtol=1e-6)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "smoothrl/HVAC-v0"])
def test_episode_returns_stay_unshaped(env_id: str):
    config = resolve_config(
        "ppo",
        env_id,
        "smoke",
        ["smoothness_reward.2=5.0", "env_kwargs.episode_days=1"]
        if env_id.startswith("smoothrl")
        else ["smoothness_reward.2=5.0"],
    )
    env = make_env(config, n_envs=1)
    env.reset()
    rng = np.random.default_rng(0)
    shaped, penalties = 0.0, 0.0
    while True:
        _, reward, done, infos = env.step(rng.uniform(-1, 1, (1, *env.action_space.shape)).astype(np.float32))
        shaped += float(reward[0])
        penalties += infos[0]["smoothness_penalty"]
        if done[0]:
            break
    assert penalties > 0
    assert infos[0]["episode"]["r"] == pytest.approx(shaped + penalties, rel=1e-5)


def test_hvac_actions_are_measured_as_the_physical_signal():
    codec = ActionCodec(zones=1, discrete=True, stages=1)  # 0 off, 1 heat, 2 cool
    _, _, unit = codec.decode(np.array([[0], [1], [2]]))
    np.testing.assert_allclose(unit.ravel(), [0.5, 1.0, 0.0])
    codec = ActionCodec(zones=2, discrete=False, stages=1)
    _, _, unit = codec.decode(np.array([[-1.0, 0.5]]))
    np.testing.assert_allclose(unit, [[0.0, 0.75]])
    env = make_env(resolve_config("dqn", "smoothrl/HVACDiscrete-v0", "smoke", ["smoothness_reward.1=1.0"]), n_envs=1)
    env.reset()
    env.step(np.array([1]))  # heat
    _, _, _, infos = env.step(np.array([2]))  # cool: a full swing of the signal
    assert infos[0][ACTION_INFO_KEY].tolist() == [0.0] and infos[0]["smoothness_penalty"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["smoothness_reward.4=1"], "smoothness_reward"), (["smoothness_reward.1=-1"], "smoothness_reward")],
)
def test_bad_smoothness_weights(overrides, message):
    with pytest.raises(SmoothRLError, match=message):
        resolve_config("ppo", "Pendulum-v1", "smoke", overrides)
