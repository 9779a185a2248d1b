"""train -> eval -> resume round trips, TensorBoard scalars, determinism, interruption safety."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import load_from_pkl
from stable_baselines3.common.vec_env import VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import smoothrl
from smoothrl import rundir
from smoothrl.errors import SmoothRLError, TrainingInterrupted
from smoothrl.run.build import load_run, make_env
from smoothrl.run.evaluation import evaluate
from smoothrl.run.overrides import resolve_config
from smoothrl.run.training import resume, train


def _scalars(run: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for folder in sorted((run / "tb").glob("run_*")):
        acc = EventAccumulator(str(folder))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


def test_train_writes_the_run_directory(sac_run: Path):
    for name in ("model.zip", "config.yaml", "eval.json", "checkpoints/model_600_steps.zip"):
        assert (sac_run / name).is_file(), name
    assert not (sac_run / "vecnormalize.pkl").exists()  # the run does not normalize
    assert not list(sac_run.rglob(".*tmp*")), "no temporary files are left behind"
    run = load_run(sac_run)
    assert isinstance(run.model, smoothrl.SAC) and run.model.num_timesteps == 600
    assert run.config.n_timesteps == 600 and run.config.preset == "smoke"


def test_tensorboard_has_smoothness_and_eval_scalars(sac_run: Path):
    scalars = _scalars(sac_run)
    for tag in (
        "smoothness/continuity_cost",
        "smoothness/jerk_rms",
        "smoothness/sm",
        "eval/mean_reward",
        "eval/continuity_cost",
        "eval/jerk_rms",
        "eval/sm",
        "train/actor_loss",
        "train/critic_loss",
    ):
        assert tag in scalars, tag
    assert all(np.isfinite(v) and v >= 0 for v in scalars["smoothness/jerk_rms"])


def test_normalized_run_freezes_statistics_for_eval(ppo_norm_run: Path):
    assert (ppo_norm_run / "vecnormalize.pkl").is_file()
    run = load_run(ppo_norm_run)
    env = make_env(run.config, n_envs=1, training=False, vecnormalize_path=run.vecnormalize_path)
    assert isinstance(env, VecNormalize) and not env.training and not env.norm_reward
    saved = VecNormalize.load(str(run.vecnormalize_path), make_env(run.config, n_envs=1))
    before = env.obs_rms.mean.copy()
    np.testing.assert_allclose(before, saved.obs_rms.mean)
    summary, _ = evaluate(run, episodes=1)
    np.testing.assert_array_equal(env.obs_rms.mean, before)
    assert summary["episodes"] == 1


def test_eval_is_deterministic_for_a_fixed_seed(sac_run: Path):
    a, ep_a = evaluate(sac_run, episodes=2, seed=7)
    b, ep_b = evaluate(sac_run, episodes=2, seed=7)
    assert a == b
    np.testing.assert_array_equal(ep_a[0].actions, ep_b[0].actions)
    sa, _ = evaluate(sac_run, episodes=2, seed=7, deterministic=False)
    sb, _ = evaluate(sac_run, episodes=2, seed=7, deterministic=False)
    assert sa == sb
    c, _ = evaluate(sac_run, episodes=2, seed=8)
    assert c["mean_return"] != a["mean_return"]


def test_eval_summary_keys_and_action_units(sac_run: Path):
    summary, episodes = evaluate(sac_run, episodes=2)
    for key in ("mean_return", "std_return", "episodes", "continuity_cost", "jerk_rms", "sm"):
        assert key in summary
    assert summary["episodes"] == 2 and len(episodes) == 2
    actions = episodes[0].actions
    assert actions.shape == (200, 1) and actions.min() >= 0.0 and actions.max() <= 1.0
    assert summary["mean_return"] == pytest.approx(np.mean([e.ret for e in episodes]))


class _StopAt(BaseCallback):
    """Simulates Ctrl-C once ``steps`` environment steps are done."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.steps:
            raise KeyboardInterrupt
        return True


def test_interrupt_then_resume_counts_steps(tiny_overrides, tmp_path: Path):
    config = resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(config, run_dir, progress_bar=False, callbacks=[_StopAt(450)])
    assert not (run_dir / "model.zip").exists()
    assert (run_dir / "config.yaml").is_file()
    ckpt = rundir.latest_checkpoint(run_dir)
    assert ckpt is not None and ckpt.steps == 450 and ckpt.replay_buffer.is_file()
    assert not list(run_dir.rglob(".*tmp*"))
    with pytest.raises(SmoothRLError, match="training did not finish"):
        load_run(run_dir)

    resume(run_dir, progress_bar=False)
    run = load_run(run_dir)
    assert run.model.num_timesteps == 600  # counted on from 450, not restarted
    # the replay buffer was restored from the 450-step checkpoint and filled on to 600; the one
    # transition lost is step 450's, interrupted between env.step() and its storage
    assert load_from_pkl(rundir.latest_checkpoint(run_dir).replay_buffer).size() == 599
    assert len(list((run_dir / "tb").glob("run_*"))) == 1  # one continuous TensorBoard curve

    resume(run_dir, n_timesteps=800, progress_bar=False)  # train a finished run further
    assert load_run(run_dir).model.num_timesteps == 800
    assert load_run(run_dir).config.n_timesteps == 800
    with pytest.raises(SmoothRLError, match="already trained for 800 steps"):
        resume(run_dir, progress_bar=False)


def test_existing_run_is_never_overwritten_without_asking(tiny_overrides, sac_run: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(sac_run, copy)
    before = (copy / "model.zip").read_bytes()
    config = resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides)
    with pytest.raises(SmoothRLError, match="resume .* or overwrite"):
        train(config, copy, progress_bar=False)
    assert (copy / "model.zip").read_bytes() == before
    # a bad config fails before the old run is touched, even with overwrite
    bad = resolve_config("dqn", "Pendulum-v1", "smoke", tiny_overrides)
    with pytest.raises(SmoothRLError, match="dqn cannot train on Pendulum-v1"):
        train(bad, copy, overwrite=True, progress_bar=False)
    assert (copy / "model.zip").read_bytes() == before


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path: Path):
    target = tmp_path / "model.zip"
    target.write_bytes(b"old")

    def broken(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rundir.atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]


def test_hvac_training_uses_the_batched_env_and_reports_kpis(tmp_path: Path):
    from stable_baselines3.common.vec_env import VecMonitor

    from smoothrl.envs.hvac.env import HVACVecEnv

    overrides = [
        "n_envs=4",
        "normalize=true",
        "env_kwargs.episode_days=1",
        "n_timesteps=1024",
        "eval_freq=512",
        "eval_episodes=1",
    ]
    config = resolve_config("ppo", "smoothrl/HVAC-v0", "smoke", overrides)
    venv = make_env(config).venv
    assert isinstance(venv, VecMonitor) and isinstance(venv.venv, HVACVecEnv) and venv.num_envs == 4
    run_dir = train(config, tmp_path / "hvac", progress_bar=False)
    summary = json.loads((run_dir / "eval.json").read_text())
    assert summary["mean_length"] == 96 and summary["tdis_tot"] >= 0 and summary["ener_tot"] >= 0
    scalars = _scalars(run_dir)
    for tag in ("eval/tdis_tot", "eval/switches_per_day", "smoothness/jerk_rms", "eval/sm"):
        assert tag in scalars, tag
    test_split, _ = evaluate(run_dir, episodes=1)
    train_split, _ = evaluate(run_dir, episodes=1, split="train")
    assert not set(test_split["episode_start_days"]) & set(train_split["episode_start_days"])  # other days
