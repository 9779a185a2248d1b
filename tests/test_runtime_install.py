"""The runtime distribution (``runtime/pyproject.toml``) installed into a fresh virtualenv without
torch, SB3 or gymnasium, deploying an artefact against a robot bridge over UDP."""

from __future__ import annotations

import json
import subprocess
import threading
import venv
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("controller")
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    out = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(REPO / "runtime")], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return root / "venv"


def test_the_runtime_has_no_torch_sb3_or_gymnasium(runtime_venv: Path):
    code = (
        "import importlib.util as u; print([m for m in ('torch', 'stable_baselines3', 'gymnasium') if u.find_spec(m)])"
    )
    out = subprocess.run([str(runtime_venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_runtime_deploys_against_a_udp_bridge(runtime_venv: Path, tmp_path: Path, sac_run: Path):
    from smoothrl.hardware.backends.udp import serve_env
    from smoothrl.run.evaluation import evaluate
    from smoothrl.tools.export import export_run

    artefact = export_run(sac_run, tmp_path / "art")
    profile = yaml.safe_load((REPO / "hardware" / "udp_pendulum.yaml").read_text())
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    profile["udp"]["port"] = port
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    returns: list[float] = []
    ready = threading.Event()
    bridge = threading.Thread(
        target=lambda: returns.extend(serve_env("Pendulum-v1", port, seed=10_000, episodes=1, ready=ready)), daemon=True
    )
    bridge.start()
    assert ready.wait(30)
    out = subprocess.run(
        [
            str(runtime_venv / "bin" / "smoothrl-deploy"),
            str(artefact),
            "--hardware",
            str(tmp_path / "profile.yaml"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    bridge.join(30)
    assert summary["periods"] == 200 and summary["stopped_by"] == "episode end"
    reference, _ = evaluate(sac_run, episodes=1)
    assert returns[0] == pytest.approx(reference["mean_return"], rel=1e-4)
    bad = subprocess.run(
        [str(runtime_venv / "bin" / "smoothrl-deploy"), str(tmp_path), "--hardware", "udp_pendulum"],
        capture_output=True,
        text=True,
    )
    assert (
        bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    )
