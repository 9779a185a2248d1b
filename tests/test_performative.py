"""Performative RL: occupancy measures, the regularized QP, the gridworld, the tabular methods,
the deep loop and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env
from typer.testing import CliRunner

import smoothrl.envs  # noqa: F401  (registers the ids)
from smoothrl.cli import app
from smoothrl.performative import gridworld as gw
from smoothrl.performative.gridworld import PerformativeGridworld
from smoothrl.performative.occupancy import (
    TabularMDP,
    flow_residual,
    occupancy,
    policy_from_occupancy,
    regularized_objective,
    relative_change,
    value,
)
from smoothrl.performative.protocol import PerformativeEnv, merge_experience
from smoothrl.performative.qp import solve_occupancy_qp
from smoothrl.performative.solvers import retrain

runner = CliRunner()


def random_mdp(seed: int, S: int = 6, A: int = 3, gamma: float = 0.9, absorbing: bool = True) -> TabularMDP:
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) ** 3
    P /= P.sum(axis=2, keepdims=True)
    r = rng.normal(size=(S, A))
    mask = np.zeros(S, dtype=bool)
    if absorbing:
        mask[-1] = True
        P[-1] = 0.0
        P[-1, :, -1] = 1.0
        r[-1] = 0.0
    rho = rng.random(S)
    return TabularMDP(P, r, rho / rho.sum(), gamma, mask)


def random_policy(seed: int, S: int, A: int) -> np.ndarray:
    pi = np.random.default_rng(seed + 1).random((S, A)) + 1e-3
    return pi / pi.sum(axis=1, keepdims=True)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), gamma=st.floats(0.0, 0.99), absorbing=st.booleans())
def test_occupancy_satisfies_flow_and_sums_to_horizon(seed, gamma, absorbing):
    mdp = random_mdp(seed, gamma=gamma, absorbing=absorbing)
    d = occupancy(mdp, random_policy(seed, 6, 3))
    assert (d >= 0).all()
    assert flow_residual(mdp, d) < 1e-10
    assert d.sum() == pytest.approx(1.0 / (1.0 - gamma), rel=1e-10)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_policy_recovered_from_occupancy_reproduces_it(seed):
    mdp = random_mdp(seed, absorbing=False)
    pi = random_policy(seed, 6, 3)
    d = occupancy(mdp, pi)
    recovered = policy_from_occupancy(d)
    np.testing.assert_allclose(recovered, pi, atol=1e-10)
    np.testing.assert_allclose(occupancy(mdp, recovered), d, atol=1e-12)


def test_occupancy_agrees_with_a_monte_carlo_return():
    world = PerformativeGridworld(beta=5.0, followers=3)
    pi = world.initial_policy()
    follower = world.response(pi)
    mdp = world.learner_mdp(follower)
    rng = np.random.default_rng(0)
    t = world.sample(pi, follower, 4000, rng)
    # discounted return per trajectory from the sampled transitions: recompute with the env instead
    env = gw.PerformativeGridworldEnv(beta=5.0, followers=3)
    env.set_dynamics(follower)
    returns = []
    for episode in range(1500):
        s, _ = env.reset(seed=episode)
        total, discount = 0.0, 1.0
        for _ in range(200):
            a = int(rng.choice(4, p=pi[s]))
            s, reward, terminated, _, _ = env.step(a)
            total += discount * reward
            discount *= world.gamma
            if terminated:
                break
        returns.append(total)
    assert len(t) > 0
    assert np.mean(returns) == pytest.approx(value(mdp, pi), abs=4 * np.std(returns) / np.sqrt(len(returns)))


def test_gridworld_constants_follow_the_paper():
    values, counts = np.unique(gw.GRID, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {-0.5: 11, -0.02: 7, -0.01: 45, 1.0: 1}
    assert gw.GRID[7, 7] == 1.0 and gw.GOAL_STATE == 63
    assert len(gw.START_STATES) == 15 and set(gw.START_STATES) == {s for s in range(64) if s < 8 or s % 8 == 0}
    assert gw.INTERVENTION_COST == -0.05
    # moves: left, right, up, down; off the grid stays; the goal stays
    assert gw.NEXT[9].tolist() == [8, 10, 1, 17]
    assert gw.NEXT[0].tolist() == [0, 1, 0, 8]
    assert gw.NEXT[63].tolist() == [63, 63, 63, 63]


def test_perturbed_grids_change_only_allowed_cells():
    grids = np.stack([gw.perturbed_grid(k) for k in range(50)])
    starts = np.zeros(64, dtype=bool)
    starts[gw.START_STATES] = True
    flat = grids.reshape(50, 64)
    assert (flat[:, starts] == gw.GRID.ravel()[starts]).all()
    assert (flat[:, 63] == 1.0).all()
    assert set(np.unique(flat[:, :63]).tolist()) <= {-0.5, -0.02, -0.01}
    changed = (flat != gw.GRID.ravel()).mean()
    assert 0.05 < changed < 0.3  # 0.3 of the 48 non-start cells redrawn, 2/3 of them to another value
    np.testing.assert_array_equal(gw.perturbed_grid(3), gw.perturbed_grid(3))
    assert not np.array_equal(gw.perturbed_grid(3), gw.perturbed_grid(4))


def test_initial_policy_is_epsilon_greedy_on_the_optimum():
    world = PerformativeGridworld()
    pi = world.initial_policy()
    assert np.allclose(pi.sum(axis=1), 1.0)
    assert set(np.round(np.unique(pi), 6).tolist()) == {round(0.1 / 3, 6), 0.9}
    q = gw.optimal_q(gw.GRID, 0.9)
    assert (pi.argmax(axis=1) == q.argmax(axis=1)).all()
    assert q[62, 1] == pytest.approx(1.0)  # right of the goal: +1


def test_follower_response_and_learner_mdp():
    world = PerformativeGridworld(beta=5.0, followers=5)
    follower = world.response(world.initial_policy())
    assert follower.shape == (64, 5) and np.allclose(follower.sum(axis=1), 1.0)
    mdp = world.learner_mdp(follower)
    mdp.check()
    # a follower that never intervenes leaves the learner's own moves
    idle = np.zeros((64, 5))
    idle[:, gw.LET_BE] = 1.0
    plain = world.learner_mdp(idle)
    assert plain.P[9, 1, 10] == 1.0 and plain.r[9, 1] == gw.GRID.ravel()[10]
    # beta 0: the follower is uniform whatever the learner does (a non-reactive env)
    flat = PerformativeGridworld(beta=0.0, followers=5)
    np.testing.assert_allclose(flat.response(world.initial_policy()), 0.2)
    np.testing.assert_allclose(flat.response(np.full((64, 4), 0.25)), 0.2)


def test_estimated_mdp_treats_unseen_pairs_as_the_paper():
    world = PerformativeGridworld(followers=2)
    transitions = np.array([[9, 1, 10, -0.01], [9, 1, 17, -0.01], [9, 1, 10, -0.5]])
    mdp = world.estimate_mdp(transitions)
    mdp.check()
    assert mdp.P[9, 1, 10] == pytest.approx(2 / 3) and mdp.P[9, 1, 17] == pytest.approx(1 / 3)
    assert mdp.r[9, 1] == pytest.approx((-0.01 - 0.01 - 0.5) / 3)
    assert mdp.r[9, 0] == pytest.approx(np.mean([-0.5, -0.02, -0.01]))
    np.testing.assert_allclose(mdp.P[0, 2, [0, 1, 8]], 1 / 3)  # cell 0 reaches itself, 1 and 8
    weighted = world.estimate_mdp(transitions, weights=np.array([1.0, 1.0, 0.0]))
    assert weighted.P[9, 1, 10] == pytest.approx(0.5) and weighted.r[9, 1] == pytest.approx(-0.01)


def test_qp_matches_an_independent_solve_and_its_kkt_holds():
    world = PerformativeGridworld(beta=5.0, followers=10)
    mdp = world.learner_mdp(world.response(world.initial_policy()))
    for lam in (0.5, 1.0, 5.0):
        clarabel = solve_occupancy_qp(mdp, mdp.r, lam)
        osqp = solve_occupancy_qp(mdp, mdp.r, lam, "OSQP", eps_abs=1e-12, eps_rel=1e-12, polish=True, max_iter=500_000)
        assert clarabel.kkt_residual < 1e-6
        np.testing.assert_allclose(clarabel.d, osqp.d, atol=1e-6)
        assert clarabel.objective == pytest.approx(regularized_objective(mdp, clarabel.d, lam), abs=1e-9)
        assert flow_residual(mdp, clarabel.d) < 1e-7
        assert clarabel.d.sum() == pytest.approx(1 / (1 - mdp.gamma), rel=1e-6)
        # no feasible occupancy measure does better (the exact ones of random policies)
        for seed in range(5):
            other = occupancy(mdp, random_policy(seed, 64, 4))
            assert regularized_objective(mdp, other, lam) <= clarabel.objective + 1e-7


def test_qp_refuses_bad_input():
    mdp = random_mdp(0)
    with pytest.raises(ValueError, match="quadratic weight"):
        solve_occupancy_qp(mdp, mdp.r, -1.0)
    with pytest.raises(ValueError, match="solver"):
        solve_occupancy_qp(mdp, mdp.r, 1.0, "NOPE")


def test_non_reactive_env_reaches_the_regularized_optimum_in_one_round():
    world = PerformativeGridworld(beta=0.0, followers=3)  # the follower ignores the learner
    run = retrain(world, "rr", 1.0, 3)
    mdp = world.learner_mdp(world.response(world.initial_policy()))
    optimum = solve_occupancy_qp(mdp, mdp.r, 1.0)
    np.testing.assert_allclose(run.occupancies[1], optimum.d, atol=1e-7)
    assert run.rounds[0]["relative_change"] > 0.1
    assert run.rounds[1]["relative_change"] < 1e-6 and run.rounds[2]["relative_change"] < 1e-6


def test_strong_regularization_converges_geometrically():
    run = retrain(PerformativeGridworld(beta=5.0, followers=10), "rr", 5.0, 16)
    change = run.series("relative_change")
    ratios = change[3:15] / change[2:14]
    assert (ratios < 0.8).all(), ratios
    assert change[-1] < 1e-5
    distance = run.distance_to_stable(tolerance=1e-4)
    assert distance is not None and distance[-1] == 0.0 and distance[0] > distance[5] > distance[10]


def test_a_sharper_response_slows_convergence():
    world = {beta: PerformativeGridworld(beta=beta, followers=10) for beta in (1.0, 200.0)}
    runs = {beta: retrain(w, "rr", 1.0, 30) for beta, w in world.items()}
    assert runs[200.0].rounds_to(1e-3) > 2 * runs[1.0].rounds_to(1e-3)
    change = runs[200.0].series("relative_change")
    assert (np.diff(change[:12]) > 0).any()  # not monotone: the response overshoots


def test_rga_with_eta_lambda_one_is_retraining_and_its_gap_closes():
    world = PerformativeGridworld(beta=5.0, followers=5)
    rga = retrain(world, "rga", 1.0, 6, eta=1.0)
    rr = retrain(world, "rr", 1.0, 6)
    np.testing.assert_allclose(rga.series("relative_change"), rr.series("relative_change"), rtol=1e-4, atol=1e-8)
    slow = retrain(world, "rga", 1.0, 30, eta=0.2)
    gap = slow.series("suboptimality_gap")
    assert gap[-1] < gap[0] and gap[-1] < 1e-3


def test_finite_samples_converge_tighter_with_more_samples():
    world = PerformativeGridworld(beta=5.0, followers=5)
    few = [retrain(world, "finite", 1.0, 12, samples=20, seed=s).series("relative_change")[-4:].mean() for s in (0, 1)]
    many = [
        retrain(world, "finite", 1.0, 12, samples=1000, seed=s).series("relative_change")[-4:].mean() for s in (0, 1)
    ]
    assert np.mean(many) < np.mean(few)
    a = retrain(world, "finite", 1.0, 3, samples=50, seed=7).series("relative_change")
    b = retrain(world, "finite", 1.0, 3, samples=50, seed=7).series("relative_change")
    np.testing.assert_array_equal(a, b)


def test_mdrr_retrains_once_per_delay_and_the_follower_mixes():
    world = PerformativeGridworld(beta=5.0, followers=5, adaptation=0.3)
    pi = world.initial_policy()
    first = world.response(pi)
    second = world.response(pi, first)
    target = gw.softmax(world.follower_q(pi), 5.0)
    np.testing.assert_allclose(second, 0.7 * first + 0.3 * target)
    run = retrain(world, "mdrr", 1.0, 4, samples=50, delay=3)
    assert run.series("deployments").tolist() == [3, 6, 9, 12]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "nope"}, "method"),
        ({"lam": -1.0}, "lambda"),
        ({"method": "rga", "eta": None}, "eta"),
        ({"method": "finite", "samples": 0}, "samples"),
        ({"rounds": 0}, "rounds"),
    ],
)
def test_retrain_refuses_bad_parameters(kwargs, message):
    args = {"method": "rr", "lam": 1.0, "rounds": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        retrain(PerformativeGridworld(followers=2), args.pop("method"), args.pop("lam"), args.pop("rounds"), **args)


def test_gridworld_env_passes_check_env_and_follows_the_model():
    env = gym.make("smoothrl/PerformativeGridworld-v0", followers=5)
    check_env(env.unwrapped)
    gym_check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 100
    base = env.unwrapped
    assert isinstance(base, PerformativeEnv)
    # empirical transitions from cell 9 under "right" match the learner MDP
    mdp = base.tabular()
    counts = np.zeros(64)
    base.reset(seed=0)
    for _ in range(4000):
        base._state = 9
        s2, reward, *_ = base.step(1)
        counts[s2] += 1
        assert reward == gw.GRID.ravel()[s2]
    np.testing.assert_allclose(counts / counts.sum(), mdp.P[9, 1], atol=0.03)


def test_gridworld_env_responds_and_hands_its_dynamics_on():
    a = gw.PerformativeGridworldEnv(beta=5.0, followers=5)
    b = gw.PerformativeGridworldEnv(beta=5.0, followers=5)
    uniform = np.full((64, 4), 0.25)
    info = a.respond(uniform)
    assert info["follower_change"] > 0
    b.set_dynamics(a.get_dynamics())
    np.testing.assert_array_equal(a.tabular().P, b.tabular().P)
    np.testing.assert_allclose(a.get_dynamics(), a.model.response(uniform))
    assert a.occupancy(uniform).sum() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="tabular policy"):
        a.respond(np.ones((3, 4)))


def test_hvac_env_passes_check_env_and_occupants_respond():
    env = gym.make("smoothrl/PerformativeHVAC-v0", sensitivity=1.0)
    check_env(env.unwrapped)
    base = env.unwrapped
    base.set_dynamics(np.zeros(2))
    base.reset(seed=0)
    for _ in range(96 * 3):  # three days with the heat pump off in winter-ish weeks: cold
        base.step(np.zeros(1, dtype=np.float32))
    record = base.experience()
    assert record["occupied_h"] > 0 and record["visits"].sum() == 96 * 3
    info = base.respond(None, [record])
    expected_cold = record["cold_kh"] / record["occupied_h"]
    assert info["cold_k"] == pytest.approx(expected_cold)
    assert info["heater_w_m2"] == pytest.approx(5.0 * min(1.0, expected_cold))
    assert base.experience()["occupied_h"] == 0.0  # a new deployment starts
    # the heaters warm the zone: the same days with them are warmer
    warm, cold = (gym.make("smoothrl/PerformativeHVAC-v0").unwrapped for _ in range(2))
    warm.set_dynamics(np.array([1.0, 0.0]))
    temps = []
    for e in (warm, cold):
        e.reset(seed=0, options={"start_day": 10})
        for _ in range(96):
            e.step(np.zeros(1, dtype=np.float32))
        temps.append(e.sim.t_zone[0, 0])
    assert temps[0] > temps[1] + 0.1
    # merge adds the copies up
    assert merge_experience([{"x": 1.0, "v": np.ones(2)}, {"x": 2.0, "v": np.ones(2)}])["x"] == 3.0


def test_hvac_sensitivity_zero_is_not_reactive():
    env = gym.make("smoothrl/PerformativeHVAC-v0", sensitivity=0.0).unwrapped
    env.reset(seed=0)
    for _ in range(96):
        env.step(np.zeros(1, dtype=np.float32))
    env.respond(None, [env.experience()])
    assert env.get_dynamics().tolist() == [0.0, 0.0]


def test_relative_change_is_scale_free():
    d = np.arange(1.0, 7.0)
    assert relative_change(2 * d, 2 * (d + 1)) == pytest.approx(relative_change(d, d + 1))
    assert relative_change(d, d) == 0.0


def _scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb" / "performative"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_cli_tabular_run_writes_its_directory(tmp_path):
    out = tmp_path / "rr"
    result = runner.invoke(app, ["performative", "--method", "rr", "--lam", "5", "--beta", "5", "--rounds", "6",
                                 "--run-dir", str(out), "--no-progress"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"performative.yaml", "performative.json", "performative.png", "tb"}
    results = json.loads((out / "performative.json").read_text())
    assert len(results["rounds"]) == 6 and results["settings"]["lam"] == 5.0
    assert len(_scalars(out)["performative/relative_change"]) == 6
    again = runner.invoke(app, ["performative", "--method", "rr", "--lam", "1", "--run-dir", str(out), "--no-progress"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert json.loads((out / "performative.json").read_text()) == results  # nothing lost


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lam", "-1"], "--lam"),
        (["--lam", "nan"], "--lam"),
        (["--lam", "1", "--beta", "-2"], "--beta"),
        (["--lam", "1", "--beta", "inf"], "--beta"),
        (["--method", "rga", "--lam", "1", "--eta", "0"], "--eta"),
        (["--method", "rga", "--lam", "1"], "--eta"),
        (["--method", "finite", "--lam", "1", "--samples", "0"], "--samples"),
        (["--method", "finite", "--lam", "1"], "--samples"),
        (["--method", "rr", "--lam", "1", "--samples", "10"], "--samples"),
        (["--method", "rr", "--lam", "1", "--eta", "0.1"], "--eta"),
        (["--method", "rr"], "--lam"),
        (["--method", "deep", "--algo", "ppo", "--lam", "1"], "--lam"),
        (["--method", "deep"], "--algo"),
        (["--method", "mdrr", "--lam", "1", "--samples", "10"], "--adaptation"),
        (["--method", "nope", "--lam", "1"], "method"),
        (["--env", "CartPole-v1", "--lam", "1"], "performative env"),
        (["--env", "smoothrl/PerformativeHVAC-v0", "--lam", "1"], "--method deep"),
        (["--lam", "1", "--rounds", "0"], "--rounds"),
        (["--lam", "1", "--adaptation", "1.5"], "--adaptation"),
    ],
)
def test_cli_bad_values_one_line_exit_2(tmp_path, args, words):
    out = tmp_path / "run"
    result = runner.invoke(app, ["performative", *args, "--run-dir", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert words in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("env_id, extra", [
    ("smoothrl/PerformativeGridworld-v0", ["--beta", "5"]),
    ("smoothrl/PerformativeHVAC-v0", ["--beta", "1", "--episodes", "1", "--set", "env_kwargs.episode_days=2"]),
])  # fmt: skip
def test_deep_loop_runs_two_deployments_of_ppo_and_logs_the_metrics(tmp_path, env_id, extra):
    out = tmp_path / "deep"
    result = runner.invoke(app, ["performative", "--env", env_id, "--method", "deep", "--algo", "ppo", "--rounds", "1",
                                 "--steps", "512", "--run-dir", str(out), "--no-progress", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads((out / "performative.json").read_text())
    assert [r["round"] for r in results["rounds"]] == [0, 1]  # two deployments, one retraining between
    assert np.isfinite(results["rounds"][1]["relative_change"]) and results["rounds"][1]["relative_change"] > 0
    scalars = _scalars(out)
    assert len(scalars["performative/deployment_return"]) == 2
    assert len(scalars["performative/relative_change"]) == 1
    if env_id.endswith("Gridworld-v0"):
        assert len(scalars["performative/performative_return"]) == 2
        assert "performative/response_follower_change" in scalars
    else:
        assert "performative/response_heater_w_m2" in scalars and "performative/tdis_tot" in scalars
    assert (out / "model.zip").exists() and (out / "config.yaml").exists()
    evaluated = runner.invoke(app, ["eval", str(out), "--episodes", "1", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
