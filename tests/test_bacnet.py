"""The bacnet backend against `smoothrl bridge bacnet-hvac` (bacpypes3, loopback only): a test week
in lock-step reproduces `smoothrl eval`, relinquishing hands the plant to its own sequence, and
faults (device offline, object missing, wrong units, out-of-range and stale values) end in the
relinquish."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("bacpypes3")

from smoothrl.errors import SmoothRLError  # noqa: E402
from smoothrl.hardware.backends.bacnet import conversion  # noqa: E402
from smoothrl.hardware.backends.bacnet_plant import HVACBacnetServer  # noqa: E402
from smoothrl.hardware.deploy import deploy  # noqa: E402
from smoothrl.hardware.profile import parse_profile  # noqa: E402

PROFILE = Path("hardware/bacnet_hvac_office.yaml")
SHIPPED = Path("models/hvac-v0-ppo-mpc")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bridge():
    """Starts BACnet plants in threads; stops them when the test ends."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(**kwargs: Any) -> HVACBacnetServer:
        server = HVACBacnetServer(port=free_udp_port(), **kwargs)
        stop = threading.Event()
        server.result = {}

        def serve() -> None:
            server.result = server.serve(stop)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert server.ready.wait(30)
        server.stop_event, server.thread = stop, thread
        running.append((stop, thread))
        return server

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(10)


def profile_file(tmp_path: Path, server: HVACBacnetServer, name: str = "p.yaml", **changes: Any) -> Path:
    """The shipped profile pointed at ``server``, with ``changes`` to its ``bacnet`` section (and
    ``observation``/``watchdog``/``command`` given as whole sections)."""
    data = yaml.safe_load(PROFILE.read_text())
    data["bacnet"].update(address=f"127.0.0.1:{server.port}", local_address=f"127.0.0.1:{free_udp_port()}")
    data["watchdog"] = {"on_estop": "stop"}  # a fault fails the test instead of riding through it
    for section in ("observation", "watchdog", "command", "bringup"):
        if section in changes:
            data[section] = changes.pop(section)
    data["bacnet"].update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def wait_for(condition: Any, seconds: float = 30.0) -> None:
    """Poll ``condition`` until it holds (a real-time plant steps on its own clock)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the plant did not get there"
        time.sleep(0.01)


def slot(server: HVACBacnetServer, priority: int) -> float | None:
    """The heat-pump command's value at ``priority`` (``None``: null, relinquished)."""
    value = server.commands[0].priorityArray[priority - 1]
    return None if value.null is not None else float(getattr(value, value._choice))


def test_a_test_week_over_bacnet_reproduces_eval(bridge, tmp_path: Path):
    """The shipped controller deployed over BACnet/IP (lock-step) plays the first test week as
    `smoothrl eval` did: the same return and KPIs, every step commanded at priority 8."""
    reference = json.loads((SHIPPED / "eval.json").read_text())
    server = bridge(seed=10_000, split="test")
    summary = deploy(SHIPPED / "artefact", profile_file(tmp_path, server), log=tmp_path / "log.csv")
    server.thread.join(10)
    assert summary["stopped_by"] == "episode end" and summary["periods"] == 672, summary
    assert summary["estop"] is None and summary["overruns"] == 0
    assert server.episode_return == pytest.approx(reference["episode_returns"][0], rel=1e-5)
    assert summary["plant"]["return"] == pytest.approx(reference["episode_returns"][0], rel=1e-5)
    assert server.result["priorities"] == {"8": 672}  # the controller commanded every step
    assert slot(server, 8) is None  # and handed the plant back at the end


