"""The contract between an artefact, a profile and the plant: every malformed manifest and
profile is one line and exit 2, before anything is connected or written; a profile whose
channels disagree with the policy's is refused naming the first mismatch; whatever the profile
says, no written command leaves the bounds, on the e-stop path too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smoothrl.cli import app
from smoothrl.hardware.manifest import MANIFEST, manifest_hash
from smoothrl.hardware.safety import SafetyFilter

runner = CliRunner()
SHIPPED = Path("models/hvac-v0-ppo-mpc/artefact")
OFFICE = Path("hardware/modbus_hvac_office.yaml")


def one_line(args: list[str], *fragments: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture
def artefact(tmp_path: Path) -> Path:
    out = tmp_path / "art"
    shutil.copytree(SHIPPED, out)
    return out


def _edit(artefact: Path, change: Any, reseal: bool) -> None:
    path = artefact / MANIFEST
    content = json.loads(path.read_text())
    change(content)
    if reseal:  # an edit that keeps the hash right: the model itself must refuse it
        content["manifest_sha256"] = manifest_hash(content)
    path.write_text(json.dumps(content))


def _set(keys: str, value: Any) -> Any:
    def change(content: dict) -> None:
        *path, last = keys.split(".")
        node = content
        for key in path:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


def _drop(key: str) -> Any:
    return lambda content: content.pop(key)


MANIFEST_CASES = [
    # edited after export: the manifest's own hash says so
    (_set("action_space.high", [5.0]), False, "was changed after export"),
    (_set("control_period_s", None), False, "was changed after export"),
    (_set("file", "../policy.onnx"), False, "file: must be a file name inside the artefact"),
    (_set("action_space", {"type": "Discrete", "n": 3, "start": 0}), False, "does not fit a Discrete action space"),
    # edited with the hash recomputed: the typed model refuses
    (_set("file", "../policy.onnx"), True, "file: must be a file name inside the artefact"),
    (_set("file", "/etc/passwd"), True, "must be a file name inside the artefact"),
    (_set("control_period_s", -900.0), True, "control_period_s: Input should be greater than 0"),
    (_set("control_period_s", float("nan")), True, "control_period_s: Input should be a finite number"),
    (_set("action_space.low", [2.0]), True, "every low must be below its high"),
    (_set("action_space.high", [float("inf")]), True, "action_space.Box.high.0: Input should be a finite number"),
    (_set("action_space", {"type": "Discrete", "n": 3, "start": 0}), True, "output dtype float32 does not fit"),
    (_set("observation_space.sensors", 16), True, "17 channels are named for 16 sensors"),
    (_set("observation_space.channels.1.name", "t_zone[office]"), True, "channel names must be distinct"),
    (_set("observation_space.channels.0.low", 99.0), True, "low 99.0 is above high"),
    (_set("sha256", "abc"), True, "sha256: String should match pattern"),
    (_set("input.size", 0), True, "input.size: Input should be greater than or equal to 1"),
    (_drop("source"), True, "source: Field required"),
    (_set("surprise", 1), True, "surprise: Extra inputs are not permitted"),
    (_set("manifest_version", 1), True, "layout version 1, this runtime reads 2"),
    (_set("normalization", {"clip_obs": -1.0, "sha256": "0" * 64}), True, "clip_obs: Input should be greater than 0"),
]


@pytest.mark.parametrize(("change", "reseal", "fragment"), MANIFEST_CASES)
def test_every_malformed_manifest_is_one_line(artefact: Path, change: Any, reseal: bool, fragment: str):
    before = {p.name: p.read_bytes() for p in artefact.iterdir()}
    _edit(artefact, change, reseal)
    one_line(["deploy", str(artefact), "--hardware", str(OFFICE)], fragment)
    assert {p.name for p in artefact.iterdir()} == set(before)  # nothing written beside it


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("{not json", "is not valid JSON"), ("[1, 2]", "is not a manifest"), ("\udcff", "is not valid JSON")],
)
def test_an_unreadable_manifest_is_one_line(artefact: Path, text: str, fragment: str):
    (artefact / MANIFEST).write_bytes(text.encode("utf-8", "surrogateescape"))
    one_line(["deploy", str(artefact), "--hardware", str(OFFICE)], fragment)


def test_a_graph_that_is_not_what_the_manifest_says_is_refused(artefact: Path, tmp_path: Path):
    from smoothrl.hardware.artefact import Artefact

    other = tmp_path / "other"
    shutil.copytree(Path("models/hvac-v0-ppo-mpc-smooth/artefact"), other)
    # a graph swapped in with its manifest's file hash updated and the manifest resealed
    shutil.copy(other / "policy.onnx", artefact / "policy.onnx")
    _edit(artefact, _set("sha256", json.loads((other / MANIFEST).read_text())["sha256"]), True)
    assert Artefact.load(artefact).policy() is not None  # the same interface: accepted, as it should be
    _edit(artefact, _set("input.name", "obs"), True)
    with pytest.raises(Exception, match="does not take and give what the manifest says"):
        Artefact.load(artefact).policy()


def test_the_manifest_names_every_channel_with_unit_and_training_range():
    from smoothrl.hardware.artefact import Artefact

    art = Artefact.load(SHIPPED)
    names = [name for name, _ in art.channels]
    assert names[:3] == ["t_zone[office]", "t_out", "ghi_kw"] and len(names) == art.sensors == 17
    assert dict(art.channels)["t_out"] == "degC" and dict(art.channels)["price"] == "$/kWh"
    zone = art.model.observation_space.channels[0]
    assert 10.0 < zone.low < zone.high < 35.0  # what the policy saw in training, not +-inf


# --------------------------------------------------------------------------------------------
# profiles


def _office(**changes: Any) -> dict:
    data = yaml.safe_load(OFFICE.read_text())
    for key, value in changes.items():
        *path, last = key.split(".")
        node = data
        for part in path:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DROP:
            node.pop(last)
        else:
            node[int(last) if last.isdigit() else last] = value
    return data


_DROP = object()
NAN, INF = float("nan"), float("inf")

PROFILE_CASES = [
    (_office(**{"observation.max_age_periods": NAN}), "observation.max_age_periods: Input should be a finite number"),
    (_office(**{"observation.max_age_periods": INF}), "observation.max_age_periods: Input should be a finite number"),
    (_office(**{"observation.max_age_periods": 0}), "observation.max_age_periods: Input should be greater than 0"),
    (_office(**{"bringup": {"ramp_s": NAN}}), "bringup.ramp_s: Input should be a finite number"),
    (_office(**{"bringup": {"hold_s": INF}}), "bringup.hold_s: Input should be a finite number"),
    (_office(**{"bringup": {"hold_s": -1}}), "bringup.hold_s: Input should be greater than or equal to 0"),
    (_office(**{"modbus.timeout_s": NAN}), "modbus.timeout_s: Input should be a finite number"),
    (_office(**{"modbus.port": 70000}), "modbus.port: Input should be less than or equal to 65535"),
    (_office(**{"modbus.port": "5020"}), "modbus.port: Input should be a valid integer"),
    (_office(**{"modbus.unit": True}), "modbus.unit: Input should be a valid integer"),
    (_office(**{"modbus.commands": 0}), "modbus.commands: Input should be greater than or equal to 1"),
    (_office(**{"modbus.weekday_jan1": 7}), "modbus.weekday_jan1: Input should be less than or equal to 6"),
    (_office(**{"modbus.colour": 1}), "unknown key 'modbus.colour'"),
    (_office(**{"modbus.encoding": "bcd"}), "modbus.encoding: Input should be 'float32' or 'int16'"),
    (_office(**{"modbus.word_order": "middle"}), "modbus.word_order: Input should be 'big' or 'little'"),
    (_office(**{"modbus.scale": 0}), "modbus.scale: Input should be greater than 0"),
    (_office(**{"modbus.health_register": -1}), "modbus.health_register: Input should be greater than or equal to 0"),
    (_office(**{"modbus": _DROP}), "the modbus backend needs its section"),
    (_office(**{"command.safe_action": [2.0]}), "safe_action [2.0] is outside the command bounds"),
    (_office(**{"command.nominal": [-1.5]}), "nominal [-1.5] is outside the command bounds"),
    (_office(**{"command.safe_action": "off"}), "command.safe_action: must be hold, zero or a vector"),
    (_office(**{"command.safe_action": [NAN]}), "safe_action: must be hold, zero or a vector of finite numbers"),
    (_office(**{"command.max_rate": [0.0]}), "max_rate must be positive"),
    (_office(**{"command.max_rate": [INF]}), "command.max_rate.0: Input should be a finite number"),
    (_office(**{"command.lowpass_alpha": 1.5}), "command.lowpass_alpha: Input should be less than or equal to 1"),
    (_office(**{"command.low": [1.0]}), "low must be below high"),
    (_office(**{"watchdog.max_overruns": 0}), "watchdog.max_overruns: Input should be greater than or equal to 1"),
    (_office(**{"watchdog.max_overruns": 2.5}), "watchdog.max_overruns: Input should be a valid integer"),
    (_office(**{"watchdog.on_estop": "retry"}), "watchdog.on_estop: Input should be 'stop', 'hold' or 'recover'"),
    (_office(**{"control_period_s": INF}), "control_period_s: Input should be a finite number"),
    (_office(**{"control_period_s": "900"}), "control_period_s: Input should be a valid number"),
    (_office(**{"backend": "knx"}), "backend: Input should be 'sim', 'udp', 'modbus', 'bacnet' or 'ros2'"),
    (_office(**{"observation.channels.0.low": NAN}), "channels[0].low must be a finite number"),
    (_office(**{"observation.channels.0.low": 50}), "channels[0]: low 50 must be below high 40"),
    (_office(**{"observation.channels.0.unit": 3}), "channels[0].unit must be a unit"),
    (_office(**{"observation.channels.0.name": ""}), "channels[0].name must be the channel's name"),
    (_office(**{"observation.low": [0.0] * 17}), "give plausible ranges per channel or as observation.low/high"),
    ([1, 2], "is not a hardware profile"),
    ("just text", "is not a hardware profile"),
]


@pytest.mark.parametrize(("data", "fragment"), PROFILE_CASES)
def test_every_malformed_profile_is_one_line(tmp_path: Path, data: Any, fragment: str):
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    one_line(["deploy", str(SHIPPED), "--hardware", str(path)], fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["profile.yaml"]


def test_a_profile_with_swapped_or_foreign_channels_is_refused_naming_the_first_mismatch(tmp_path: Path):
    data = _office()
    channels = data["observation"]["channels"]
    channels[0], channels[1] = channels[1], channels[0]  # zone and outdoor temperature swapped
    path = tmp_path / "swapped.yaml"
    path.write_text(yaml.safe_dump(data))
    one_line(
        ["deploy", str(SHIPPED), "--hardware", str(path)],
        "observation.channels[0] is 't_out' (the policy reads it as channel 1), but the policy's channel 0 is "
        "'t_zone[office]'",
    )
    data = _office(**{"observation.channels.0.unit": "degF"})
    path.write_text(yaml.safe_dump(data))
    one_line(
        ["deploy", str(SHIPPED), "--hardware", str(path)], "(t_zone[office]) is in degF, the policy was trained on degC"
    )
    data = _office()
    data["observation"]["channels"].pop()
    path.write_text(yaml.safe_dump(data))
    one_line(["deploy", str(SHIPPED), "--hardware", str(path)], "lists 16 observation channels, the policy reads 17")


@pytest.mark.parametrize("path", sorted(Path("hardware").glob("modbus_*.yaml")), ids=lambda p: p.stem)
def test_shipped_building_profiles_have_plausibility_ranges_a_ramp_and_a_rate_limit(path: Path):
    from smoothrl.hardware.profile import load_profile

    profile = load_profile(path)
    names = [c["name"] for c in profile.obs_channels]
    assert (
        profile.obs_low is not None and np.all(np.isfinite(profile.obs_low)) and np.all(np.isfinite(profile.obs_high))
    )
    for i, name in enumerate(names):
        if name.startswith("t_zone"):
            assert (profile.obs_low[i], profile.obs_high[i]) == (5, 40)
        if name in ("t_out", "t_out_in_1h"):
            assert (profile.obs_low[i], profile.obs_high[i]) == (-40, 50)
        if name == "occupied" or name.startswith("hvac_locked"):
            assert (profile.obs_low[i], profile.obs_high[i]) == (0, 1)
    assert profile.command.max_rate is not None and profile.ramp_s > 0
    assert all(c.get("unit") for c in profile.obs_channels)


# --------------------------------------------------------------------------------------------
# the e-stop path of the safety filter


@settings(max_examples=200, deadline=None)
@given(
    safe=st.one_of(
        st.sampled_from(["hold", "zero"]),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=1),
    ),
    low=st.floats(min_value=-5, max_value=4),
    span=st.floats(min_value=0.01, max_value=10),
    outputs=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=30),
)
def test_no_written_command_leaves_the_bounds_on_the_estop_path(safe, low, span, outputs):
    """Whatever the profile's safe action (a NaN, an infinity, a value outside the bounds) and
    whatever the policy did before, the e-stop writes a command inside the bounds."""
    lo, hi = np.array([low]), np.array([low + span])
    f = SafetyFilter(lo, hi, None, None, None, safe if isinstance(safe, str) else np.array(safe))
    f.reset(np.clip(np.zeros(1), lo, hi))
    for x in outputs:
        command = f(np.array([x]))
        assert np.all(np.isfinite(command)) and np.all(lo <= command) and np.all(command <= hi)
    command = f.safe()
    assert np.all(np.isfinite(command)) and np.all(lo <= command) and np.all(command <= hi)
