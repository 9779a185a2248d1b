"""The runtime distribution (``runtime/pyproject.toml``) installed into a fresh virtualenv without
torch, SB3 or gymnasium, deploying an artefact against a robot bridge over UDP."""

from __future__ import annotations

import json
import subprocess
import threading
import venv
from pathlib import Path

import numpy as np
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
    assert summary["plant"]["return"] == pytest.approx(returns[0]) and summary["plant"]["length"] == 200
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


def runtime_deploy(venv: Path, artefact: Path, folder: Path, *args: str) -> dict:
    """``smoothrl-deploy ARTEFACT --hardware profile.yaml ARGS --json`` from the runtime alone, in
    ``folder`` (where the test wrote ``profile.yaml``).

    :return: the summary it printed
    """
    command = [str(venv / "bin" / "smoothrl-deploy"), str(artefact), "--hardware", "profile.yaml", *args, "--json"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=folder)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def office5_artefact(tmp_path_factory) -> Path:
    """A (barely trained) policy of the 5-zone office, for its shipped profile."""
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    root = tmp_path_factory.mktemp("office5")
    overrides = ["n_timesteps=256", "n_steps=64", "batch_size=64", "eval_freq=0", "checkpoint_freq=0", "n_envs=4"]
    config = resolve_config("ppo", "smoothrl/HVACMultiZone-v0", None, overrides)
    return export_run(train(config, root / "run", progress_bar=False), root / "art")


@pytest.mark.parametrize(
    "name", ["modbus_hvac_office", "modbus_hvac_office_local", "modbus_hvac_office5"], ids=lambda n: n
)
def test_the_runtime_deploys_every_shipped_building_profile(
    runtime_venv: Path, tmp_path: Path, office5_artefact: Path, name: str
):
    """The runtime alone (no pyenergyplus-lbnl: the weather file comes with the artefact) runs a
    day of each shipped Modbus profile against the simulated plant."""
    from smoothrl.hardware.backends.hvac_plant import HVACPlantServer

    five = name.endswith("5")
    artefact = office5_artefact if five else REPO / "models" / "hvac-v0-ppo-mpc" / "artefact"
    port = _free_port()
    plant = HVACPlantServer(port=port, env_id="smoothrl/HVACMultiZone-v0" if five else "smoothrl/HVAC-v0")
    stop = threading.Event()
    server = threading.Thread(target=plant.serve, args=(stop,), daemon=True)
    server.start()
    assert plant.ready.wait(30)
    profile = yaml.safe_load((REPO / "hardware" / f"{name}.yaml").read_text())
    profile["modbus"]["port"] = port
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    try:
        summary = runtime_deploy(runtime_venv, artefact, tmp_path, "--duration", "86400")
    finally:
        stop.set()
        server.join(10)
    assert summary["stopped_by"] == "duration" and summary["periods"] == 96 and summary["estop"] is None
    # a day, then the safe action (heat pumps off), which a lock-step plant applies for one more step
    assert plant.steps == 97 and np.all(plant.command == 0.0)


@pytest.fixture(scope="module")
def cheetah_artefact(tmp_path_factory) -> Path:
    """A (barely trained) PyBullet HalfCheetah policy, for the shipped robot profile."""
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    root = tmp_path_factory.mktemp("cheetah")
    overrides = ["n_timesteps=256", "eval_freq=0", "checkpoint_freq=0", "normalize=true"]
    config = resolve_config("ppo", "HalfCheetahBulletEnv-v0", "smoke", overrides)
    return export_run(train(config, root / "run", progress_bar=False), root / "art")


