"""HVAC simulator: physics sanity, plant protection, KPIs, gymnasium interfaces, bad input."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import smoothrl  # noqa: F401  (registers the ids)
from smoothrl.building.calendar import calendar
from smoothrl.building.tariff import price
from smoothrl.building.weather import read_epw, resolve_weather
from smoothrl.envs.hvac import HVAC_IDS, KPI_NAMES
from smoothrl.envs.hvac.control import make_controller
from smoothrl.envs.hvac.env import HVACEnv, HVACVectorEnv
from smoothrl.envs.hvac.plant import HeatPumps
from smoothrl.envs.hvac.schedules import occupancy
from smoothrl.envs.hvac.simulator import split_start_days
from smoothrl.envs.hvac.spec import available_presets, load_spec
from smoothrl.envs.hvac.thermal import ThermalModel
from smoothrl.errors import SmoothRLError

PRESETS = available_presets()


def spec(name: str = "office_1zone_denver", **overrides):
    return load_spec(name, name, **overrides)


# --- weather ---------------------------------------------------------------------------------


def test_epw_is_read_with_location_and_a_full_year():
    w = read_epw("denver")
    assert w.latitude == pytest.approx(39.72) and w.timezone == -7.0
    assert w.t_out.shape == (8760,) and -30 < w.t_out.min() < w.t_out.max() < 45
    assert w.start_weekday == 6  # TMY3 years start on a Sunday
    # northern hemisphere: the south facade gets the most sun over a year, the north the least
    annual = w.facade.sum(axis=1)
    assert annual[0] == annual.max() and annual[2] == annual.min()
    # no sun at night: irradiance on every facade is zero when GHI is
    night = w.ghi == 0
    assert np.all(w.facade[:, night] == 0)
    steps = w.resample(15)
    assert steps["t_out"].shape == (35040,)
    np.testing.assert_allclose(steps["t_out"][4::4], w.t_out[:-1])  # hour-ending values on the hour


def _write_epw(path, rows: int, bad: str | None = None) -> None:
    src = resolve_weather("denver").read_text(encoding="latin-1").splitlines()
    lines = src[: 8 + rows]
    if bad is not None:
        fields = lines[20].split(",")
        fields[6] = bad
        lines[20] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")


def test_bad_weather_files_fail_clearly(tmp_path):
    with pytest.raises(SmoothRLError, match="does not exist"):
        read_epw(str(tmp_path / "nowhere.epw"))
    short = tmp_path / "short.epw"
    _write_epw(short, 100)
    with pytest.raises(SmoothRLError, match="100 hourly rows"):
        read_epw(str(short))
    broken = tmp_path / "broken.epw"
    _write_epw(broken, 8760, bad="warm")
    with pytest.raises(SmoothRLError, match="line 21: field 7 'warm' is not a number"):
        read_epw(str(broken))
    missing = tmp_path / "missing.epw"
    _write_epw(missing, 8760, bad="99.9")
    with pytest.raises(SmoothRLError, match="line 21: field 7 is missing"):
        read_epw(str(missing))
    with pytest.raises(SmoothRLError, match="matches none"):
        resolve_weather("atlantis")
    with pytest.raises(SmoothRLError, match="matches several"):
        resolve_weather("USA_CO")


# --- thermal physics -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("step_minutes", [1, 15, 60])
def test_energy_balance_closes_each_step(name: str, step_minutes: int):
    model = ThermalModel.from_spec(spec(name, step_minutes=step_minutes))
    rng = np.random.default_rng(0)
    n = 2 * model.n_zones
    x0 = rng.uniform(10, 30, (8, n))
    u = np.c_[rng.uniform(-20, 35, 8), rng.uniform(-8000, 8000, (8, n))]
    balance = model.energy_balance(x0, u)
    scale = np.abs(balance["heat_in"]) + np.abs(balance["stored"]) + np.abs(balance["lost"])
    residual = balance["heat_in"] - balance["stored"] - balance["lost"]
    assert np.all(np.abs(residual) <= 1e-9 * scale)


def test_free_floating_zone_relaxes_to_outdoor_with_the_rc_time_constant():
    s = spec()
    fine, coarse = ThermalModel.from_spec(s, dt=60.0), ThermalModel.from_spec(s, dt=3600.0)
    tau = fine.time_constants()[-1]  # the slow (mass) time constant
    x = np.full((1, 2), 20.0)
    u = np.zeros((1, 3))  # 0 degC outdoors, no gains
    hours = int(6 * tau / 3600)
    trace = [x]
    for _ in range(hours):
        trace.append(coarse.step(trace[-1], u))
    trace = np.concatenate(trace)
    assert np.all(np.diff(trace, axis=0) < 0) and np.all(trace > 0)  # monotone towards 0 degC
    # exact at any step length: 60 one-minute steps = one one-hour step
    y = x
    for _ in range(60):
        y = fine.step(y, u)
    np.testing.assert_allclose(y, trace[1:2], rtol=1e-10)
    # once the fast mode has died out, the excess over outdoors decays by e every tau
    t1 = int(2 * tau / 3600)
    t2 = t1 + int(round(tau / 3600))
    ratio = trace[t2, 1] / trace[t1, 1]
    assert ratio == pytest.approx(np.exp(-(t2 - t1) * 3600 / tau), rel=1e-3)
    assert 10 * 3600 < tau < 100 * 3600  # a heavyweight building: tens of hours


def _pi_week(s, start_day: int) -> dict[str, float]:
    env = HVACEnv(spec=s, split="test")
    obs, _ = env.reset(seed=5, options={"start_day": start_day})
    ctrl = make_controller("pi", env.sim)
    start = True
    info: dict = {}
    done = False
    while not done:
        action, _ = ctrl.predict(obs[None], episode_start=np.array([start]))
        obs, _, _, done, info = env.step(action[0])
        start = False
    return info["kpis"]


def test_more_insulation_means_less_energy_when_heating():
    base = spec(weather="chicago")
    insulated = spec(weather="chicago", zones=[base.zones[0].model_copy(update={"ua_opaque": 20.0, "ua_window": 15.0})])
    january = 14  # a heating week; in a cooling week an office with solar gains needs *more* with insulation
    assert _pi_week(insulated, january)["ener_tot"] < 0.8 * _pi_week(base, january)["ener_tot"]
    july = 190  # with high internal and solar gains, the insulated office sheds less heat in summer
    assert _pi_week(insulated, july)["ener_tot"] > _pi_week(base, july)["ener_tot"]


# --- plant -----------------------------------------------------------------------------------


def test_heat_pump_never_exceeds_capacity_and_cop_falls_in_the_cold():
    s = spec().plant
    plant = HeatPumps(s, batch=200, zones=1, step_minutes=15, discrete=False)
    rng = np.random.default_rng(1)
    for _ in range(50):
        plant.apply(rng.uniform(-1.5, 1.5, (200, 1)).clip(-1, 1))
        t_out = rng.uniform(-30, 45, 200)
        power = plant.power(rng.uniform(10, 35, (200, 1)), t_out)
        cap_heat, cap_cool = plant.capacity(t_out)
        assert np.all(power["heat"][:, 0] <= cap_heat + 1e-9)
        assert np.all(-power["heat"][:, 0] <= cap_cool + 1e-9)
        assert np.all(cap_heat <= s.heating_capacity)
    heating = np.ones((3, 1), dtype=np.int8)
    cop = plant.cop(heating, np.full((3, 1), 21.0), np.array([[-20.0], [0.0], [10.0]]))
    assert cop[0, 0] < cop[1, 0] < cop[2, 0] and np.all((cop >= s.cop_min) & (cop <= s.cop_max))


@pytest.mark.parametrize("discrete", [False, True])
def test_min_on_off_protection_is_never_violated(discrete: bool):
    s = spec(plant={"min_on_minutes": 45, "min_off_minutes": 30, "stages": 2}).plant
    plant = HeatPumps(s, batch=64, zones=1, step_minutes=15, discrete=discrete)
    rng = np.random.default_rng(2)
    on, refused = [], 0
    for _ in range(400):
        request = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], size=(64, 1))
        refused += plant.apply(request)["refused"].sum()
        on.append(plant.mode[:, 0] != 0)
    on = np.array(on)
    for b in range(64):
        changes = np.flatnonzero(np.diff(on[:, b].astype(int))) + 1
        runs = np.diff(changes)  # complete runs between two switches
        states = on[changes[:-1], b]
        assert np.all(runs[states] >= 3)  # 45 min at 15-min steps
        assert np.all(runs[~states] >= 2)  # 30 min
    assert refused > 0  # random requests do ask to switch early, and are refused


# --- schedules and splits --------------------------------------------------------------------


def test_occupancy_tariff_and_splits():
    s = spec()
    cal = calendar(35040, 15, start_weekday=6)  # Jan 1 is a Sunday
    occ = occupancy(s, cal)
    monday_10h = (1 * 24 + 10) * 4
    sunday_10h = 10 * 4
    assert occ[monday_10h] == 1 and occ[sunday_10h] == 0
    home = occupancy(spec("house_denver"), cal)
    assert home[(1 * 24 + 12) * 4] == 0 and home[(1 * 24 + 20) * 4] == 1 and home[sunday_10h] == 1
    p = price(s.tariff, cal, np.zeros(35040))
    assert p[(1 * 24 + 17) * 4] == 0.35 and p[(1 * 24 + 3) * 4] == 0.12 and p[sunday_10h + 7 * 4] == 0.12
    train, test = split_start_days("train", 7), split_start_days("test", 7)
    assert not set(train // 7) & set(test // 7) and len(test) == 13 and len(train) == 39
    for days in (1, 3, 7):
        starts = split_start_days("test", days)
        assert np.all(starts // 7 == (starts + days - 1) // 7)  # an episode never leaves its week


# --- gymnasium interfaces --------------------------------------------------------------------


@pytest.mark.parametrize("env_id", list(HVAC_IDS))
@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_env_checkers_pass_for_every_id_and_preset(env_id: str, preset: str | None):
    kwargs = {} if preset is None else {"preset": preset}
    env = gym.make(env_id, **kwargs).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def test_sb3_can_build_from_the_id_alone():
    """SB3 makes envs from an id with ``render_mode="rgb_array"``; the env must accept it."""
    from stable_baselines3 import PPO

    with pytest.warns(UserWarning, match="render_mode"):
        model = PPO("MlpPolicy", "smoothrl/HVAC-v0", n_steps=64, batch_size=64, seed=0)
    model.learn(64)


def test_episode_reports_kpis_and_actions_outside_the_box_are_clipped_and_counted():
    env = gym.make("smoothrl/HVAC-v0", episode_days=1)
    env.reset(seed=0)
    for _ in range(95):
        _, _, terminated, truncated, info = env.step(np.array([1.7], dtype=np.float32))
        assert not (terminated or truncated) and "kpis" not in info
    _, _, _, truncated, info = env.step(np.array([0.3], dtype=np.float32))
    assert truncated
    kpis = info["kpis"]
    assert kpis["actions_clipped"] == 95
    assert tuple(kpis) == KPI_NAMES  # what the registrations declare (sweeps validate metrics against it)
    assert set(kpis) >= {
        "tdis_tot",
        "ener_tot",
        "cost_tot",
        "pele_tot",
        "switches_per_day",
        "min_onoff_violations_requested",
        "atvl_tot",
    }
    assert kpis["ener_tot"] > 0 and kpis["pele_tot"] > 0
    with pytest.raises(SmoothRLError, match="outside Discrete"):
        discrete = gym.make("smoothrl/HVACDiscrete-v0").unwrapped
        discrete.reset(seed=0)
        discrete.step(5)
    with pytest.raises(SmoothRLError, match="NaN"):
        env.unwrapped.step(np.array([np.nan]))


def test_vector_env_matches_single_envs():
    vec = HVACVectorEnv(3, preset="office_5zone_chicago", split="test")
    obs, _ = vec.reset(seed=10)
    singles = [HVACEnv(preset="office_5zone_chicago", split="test") for _ in range(3)]
    single_obs = [e.reset(seed=10 + i)[0] for i, e in enumerate(singles)]
    np.testing.assert_allclose(obs, np.stack(single_obs), rtol=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(700):  # crosses an episode end (672 steps): autoreset included
        actions = rng.uniform(-1, 1, (3, 5)).astype(np.float32)
        obs, reward, _, truncated, infos = vec.step(actions)
        for i, e in enumerate(singles):
            o, r, _, tr, info = e.step(actions[i])
            assert r == pytest.approx(reward[i], rel=1e-12)
            if tr:
                assert truncated[i]
                np.testing.assert_allclose(infos["final_obs"][i], o, rtol=1e-6)
                assert infos["final_info"]["kpis"][i] == pytest.approx(info["kpis"], rel=1e-12)
                o, _ = e.reset()
            # the batched matrix product sums in another order than a batch of one: round-off only
            np.testing.assert_allclose(obs[i], o, rtol=1e-6)


def test_thermostat_beats_doing_nothing_on_comfort():
    s = spec(weather="chicago")
    env = HVACEnv(spec=s, split="test")
    kpis = {}
    for name in ("off", "thermostat"):
        obs, _ = env.reset(seed=1)
        ctrl = make_controller("thermostat", env.sim)
        done, start = False, True
        while not done:
            action = np.zeros(1, np.float32) if name == "off" else ctrl.predict(obs[None], episode_start=[start])[0][0]
            obs, _, _, done, info = env.step(action)
            start = False
        kpis[name] = info["kpis"]
    assert kpis["thermostat"]["tdis_tot"] < 0.5 * kpis["off"]["tdis_tot"]
    assert kpis["off"]["ener_tot"] == 0 and kpis["off"]["switches_per_day"] == 0


# --- bad configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"step_minutes": 0}, "step_minutes"),
        ({"step_minutes": 7}, "must divide an hour"),
        ({"step_minutes": 90}, "step_minutes"),
        ({"comfort": {"occupied": [24.0, 21.0]}}, "comfort band occupied is inverted"),
        ({"zones": [{"floor_area": -48.0, "ua_opaque": 50.0, "ua_window": 30.0}]}, "zones.0.floor_area"),
        (
            {"zones": [{"floor_area": 48.0, "ua_opaque": 50.0, "ua_window": 30.0, "air_capacity_factor": -1}]},
            "zones.0.air_capacity_factor",
        ),
        ({"plant": {"heating_capacity": -5.0}}, "plant.heating_capacity"),
        ({"plant": {"cop_min": 8.0}}, "cop_min must be below cop_max"),
        ({"interzone": [[0, 3, 10.0]]}, "must join two different zones"),
        ({"weather": "atlantis"}, "matches none"),
        ({"colour": "blue"}, "colour"),
        ({"forecast": ["t_out", "humidity"]}, "forecast"),
        ({"forecast": ["t_out", "t_out"]}, "names a series twice"),
        ({"forecast_hours": [1.0, 0.0]}, "forecast_hours"),
    ],
)
def test_bad_configuration_names_the_field(overrides, message):
    with pytest.raises(SmoothRLError, match=message):
        HVACEnv(**overrides)


def test_forecast_channels_are_the_weather_file_s_values_ahead():
    """``forecast`` picks what the observation forecasts, at each of ``forecast_hours``: the
    weather file's (and tariff's) own values that many hours later."""
    env = HVACEnv(forecast=["ghi_kw", "t_out"], forecast_hours=[2.0, 24.0])
    names = env.sim.obs_names
    assert [n for n in names if "_in_" in n] == ["ghi_kw_in_2h", "ghi_kw_in_24h", "t_out_in_2h", "t_out_in_24h"]
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        obs, *_ = env.step(np.zeros(1, dtype=np.float32))
    k, year = int(env.sim.k[0]), env.sim.year
    for name, series, hours in [("ghi_kw_in_24h", "ghi_kw", 24), ("t_out_in_2h", "t_out", 2)]:
        expected = year.columns[series][(k + round(hours * env.sim.steps_per_hour)) % year.steps]
        assert obs[names.index(name)] == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert env.observation_space.shape == (len(names),)


def test_unknown_preset_and_split():
    with pytest.raises(SmoothRLError, match="unknown HVAC preset 'skyscraper'"):
        gym.make("smoothrl/HVAC-v0", preset="skyscraper")
    with pytest.raises(SmoothRLError, match="split must be"):
        gym.make("smoothrl/HVAC-v0", split="validation")


@pytest.mark.parametrize("env_id", ["smoothrl/HVAC-v0", "smoothrl/HVACDiscrete-v0", "smoothrl/HVACMultiZone-v0"])
def test_kernel_switch_count_equals_the_metric_on_the_mode_trace(env_id: str):
    """The KPI ``switches_per_day`` (counted inside the compiled step) and
    ``metrics.switches_per_day`` (from the on/off trace) are one definition."""
    from smoothrl import metrics

    env = gym.make(env_id, episode_days=2).unwrapped
    env.reset(seed=3)
    env.action_space.seed(3)
    sim = env.sim
    rng = np.random.default_rng(3)
    modes = [sim.plant.mode[0].copy()]
    info: dict = {}
    truncated = False
    while not truncated:
        action = env.action_space.sample() if rng.random() < 0.3 else np.zeros_like(env.action_space.sample())
        _, _, _, truncated, info = env.step(action)
        modes.append(sim.plant.mode[0].copy())
    on = np.stack(modes) != 0  # the state before the first step, then the state of each step
    per_zone = metrics.switches_per_day(on[1:], sim.steps_per_day, initial=on[0])
    assert info["kpis"]["switches_per_day"] == pytest.approx(per_zone.mean())
    assert per_zone.mean() > 0
