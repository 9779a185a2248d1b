"""Distillation of a controller that is not learned into a run's policy (``pretrain``): gathering
decisions in DAgger rounds, the returns and reward scale the critic is fitted to, behaviour
cloning, and the pipeline (train, resume, CLI, eval) around it."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from smoothrl import rundir
from smoothrl.errors import SmoothRLError
from smoothrl.run.build import load_run, make_model
from smoothrl.run.distillation import (
    PerBuilding,
    Student,
    discounted_returns,
    gather,
    reward_scale,
    running,
    teacher_env,
)
from smoothrl.run.overrides import resolve_config
from smoothrl.run.training import train
from tests.test_cli import assert_user_error, run_cli

HVAC = "smoothrl/HVAC-v0"
#: a small distillation from the tuned PI (a cheap teacher): 2 rounds of 4 buildings x 400 steps
SMALL = [
    "pretrain.teacher=pi",
    "pretrain.steps=1600",
    "pretrain.buildings=4",
    "pretrain.rounds=2",
    "pretrain.epochs=30",
]


def config(*items: str, n_timesteps: int = 0, algo: str = "ppo", env: str = HVAC):
    return resolve_config(algo, env, None, [*SMALL, *items], n_timesteps=n_timesteps, n_envs=2)


def test_running_is_what_a_modulating_plant_runs():
    """Off below the lowest running fraction, the signal above it, smooth and odd between."""
    import torch as th

    signal = th.tensor([-1.0, -0.5, -0.1, 0.0, 0.05, 0.1, 0.5, 1.0], requires_grad=True)
    runs = running(signal, 0.2)
    np.testing.assert_allclose(runs[[0, 1, 6, 7]].detach(), [-1.0, -0.5, 0.5, 1.0], atol=0.01)
    np.testing.assert_allclose(runs[[2, 3, 4, 5]].detach(), 0.0, atol=0.02)
    np.testing.assert_allclose(running(-signal, 0.2).detach(), -runs.detach())
    runs.sum().backward()
    assert (signal.grad > 0).all(), "a student below the lowest fraction is pushed up towards a running teacher"
    assert running(signal, 0.0) is signal


def test_discounted_returns_known_answer():
    rewards = np.ones((5, 2))
    dones = np.zeros((5, 2), dtype=bool)
    dones[1, 0] = True  # building 0: an episode of 2 steps, then one of 3
    returns, trusted = discounted_returns(rewards, dones, 0.5)
    np.testing.assert_allclose(returns[:, 0], [1.5, 1.0, 1.75, 1.5, 1.0])
    np.testing.assert_allclose(returns[:, 1], [1.9375, 1.875, 1.75, 1.5, 1.0])
    # gamma 0.5: the rest beyond 5 steps weighs under 5% (0.5**5 = 0.03), so only a step with
    # five steps of its episode ahead stands for the value
    assert trusted[:, 1].tolist() == [True, False, False, False, False]
    assert not trusted[:, 0].any()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=3, max_size=40), st.floats(0.5, 0.999), st.integers(1, 39))
def test_reward_scale_is_vecnormalize_s(rewards, gamma, cut):
    """The scale fitted to gathered rewards is the one VecNormalize reaches on the same stream."""

    class Replay(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (1,))
        action_space = gym.spaces.Box(-1, 1, (1,))

        def __init__(self):
            self.t = 0

        def reset(self, *, seed=None, options=None):
            return np.zeros(1, dtype=np.float32), {}

        def step(self, action):
            r = rewards[self.t]
            self.t += 1
            return np.zeros(1, dtype=np.float32), r, False, self.t == cut, {}

    venv = VecNormalize(DummyVecEnv([Replay]), gamma=gamma)
    venv.reset()
    dones = np.zeros((len(rewards), 1), dtype=bool)
    for t in range(len(rewards)):
        _, _, done, _ = venv.step(np.zeros((1, 1)))
        dones[t, 0] = done[0]
    expected = float(np.sqrt(venv.ret_rms.var + venv.epsilon))
    assert reward_scale(np.array(rewards)[:, None], dones, gamma) == pytest.approx(expected, rel=1e-6)


def test_gather_labels_every_state_and_mixes_drivers():
    cfg = config()
    env, teacher = teacher_env(cfg, cfg.pretrain)
    try:
        alone = gather(teacher, env, 30)
        assert alone.obs.shape == (30, 4, env.observation_space.shape[0])
        assert alone.actions.shape == (30, 4, 1)
        assert np.isfinite(alone.rewards).all() and not alone.dones.any()
        # a student that always cools hard drives half the time: the labels stay the teacher's
        env.seed(0)
        mixed = gather(teacher, env, 200, student=lambda obs: -np.ones((len(obs), 1)), teacher_share=0.5)
        taken = mixed.obs[1:, :, -2]  # hvac_signal: what the plant ran over the step before
        assert (taken < -0.5).mean() == pytest.approx(0.5, abs=0.15)
        assert (mixed.actions > -0.99).mean() > 0.9, "the PI would not cool hard in a Denver office this often"
    finally:
        env.close()


def test_gather_rejects_teachers_the_env_has_not(tmp_path: Path):
    with pytest.raises(SmoothRLError, match="pretrain needs an HVAC env"):
        resolve_config("ppo", "Pendulum-v1", None, ["pretrain.teacher=pi"], n_timesteps=0)
    with pytest.raises(SmoothRLError, match="on-policy actor-critic"):
        config(algo="sac")
    cfg = resolve_config("ppo", "smoothrl/EPlus-v0", None, ["pretrain.teacher=mpc-oracle"], n_timesteps=0)
    with pytest.raises(SmoothRLError, match="mpc-realistic on EnergyPlus"):
        teacher_env(cfg, cfg.pretrain)
    with pytest.raises(SmoothRLError, match="use action_reg for smoothness"):
        config("smoothness_reward={1: 0.1}")
    with pytest.raises(SmoothRLError, match="goes only with pretrain"):
        resolve_config("ppo", HVAC, None, [], n_timesteps=0)


class _Echo:
    """A one-building teacher that answers its observation's first element (and counts starts)."""

    def __init__(self) -> None:
        self.starts = 0

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        assert obs.shape[0] == 1, "a one-building teacher is asked about its own building only"
        self.starts += int(np.asarray(episode_start).sum())
        return obs[:, :2] * 10, None


