"""The EnergyPlus backend: episodes, physics, lifecycle, errors, the RC model's calibration."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env
from typer.testing import CliRunner

import smoothrl.envs  # noqa: F401  (registers the ids)
from smoothrl.cli import app
from smoothrl.envs.eplus.calibration import HELD_OUT_DAY, eplus_trajectory, excitation, rc_trajectory, rmse
from smoothrl.envs.eplus.env import EPlusEnv, model_path
from smoothrl.envs.hvac import KPI_NAMES
from smoothrl.envs.hvac.spec import load_spec
from smoothrl.errors import SmoothRLError

runner = CliRunner()
#: the shipped calibrated preset must follow EnergyPlus within this on the held-out week (README)
RMSE_BOUND_K = 3.0


def leftovers() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob("smoothrl-eplus-*"))


def one_day(signal: float, day: int = 16) -> tuple[float, dict, np.ndarray]:
    env = gym.make("smoothrl/EPlus-v0", episode_days=1)
    env.reset(seed=0, options={"start_day": day})
    total, info = 0.0, {}
    for _ in range(96):
        _, reward, terminated, truncated, info = env.step(np.full(5, signal, dtype=np.float32))
        total += reward
    assert truncated and not terminated
    env.close()
    return total, info["kpis"], info["t_zone"]


def test_an_episode_runs_with_finite_plausible_kpis():
    total, kpis, t_zone = one_day(0.6)
    assert tuple(kpis) == KPI_NAMES and all(np.isfinite(v) for v in kpis.values())
    assert 0.05 < kpis["ener_tot"] < 2.0  # kWh/m2 in a day of 60% heating of a 511 m2 office
    assert kpis["tdis_tot"] >= 0 and kpis["switches_per_day"] == 1.0  # each compressor started once
    assert np.isfinite(total) and np.all((t_zone > 5) & (t_zone < 45))


def test_more_heating_makes_the_zones_warmer():
    _, off, t_off = one_day(0.0)
    _, on, t_on = one_day(1.0)
    assert np.all(t_on > t_off + 1.0)
    assert off["ener_tot"] == 0.0 and on["ener_tot"] > 0.1


def test_check_env_and_the_rc_envs_observation_layout():
    env = EPlusEnv(episode_days=1)
    check_env(env)
    rc = gym.make("smoothrl/HVACMultiZone-v0", preset="office_5zone_denver").unwrapped
    assert env.observation_space == rc.observation_space and env.action_space == rc.action_space
    assert env.sim.obs_names == rc.sim.obs_names
    obs, _ = env.reset(seed=3, options={"start_day": 40})
    rc.reset(seed=3, options={"start_day": 40})
    z = env.sim.z
    np.testing.assert_array_equal(obs[z:], rc.sim.observation()[0][z:])  # everything but the zone air
    env.close()


def test_repeated_reset_and_close_leave_no_thread_or_folder():
    before_threads, before_dirs = threading.active_count(), leftovers()
    env = EPlusEnv(episode_days=1)
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(5):
            env.step(np.zeros(5, dtype=np.float32))
        assert len(leftovers()) == len(before_dirs) + 1  # one run at a time
    env.close()
    env.close()  # twice is fine
    assert threading.active_count() == before_threads
    assert leftovers() == before_dirs


def test_a_broken_model_is_one_clear_error(tmp_path):
    broken = tmp_path / "broken.idf"
    text = model_path("ASHRAE901_OfficeSmall_STD2019_Denver").read_text()
    broken.write_text(
        text.replace("  Timestep,4;", "  Timestep,4;\n  Building,\n    B,\n    notanumber,\n    City;", 1)
    )
    env = EPlusEnv(model=str(broken), episode_days=1)
    before = leftovers()
    with pytest.raises(SmoothRLError, match="EnergyPlus stopped with an error: .*(Severe|Fatal)") as info:
        env.reset(seed=0)
    assert "\n" not in str(info.value)
    env.close()
    assert leftovers() == before
    with pytest.raises(SmoothRLError, match="not found"):
        EPlusEnv(model=str(tmp_path / "missing.idf"))
    with pytest.raises(SmoothRLError, match="no EnergyPlus model 'nope'"):
        EPlusEnv(model="nope")
    with pytest.raises(SmoothRLError, match="no reference small office"):
        EPlusEnv(preset="office_5zone_phoenix")
    with pytest.raises(SmoothRLError, match="zone_map"):
        EPlusEnv(preset="office_1zone_denver")


def test_wrong_zone_names_are_one_clear_error():
    zone_map = {z: f"{z}_nowhere" for z in ("core", "south", "east", "north", "west")}
    with pytest.raises(SmoothRLError, match="has no zone core_nowhere.*its zones are Core_ZN"):
        EPlusEnv(episode_days=1, zone_map=zone_map)


def test_calibrated_preset_follows_energyplus_on_the_held_out_week():
    spec = load_spec("office_5zone_denver_eplus", "office_5zone_denver_eplus")
    base = load_spec("office_5zone_denver", "office_5zone_denver")
    signals = excitation(spec.episode_days * 96, 5, seed=HELD_OUT_DAY)
    first, temps = eplus_trajectory("office_5zone_denver", HELD_OUT_DAY, signals)
    fitted = rmse(rc_trajectory(spec, HELD_OUT_DAY, first, signals), temps)
    plain = rmse(rc_trajectory(base, HELD_OUT_DAY, first, signals), temps)
    reported = json.loads(Path("results/calibrate_rc.json").read_text())["rmse_after_K"]["spring"]
    assert fitted == pytest.approx(reported, rel=1e-6)
    assert fitted < RMSE_BOUND_K and fitted < plain


def test_a_run_trained_on_the_rc_model_evaluates_on_energyplus_unchanged(tmp_path):
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", "--algo", "ppo", "--env", "smoothrl/HVACMultiZone-v0", "--preset", "smoke",
                                  "--set", "env_kwargs={preset: office_5zone_denver_eplus, episode_days: 1}",
                                  "--timesteps", "256", "--run-dir", str(run), "--no-progress"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["eval", str(run), "--env", "smoothrl/EPlus-v0", "--set", "env_kwargs.episode_days=1",
                                 "--set", "env_kwargs.preset=office_5zone_denver_eplus", "--episodes", "1",
                                 "--baselines", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = list(data["runs"])
    assert {"thermostat", "pi", "mpc-realistic"} <= set(names), names
    assert "mpc-oracle" not in names  # EnergyPlus's state is not an RC state: no oracle there
    realistic = data["runs"]["mpc-realistic"]
    assert realistic["controller_params"]["model_preset"] == "office_5zone_denver_eplus"
    assert realistic["episode_start_days"] == data["runs"][str(run)]["episode_start_days"]


def test_deploy_over_modbus_against_energyplus_matches_eval(tmp_path):
    """The plant server serves EnergyPlus as it serves the RC model: an exported 5-zone policy
    runs a test day over Modbus TCP, lock-step, and its KPIs are `evaluate`'s on EnergyPlus."""
    import socket
    import threading

    from smoothrl.hardware.artefact import Artefact
    from smoothrl.hardware.backends.hvac_plant import HVACPlantServer
    from smoothrl.hardware.backends.modbus import ModbusInterface
    from smoothrl.hardware.loop import ControlLoop
    from smoothrl.hardware.profile import load_profile, parse_profile
    from smoothrl.run.evaluation import evaluate
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    kwargs = {"preset": "office_5zone_denver_eplus", "episode_days": 1}
    overrides = ["n_timesteps=512", "n_envs=2", "eval_freq=0", "checkpoint_freq=0", "eval_episodes=1",
                 "normalize=true", "env_kwargs={preset: office_5zone_denver_eplus, episode_days: 1}"]  # fmt: skip
    run_dir = train(resolve_config("ppo", "smoothrl/HVACMultiZone-v0", "smoke", overrides), tmp_path / "run",
                    progress_bar=False)  # fmt: skip
    artefact = export_run(run_dir, tmp_path / "art")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = HVACPlantServer(port=port, env_id="smoothrl/EPlus-v0", env_kwargs=kwargs, seed=10_000, split="test")
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        assert server.ready.wait(60)
        data = load_profile(Path("hardware/modbus_hvac_office5.yaml"))
        prof = parse_profile(
            {
                "backend": "modbus",
                "control_period_s": data.control_period_s,
                "modbus": {**data.modbus, "port": port},
                "observation": {"channels": data.obs_channels, "max_age_periods": 2},
                "command": {"safe_action": "zero"},
                "watchdog": {"on_estop": "stop"},
            },
            "modbus-eplus-test.yaml",
        )
        interface = ModbusInterface(prof.modbus, prof.obs_channels, 5, prof.control_period_s)
        stats = ControlLoop(Artefact.load(artefact).policy(), interface, prof, log=tmp_path / "log.csv").run()
    finally:
        stop.set()
        thread.join(30)
        server.env.close()
    reference, _ = evaluate(run_dir, episodes=1, env_id="smoothrl/EPlus-v0", env_kwargs=kwargs)
    assert stats.stopped_by == "episode end" and stats.periods == 96 and stats.estop is None, stats.summary()
    for kpi in ("tdis_tot", "ener_tot", "cost_tot", "switches_per_day"):
        assert server.kpis[kpi] == pytest.approx(reference[kpi], rel=0.01, abs=1e-6), kpi


