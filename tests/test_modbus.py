"""The modbus backend against the HVAC plant server (pymodbus, loopback only): a test week in
lock-step matches `smoothrl eval`, only the profile's registers are written, bad register maps
and a restarted server end cleanly."""

from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.artefact import Artefact
from smoothrl.hardware.backends.hvac_plant import HVACPlantServer
from smoothrl.hardware.backends.modbus import ModbusInterface, from_registers, to_registers
from smoothrl.hardware.deploy import with_bundle
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import load_profile, parse_profile

PROFILE = Path("hardware/modbus_hvac_office.yaml")
#: the same plant with the price and forecasts computed on the controller (weather file, tariff)
LOCAL = Path("hardware/modbus_hvac_office_local.yaml")
#: the test plant's weather and tariff (what an artefact of a run on it bundles)
DENVER = {"weather": "denver", "tariff": {"kind": "time_of_use"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def plant():
    """Starts plant servers in threads; stops them when the test ends."""
    running: list[tuple[HVACPlantServer, threading.Event, threading.Thread]] = []

    def start(wrap=None, **kwargs) -> HVACPlantServer:
        """:param wrap: replaces the server's register hook by ``wrap(server, hook)`` before it serves"""
        server = HVACPlantServer(port=kwargs.pop("port", None) or free_port(), **kwargs)
        if wrap is not None:
            server._action = wrap(server, server._action)
        stop = threading.Event()
        server.stop_event = stop
        thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
        thread.start()
        assert server.ready.wait(30)
        running.append((server, stop, thread))
        return server

    yield start
    for _, stop, thread in running:
        stop.set()
        thread.join(10)


def profile_for(port: int, path: Path = PROFILE, exogenous: dict | None = None, **modbus):
    data = load_profile(path)
    if exogenous is not None:
        data = dataclasses.replace(data, exogenous=exogenous)
    return parse_profile(
        {
            "backend": "modbus",
            "control_period_s": data.control_period_s,
            "modbus": {**data.modbus, "port": port, **modbus},
            **(
                {"exogenous": {k: DENVER.get(k) if v is None else v for k, v in data.exogenous.items()}}
                if data.exogenous
                else {}
            ),
            "observation": {"channels": data.obs_channels, "max_age_periods": 2},
            "command": {"safe_action": "zero"},
            "watchdog": {"on_estop": "stop"},
        },
        "modbus-test.yaml",
    )


def test_float32_registers_round_trip():
    values = np.array([21.5, -3.25, 0.1])
    regs = to_registers(values)
    assert len(regs) == 6 and all(0 <= r < 65536 for r in regs)
    np.testing.assert_allclose(from_registers(regs), values.astype(np.float32))
    little = to_registers(values, word_order="little")  # "CDAB": the words of each value swapped
    assert little == [w for i in range(0, 6, 2) for w in (regs[i + 1], regs[i])]
    np.testing.assert_allclose(from_registers(little, word_order="little"), values.astype(np.float32))
    scaled = to_registers(np.array([21.57, -3.25, 1e9, -1e9, np.nan]), encoding="int16", scale=100.0)
    assert len(scaled) == 5  # one register per value, saturated at the int16 range, NaN as 0
    np.testing.assert_allclose(
        from_registers(scaled, encoding="int16", scale=100.0), [21.57, -3.25, 327.67, -327.68, 0.0]
    )


@pytest.fixture(scope="module")
def hvac_artefact(tmp_path_factory) -> tuple[Path, Path]:
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    root = tmp_path_factory.mktemp("modbus")
    overrides = [
        "n_timesteps=2048",
        "n_envs=4",
        "eval_freq=0",
        "checkpoint_freq=0",
        "eval_episodes=1",
        "normalize=true",
    ]
    run_dir = train(resolve_config("ppo", "smoothrl/HVAC-v0", "smoke", overrides), root / "run", progress_bar=False)
    return run_dir, export_run(run_dir, root / "art")


def interface_for(prof) -> ModbusInterface:
    return ModbusInterface(prof.modbus, prof.obs_channels, 1, prof.control_period_s, exogenous=prof.exogenous)


@pytest.mark.parametrize("path", [PROFILE, LOCAL], ids=["registers", "computed-on-controller"])
def test_the_client_builds_the_envs_observation(plant, path: Path):
    """Registers (float32), clock features and, with the local profile, the price and forecasts
    from the weather file and tariff: the env's own observation, step after step (a Monday
    morning crosses the tariff's mid-peak start and the occupancy start)."""
    server = plant(seed=3)
    interface = interface_for(profile_for(server.port, path))
    interface.configure()
    seen = []
    for step in range(288):  # three days: at least one weekday
        obs, _ = interface.read()
        np.testing.assert_allclose(obs, server.obs, atol=1e-5, err_msg=f"step {step}")
        seen.append(obs)
        interface.write(np.array([np.sin(step)]))
    interface.deactivate()
    assert server.steps == 288
    seen = np.array(seen)
    for name in ("price", "price_in_6h", "t_out_in_3h", "tod_sin"):  # each of them changed
        assert np.ptp(seen[:, server.names.index(name)]) > 0, name


def test_forecast_channels_a_policy_observes_are_computed_on_the_controller(plant):
    """A policy trained with solar forecasts and forecasts a day ahead (``forecast``,
    ``forecast_hours``): the controller computes every forecast from the weather file and the
    tariff, equal to what the env observed, step after step."""
    import re

    kwargs = {"forecast": ["t_out", "price", "ghi_kw"], "forecast_hours": [1.0, 12.0, 24.0]}
    server = plant(seed=3, env_kwargs=kwargs)
    base = load_profile(LOCAL)
    clock = {c["name"]: c for c in base.obs_channels if "clock" in c or "tariff" in c and "ahead_h" not in c}
    channels = []
    for i, name in enumerate(server.names):
        ahead = re.fullmatch(r"(t_out|price|ghi_kw)_in_([0-9.]+)h", name)
        if ahead:
            source = "tariff" if ahead[1] == "price" else "weather"
            channels.append({"name": name, source: ahead[1], "ahead_h": float(ahead[2])})
        else:
            channels.append(clock.get(name, {"name": name, "register": 2 * i}))
    assert sum("ahead_h" in c for c in channels) == 9
    prof = profile_for(server.port, LOCAL)
    prof = parse_profile(
        {
            "backend": "modbus",
            "control_period_s": prof.control_period_s,
            "modbus": prof.modbus,
            "exogenous": prof.exogenous,
            "observation": {"channels": channels, "max_age_periods": 2},
            "command": {"safe_action": "zero"},
            "watchdog": {"on_estop": "stop"},
        },
        "modbus-forecast.yaml",
    )
    interface = interface_for(prof)
    interface.configure()
    for step in range(100):
        obs, _ = interface.read()
        np.testing.assert_allclose(obs, server.obs, atol=1e-5, err_msg=f"step {step}")
        interface.write(np.array([0.3 * np.sin(step)]))
    interface.deactivate()


def test_computed_channels_need_their_sources_and_say_what_is_wrong(tmp_path: Path, monkeypatch):
    base = load_profile(LOCAL)
    data = {"backend": "modbus", "control_period_s": 900.0, "modbus": base.modbus}
    channels = {"channels": base.obs_channels}
    with pytest.raises(
        SmoothRLError, match=r"channel 'price' is computed from the weather file and tariff; add exogenous"
    ):
        parse_profile({**data, "observation": channels}, "p.yaml")
    bad = [
        ({"weather": "denver", "tariff": {"kind": "hourly"}}, r"exogenous.tariff.kind: Input should be"),
        ({"weather": "denver", "tariff": {"peak": -1}}, r"exogenous.tariff.peak: Input should be greater"),
        ({"weather": "denver", "step_minutes": 7}, r"step_minutes must divide a day"),
        ({"weather": "denver", "forecast": 1}, r"unknown key exogenous.forecast"),
        ({"weather": 3}, r"exogenous.weather must name an EPW file"),
    ]
    for exo, message in bad:
        with pytest.raises(SmoothRLError, match=message):
            parse_profile({**data, "exogenous": exo, "observation": channels}, "p.yaml")
    for channel, message in [
        ({"name": "x", "weather": "rain"}, r"channels\[0\].weather must be one of t_out, ghi_kw"),
        ({"name": "x", "tariff": "price", "ahead_h": -1}, r"channels\[0\].ahead_h must be hours ahead"),
        ({"name": "x", "register": 0, "ahead_h": 1}, r"channels\[0\] must have a name and exactly one of"),
        ({"name": "x", "constant": float("nan")}, r"channels\[0\].constant must be a finite number"),
    ]:
        with pytest.raises(SmoothRLError, match=message):
            parse_profile(
                {**data, "exogenous": {"weather": "denver"}, "observation": {"channels": [channel]}}, "p.yaml"
            )
    from smoothrl.building import weather

    # an EPW path relative to the profile's folder is found there
    (tmp_path / "site.epw").write_bytes(weather.resolve_weather("denver").read_bytes())
    prof = parse_profile(
        {**data, "exogenous": {"weather": "site.epw"}, "observation": channels}, str(tmp_path / "p.yaml")
    )
    assert prof.exogenous["weather"] == str(tmp_path / "site.epw")
    assert interface_for(prof).sources.weekday_jan1 == 6  # the weather file's (a Sunday); the profile sets none
    # a controller without pyenergyplus-lbnl: a shipped weather name is one line asking for a path

    monkeypatch.setitem(__import__("sys").modules, "pyenergyplus", None)
    weather.read_epw.cache_clear()
    prof = parse_profile({**data, "exogenous": {"weather": "denver"}, "observation": channels}, "p.yaml")
    with pytest.raises(SmoothRLError, match="shipped weather files need pyenergyplus-lbnl .*give the EPW file's path"):
        interface_for(prof)
    weather.read_epw.cache_clear()


@pytest.mark.parametrize("path", [PROFILE, LOCAL], ids=["registers", "computed-on-controller"])
def test_lockstep_week_over_modbus_matches_eval(hvac_artefact, plant, tmp_path: Path, path: Path):
    from smoothrl.run.evaluation import evaluate

    run_dir, artefact = hvac_artefact
    written: list[int] = []

    def recording(server, hook):
        async def record(fc, start, address, count, registers, values):
            if values is not None:
                written.extend(range(address, address + len(values)))
            return await hook(fc, start, address, count, registers, values)

        return record

    server = plant(wrap=recording, seed=10_000, split="test")
    prof = profile_for(server.port, path)
    if path == LOCAL:  # the weather file and tariff from the artefact's bundle, as `deploy` takes them
        prof = with_bundle(Artefact.load(artefact), load_profile(LOCAL))
        prof = profile_for(server.port, path, exogenous=prof.exogenous)
    interface = interface_for(prof)
    stats = ControlLoop(Artefact.load(artefact).policy(), interface, prof, log=tmp_path / "log.csv").run()
    reference, _ = evaluate(run_dir, episodes=1)
    assert stats.stopped_by == "episode end" and stats.periods == 672 and stats.estop is None, stats.summary()
    for kpi in ("tdis_tot", "ener_tot", "cost_tot", "switches_per_day"):
        assert server.kpis[kpi] == pytest.approx(reference[kpi], rel=0.01, abs=1e-6), kpi
    assert set(written) == {0, 1, 2, 20, 21}  # the command (two registers), the sequence and the health only


def test_a_register_map_outside_the_server_is_one_clear_error(plant):
    server = plant()
    prof = profile_for(server.port)
    channels = [*prof.obs_channels[:-1], {"name": "hvac_locked[office]", "register": 200}]
    with pytest.raises(SmoothRLError, match=r"no input registers 200\.\.201"):
        ModbusInterface(prof.modbus, channels, 1, 900.0).configure()
    with pytest.raises(SmoothRLError, match="no holding registers 30..32"):
        ModbusInterface(
            {**prof.modbus, "command_register": 30, "sequence_register": 32}, prof.obs_channels, 1, 900.0
        ).configure()
    with pytest.raises(SmoothRLError, match="no Modbus server answers"):
        settings = {**prof.modbus, "port": free_port(), "connect_timeout_s": 0.5}
        ModbusInterface(settings, prof.obs_channels, 1, 900.0).configure()


def test_a_restarted_server_latches_the_estop_and_the_log_is_complete(hvac_artefact, plant, tmp_path: Path):
    """The plant's server goes down after 50 steps and comes back on the same port: the loop has
    latched the e-stop (the profile says stop), exited cleanly, and logged every period."""
    _, artefact = hvac_artefact
    stops: list[threading.Event] = []

    def going_down(server, hook):
        async def down_at_50(fc, start, address, count, registers, values):
            if server.steps >= 50 and stops:
                stops[0].set()  # the server shuts down (a restart begins)
            return await hook(fc, start, address, count, registers, values)

        return down_at_50

    server = plant(wrap=going_down)
    stops.append(server.stop_event)
    prof = profile_for(server.port, timeout_s=1.0)
    interface = ModbusInterface(prof.modbus, prof.obs_channels, 1, prof.control_period_s)
    stats = ControlLoop(Artefact.load(artefact).policy(), interface, prof, log=tmp_path / "log.csv").run()
    assert stats.estop is not None and ("read failed" in stats.estop or "write failed" in stats.estop)
    assert stats.stopped_by == "estop" and 50 <= stats.periods < 100  # the server takes a few steps to go down
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == stats.periods + 2 and ",stop," in rows[-1]  # every period, then the run's end
    restarted = plant(port=server.port)  # the server is back: a new run can start
    assert restarted.ready.is_set()


def test_with_on_estop_recover_the_loop_rides_through_a_server_restart(hvac_artefact, plant, tmp_path: Path):
    """``on_estop: recover``: the server goes down after 30 steps and is back on the same port
    about a second later. The loop writes the safe action (or tries to) every period while it is
    away, re-arms itself after 4 healthy periods, ramps up again and goes on with the policy on
    the new server; the log has every period."""
    _, artefact = hvac_artefact
    stops: list[threading.Event] = []
    servers: list[HVACPlantServer] = []

    def going_down(server, hook):
        async def down_at_30(fc, start, address, count, registers, values):
            if server.steps >= 30 and stops and not stops[0].is_set():
                stops[0].set()
                threading.Timer(1.0, lambda: servers.append(plant(port=server.port))).start()
            return await hook(fc, start, address, count, registers, values)

        return down_at_30

    server = plant(wrap=going_down)
    stops.append(server.stop_event)
    prof = profile_for(server.port, timeout_s=1.0)
    prof = parse_profile(
        {
            "backend": "modbus",
            "control_period_s": prof.control_period_s,
            "modbus": prof.modbus,
            "observation": {"channels": prof.obs_channels},
            "command": {"safe_action": "zero", "max_rate": [0.25]},
            "bringup": {"ramp_s": 2700.0, "hold_s": 900.0},
            "watchdog": {"on_estop": "recover", "recover_after_periods": 4},
        },
        "recover.yaml",
    )
    loop = ControlLoop(Artefact.load(artefact).policy(), interface_for(prof), prof, log=tmp_path / "log.csv")
    stats = loop.run(duration_s=900.0 * 200)
    assert stats.estops == 1 and stats.recoveries == 1 and stats.estop is None, stats.summary()
    assert stats.stopped_by == "duration" and stats.periods == 200
    import csv

    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert len(rows) == 201 and rows[-1]["phase"] == "stop" and float(rows[-1]["cmd:0"]) == 0.0
    rows = rows[:-1]  # the periods
    phases = [r["phase"] for r in rows]
    first, last = phases.index("estop"), len(phases) - 1 - phases[::-1].index("estop")
    assert set(phases[:first]) <= {"ramp", "hold", "policy"} and "policy" in phases[:first]
    assert set(phases[first : last + 1]) == {"estop"}  # latched until recovered
    assert all(float(r["cmd:0"]) == 0.0 for r in rows[first : last + 1])  # the safe action, heat pump off
    after = phases[last + 1 :]
    assert after[:3] == ["ramp"] * 3 and after[3] == "hold" and set(after[4:]) == {"policy"}  # bring-up again
    assert servers and servers[0].steps >= len(after)  # the new server took the commands


def test_deploy_without_a_plant_is_one_line(hvac_artefact, tmp_path: Path):
    import yaml
    from typer.testing import CliRunner

    from smoothrl.cli import app

    _, artefact = hvac_artefact
    profile = yaml.safe_load(PROFILE.read_text())
    profile["modbus"]["port"] = free_port()
    profile["modbus"]["connect_timeout_s"] = 0.5
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    result = CliRunner().invoke(app, ["deploy", str(artefact), "--hardware", str(tmp_path / "p.yaml")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Modbus server answers" in lines[0], result.stderr
