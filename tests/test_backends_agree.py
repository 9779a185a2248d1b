"""One artefact, five backends: the shipped HVAC controller deployed in lock-step over sim, UDP,
Modbus, BACnet and ROS 2 against the same test week sees the same observations and writes the same
commands (the runtime's contract does not depend on the protocol)."""

from __future__ import annotations

import csv
import itertools
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("bacpypes3")
pytest.importorskip("cyclonedds")

from smoothrl.hardware.artefact import Artefact  # noqa: E402
from smoothrl.hardware.deploy import deploy  # noqa: E402

ARTEFACT = Path("models/hvac-v0-ppo-mpc/artefact")
ENV_KWARGS = {"split": "test", "in_order": True}  # the first test week, as `smoothrl eval` plays it
SEED = 10_000
PERIODS = 24
#: the same safety filter for every backend, so that only the protocol differs
COMMAND = {"low": [-1.0], "high": [1.0], "safe_action": "zero"}
DOMAINS = itertools.count(190)


def _port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _profile(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    data = {**data, "command": COMMAND, "bringup": {"ramp_s": 0, "hold_s": 0}, "watchdog": {"on_estop": "stop"}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _serve(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _log(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The policy periods' observations and commands of a deploy log."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] == "policy"]
    obs = np.array([[float(r[k]) for k in r if k.startswith("obs:")] for r in rows])
    cmd = np.array([[float(r[k]) for k in r if k.startswith("cmd:")] for r in rows])
    return obs, cmd


def test_the_same_artefact_commands_the_same_over_every_backend(tmp_path: Path):
    from smoothrl.hardware.backends.bacnet_plant import HVACBacnetServer
    from smoothrl.hardware.backends.hvac_plant import HVACPlantServer
    from smoothrl.hardware.backends.ros2_bridge import STATUS_TOPIC, serve_ros2
    from smoothrl.hardware.backends.udp import serve_env

    names = [name for name, _ in Artefact.load(ARTEFACT).channels]
    stop = threading.Event()
    profiles: dict[str, Path] = {}
    profiles["sim"] = _profile(
        tmp_path,
        "sim",
        {
            "backend": "sim",
            "control_period_s": 900.0,
            "sim": {"env": "smoothrl/HVAC-v0", "env_kwargs": ENV_KWARGS, "seed": SEED, "lockstep": True},
        },
    )
    udp = _port(socket.SOCK_DGRAM)
    ready = threading.Event()
    _serve(lambda: serve_env("smoothrl/HVAC-v0", udp, seed=SEED, env_kwargs=ENV_KWARGS, ready=ready, stop=stop))
    assert ready.wait(30)
    profiles["udp"] = _profile(
        tmp_path,
        "udp",
        {
            "backend": "udp",
            "control_period_s": 900.0,
            "udp": {"port": udp, "observations": len(names), "commands": 1, "lockstep": True},
        },
    )
    modbus = HVACPlantServer(port=_port(socket.SOCK_STREAM), seed=SEED)
    _serve(lambda: modbus.serve(stop))
    bacnet = HVACBacnetServer(port=_port(socket.SOCK_DGRAM), seed=SEED)
    _serve(lambda: bacnet.serve(stop))
    assert modbus.ready.wait(30) and bacnet.ready.wait(30)
    for name, server in (("modbus", modbus), ("bacnet", bacnet)):
        data = yaml.safe_load(Path(f"hardware/{name}_hvac_office.yaml").read_text())
        if name == "modbus":
            data["modbus"]["port"] = server.port
        else:
            data["bacnet"].update(address=f"127.0.0.1:{server.port}", local_address=f"127.0.0.1:{_port(2)}")
        profiles[name] = _profile(tmp_path, name, data)
    domain = next(DOMAINS)
    ready = threading.Event()
    _serve(lambda: serve_ros2("smoothrl/HVAC-v0", domain, seed=SEED, env_kwargs=ENV_KWARGS, ready=ready, stop=stop))
    assert ready.wait(30)
    profiles["ros2"] = _profile(
        tmp_path,
        "ros2",
        {
            "backend": "ros2",
            "control_period_s": 900.0,
            "ros2": {
                "domain_id": domain,
                "controller_joints": ["joint_0"],
                "commands": [{"name": "hvac_signal", "joint": "joint_0"}],
                "status_topic": STATUS_TOPIC,
                "lockstep": True,
            },
            "observation": {
                "channels": [
                    {"name": name, "topic": "/smoothrl/observation", "index": i} for i, name in enumerate(names)
                ]
            },
        },
    )
    logs = {}
    try:
        for name, path in profiles.items():
            summary = deploy(ARTEFACT, path, duration_s=PERIODS * 900.0, log=tmp_path / f"{name}.csv")
            assert summary["estop"] is None, (name, summary)
            logs[name] = _log(tmp_path / f"{name}.csv")
    finally:
        stop.set()
    obs, cmd = logs["sim"]
    assert obs.shape == (PERIODS, len(names)) and cmd.shape == (PERIODS, 1)
    assert np.ptp(cmd) > 0.05  # the controller did something worth comparing
    for name, (other_obs, other_cmd) in logs.items():
        np.testing.assert_allclose(other_obs, obs, rtol=1e-5, atol=1e-5, err_msg=name)  # float32 on Modbus, BACnet
        np.testing.assert_allclose(other_cmd, cmd, atol=1e-5, err_msg=name)