def test_per_building_teachers_each_see_their_own_building():
    teachers = [_Echo(), _Echo(), _Echo()]
    per = PerBuilding(teachers)
    obs = np.arange(12, dtype=np.float32).reshape(3, 4)
    actions, state = per.predict(obs, episode_start=np.array([True, False, True]))
    assert state is None
    np.testing.assert_array_equal(actions, obs[:, :2] * 10)
    assert [t.starts for t in teachers] == [1, 0, 1]
    actions, _ = per.predict(obs[::-1].copy())  # no episode_start: nobody starts
    np.testing.assert_array_equal(actions, obs[::-1, :2] * 10)
    assert [t.starts for t in teachers] == [1, 0, 1]


def test_energyplus_buildings_get_a_teacher_each():
    """EnergyPlus runs one simulator per building: each is taught by a controller of its own, which
    decides what the same controller alone decides on that building."""
    from smoothrl.envs.hvac.control import make_controller

    cfg = resolve_config(
        "ppo", "smoothrl/EPlus-v0", None, ["pretrain.teacher=pi", "pretrain.buildings=2"], n_timesteps=0
    )
    env, teacher = teacher_env(cfg, cfg.pretrain)
    try:
        assert isinstance(teacher, PerBuilding) and len(teacher.teachers) == 2
        decisions = gather(teacher, env, 12)
        assert decisions.obs.shape == (12, 2, env.observation_space.shape[0])
        assert decisions.actions.shape == (12, 2, 5)
        alone = make_controller("pi", env.get_attr("sim")[1], {}, seed=cfg.seed)
        starts = np.r_[True, np.zeros(11, dtype=bool)]
        for step in range(12):
            label, _ = alone.predict(decisions.obs[step, 1:2], episode_start=starts[step : step + 1])
            np.testing.assert_allclose(decisions.actions[step, 1], label[0], atol=1e-6)
    finally:
        env.close()


def _held_out(student: Student, teacher_cfg) -> tuple[np.ndarray, np.ndarray]:
    """The student's and the teacher's actions on 300 steps of states the teacher drives to."""
    env, teacher = teacher_env(teacher_cfg, teacher_cfg.pretrain)
    try:
        env.seed(123)
        held_out = gather(teacher, env, 300)
    finally:
        env.close()
    obs = held_out.obs.reshape(-1, held_out.obs.shape[-1])
    return student(obs).reshape(-1), held_out.actions.reshape(-1)


