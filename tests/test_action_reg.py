"""Action-smoothness loss terms: finite differences, episode masks, PPO integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from smoothrl.agents import PPO
from smoothrl.agents.buffers import HistoryRolloutBuffer
from smoothrl.agents.losses import ActionReg, action_reg_loss, finite_difference
from smoothrl.errors import SmoothRLError
from smoothrl.metrics import finite_difference as np_finite_difference
from smoothrl.run.build import make_env, make_model
from smoothrl.run.overrides import resolve_config


def test_torch_finite_differences_match_hand_values_and_numpy():
    seq = th.tensor([1.0, -2.0, 0.5, 3.0])[:, None, None]  # (k + 1, batch, dim), oldest first
    assert finite_difference(seq, 1).item() == pytest.approx(3.0 - 0.5)
    assert finite_difference(seq, 2).item() == pytest.approx(3.0 - 2 * 0.5 + (-2.0))
    assert finite_difference(seq, 3).item() == pytest.approx(3.0 - 3 * 0.5 + 3 * -2.0 - 1.0)
    x = np.random.default_rng(0).normal(size=(6, 2))
    for order in (1, 2, 3):
        ours = finite_difference(th.as_tensor(x)[:, None, :], order)[0].numpy()
        np.testing.assert_allclose(ours, np_finite_difference(x, order)[-1])


def test_action_reg_validation():
    assert ActionReg(order=3, weight=0.2).temporal == {3: 0.2}
    assert ActionReg(temporal={1: 0.1, 3: 0.0}).history == 1
    for bad in ({"order": 4}, {"temporal": {1: -1.0}}, {"spatial_sigma": 0.0}):
        with pytest.raises(ValueError):
            ActionReg(**bad)
    with pytest.raises(SmoothRLError, match="action_reg .* orders are 1, 2 or 3"):
        resolve_config("ppo", "Pendulum-v1", "smoke", ["action_reg.order=5"])
    config = resolve_config("ppo", "Pendulum-v1", "smoke", ["action_reg.order=3", "action_reg.weight=0.5"])
    assert config.hyperparams["action_reg"] == {"order": 3, "weight": 0.5}


def _buffer(n_steps: int, n_envs: int, history: int) -> HistoryRolloutBuffer:
    buf = HistoryRolloutBuffer(
        n_steps, spaces.Box(-10, 10, (1,)), spaces.Box(-1, 1, (1,)), n_envs=n_envs, history=history
    )
    for t in range(n_steps):
        obs = np.array([[100 * e + t] for e in range(n_envs)], dtype=np.float32)  # encodes (env, step)
        starts = np.array([t == 0 or (e == 1 and t == 3) for e in range(n_envs)])
        buf.add(obs, np.zeros((n_envs, 1)), np.zeros(n_envs), starts, th.zeros(n_envs), th.zeros(n_envs))
    buf.compute_returns_and_advantage(th.zeros(n_envs), np.zeros(n_envs))
    return buf


def test_rollout_buffer_gives_previous_states_of_the_same_env_and_masks_episode_starts():
    buf = _buffer(n_steps=6, n_envs=2, history=3)
    (sample,) = list(buf.get(batch_size=None))
    obs = sample.observations[:, 0].numpy()
    prev = sample.prev_observations[..., 0].numpy()  # (3, 12)
    valid = sample.prev_valid.numpy()
    for i, o in enumerate(obs):
        env, t = divmod(int(o), 100)
        start = 3 if (env == 1 and t >= 3) else 0  # env 1 started a new episode at step 3
        for j in (1, 2, 3):
            assert valid[3 - j, i] == (t - j >= start), (env, t, j)
            if valid[3 - j, i]:
                assert prev[3 - j, i] == 100 * env + t - j


def test_temporal_loss_is_zero_for_a_linear_policy_response_on_a_ramp_and_masks_invalid_samples():
    reg = ActionReg(temporal={2: 1.0, 3: 1.0})
    obs = th.tensor([[3.0], [5.0]])
    prev = th.tensor([[[0.0], [9.0]], [[1.0], [9.0]], [[2.0], [4.0]]])  # (3, 2, 1): sample 0 is a ramp
    valid = th.tensor([[True, False], [True, False], [True, True]])  # sample 1 has only one real predecessor
    loss, logs = action_reg_loss(reg, lambda o: 2.0 * o, obs, prev, valid)
    assert loss.item() == pytest.approx(0.0) and logs == {"order2": 0.0, "order3": 0.0}
    reg1 = ActionReg(temporal={1: 1.0})
    loss, _ = action_reg_loss(reg1, lambda o: o, obs, prev, valid)
    assert loss.item() == pytest.approx(((3.0 - 2.0) ** 2 + (5.0 - 4.0) ** 2) / 2)


def test_ppo_with_action_reg_trains_saves_loads_and_logs_the_terms(tmp_path):
    overrides = ["n_timesteps=512", "action_reg.temporal={1: 0.5, 3: 0.5}", "action_reg.spatial_weight=0.1"]
    config = resolve_config("ppo", "Pendulum-v1", "smoke", overrides)
    env = make_env(config)
    model = make_model(config, env, tensorboard_log=tmp_path / "tb")
    assert isinstance(model.rollout_buffer, HistoryRolloutBuffer) and model.rollout_buffer.history == 3
    model.learn(512)
    acc = EventAccumulator(str(next((tmp_path / "tb").iterdir())))
    acc.Reload()
    for tag in ("train/action_reg_order1", "train/action_reg_order3", "train/action_reg_spatial"):
        assert tag in acc.Tags()["scalars"], tag
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", env=env)
    assert loaded.action_reg == model.action_reg
    obs = env.reset()
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_strong_temporal_regularization_makes_the_policy_smoother():
    """Same init, same budget: the regularized policy varies less between consecutive states."""
    env = make_env(resolve_config("ppo", "Pendulum-v1", "smoke"), n_envs=1, seed=7)
    obs, states = env.reset(), []
    rng = np.random.default_rng(0)
    for _ in range(200):  # one fixed trajectory of consecutive states, used for both policies
        states.append(obs[0])
        obs, *_ = env.step(rng.uniform(-2, 2, (1, 1)).astype(np.float32))
    states = th.as_tensor(np.array(states))

    def roughness(model) -> float:
        with th.no_grad():
            return float(th.diff(model.policy.get_distribution(states).mode()[:, 0]).pow(2).mean())

    # ortho_init=False: PyTorch's default init gives a policy that reacts strongly to the state
    # (SB3's 0.01-gain action head would start out nearly constant, leaving nothing to smooth)
    after = {}
    for weight in (0.0, 50.0):
        overrides = [
            "n_timesteps=2048",
            "n_envs=2",
            f"action_reg.temporal={{1: {weight}, 3: {weight}}}",
            "policy_kwargs.ortho_init=false",
            "n_epochs=10",
            "learning_rate=3e-3",
        ]
        config = resolve_config("ppo", "Pendulum-v1", "smoke", overrides, seed=1)
        model = make_model(config, make_env(config))
        before = roughness(model)
        model.learn(2048)
        after[weight] = roughness(model)
    assert after[50.0] < before and after[50.0] < 0.7 * after[0.0]


def test_a2c_with_action_reg_trains_and_logs(tmp_path):
    config = resolve_config("a2c", "Pendulum-v1", "smoke", ["n_timesteps=256", "action_reg.order=2"])
    model = make_model(config, make_env(config), tensorboard_log=tmp_path / "tb")
    assert isinstance(model.rollout_buffer, HistoryRolloutBuffer) and model.rollout_buffer.history == 2
    model.learn(256, log_interval=1)
    acc = EventAccumulator(str(next((tmp_path / "tb").iterdir())))
    acc.Reload()
    assert "train/action_reg_order2" in acc.Tags()["scalars"]


def test_replay_buffer_history_respects_episode_ends_and_the_write_pointer():
    from smoothrl.agents.buffers import HistoryReplayBuffer

    n_envs = 2
    buf = HistoryReplayBuffer(8, spaces.Box(-1e4, 1e4, (1,)), spaces.Box(-1, 1, (1,)), n_envs=n_envs, history=2)
    size = buf.buffer_size  # SB3 splits the 8 slots between the envs: 4 each
    assert size == 4
    for t in range(7):  # wraps around: steps 0..2 are overwritten by 4..6
        obs = np.array([[100 * e + t] for e in range(n_envs)], dtype=np.float32)
        done = np.array([e == 0 and t == 5 for e in range(n_envs)])  # env 0's episode ends after step 5
        buf.add(obs, obs + 1, np.zeros((n_envs, 1)), np.zeros(n_envs), done, [{}] * n_envs)
    np.random.seed(0)
    data = buf._get_samples(np.arange(size).repeat(20))
    obs = data.observations[:, 0].numpy()
    prev = data.prev_observations[..., 0].numpy()
    valid = data.prev_valid.numpy()
    seen = set()
    for i, o in enumerate(obs):
        env, t = divmod(int(o), 100)
        seen.add((env, t))
        for j in (1, 2):
            expected = t - j >= 3  # steps 0..2 are gone: the oldest stored step is 3
            if env == 0:
                expected &= not (t - j <= 5 < t)  # no predecessor across the end of step 5
            assert valid[2 - j, i] == expected, (env, t, j)
            if expected:
                assert prev[2 - j, i] == 100 * env + t - j
    assert len(seen) == 8


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_off_policy_action_reg_trains_logs_and_round_trips(algo, tmp_path):
    from smoothrl.agents.buffers import HistoryReplayBuffer

    overrides = [
        "n_timesteps=300",
        "learning_starts=100",
        "action_reg.order=3",
        "action_reg.weight=1.0",
        "action_reg.spatial_weight=0.5",
    ]
    config = resolve_config(algo, "Pendulum-v1", "smoke", overrides)
    env = make_env(config)
    model = make_model(config, env, tensorboard_log=tmp_path / "tb")
    assert isinstance(model.replay_buffer, HistoryReplayBuffer) and model.replay_buffer.history == 3
    model.learn(300, log_interval=1)
    acc = EventAccumulator(str(next((tmp_path / "tb").iterdir())))
    acc.Reload()
    assert {"train/action_reg_order3", "train/action_reg_spatial"} <= set(acc.Tags()["scalars"])
    model.save(tmp_path / "m.zip")
    loaded = type(model).load(tmp_path / "m.zip", env=env)
    obs = env.reset()
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("spatial", [0.0, 0.3])
def test_td3s_shared_actor_pass_equals_separate_passes(spatial: float):
    """TD3 computes its own actor loss and the smoothness terms from one actor pass: the same
    actions and the same loss as one pass for each (the spatial noise drawn from the same seed)."""
    from smoothrl.agents import TD3

    reg = {"temporal": {1: 0.3, 3: 0.1}, "spatial_weight": spatial}
    model = TD3("MlpPolicy", "Pendulum-v1", action_reg=reg, learning_starts=50, seed=0)
    model.learn(120)
    data = model.replay_buffer.sample(32)
    th.manual_seed(7)
    actions, loss = model._shared_actor_pass(data, {})
    th.manual_seed(7)
    separate = model._action_reg_term(data, {})
    th.testing.assert_close(actions, model.actor(data.observations))
    th.testing.assert_close(loss, separate)
    assert loss.item() > 0


@pytest.mark.parametrize("use_sde", [False, True])
def test_sacs_shared_actor_pass_equals_separate_passes(use_sde: bool):
    """SAC samples its action and computes the smoothness terms from one pass of the actor's
    network: the same sampled actions and log-probabilities as SB3's ``action_log_prob`` (the same
    random draws) and the same loss as a separate pass."""
    from smoothrl.agents import SAC

    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        action_reg={"temporal": {1: 0.3, 2: 0.1}},
        use_sde=use_sde,
        learning_starts=50,
        seed=0,
    )
    model.learn(120)
    data = model.replay_buffer.sample(32)
    th.manual_seed(3)
    actions, log_prob, loss = model._shared_stochastic_pass(data, {})
    th.manual_seed(3)
    sb3_actions, sb3_log_prob = model.actor.action_log_prob(data.observations)
    th.testing.assert_close(actions, sb3_actions)
    th.testing.assert_close(log_prob, sb3_log_prob)
    th.testing.assert_close(loss, model._action_reg_term(data, {}))
    assert loss.item() > 0
