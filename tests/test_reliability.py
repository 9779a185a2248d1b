"""Nothing is ever lost: run-directory locks, what --overwrite keeps, temp files, resume refusals."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3.common.callbacks import BaseCallback

from smoothrl import rundir
from smoothrl.config import resolve_config
from smoothrl.errors import SmoothRLError, TrainingInterrupted
from smoothrl.training import resume, train


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_second_writer_is_refused_naming_the_first(sac_run: Path, tmp_path: Path, tiny_overrides):
    run_dir = Path(shutil.copytree(sac_run, tmp_path / "run"))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
    )
    try:
        (run_dir / rundir.LOCK).write_text(f"{holder.pid}\n{socket.gethostname()}\nsmoothrl train --run-dir x")
        before = checksums(run_dir)
        with pytest.raises(SmoothRLError, match=f"being written by process {holder.pid}"):
            resume(run_dir, n_timesteps=1200, progress_bar=False)
        with pytest.raises(SmoothRLError, match=f"being written by process {holder.pid}"):
            train(resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides), run_dir, overwrite=True)
        assert checksums(run_dir) == before
        (run_dir / "model.zip").unlink()
        from smoothrl.training import load_run

        with pytest.raises(SmoothRLError, match=f"still being trained by process {holder.pid}"):
            load_run(run_dir)
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over(tmp_path: Path, tiny_overrides):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / rundir.LOCK).write_text(f"{dead.pid}\n{socket.gethostname()}\nsmoothrl train")
    train(resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides), run_dir, progress_bar=False)
    assert (run_dir / "model.zip").is_file() and not (run_dir / rundir.LOCK).exists()


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path: Path, tiny_overrides):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    with pytest.raises(SmoothRLError, match="holds files but no smoothrl run"):
        train(resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides), folder, overwrite=True)
    assert (folder / "thesis.tex").read_text() == "years of work" and len(list(folder.iterdir())) == 1


class Interrupt(BaseCallback):
    def _on_step(self) -> bool:
        if self.num_timesteps >= 300:
            raise KeyboardInterrupt
        return True


class Fail(BaseCallback):
    def _on_step(self) -> bool:
        if self.num_timesteps >= 300:
            raise RuntimeError("the new run crashed")
        return True


@pytest.mark.parametrize("failure", [Interrupt, Fail])
def test_overwrite_keeps_the_old_run_until_the_new_one_finishes(failure, sac_run: Path, tmp_path: Path, tiny_overrides):
    run_dir = Path(shutil.copytree(sac_run, tmp_path / "run"))
    before = checksums(run_dir)
    config = resolve_config("sac", "Pendulum-v1", "smoke", [*tiny_overrides, "seed=7"])
    with pytest.raises(TrainingInterrupted if failure is Interrupt else RuntimeError) as info:
        train(config, run_dir, overwrite=True, progress_bar=False, callbacks=[failure()])
    if failure is Interrupt:
        assert "previous run" in str(info.value) and "restored" in str(info.value)
    assert checksums(run_dir) == before  # the old run, intact
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing left aside
    train(config, run_dir, overwrite=True, progress_bar=False)  # and a finished overwrite replaces it
    assert checksums(run_dir) != before and "seed: 7" in (run_dir / "config.yaml").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_temp_files_of_a_dead_writer_are_cleaned_at_the_next_write(sac_run: Path, tmp_path: Path):
    run_dir = Path(shutil.copytree(sac_run, tmp_path / "run"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = run_dir / "checkpoints" / f".model_900_steps.tmp{dead.pid}.zip"
    mine = run_dir / f".eval.tmp{os.getpid()}.json"  # a live writer's file stays
    leftover.write_bytes(b"half")
    mine.write_text("{}")
    assert rundir.clean_temp_files(run_dir) == [leftover]
    assert not leftover.exists() and mine.exists()


def test_resume_refuses_a_checkpoint_without_its_replay_buffer(tmp_path: Path, tiny_overrides):
    config = resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides)
    run_dir = train(config, tmp_path / "run", progress_bar=False)
    ckpt = rundir.latest_checkpoint(run_dir)
    ckpt.replay_buffer.unlink()
    with pytest.raises(SmoothRLError, match="has no replay buffer"):
        resume(run_dir, n_timesteps=1200, progress_bar=False)
    assert not (run_dir / rundir.LOCK).exists()


def test_checkpoints_keep_their_buffer_when_killed_between_writes(tmp_path: Path, tiny_overrides, monkeypatch):
    """A kill after the new buffer but before the new model: the previous checkpoint is complete."""
    from smoothrl import callbacks

    config = resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides)
    run_dir = train(config, tmp_path / "run", progress_bar=False)
    steps_before = rundir.checkpoint_steps(run_dir)
    real = callbacks.atomic_write

    def killed_at_model(path, write):
        if str(path).endswith("_steps.zip"):
            raise KeyboardInterrupt  # the process dies here
        return real(path, write)

    monkeypatch.setattr(callbacks, "atomic_write", killed_at_model)
    from smoothrl.training import load_run

    model = load_run(run_dir).model
    model.num_timesteps += 300
    with pytest.raises(KeyboardInterrupt):
        callbacks.save_checkpoint(model, run_dir)
    latest = rundir.latest_checkpoint(run_dir)
    assert latest.steps == steps_before[-1] and latest.replay_buffer.is_file()
