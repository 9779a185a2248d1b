"""Controllers that are not learned: rule baselines with setback and optimal start, their tuning on
training weeks, the economic MPC (oracle and realistic), its state estimator, and evaluation on
distinct weeks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smoothrl.envs.hvac.control import CONTROLLERS, make_controller, tuned_params
from smoothrl.envs.hvac.control.estimator import RCKalmanFilter
from smoothrl.envs.hvac.control.mpc import EconomicMPC
from smoothrl.envs.hvac.control.occupancy import clock_from_obs, hours_to_occupancy
from smoothrl.envs.hvac.control.rules import PIController, stable_gain
from smoothrl.envs.hvac.control.tuning import save_tuned, training_return, tune
from smoothrl.envs.hvac.env import ActionCodec, HVACEnv
from smoothrl.envs.hvac.simulator import HVACSimulator, split_start_days, spread_order
from smoothrl.envs.hvac.spec import ScheduleSpec, load_spec
from smoothrl.errors import SmoothRLError
from smoothrl.run.evaluation import compare_runs, evaluate_controller, oracle_gap, paired_wins
from tests.test_cli import assert_user_error, run_cli

DENVER = "office_1zone_denver"


def spec(**overrides):
    return load_spec(None, DENVER, **overrides)


def occupied_step(sim: HVACSimulator, day: int, hour: float) -> int:
    """The step of the year at ``hour`` on the first weekday on or after ``day``."""
    while sim.year.cal["weekday"][day * sim.steps_per_day] >= 5:
        day += 1
    return day * sim.steps_per_day + int(hour * sim.steps_per_hour)


# --- what the controllers read ------------------------------------------------------------------


def test_clock_read_from_the_observation_is_the_calendar():
    env = HVACEnv(split="test")
    obs, _ = env.reset(seed=3, options={"start_day": 40})
    cal = env.sim.year.cal
    for _ in range(200):
        k = int(env.sim.k[0])
        hour, weekday = clock_from_obs(obs[None], 1)
        assert hour[0] == pytest.approx(cal["hour"][k], abs=1e-4)
        assert weekday[0] == cal["weekday"][k]
        obs, *_ = env.step(np.zeros(1, np.float32))


def test_hours_to_occupancy_known_answers():
    office = ScheduleSpec(kind="office", occupied_hours=(7.0, 19.0))
    hours = np.array([6.0, 7.0, 12.0, 19.0, 23.0, 10.0, 10.0])
    days = np.array([0, 0, 2, 4, 4, 5, 6])  # Mon 6:00, Mon 7:00, Wed noon, Fri 19:00, Fri 23:00, Sat, Sun
    np.testing.assert_allclose(hours_to_occupancy(hours, days, office), [1, 0, 0, 60, 56, 45, 21])
    home = ScheduleSpec(kind="residential", away_hours=(8.0, 17.0))
    np.testing.assert_allclose(hours_to_occupancy(np.array([9.0, 18.0, 9.0]), np.array([1, 1, 6]), home), [8, 0, 0])


@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=5), st.integers(1, 4))
@settings(max_examples=50, deadline=None)
def test_encoded_signals_decode_to_the_nearest_stage(signals, stages):
    zones = len(signals)
    codec = ActionCodec(zones, True, stages)
    want = np.round(np.asarray(signals)[None, :] * stages) / stages
    decoded, _, _ = codec.decode(codec.encode(np.asarray(signals)[None, :]))
    np.testing.assert_allclose(decoded, want + 0.0)
    continuous = ActionCodec(zones, False, stages)
    decoded, _, _ = continuous.decode(continuous.encode(np.asarray(signals)[None, :]))
    np.testing.assert_allclose(decoded, [signals], atol=1e-6)


# --- rule baselines -----------------------------------------------------------------------------


def _p_only_oscillation(gain_factor: float) -> float:
    """RMS of the zone temperature's second difference over the last half day of a P loop
    holding 22 degC (step-to-step oscillation, not the weather's drift), without the plant's
    nonlinearities (no minimum times, tiny lowest fraction), on a winter day."""
    s = spec(plant={"min_on_minutes": 0.0, "min_off_minutes": 0.0, "min_modulation": 0.01})
    env = HVACEnv(spec=s)
    obs, _ = env.reset(seed=0, options={"start_day": 14})
    kp = gain_factor * stable_gain(s)[0]
    temps = []
    for _ in range(96):
        error = 22.0 - obs[0]
        obs, *_ = env.step(np.array([np.clip(kp * error, -1, 1)], np.float32))
        temps.append(obs[0])
    return float(np.sqrt(np.mean(np.diff(temps, 2)[-48:] ** 2)))


def test_the_derived_gain_limit_separates_a_settling_loop_from_an_oscillating_one():
    assert _p_only_oscillation(0.5) < 0.1  # settles
    assert _p_only_oscillation(1.6) > 1.0  # beyond the limit it oscillates


def _warmup_week(params: dict) -> list[float]:
    """Zone temperatures at occupancy start on each weekday of a cold test week with a PI."""
    env = HVACEnv(split="test")
    obs, _ = env.reset(seed=1, options={"start_day": 21})  # late January, Denver
    ctrl = PIController(env.sim.spec, False, gain=0.5, ti_h=1.0, **params)
    at_start, start, done, before = [], True, False, 0.0
    while not done:
        action, _ = ctrl.predict(obs[None], episode_start=np.array([start]))
        before, start = obs[7], False
        obs, _, _, done, _ = env.step(action[0])
        if obs[7] > 0.5 and before < 0.5:
            at_start.append(float(obs[0]))
    return at_start


def test_optimal_start_reaches_the_band_at_occupancy_start():
    low = spec().comfort.occupied[0]
    warm = _warmup_week({"heat_rate": 1.0, "lead_bias_h": 0.5, "setback_heat": 16.0})
    cold = _warmup_week({"heat_rate": 1.0, "lead_bias_h": 0.0, "max_lead_h": 0.0, "setback_heat": 16.0})
    assert len(warm) == 5  # five working days
    assert min(warm) >= low - 0.1, warm
    assert min(cold) < low - 1.0, cold  # without it, the morning starts cold


def test_rule_parameters_are_checked():
    s = spec()
    with pytest.raises(SmoothRLError, match="controller parameter gain must be a finite number in"):
        PIController(s, False, gain=1.5)
    with pytest.raises(SmoothRLError, match="setback_heat"):
        PIController(s, False, setback_heat=25.0)
    with pytest.raises(SmoothRLError, match="modulating plant"):
        PIController(s, True)
    env = HVACEnv()
    with pytest.raises(SmoothRLError, match="controller pi: .*unexpected keyword"):
        make_controller("pi", env.sim, {"deadband": 1.0})
    with pytest.raises(SmoothRLError, match="unknown controller 'bang'"):
        make_controller("bang", env.sim)


# --- tuning on training weeks -------------------------------------------------------------------


def test_tuning_sees_training_weeks_only_and_never_loses_to_the_defaults(tmp_path, monkeypatch):
    import smoothrl.envs.hvac.control.tuning as tuning

    splits = []
    real = tuning.HVACVectorEnv

    def recording(*args, **kwargs):
        splits.append(kwargs.get("split"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "HVACVectorEnv", recording)
    s = spec(episode_days=1)
    result = tune("pi", s, False, trials=4, seed=3)
    assert set(splits) == {"train"}
    assert result["train_mean_return"] >= result["default_train_mean_return"] - 1e-9
    assert result["train_mean_return"] == pytest.approx(training_return("pi", s, False, result["params"], 3).mean())
    path = save_tuned(s.name, "pi", False, result, "smoothrl tune-baseline ...", tmp_path / "b.yaml")
    save_tuned(s.name, "thermostat", True, {**result, "params": {"deadband": 0.5}}, "cmd", path)
    monkeypatch.setattr("smoothrl.envs.hvac.control.baseline_file", lambda preset: path)
    assert tuned_params("pi", s.name, False)["params"] == result["params"]  # the first entry kept
    assert tuned_params("thermostat", s.name, True)["params"] == {"deadband": 0.5}
    assert tuned_params("thermostat", s.name, False) is None
    ctrl = make_controller("thermostat", HVACEnv(discrete=True).sim)
    assert ctrl.deadband == 0.5


def test_every_training_week_is_played_once_per_tuning_trial():
    s = spec()
    returns = training_return("thermostat", s, False, {}, seed=0)
    assert len(returns) == 39 and len(set(np.round(returns, 9))) == 39


# --- economic MPC -------------------------------------------------------------------------------


def test_mpc_first_planned_action_is_the_hand_checked_solve_of_a_two_step_problem():
    """Two steps, the zone 2 K below the (narrowed) occupied band, heating far cheaper than
    discomfort: the cheapest plan heats exactly enough to end the first step on the band's
    edge. That fraction follows from the RC model alone: ``(target - T1(0)) / dT1/dq``."""
    env = HVACEnv(split="test")
    env.reset(seed=0, options={"start_day": 14})
    sim = env.sim
    k = occupied_step(sim, 14, 10.0)
    sim.k[0] = k
    sim.x[0] = [19.5, 20.0]
    margin = 0.8
    mpc = EconomicMPC(sim, oracle=True, horizon_h=0.5, band_margin=margin)
    assert mpc.horizon == 2
    obs = sim.observation()
    action, _ = mpc.predict(obs, episode_start=np.array([True]))
    model = sim.thermal
    u = sim.exo_inputs[k].copy()
    free = model.step(sim.x[:1], u[None])[0, 0]
    u[1] += 1.0  # one watt into the air node
    per_watt = model.step(sim.x[:1], u[None])[0, 0] - free
    capacity = sim.plant.capacity(np.array([u[0]]))[0][0]
    target = sim.exo_band[k, 0] + margin
    want = (target - free) / (per_watt * capacity)
    assert 0.2 < want < 1.0
    planned = mpc._plans[0][0][0, 0]
    assert planned == pytest.approx(want, rel=1e-4)
    assert action[0, 0] == pytest.approx(want, rel=1e-4)


def test_mpc_rounds_to_what_the_plant_runs():
    env = HVACEnv()
    mpc = EconomicMPC(env.sim)
    np.testing.assert_allclose(mpc._round(np.array([0.05, 0.15, 0.5, -0.12, -1.0])), [0, 0.2, 0.5, -0.2, -1.0])
    staged = EconomicMPC(HVACEnv(discrete=True, plant={"stages": 2}).sim)
    np.testing.assert_allclose(staged._round(np.array([0.2, 0.3, 0.8, -0.6])), [0, 0.5, 1.0, -0.5])


def test_mpc_options_are_checked():
    sim = HVACEnv().sim
    with pytest.raises(SmoothRLError, match="horizon_h"):
        EconomicMPC(sim, horizon_h=0)
    with pytest.raises(SmoothRLError, match="resolve_steps"):
        EconomicMPC(sim, resolve_steps=0)
    with pytest.raises(SmoothRLError, match="band_margin"):
        EconomicMPC(sim, band_margin=2.0)
    with pytest.raises(SmoothRLError, match="oracle MPC uses the plant's own model"):
        EconomicMPC(sim, model_preset="office_1zone_miami")
    with pytest.raises(SmoothRLError, match="zones"):
        EconomicMPC(sim, oracle=False, model_preset="office_5zone_denver")


def test_kalman_filter_finds_the_mass_temperature_from_a_wrong_guess():
    env = HVACEnv(split="train")
    env.reset(seed=0, options={"start_day": 30})
    sim = env.sim
    sim.x[0] = [21.0, 16.0]  # the mass 5 K colder than the air: the filter's first guess is wrong by 5 K
    kf = RCKalmanFilter(sim.thermal)
    kf.start(sim.t_zone[0])
    assert abs(kf.x[1] - sim.x[0, 1]) == pytest.approx(5.0)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(2 * sim.steps_per_day):
        signal = np.array([[rng.uniform(-1, 1)]])
        sim.step(signal, np.zeros(1))
        kf.update(sim.last_inputs[0], sim.t_zone[0])
        errors.append(abs(kf.x[1] - sim.x[0, 1]))
    assert errors[-1] < 0.1 and max(errors[-24:]) < 0.1


def test_realistic_mpc_forecasts_err_as_stated_and_not_now():
    from smoothrl.envs.hvac.control.forecast import ForecastError

    fe = ForecastError(t_out_std_24h=2.0, solar_std_24h=0.3, seed=0)
    samples = np.array([fe.sample(97, 0.25)[0] for _ in range(2000)])
    assert np.all(samples[:, 0] == 0)
    assert np.std(samples[:, 96]) == pytest.approx(2.0, rel=0.08)  # a day ahead
    assert np.std(samples[:, 24]) == pytest.approx(1.0, rel=0.08)  # six hours: sqrt(1/4) of it
    with pytest.raises(SmoothRLError, match="t_out_std_24h"):
        ForecastError(t_out_std_24h=float("nan"))


@pytest.mark.parametrize("name", CONTROLLERS)
def test_every_controller_runs_a_staged_multizone_day(name):
    env = HVACEnv(split="test", discrete=True, preset="office_5zone_chicago", episode_days=1)
    if name == "pi":
        with pytest.raises(SmoothRLError, match="modulating plant"):
            make_controller(name, env.sim)
        return
    ctrl = make_controller(name, env.sim, {"horizon_h": 3.0} if name.startswith("mpc") else {})
    obs, _ = env.reset(seed=0)
    done, start = False, True
    while not done:
        action, _ = ctrl.predict(obs[None], episode_start=np.array([start]))
        assert env.action_space.contains(action[0])
        obs, _, _, done, info = env.step(action[0])
        start = False
    assert info["kpis"]["tdis_tot"] >= 0


# --- distinct weeks -------------------------------------------------------------------------------


@given(st.integers(1, 120))
@settings(max_examples=40, deadline=None)
def test_spread_order_is_a_permutation_whose_prefixes_spread(n):
    order = spread_order(n)
    assert sorted(order.tolist()) == list(range(n))
    if n >= 4:  # the first four cover the circle's quarters
        first = np.sort(order[:4])
        gaps = np.diff(np.r_[first, first[0] + n])
        assert gaps.max() <= n // 2 + 1


def test_evaluation_never_repeats_a_week():
    summary, episodes = evaluate_controller("thermostat", "smoothrl/HVAC-v0")
    days = summary["episode_start_days"]
    assert summary["episodes"] == 13 and len(set(days)) == 13
    assert sorted(days) == sorted(split_start_days("test", 7).tolist())
    some, _ = evaluate_controller("pi", "smoothrl/HVAC-v0", episodes=4)
    assert len(set(some["episode_start_days"])) == 4
    with pytest.raises(SmoothRLError, match="episodes 14 is more than the 13 distinct test weeks"):
        evaluate_controller("pi", "smoothrl/HVAC-v0", episodes=14)


def test_every_controller_plays_the_same_weeks_and_initial_temperatures():
    kwargs = {"episode_days": 1}
    first, a = evaluate_controller("thermostat", "smoothrl/HVAC-v0", kwargs, episodes=3, seed=7)
    second, b = evaluate_controller("pi", "smoothrl/HVAC-v0", kwargs, episodes=3, seed=7)
    assert first["episode_start_days"] == second["episode_start_days"]
    env = HVACEnv(split="test", in_order=True, episode_days=1)
    obs1, _ = env.reset(seed=7)
    obs2, _ = HVACEnv(split="test", in_order=True, episode_days=1).reset(seed=7)
    np.testing.assert_array_equal(obs1, obs2)


def test_paired_table_counts_wins_and_the_gap_to_the_oracle():
    def summary(returns, controller=None):
        out = {"mean_return": float(np.mean(returns)), "episode_returns": returns, "episode_start_days": [20, 48, 76]}
        return out | ({"controller": controller} if controller else {})

    assert paired_wins(summary([-5, -9, -7]), summary([-6, -8, -7]), "a", "b") == [1, 3]
    shuffled = {"mean_return": -7.0, "episode_returns": [-7, -6, -8], "episode_start_days": [76, 20, 48]}
    assert paired_wins(summary([-5, -9, -7]), shuffled, "a", "b") == [1, 3]  # paired by day, not by position
    with pytest.raises(SmoothRLError, match="different days"):
        paired_wins(summary([-5, -9, -7]), {**shuffled, "episode_start_days": [1, 2, 3]}, "a", "b")
    assert oracle_gap(-6.0, -4.0) == pytest.approx(0.5)

    class Config:  # what compare_runs reads of a run's config
        hyperparams: dict = {}
        smoothness_reward: dict = {}

    comparison = compare_runs(
        {"plain": summary([-6, -8, -7])},
        {"plain": Config()},
        {"pi": summary([-5, -9, -6]), "mpc-oracle": summary([-4, -5, -3], "mpc-oracle")},
    )
    assert comparison["wins"] == {"pi": [2, 3], "mpc-oracle": [3, 3]}
    assert comparison["oracle"] == "mpc-oracle"
    assert comparison["oracle_gap"]["plain"] == pytest.approx((-4 + 7) / 4)
    assert comparison["oracle_gap"]["mpc-oracle"] == 0


# --- through the CLI ------------------------------------------------------------------------------


def test_eval_controller_mpc_through_the_cli():
    result = run_cli(
        "eval", "--controller", "mpc-oracle", "--env", "smoothrl/HVAC-v0", "--episodes", "1",
        "--set", "env_kwargs.episode_days=1", "--set", "controller.horizon_h=6", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["controller"] == "mpc-oracle" and data["controller_params"] == {"horizon_h": 6}
    assert data["ms_per_solve"] > 0 and data["mean_length"] == 96
    hvac = ["--env", "smoothrl/HVAC-v0"]
    assert_user_error(run_cli("eval", "--controller", "pi", *hvac, "--episodes", "20"), "13 distinct test weeks")
    assert_user_error(
        run_cli("eval", "--controller", "mpc-oracle", "--env", "smoothrl/EPlus-v0"), "use --controller mpc-realistic"
    )
    assert_user_error(
        run_cli("eval", "--controller", "mpc-oracle", *hvac, "--set", "controller.horizon_h=-1"), "horizon_h"
    )


def test_tune_baseline_through_the_cli(tmp_path):
    out = tmp_path / "tuned.yaml"
    result = run_cli(
        "tune-baseline", "--env", "smoothrl/HVACDiscrete-v0", "--controller", "thermostat", "--trials", "2",
        "--out", str(out), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["plant"] == "staged" and data["file"] == str(out)
    text = out.read_text()
    assert "staged:" in text and "smoothrl tune-baseline --env smoothrl/HVACDiscrete-v0" in text
    assert_user_error(
        run_cli("tune-baseline", "--env", "smoothrl/HVACDiscrete-v0", "--controller", "pi"), "modulating plant"
    )
    assert_user_error(run_cli("tune-baseline", "--env", "Pendulum-v1"), "must be an HVAC env")
    assert_user_error(
        run_cli("tune-baseline", "--env", "smoothrl/HVAC-v0", "--controller", "mpc-oracle"), "only rule baselines"
    )


@pytest.mark.parametrize("env_id", ["smoothrl/HVAC-v0", "smoothrl/HVACDiscrete-v0"])
def test_eval_baselines_puts_every_controller_beside_a_run(tmp_path, env_id):
    run = tmp_path / "run"
    trained = run_cli(
        "train", "--algo", "ppo", "--env", env_id, "--preset", "smoke", "--timesteps", "256",
        "--set", "env_kwargs={episode_days: 1}", "--set", "eval_freq=0", "--run-dir", run, "--no-progress",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    result = run_cli("eval", run, "--baselines", "--episodes", "2", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    rules = ["thermostat"] if "Discrete" in env_id else ["thermostat", "pi"]
    assert list(data["runs"]) == [str(run), *rules, "mpc-oracle", "mpc-realistic"]
    days = data["runs"][str(run)]["episode_start_days"]
    assert len(set(days)) == 2 and all(s["episode_start_days"] == days for s in data["runs"].values())
    assert data["oracle"] == "mpc-oracle" and data["oracle_gap"]["mpc-oracle"] == 0
    assert all(data["wins"][name][1] == 2 for name in data["wins"])
    assert all(data["runs"][name]["tuned"] for name in rules)  # the shipped baselines/ entries
    quick = json.loads(run_cli("eval", run, "--baselines", "--no-mpc", "--episodes", "2", "--json").stdout)
    assert list(quick["runs"]) == [str(run), *rules] and quick["oracle"] is None
