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
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback

from smoothrl import rundir
from smoothrl.errors import SmoothRLError, TrainingInterrupted
from smoothrl.run.overrides import resolve_config
from smoothrl.run.training import resume, train


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
        from smoothrl.run.build import load_run

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
    from smoothrl.run import callbacks

    config = resolve_config("sac", "Pendulum-v1", "smoke", tiny_overrides)
    run_dir = train(config, tmp_path / "run", progress_bar=False)
    steps_before = rundir.checkpoint_steps(run_dir)
    real = callbacks.atomic_write

    def killed_at_model(path, write):
        if str(path).endswith("_steps.zip"):
            raise KeyboardInterrupt  # the process dies here
        return real(path, write)

    monkeypatch.setattr(callbacks, "atomic_write", killed_at_model)
    from smoothrl.run.build import load_run

    model = load_run(run_dir).model
    model.num_timesteps += 300
    with pytest.raises(KeyboardInterrupt):
        callbacks.save_checkpoint(model, run_dir)
    latest = rundir.latest_checkpoint(run_dir)
    assert latest.steps == steps_before[-1] and latest.replay_buffer.is_file()


# -- kill -9 at every write step, then --resume ------------------------------------------------

#: a tiny SAC run with two checkpoints; the killed process patches the commit point of smoothrl's
#: atomic writes (the rename of a finished temporary file) to die at the Nth one, as kill -9 would
KILLED = """
import os, sys
from pathlib import Path
run_dir, n = Path(sys.argv[1]).resolve(), int(sys.argv[2])
real, calls = os.replace, [0]
def replace(src, dst):
    if ".tmp" in os.fspath(src) and Path(dst).resolve().is_relative_to(run_dir):
        calls[0] += 1
        if calls[0] == n:
            os._exit(137)  # no cleanup, no finally: the temporary file stays, the rename never happens
    return real(src, dst)
os.replace = replace
from smoothrl.cli import main
sys.argv = ["smoothrl", "train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "smoke", "--run-dir",
            str(run_dir), "--no-progress", "--set", "n_timesteps=400", "--set", "checkpoint_freq=200",
            "--set", "eval_freq=0", "--set", "eval_episodes=1", "--set", "learning_starts=50"]
try:
    main()
finally:
    print("WRITES", calls[0], file=sys.stderr)
"""


def _smoothrl(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("smoothrl")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300)


def test_kill_at_every_write_step_then_resume_loses_nothing(tmp_path: Path):
    """Kill the training process at each of its atomic writes (config, checkpoints with their
    replay buffers, the final model, eval.json), then `--resume`: the run completes with every
    file in place and no temporary file left, or resume refuses in one line and a new `train`
    into the same folder works."""
    full = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "full"), "0"], capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    writes = int(full.stderr.rsplit("WRITES", 1)[1])
    assert writes >= 8  # config, 2 x (buffer, model) per checkpoint, the final checkpoint, model, eval
    outcomes = []
    for n in range(1, writes + 1):
        run_dir = tmp_path / f"killed{n}"
        killed = subprocess.run([sys.executable, "-c", KILLED, str(run_dir), str(n)], capture_output=True, text=True)
        assert killed.returncode == 137, killed.stderr
        resumed = _smoothrl("train", "--resume", "--run-dir", str(run_dir), "--no-progress")
        lines = resumed.stderr.strip().splitlines()
        assert "Traceback" not in resumed.stderr
        if resumed.returncode == 2:  # nothing to resume from: one line, and the folder takes a new run
            assert len(lines) == 1 and lines[0].startswith("error: "), resumed.stderr
            fresh = _smoothrl(
                "train",
                "--algo",
                "sac",
                "--env",
                "Pendulum-v1",
                "--preset",
                "smoke",
                "--run-dir",
                str(run_dir),
                "--no-progress",
                "--set",
                "n_timesteps=200",
                "--set",
                "eval_freq=0",
                "--set",
                "checkpoint_freq=0",
                "--set",
                "eval_episodes=1",
                "--overwrite",
            )
            assert fresh.returncode == 0, fresh.stderr
            outcomes.append("refused")
            continue
        assert resumed.returncode == 0, resumed.stderr
        for name in ("model.zip", "config.yaml", "eval.json"):
            assert (run_dir / name).is_file(), (n, name)
        latest = rundir.latest_checkpoint(run_dir)
        assert latest.steps == 400 and latest.replay_buffer.is_file(), n
        model = SAC.load(latest.model)
        model.load_replay_buffer(latest.replay_buffer)
        # every stored transition kept; a resume from a mid-run checkpoint misses only the one in flight when
        # it was saved (SB3 calls callbacks before storing the step), as the env restarts its episode anyway
        assert model.replay_buffer.size() in (399, 400), n
        assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name], n
        assert not (run_dir / rundir.LOCK).exists()
        outcomes.append("resumed")
    refused = outcomes.count("refused")  # only kills before the first complete checkpoint (config, buffer, model)
    assert refused <= 3 and outcomes == ["refused"] * refused + ["resumed"] * (writes - refused), outcomes