def test_relinquishing_hands_the_plant_to_its_own_sequence(bridge, tmp_path: Path):
    """A deployment that ends (here after 6 periods) writes null at priority 8: the present value
    falls to the building's tuned PI at priority 16, which steps the plant from then on."""
    server = bridge(seed=10_000)
    deploy(SHIPPED / "artefact", profile_file(tmp_path, server), duration_s=6 * 900.0)
    assert server.priorities[:6] == [8] * 6 and server.priorities[6:] == [16]  # the last step: the PI's
    assert slot(server, 8) is None and slot(server, 16) is not None
    assert float(server.commands[0].presentValue) == pytest.approx(slot(server, 16), abs=1e-6)
    assert int(server.commands[0].currentCommandPriority.unsigned) == 16


def test_on_stop_safe_action_holds_the_safe_value_at_the_priority(bridge, tmp_path: Path):
    server = bridge(seed=10_000)
    deploy(SHIPPED / "artefact", profile_file(tmp_path, server, on_stop="safe_action"), duration_s=3 * 900.0)
    assert server.priorities == [8] * 4  # the safe action was written (and stepped) at priority 8
    assert slot(server, 8) == 0.0 and float(server.commands[0].presentValue) == 0.0


def test_in_real_time_the_building_runs_on_under_its_own_sequence(bridge, tmp_path: Path):
    """A real-time plant (15 minutes in 0.1 s) keeps stepping after the controller leaves, on its PI."""
    server = bridge(seed=10_000, lockstep=False, speedup=9000.0)
    wait_for(lambda: len(server.priorities) >= 2)  # the building runs on its own sequence before the controller
    assert set(server.priorities) == {16}
    path = profile_file(tmp_path, server, lockstep=False, bringup={"ramp_s": 0, "hold_s": 0})
    summary = deploy(SHIPPED / "artefact", path, duration_s=15 * 900.0, lockstep=False, speedup=9000.0)
    steps = server.steps
    wait_for(lambda: server.steps >= steps + 3)
    assert summary["estop"] is None and summary["periods"] >= 10, summary
    assert 8 in server.priorities  # the controller commanded while it ran ...
    assert server.steps >= steps + 3 and server.priorities[-3:] == [16, 16, 16]  # ... and the PI took over


def test_an_out_of_range_value_relinquishes_within_one_period(bridge, tmp_path: Path):
    """The zone sensor reads 99 degC from step 10: the loop's check refuses it at that period
    and the very next plant step is the building's own sequence."""
    server = bridge(seed=10_000)
    publish = server._publish

    def broken_sensor() -> None:
        publish()
        if server.steps >= 10:
            server.inputs[0].presentValue = 99.0

    server._publish = broken_sensor
    path = profile_file(tmp_path, server, watchdog={"on_estop": "stop"})
    summary = deploy(SHIPPED / "artefact", path)
    assert "out of range" in summary["estop"], summary
    assert server.priorities[:10] == [8] * 10 and set(server.priorities[10:]) == {16}  # the e-stop's and the ending's
    assert slot(server, 8) is None


def test_a_frozen_device_is_stale_and_relinquished_within_max_age(bridge, tmp_path: Path):
    """The device answers but its step counter stops (a frozen controller): the observation ages
    past max_age_periods (2) and the controller relinquishes; in between it commands at most
    max_age_periods + 2 more periods (counted at the device, not timed)."""
    # 1 s periods: the I/O deadline inside a period leaves room for the first read in a busy process
    server = bridge(seed=10_000, lockstep=False, speedup=900.0, fallback=None)
    advance = server._advance
    frozen: dict[str, bool] = {}

    def freezing() -> None:
        if server.priorities.count(8) >= 5:
            frozen["yes"] = True
            return  # the counter and the values stand still
        advance()

    server._advance = freezing
    writes: list[str] = []
    command = server.commands[0]
    write = command.write_property

    async def recording(attr: Any, value: Any, index: Any = None, priority: Any = None) -> None:
        await write(attr, value, index, priority)
        if frozen and priority == 8:
            writes.append("relinquish" if type(value).__name__ == "Null" else "command")

    object.__setattr__(command, "write_property", recording)  # bacpypes3 objects take properties only
    path = profile_file(
        tmp_path, server, lockstep=False, bringup={"ramp_s": 0, "hold_s": 0}, watchdog={"on_estop": "stop"}
    )
    summary = deploy(SHIPPED / "artefact", path, duration_s=200 * 900.0, lockstep=False, speedup=900.0)
    assert "stale" in summary["estop"], summary
    assert "relinquish" in writes and writes.index("relinquish") <= 2 + 2, writes
    assert slot(server, 8) is None