def _disagreement(student: Student, teacher_cfg) -> float:
    ours, theirs = _held_out(student, teacher_cfg)
    return float(np.abs(ours - theirs).mean())


def test_student_learns_the_teacher_s_decisions():
    """Behaviour cloning moves the policy's deterministic action onto the teacher's, on states it
    has not seen, and sets the normalization statistics to the gathered observations."""
    from smoothrl.run.distillation import distill
    from smoothrl.run.training import _training_env

    cfg = config()
    env = _training_env(cfg)
    model = make_model(cfg, env)
    student = Student(model, env)
    before = _disagreement(student, cfg)
    records = distill(model, env, cfg)
    after = _disagreement(student, cfg)
    env.close()
    assert [r["round"] for r in records] == [0, 1]
    assert [r["teacher_share"] for r in records] == [1.0, pytest.approx(0.3)]
    assert all(r["decisions"] == 1600 for r in records)
    assert after < 0.5 * before, (before, after)
    assert env.obs_rms.count > 3000  # fitted to both rounds' observations


def test_train_with_pretrain_writes_a_run_that_evaluates(tmp_path: Path):
    run_dir = train(config(), tmp_path / "run", progress_bar=False)
    record = json.loads((run_dir / rundir.PRETRAIN).read_text())
    assert len(record["rounds"]) == 2
    run = load_run(run_dir)
    assert run.config.pretrain.teacher == "pi"
    assert run.config.n_timesteps == 0
    assert (run_dir / rundir.EVAL).is_file()
    assert rundir.latest_checkpoint(run_dir).steps == 0, "the distilled policy is checkpoint 0"