def test_the_runtime_deploys_the_shipped_robot_profile(runtime_venv: Path, tmp_path: Path, cheetah_artefact: Path):
    """The runtime alone drives the PyBullet HalfCheetah bridge with ``udp_halfcheetah`` (a second
    of simulated time in lock-step), then leaves the robot on the safe action."""
    from smoothrl.hardware.backends.udp import serve_env

    port = _free_port()
    profile = yaml.safe_load((REPO / "hardware" / "udp_halfcheetah.yaml").read_text())
    profile["udp"]["port"] = port
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    ready, stop = threading.Event(), threading.Event()
    bridge = threading.Thread(
        target=serve_env, args=("HalfCheetahBulletEnv-v0", port), kwargs={"ready": ready, "stop": stop}, daemon=True
    )
    bridge.start()
    assert ready.wait(60)
    try:
        summary = runtime_deploy(runtime_venv, cheetah_artefact, tmp_path, "--duration", "1.0")
    finally:
        stop.set()
        bridge.join(30)
    assert summary["stopped_by"] == "duration" and summary["periods"] == 61 and summary["estop"] is None


def test_the_protocol_extras_deploy_over_bacnet_and_ros2(runtime_venv: Path, tmp_path: Path, sac_run: Path):
    """Without its extras the runtime names the one to install; with ``smoothrl-runtime[bacnet,ros2]``
    it runs a day of ``bacnet_hvac_office`` against the BACnet plant (handing it back to the
    plant's PI at the end) and an episode of ``ros2_pendulum`` against the ROS 2 robot, whose
    return is `smoothrl eval`'s. (Last in this file: it adds the extras to the module's runtime.)"""
    import itertools
    import socket

    from smoothrl.hardware.backends.bacnet_plant import HVACBacnetServer
    from smoothrl.hardware.backends.ros2_bridge import serve_ros2
    from smoothrl.run.evaluation import evaluate
    from smoothrl.tools.export import export_run

    def udp_port() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    hvac = REPO / "models" / "hvac-v0-ppo-mpc" / "artefact"
    bacnet = yaml.safe_load((REPO / "hardware" / "bacnet_hvac_office.yaml").read_text())
    plant = HVACBacnetServer(port=udp_port())
    bacnet["bacnet"].update(address=f"127.0.0.1:{plant.port}", local_address=f"127.0.0.1:{udp_port()}")
    bacnet["watchdog"] = {"on_estop": "stop"}  # a fault fails the test instead of riding through it
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(bacnet))
    command = [str(runtime_venv / "bin" / "smoothrl-deploy"), str(hvac), "--hardware", "profile.yaml"]
    missing = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        "error: the bacnet backend needs bacpypes3; install it: pip install 'smoothrl-runtime[bacnet]' "
        "(or 'smoothrl[bacnet]')"
    ], missing.stderr
    out = subprocess.run(
        [str(runtime_venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{REPO / 'runtime'}[bacnet,ros2]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    stop = threading.Event()
    server = threading.Thread(target=plant.serve, args=(stop,), daemon=True)
    server.start()
    assert plant.ready.wait(30)
    try:
        summary = runtime_deploy(runtime_venv, hvac, tmp_path, "--duration", "86400")
    finally:
        stop.set()
        server.join(10)
    assert summary["stopped_by"] == "duration" and summary["periods"] == 96 and summary["estop"] is None
    assert plant.priorities[:96] == [8] * 96 and plant.priorities[96:] == [16]  # handed back to the plant's PI

    artefact = export_run(sac_run, tmp_path / "pendulum")
    domain = next(itertools.count(220))
    ros2 = yaml.safe_load((REPO / "hardware" / "ros2_pendulum.yaml").read_text())
    ros2["ros2"]["domain_id"] = domain
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(ros2))
    returns: list[float] = []
    ready = threading.Event()
    robot = threading.Thread(
        target=lambda: returns.extend(serve_ros2("Pendulum-v1", domain, seed=10_000, episodes=1, ready=ready)),
        daemon=True,
    )
    robot.start()
    assert ready.wait(30)
    summary = runtime_deploy(runtime_venv, artefact, tmp_path)
    robot.join(30)
    assert summary["periods"] == 200 and summary["stopped_by"] == "episode end"
    reference, _ = evaluate(sac_run, episodes=1)
    assert returns[0] == pytest.approx(reference["mean_return"], rel=1e-4)
    assert summary["plant"]["return"] == pytest.approx(returns[0])