def _one_line_error(path: Path, *args: str) -> str:
    from typer.testing import CliRunner

    from smoothrl.cli import app

    result = CliRunner().invoke(app, ["deploy", str(SHIPPED / "artefact"), "--hardware", str(path), *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


def test_a_device_that_does_not_answer_is_one_line(tmp_path: Path):
    class Nobody:
        port = free_udp_port()

    path = profile_file(tmp_path, Nobody(), connect_timeout_s=0.5)  # type: ignore[arg-type]
    assert "no BACnet device 599 answers at 127.0.0.1:" in _one_line_error(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"t_zone": "analog-input,99"}, r"no readable object analog-input,99 \(channel 't_zone\[office\]'"),
        ({"t_zone": "analog-input,3"}, r"reports watts-per-square-meter, but the channel is in degC"),
        ({"command": "analog-value,101"}, r"is not commandable \(it has no priority array\)"),
        ({"device": 600}, r"no BACnet device 600 answers"),
    ],
    ids=["object-missing", "wrong-units", "not-commandable", "wrong-device"],
)
def test_a_map_that_does_not_fit_the_device_is_one_line(bridge, tmp_path: Path, change: dict, message: str):
    import re

    server = bridge()
    data = yaml.safe_load(PROFILE.read_text())
    if "t_zone" in change:
        data["observation"]["channels"][0]["object"] = change["t_zone"]
    bacnet = {"connect_timeout_s": 0.5}
    if "command" in change:
        bacnet["commands"] = [{"name": "hvac_signal[office]", "object": change["command"]}]
    if "device" in change:
        bacnet["device"] = change["device"]
    path = profile_file(tmp_path, server, observation=data["observation"], **bacnet)
    assert re.search(message, _one_line_error(path)), message
    assert server.priorities == []  # nothing was written


def test_units_convert_exactly_or_are_refused():
    scale, offset = conversion("degrees-fahrenheit", "degC", "t")
    assert 212 * scale + offset == pytest.approx(100.0) and 32 * scale + offset == pytest.approx(0.0)
    assert conversion("watts-per-square-meter", "kW/m2", "g") == (1e-3, 0.0)
    assert conversion("degrees-celsius", "degC", "t") == (1.0, 0.0)
    assert conversion("no-units", "$/kWh", "p") == (1.0, 0.0)  # an object without units: unchecked
    assert conversion(None, "degC", "b") == (1.0, 0.0)  # a binary object
    with pytest.raises(SmoothRLError, match="reports percent, but the channel is in degC"):
        conversion("percent", "degC", "channel 't'")


BASE = {
    "backend": "bacnet",
    "control_period_s": 900.0,
    "observation": {"channels": [{"name": "t", "object": "analog-input,1"}]},
}