# -- Ctrl-C at start-up and during the final evaluation ------------------------------------------


def test_ctrl_c_while_starting_says_nothing_was_written(tmp_path: Path, monkeypatch, tiny_overrides):
    from typer.testing import CliRunner

    from smoothrl.cli import app
    from smoothrl.run import training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "make_model", interrupted)
    args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "smoke", "--run-dir", str(tmp_path / "run")]
    result = CliRunner().invoke(app, [*args, *[x for s in tiny_overrides for x in ("--set", s)]])
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines() == [
        "interrupted: interrupted while starting, before training began: nothing written"
    ]
    assert not (tmp_path / "run").exists()


def test_ctrl_c_during_the_final_evaluation_keeps_the_model_and_resume_finishes_it(
    tmp_path: Path, monkeypatch, tiny_overrides
):
    from typer.testing import CliRunner

    from smoothrl.cli import app
    from smoothrl.run import training

    real = training.evaluate
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    run_dir = tmp_path / "run"
    args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "smoke", "--run-dir", str(run_dir)]
    result = CliRunner().invoke(app, [*args, "--no-progress", *[x for s in tiny_overrides for x in ("--set", s)]])
    assert result.exit_code == 130
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted during the final evaluation; the trained model is saved" in lines[0]
    assert f"smoothrl eval {run_dir}" in lines[0] and f"--resume --run-dir {run_dir}" in lines[0]
    assert (run_dir / "model.zip").is_file() and not (run_dir / "eval.json").exists()
    monkeypatch.setattr(training, "evaluate", real)
    assert CliRunner().invoke(app, ["eval", str(run_dir), "--json"]).exit_code == 0  # it can be evaluated ...
    before = (run_dir / "model.zip").read_bytes()
    resumed = CliRunner().invoke(app, ["train", "--resume", "--run-dir", str(run_dir), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output  # ... or completed: eval.json written, the model untouched
    assert (run_dir / "eval.json").is_file() and (run_dir / "model.zip").read_bytes() == before


def test_a_real_ctrl_c_at_start_up_is_one_line(tmp_path: Path):
    """SIGINT a moment after `smoothrl train` has started running (while it imports and builds):
    one line, exit 130, no traceback; wherever it lands, the message says what was kept."""
    import signal
    import time

    exe = Path(sys.executable).with_name("smoothrl")
    args = [str(exe), "train", "--algo", "sac", "--env", "Pendulum-v1", "--run-dir", str(tmp_path / "run")]
    # a default SIGINT in the child even when the tests run in a background job (which ignores it)
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # wait until smoothrl runs (its imports map numpy's libraries; its own handler is installed
    # before): a Ctrl-C inside Python's own start-up is Python's, not the product's, to report
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and "numpy" not in maps.read_text():
        time.sleep(0.01)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("interrupted")
