"""kill -9 and a second writer, for the commands that write besides ``train`` and ``sweep``:
``performative``, ``export``, ``deploy --log`` and ``tune``. Nothing reported as written is lost,
the second writer is refused with one line, and a killed deep performative run resumes from its
last finished round."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smoothrl.cli import app

runner = CliRunner()
SMOOTHRL = str(Path(sys.executable).with_name("smoothrl"))
GRID = "smoothrl/PerformativeGridworld-v0"


def one_line(result, *words: str) -> str:
    output = result.output.strip()
    assert result.exit_code == 2, (result.exit_code, output)
    assert "Traceback" not in output and len(output.splitlines()) <= 3, output
    for w in words:
        assert w in output, (w, output)
    return output


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def kill_9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another live process holding a run folder's lock (a second writer's view of the first)."""
    code = (
        "import sys, time\nfrom smoothrl.rundir import locked\n"
        "with locked(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


# -- performative ---------------------------------------------------------------------------


def test_a_killed_deep_performative_run_resumes_from_its_last_finished_round(tmp_path: Path):
    out = tmp_path / "deep"
    args = ["performative", "--env", GRID, "--method", "deep", "--algo", "ppo", "--rounds", "5", "--steps", "256"]
    args += ["--beta", "5", "--episodes", "1", "--run-dir", str(out), "--no-progress"]
    process = subprocess.Popen([SMOOTHRL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rounds_saved() -> int:
        try:
            return len(json.loads((out / "progress.json").read_text())["rounds"])
        except (OSError, ValueError):
            return 0

    wait_for(lambda: rounds_saved() >= 2)
    kill_9(process)
    saved = json.loads((out / "progress.json").read_text())["rounds"]
    assert not (out / "performative.json").exists()  # not finished
    one_line(runner.invoke(app, args), "unfinished", "--resume")  # not silently started again
    one_line(runner.invoke(app, ["performative", "--resume", "--run-dir", str(tmp_path / "none")]), "no performative")
    result = runner.invoke(app, ["performative", "--resume", "--run-dir", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "performative.json").read_text())
    assert [r["round"] for r in results["rounds"]] == list(range(6))
    assert results["rounds"][: len(saved)] == saved  # the finished rounds kept as they were
    assert not (out / "progress.json").exists() and not (out / "round").exists()
    one_line(runner.invoke(app, ["performative", "--resume", "--run-dir", str(out)]), "finished")


def test_a_second_performative_writer_is_refused_and_a_finished_run_is_kept(tmp_path: Path):
    out = tmp_path / "rr"
    args = ["performative", "--method", "rr", "--lam", "5", "--rounds", "4", "--run-dir", str(out), "--no-progress"]
    holder = hold_lock(out)
    try:
        one_line(runner.invoke(app, args), "is being written by process")
    finally:
        holder.kill()
        holder.wait()
    assert runner.invoke(app, args).exit_code == 0
    before = (out / "performative.json").read_bytes()
    one_line(runner.invoke(app, args), "already holds a performative run", "--overwrite")
    assert (out / "performative.json").read_bytes() == before
    holder = hold_lock(out)
    try:  # even --overwrite waits for no one: the live writer keeps the folder
        one_line(runner.invoke(app, [*args, "--overwrite"]), "is being written by process")
    finally:
        holder.kill()
        holder.wait()
    assert (out / "performative.json").read_bytes() == before


# -- export ---------------------------------------------------------------------------------


def test_two_exports_into_one_folder_one_wins_and_nothing_is_lost(sac_run: Path, tmp_path: Path):
    out = tmp_path / "art"
    processes = [
        subprocess.Popen(
            [SMOOTHRL, "export", str(sac_run), "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = [(p.wait(300), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(err for code, err in results if code == 2)  # says so in one line; the winner's artefact is whole
    assert len(loser.strip().splitlines()) == 1 and ("another export" in loser or "already exists" in loser), loser
    from smoothrl.hardware.artefact import Artefact

    assert Artefact.load(out).policy() is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".art.")]  # no staging left behind


def test_a_killed_export_leaves_no_artefact_half_written(sac_run: Path, tmp_path: Path):
    out = tmp_path / "art"
    process = subprocess.Popen([SMOOTHRL, "export", str(sac_run), "--out", str(out)])
    wait_for(lambda: any(p.name.startswith(".art.") for p in tmp_path.iterdir()) or out.exists())
    kill_9(process)
    if out.exists():  # it had finished: whole
        from smoothrl.hardware.artefact import Artefact

        Artefact.load(out)
    result = runner.invoke(app, ["export", str(sac_run), "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output


# -- deploy --log ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pendulum_artefact(sac_run: Path, tmp_path_factory) -> Path:
    from smoothrl.tools.export import export_run

    return export_run(sac_run, tmp_path_factory.mktemp("art") / "art")


def test_a_second_deploy_with_the_same_log_is_refused_and_a_killed_runs_log_is_kept(
    pendulum_artefact: Path, tmp_path: Path
):
    log = tmp_path / "log.csv"
    partial = tmp_path / "log.csv.partial"
    args = ["deploy", str(pendulum_artefact), "--hardware", "sim_pendulum", "--realtime", "--duration", "60"]
    first = subprocess.Popen([SMOOTHRL, *args, "--log", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: partial.exists() and len(partial.read_text().splitlines()) > 5)
    one_line(runner.invoke(app, [*args, "--log", str(log)]), "being written by another deploy")
    kill_9(first)
    kept = partial.read_bytes()
    one_line(runner.invoke(app, [*args, "--log", str(log)]), "did not finish (killed?)")
    assert partial.read_bytes() == kept and not log.exists()  # the killed run's record, untouched


# -- tune -----------------------------------------------------------------------------------


def test_a_killed_search_keeps_its_finished_trials_and_a_second_search_is_refused(tmp_path: Path):
    import csv

    out = tmp_path / "tune"
    args = ["tune", "--algo", "ppo", "--env", "Pendulum-v1", "--preset", "smoke", "--trials", "20", "--timesteps",
            "512", "--evals", "1", "--episodes", "1", "--backend", "local", "--out", str(out)]  # fmt: skip
    process = subprocess.Popen([SMOOTHRL, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rows() -> list[dict]:
        try:
            with open(out / "trials.csv") as f:
                return list(csv.DictReader(f))
        except OSError:
            return []

    wait_for(lambda: len(rows()) >= 2)
    one_line(runner.invoke(app, args), "is being written by process")  # the live search keeps its folder
    kill_9(process)
    finished = rows()
    assert len(finished) >= 2 and all(r["state"] in ("complete", "pruned") for r in finished)
    assert "mean_return" in finished[0] and float(finished[0]["mean_return"]) < 0  # the metrics behind it
    one_line(runner.invoke(app, args), "already holds a search")
    assert rows() == finished


# -- sweep ----------------------------------------------------------------------------------


def test_a_second_sweep_into_a_folder_being_written_is_refused_at_once(tmp_path: Path):
    import yaml

    spec = {"base": {"algo": "ppo", "env": "Pendulum-v1", "preset": "smoke", "timesteps": 64}, "seeds": 1}
    spec["variants"] = [{"name": "a"}]
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    holder = hold_lock(out)
    try:
        args = ["sweep", str(tmp_path / "sweep.yaml"), "--backend", "local", "--out", str(out)]
        one_line(runner.invoke(app, args), "is being written by process")
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the holder's lock only: nothing started