@pytest.mark.parametrize(
    ("bacnet", "message"),
    [
        ({"commands": [{"name": "u", "object": "analog-value,1"}]}, r"the key 'bacnet.device' is missing"),
        ({"device": 4_194_303, "commands": [{"name": "u", "object": "analog-value,1"}]}, r"bacnet.device"),
        ({"device": 1, "commands": []}, r"bacnet.commands"),
        ({"device": 1, "commands": [{"name": "u", "object": "binary-input,1"}]}, r"TYPE one of analog-output"),
        ({"device": 1, "commands": [{"name": "u", "object": "analog-value"}]}, r"TYPE,INSTANCE"),
        (
            {"device": 1, "address": "localhost", "commands": [{"name": "u", "object": "analog-value,1"}]},
            r"address must be an IPv4 address and UDP port",
        ),
        ({"device": 1, "priority": 0, "commands": [{"name": "u", "object": "analog-value,1"}]}, r"bacnet.priority"),
        (
            {"device": 1, "lockstep": True, "commands": [{"name": "u", "object": "analog-value,1"}]},
            r"lockstep needs step_object and sequence_object",
        ),
        ({"device": 1, "on_stop": "drop", "commands": [{"name": "u", "object": "analog-value,1"}]}, r"on_stop"),
        (
            {"device": 1, "commands": [{"name": "u", "object": "analog-value,1"}], "poll": True},
            r"unknown key 'bacnet.poll'",
        ),
    ],
)
def test_a_malformed_bacnet_section_is_refused_naming_the_key(bacnet: dict, message: str):
    import re

    with pytest.raises(SmoothRLError) as e:
        parse_profile({**BASE, "bacnet": bacnet}, "p.yaml")
    assert re.search(message, str(e.value)) and "\n" not in str(e.value), str(e.value)


def test_channels_name_the_source_their_backend_has():
    bacnet = {"device": 1, "commands": [{"name": "u", "object": "analog-value,1"}]}
    with pytest.raises(SmoothRLError, match=r"channel 't' reads a register, which the bacnet backend has not"):
        parse_profile({**BASE, "bacnet": bacnet, "observation": {"channels": [{"name": "t", "register": 0}]}}, "p")
    with pytest.raises(SmoothRLError, match=r"observation.channels\[0\].object must be an object identifier"):
        parse_profile({**BASE, "bacnet": bacnet, "observation": {"channels": [{"name": "t", "object": "ai,1"}]}}, "p")
    parsed = parse_profile(
        {**BASE, "bacnet": bacnet, "observation": {"channels": [{"name": "t", "object": " analog-input , 7"}]}}, "p"
    )
    assert parsed.obs_channels[0]["object"] == "analog-input,7"
    assert np.isclose(parsed.control_period_s, 900.0)


def test_with_cov_the_controller_reads_what_the_device_notifies(bridge, tmp_path: Path):
    """``cov: true`` (real time): the controller subscribes to change-of-value notifications
    instead of reading each period; every zone temperature it acted on is one the plant
    published, and it follows the plant step after step."""
    import csv

    server = bridge(seed=10_000, lockstep=False, speedup=9000.0, fallback=None)
    published: list[float] = []
    publish = server._publish

    def recording() -> None:
        publish()
        published.append(float(server.obs[0]))

    server._publish = recording
    path = profile_file(tmp_path, server, lockstep=False, cov=True, bringup={"ramp_s": 0, "hold_s": 0})
    summary = deploy(
        SHIPPED / "artefact", path, duration_s=20 * 900.0, lockstep=False, speedup=9000.0, log=tmp_path / "log.csv"
    )
    assert summary["estop"] is None and summary["periods"] == 20, summary
    with open(tmp_path / "log.csv", newline="") as f:
        seen = [float(r["obs:t_zone[office]"]) for r in csv.DictReader(f) if r["phase"] == "policy"]
    assert all(min(abs(v - p) for p in published) < 1e-4 for v in seen)  # float32 objects
    assert len(set(seen)) >= 15  # it followed the plant (a period may see the same step twice)
    assert server.priorities.count(8) >= 15


def test_cov_needs_real_time_and_a_step_counter():
    bacnet = {"device": 1, "commands": [{"name": "u", "object": "analog-value,1"}], "cov": True}
    with pytest.raises(SmoothRLError, match=r"cov needs step_object and real time"):
        parse_profile({**BASE, "bacnet": bacnet}, "p.yaml")
    with pytest.raises(SmoothRLError, match=r"cov needs step_object and real time"):
        parse_profile(
            {
                **BASE,
                "bacnet": {
                    **bacnet,
                    "lockstep": True,
                    "step_object": "positive-integer-value,1",
                    "sequence_object": "positive-integer-value,3",
                },
            },
            "p.yaml",
        )