def test_the_chicago_reference_office_runs_too():
    """The DOE 2004 model ships without a weather-file run period in its SimulationControl: smoothrl sets it."""
    env = EPlusEnv(preset="office_5zone_chicago", episode_days=1)
    assert env.model.name == "RefBldgSmallOfficeNew2004_Chicago.idf"
    env.reset(seed=0, options={"start_day": 20})
    for _ in range(96):
        *_, truncated, info = env.step(np.full(5, 0.3, dtype=np.float32))
    assert truncated and info["kpis"]["ener_tot"] > 0
    env.close()


def test_the_discrete_twin_steps_staged_compressors():
    env = gym.make("smoothrl/EPlusDiscrete-v0", episode_days=1)
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete) and len(env.action_space.nvec) == 5
    env.reset(seed=0, options={"start_day": 30})
    heat = env.action_space.nvec[0] // 2  # the highest heating stage
    for _ in range(8):
        *_, info = env.step(np.full(5, heat))
    assert info["power_kw"] > 0
    env.close()


def test_the_realistic_mpc_on_energyplus_believes_in_the_calibrated_rc_model():
    from smoothrl.run.evaluation import evaluate_controller

    summary, _ = evaluate_controller(
        "mpc-realistic", "smoothrl/EPlus-v0", {"episode_days": 1}, episodes=1, params={"horizon_h": 2.0}
    )
    assert summary["controller_params"]["model_preset"] == "office_5zone_denver_eplus"
    assert summary["mean_length"] == 96 and summary["ms_per_solve"] > 0