def test_cli_train_pretrain(tmp_path: Path):
    target = tmp_path / "run"
    items = [a for item in SMALL[1:] for a in ("--set", item)]
    result = run_cli(
        "train", "--algo", "ppo", "--env", HVAC, "--pretrain", "pi", "--timesteps", "64", "--n-envs", "2",
        "--set", "n_steps=32", "--set", "batch_size=32", *items, "--run-dir", target, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "distilled from pi first" in result.stdout
    assert json.loads((target / "eval.json").read_text())["episodes"] >= 1
    bad = run_cli("train", "--algo", "ppo", "--env", HVAC, "--pretrain", "mpc", "--run-dir", tmp_path / "b")
    assert_user_error(bad, "unknown teacher 'mpc'", "mpc-oracle")
    assert not (tmp_path / "b").exists()


def test_from_run_starts_from_another_run_s_distilled_policy(tmp_path: Path):
    """One distillation, many fine-tunings: the new run starts from the other's checkpoint 0 (its
    weights and normalization), with its own exploration std."""
    import torch as th

    from smoothrl.run.training import _training_env

    source = train(config(), tmp_path / "a", progress_bar=False)
    cfg = config(f"pretrain.from_run={source}", "policy_kwargs.log_std_init=-3")
    env = _training_env(cfg)
    model = make_model(cfg, env)
    from smoothrl.run.training import _pretrain

    records = _pretrain(model, env, cfg, progress_bar=False)
    assert [r["from_run"] for r in records] == [str(source)] * 2
    distilled = load_run(source).model.policy.state_dict()
    for key, value in model.policy.state_dict().items():
        if key == "log_std":
            assert th.allclose(value, th.full_like(value, -3.0))
        else:
            assert th.equal(value, distilled[key]), key
    saved = VecNormalize.load(str(source / rundir.VECNORMALIZE), DummyVecEnv([lambda: gym.make(HVAC)]))
    np.testing.assert_array_equal(env.obs_rms.mean, saved.obs_rms.mean)
    env.close()
    for items, message in [
        (("pretrain.teacher=thermostat",), "was not distilled from thermostat"),
        (("env_kwargs.forecast_hours=[1, 2]",), "differs in env_kwargs"),
        (("policy_kwargs.net_arch=[8]",), "differs in policy_kwargs.net_arch"),
    ]:
        bad = config(f"pretrain.from_run={source}", *items)
        with pytest.raises(SmoothRLError, match=message):
            train(bad, tmp_path / "b", progress_bar=False)
        assert not (tmp_path / "b").exists(), "a refused run writes nothing"
    with pytest.raises(SmoothRLError, match="nowhere does not exist"):
        train(config(f"pretrain.from_run={tmp_path / 'nowhere'}"), tmp_path / "c", progress_bar=False)


def _stats(path: Path) -> VecNormalize:
    return VecNormalize.load(str(path), DummyVecEnv([lambda: gym.make(HVAC)]))


@pytest.mark.parametrize("keep", [True, False])
def test_keep_normalization_fine_tunes_on_the_distilled_statistics(tmp_path: Path, keep: bool):
    """With ``keep_normalization`` RL steps leave the observation statistics the policy was distilled
    on as they were (through a resume too) while the reward scale goes on updating; without it both
    move."""
    from smoothrl.run.distillation import FrozenStats
    from smoothrl.run.training import resume

    items = ("checkpoint_freq=512", f"pretrain.keep_normalization={keep}")
    run = train(config(*items, n_timesteps=1024), tmp_path / "run", progress_bar=False)
    distilled = _stats(rundir.checkpoint_paths(run, 0).vecnormalize)
    (run / rundir.MODEL).unlink()  # an interrupted run: resume it from its last checkpoint
    run = resume(run, progress_bar=False, n_timesteps=2048)
    tuned = _stats(run / rundir.VECNORMALIZE)
    assert isinstance(tuned.obs_rms, FrozenStats) is keep
    same = np.array_equal(tuned.obs_rms.mean, distilled.obs_rms.mean) and np.array_equal(
        tuned.obs_rms.var, distilled.obs_rms.var
    )
    assert same is keep
    assert tuned.ret_rms.count > distilled.ret_rms.count, "the reward scale updates either way"
    if keep:  # a run fine-tuned from this one's distillation decides for itself whether to keep it
        from smoothrl.run.training import _pretrain, _training_env

        cfg = config(f"pretrain.from_run={run}")
        env = _training_env(cfg)
        _pretrain(make_model(cfg, env), env, cfg, progress_bar=False)
        assert not isinstance(env.obs_rms, FrozenStats)
        np.testing.assert_array_equal(env.obs_rms.mean, distilled.obs_rms.mean)
        env.close()


def test_pretrain_in_a_sweep_variant(tmp_path: Path):
    """A sweep variant distils too (its keys validated when the sweep is loaded)."""
    import yaml

    from smoothrl.experiments.sweep import load_sweep, sweep

    small = {"teacher": "pi", "steps": 64, "buildings": 2, "rounds": 2, "epochs": 1}
    data = {
        "name": "distilled",
        "base": {"algo": "ppo", "env": HVAC, "timesteps": 64, "episodes": 1,
                 "set": {"n_envs": 2, "n_steps": 32, "batch_size": 32}},
        "variants": [{"name": "plain"}, {"name": "distilled", "set": {"pretrain": small}}],
        "seeds": 1,
        "metrics": ["return"],
    }  # fmt: skip
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    result = sweep(load_sweep(path), tmp_path / "out", backend="local")
    assert {r["status"] for r in result.records} == {"ok"}
    assert (tmp_path / "out" / "distilled" / "seed_0" / rundir.PRETRAIN).is_file()
    assert not (tmp_path / "out" / "plain" / "seed_0" / rundir.PRETRAIN).exists()
    data["variants"][1]["set"]["pretrain"] = {**small, "teacher": "mpc"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SmoothRLError, match="unknown teacher 'mpc'"):
        load_sweep(path)


def test_student_learns_a_staged_teacher_s_stages():
    """On the staged plant the policy is categorical and the cloning loss is the cross-entropy of
    the teacher's stage: the student then picks the thermostat's stage far more often than before."""
    from smoothrl.run.distillation import distill
    from smoothrl.run.training import _training_env

    cfg = config("pretrain.teacher=thermostat", env="smoothrl/HVACDiscrete-v0")
    env = _training_env(cfg)
    model = make_model(cfg, env)
    student = Student(model, env)
    assert student.discrete

    def mismatch() -> float:
        ours, theirs = _held_out(student, cfg)
        return float((ours != theirs).mean())

    before = mismatch()
    distill(model, env, cfg)
    after = mismatch()
    env.close()
    assert after < 0.5 * before and after < 0.2, (before, after)
