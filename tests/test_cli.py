"""The CLI: every bad input ends with exit code 2 and one line; the commands work end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from smoothrl.cli import app

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, nothing else, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def broken_copy(sac_run: Path, tmp_path: Path) -> Path:
    """A copy of a finished run the test may damage."""
    return Path(shutil.copytree(sac_run, tmp_path / "run"))


BAD_TRAIN = [  # "RUN" stands for a fresh run directory
    (["--algo", "sax", "--env", "Pendulum-v1"], ["unknown algorithm 'sax'", "ppo"]),
    (["--algo", "sac", "--env", "Pendulum-v9"], ["unknown environment id 'Pendulum-v9'", "Pendulum-v1"]),
    (["--algo", "sac", "--env", "Pendulum-v1", "--preset", "nope"], ["no preset 'nope'", "smoke"]),
    (["--algo", "sac", "--env", "Pendulum-v1", "--set", "gama=0.9"], ["'gama' is not a parameter", "gamma"]),
    (["--algo", "sac", "--env", "Pendulum-v1", "--set", "batch_size=big"], ["batch_size='big' has the wrong type"]),
    (["--algo", "sac", "--env", "Pendulum-v1", "--set", "use_sde=maybe"], ["use_sde='maybe' has the wrong type"]),
    (["--algo", "dqn", "--env", "Pendulum-v1", "--timesteps", "100"], ["dqn cannot train on Pendulum-v1"]),
    (["--algo", "sac"], ["train needs --algo and --env"]),
    (["--algo", "sac", "--env", "Pendulum-v1", "--resume", "--overwrite"], ["exclude each other"]),
]


@pytest.mark.parametrize(("args", "fragments"), BAD_TRAIN)
def test_train_bad_input(args, fragments, tmp_path: Path):
    target = tmp_path / "r"
    assert_user_error(run_cli("train", *args, "--run-dir", target, "--no-progress"), *fragments)
    assert not target.exists(), "a failed train writes nothing"


def test_train_refuses_an_existing_run(broken_copy: Path):
    before = (broken_copy / "model.zip").read_bytes()
    result = run_cli("train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "smoke", "--run-dir", broken_copy)
    assert_user_error(result, "already holds a run", "--resume", "--overwrite")
    assert (broken_copy / "model.zip").read_bytes() == before


def test_train_refuses_a_file_as_run_dir(tmp_path: Path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    for extra in ([], ["--overwrite"]):
        result = run_cli(
            "train", "--algo", "sac", "--env", "Pendulum-v1", "--preset", "smoke", "--run-dir", target, *extra
        )
        assert_user_error(result, "is a file, not a folder")
    assert target.read_text() == "keep me"


def test_resume_rejects_config_changes_and_missing_checkpoints(broken_copy: Path, tmp_path: Path):
    assert_user_error(run_cli("train", "--resume"), "--resume needs --run-dir")
    assert_user_error(run_cli("train", "--resume", "--run-dir", broken_copy, "--algo", "ppo"), "drop --algo")
    assert_user_error(run_cli("train", "--resume", "--run-dir", broken_copy), "already trained for 600 steps")
    shutil.rmtree(broken_copy / "checkpoints")
    assert_user_error(run_cli("train", "--resume", "--run-dir", broken_copy), "no checkpoint to resume from")
    assert_user_error(run_cli("train", "--resume", "--run-dir", tmp_path / "nowhere"), "does not exist")


def test_eval_bad_run_directories(broken_copy: Path, tmp_path: Path):
    assert_user_error(run_cli("eval", tmp_path / "missing"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_user_error(run_cli("eval", tmp_path / "empty"), "no config.yaml", "not a smoothrl run")
    (broken_copy / "model.zip").write_bytes(b"this is not a zip file")
    assert_user_error(run_cli("eval", broken_copy), "model.zip is corrupt", "retrain")
    (broken_copy / "model.zip").unlink()
    assert_user_error(run_cli("eval", broken_copy), "no model.zip", "training did not finish", "--resume")
    (broken_copy / "config.yaml").write_text("algo: [unclosed\n")
    assert_user_error(run_cli("eval", broken_copy), "config.yaml is not valid YAML")
    (broken_copy / "config.yaml").write_text("algo: sac\n")
    assert_user_error(run_cli("eval", broken_copy), "not a valid run config")


def test_eval_bad_options(sac_run: Path):
    assert_user_error(
        run_cli("eval", sac_run, "--env", "MountainCarContinuous-v0"), "observation space Box(2,)", "expects Box(3,)"
    )
    assert_user_error(run_cli("eval", sac_run, "--env", "CartPole-v9"), "unknown environment id")
    assert_user_error(run_cli("eval", sac_run, "--episodes", "0"), "--episodes must be at least 1")


def test_eval_missing_normalization_statistics(ppo_norm_run: Path, tmp_path: Path):
    copy = Path(shutil.copytree(ppo_norm_run, tmp_path / "norm"))
    (copy / "vecnormalize.pkl").write_bytes(b"garbage")
    assert_user_error(run_cli("eval", copy), "cannot load normalization statistics")
    (copy / "vecnormalize.pkl").unlink()
    assert_user_error(run_cli("eval", copy), "no vecnormalize.pkl")


def test_eval_json_and_table(sac_run: Path):
    result = run_cli("eval", sac_run, "--episodes", "2", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("mean_return", "std_return", "episodes", "continuity_cost", "jerk_rms", "sm"):
        assert key in data
    assert data["episodes"] == 2
    table = run_cli("eval", sac_run, "--episodes", "1", "--stochastic")
    assert table.exit_code == 0 and "jerk RMS" in table.stdout and "stochastic" in table.stdout


def test_help_and_list():
    result = run_cli("--help")
    for command in ("train", "eval", "list", "plot"):
        assert command in result.stdout
    listing = run_cli("list")
    assert listing.exit_code == 0
    for name in ("sac", "dqn", "HalfCheetahBulletEnv-v0", "Pendulum-v1", "smoke"):
        assert name in listing.stdout
    params = run_cli("list", "--params", "sac")
    assert "learning_rate" in params.stdout and "noise_type" in params.stdout
    assert_user_error(run_cli("list", "--params", "sax"), "unknown algorithm")


def test_plot_writes_a_png(sac_run: Path, ppo_norm_run: Path, tmp_path: Path):
    out = tmp_path / "curves.png"
    result = run_cli("plot", sac_run, ppo_norm_run, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_user_error(run_cli("plot", sac_run, "--out", tmp_path / "x.pdf"), "--out must name a .png")


def test_train_cli_default_run_dir_and_bullet_json_is_clean(tmp_path: Path):
    """Trains through the real entry point; pybullet's C-level prints must not reach --json output."""
    cmd = [sys.executable, "-m", "smoothrl.cli"]
    args = [
        "train",
        "--algo",
        "ppo",
        "--env",
        "ReacherBulletEnv-v0",
        "--preset",
        "smoke",
        "--timesteps",
        "256",
        "--set",
        "eval_freq=0",
        "--set",
        "eval_episodes=1",
        "--no-progress",
    ]
    done = subprocess.run(cmd + args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "runs" / "ppo" / "ReacherBulletEnv-v0_1"
    assert (run_dir / "model.zip").is_file()
    again = subprocess.run(cmd + args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and (tmp_path / "runs" / "ppo" / "ReacherBulletEnv-v0_2").is_dir()
    ev = subprocess.run(
        cmd + ["eval", str(run_dir), "--episodes", "1", "--json"], capture_output=True, text=True, timeout=300
    )
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["env"] == "ReacherBulletEnv-v0"


def test_eval_controller_baselines():
    result = run_cli(
        "eval",
        "--controller",
        "thermostat",
        "--env",
        "smoothrl/HVACDiscrete-v0",
        "--episodes",
        "1",
        "--set",
        "env_kwargs.episode_days=1",
        "--set",
        "env_kwargs.preset=house_chicago",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["episodes"] == 1 and data["mean_length"] == 96
    for kpi in (
        "tdis_tot",
        "ener_tot",
        "cost_tot",
        "pele_tot",
        "switches_per_day",
        "min_onoff_violations_requested",
        "atvl_tot",
    ):
        assert kpi in data


def test_eval_controller_bad_input(sac_run: Path):
    hvac = ["--env", "smoothrl/HVAC-v0"]
    assert_user_error(run_cli("eval", "--controller", "pi", "--env", "smoothrl/HVACDiscrete-v0"), "modulating plant")
    assert_user_error(run_cli("eval", "--controller", "mpc", *hvac), "unknown controller 'mpc'")
    assert_user_error(run_cli("eval", "--controller", "pi"), "--controller needs --env")
    assert_user_error(run_cli("eval", "--controller", "pi", "--env", "Pendulum-v1"), "needs an HVAC env")
    assert_user_error(run_cli("eval", sac_run, "--controller", "pi", *hvac), "either RUN_DIR or --controller")
    assert_user_error(run_cli("eval", "--controller", "pi", *hvac, "--set", "gamma=1"), "env_kwargs.KEY=VALUE")
    assert_user_error(
        run_cli("eval", "--controller", "pi", *hvac, "--set", "env_kwargs.preset=tower"), "unknown HVAC preset 'tower'"
    )
    assert_user_error(run_cli("eval", sac_run, "--split", "test"), "--split applies to the HVAC envs only")
    assert_user_error(run_cli("eval"), "eval needs RUN_DIR")


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            lambda c: c["hyperparams"].update(lerning_rate=0.1),
            ["'lerning_rate' is not a parameter of sac", "learning_rate"],
        ),
        (lambda c: c.update(n_envz=2), ["unknown key 'n_envz'"]),
        (lambda c: c["hyperparams"].update(batch_size="big"), ["batch_size='big' has the wrong type"]),
        (lambda c: c.update(smooth_reward={3: 0.1}), ["'smooth_reward' is now spelled smoothness_reward"]),
    ],
)
def test_hand_edited_config_is_validated_by_eval_and_resume(broken_copy: Path, edit, fragments):
    """A config.yaml edited by hand goes through the same validation as a new run, on every path."""
    import yaml

    path = broken_copy / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    for args in (["eval", broken_copy], ["train", "--resume", "--run-dir", broken_copy, "--timesteps", "900"]):
        assert_user_error(run_cli(*args), "config.yaml is not a valid run config", *fragments)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "smooth_reward.3=0.1"], "'smooth_reward' is now spelled smoothness_reward"),
        (["--set", "colored_noise_beta=1"], "'colored_noise_beta' is now spelled noise_type=colored with noise_beta"),
    ],
)
def test_old_config_keys_point_to_the_new_spelling(args: list[str], fragment: str, tmp_path: Path):
    assert_user_error(
        run_cli("train", "--algo", "sac", "--env", "Pendulum-v1", *args, "--run-dir", tmp_path / "r"), fragment
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("old", ["--smooth-sigma", "--smooth-samples", "--smooth-mode"])
@pytest.mark.parametrize("command", ["eval", "attack"])
def test_old_cli_options_point_to_the_new_spelling(old: str, command: str, sac_run: Path):
    new = old.replace("smooth", "smoothing")
    assert_user_error(run_cli(command, sac_run, old, "0.1"), f"{old} is now {new}")
    assert_user_error(run_cli(command, sac_run, f"{old}=0.1"), f"{old} is now {new}")


@pytest.fixture(scope="module")
def hvac_pair(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny HVAC runs with the same seed: plain PPO and PPO with the order-1 smoothness loss."""
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train

    root = tmp_path_factory.mktemp("hvac_pair")
    base = ["n_timesteps=1024", "n_envs=4", "eval_freq=0", "checkpoint_freq=0", "eval_episodes=1"]
    plain = train(resolve_config("ppo", "smoothrl/HVAC-v0", "smoke", base), root / "plain", progress_bar=False)
    smooth = train(
        resolve_config("ppo", "smoothrl/HVAC-v0", "smoke", [*base, "action_reg={order: 1, weight: 1.0}"]),
        root / "smooth",
        progress_bar=False,
    )
    return plain, smooth


def test_eval_of_several_runs_puts_each_smooth_run_beside_the_plain_one(hvac_pair):
    plain, smooth = hvac_pair
    result = run_cli("eval", smooth, plain, "--json")  # the reference is the plain run, wherever it is given
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["reference"] == str(plain) and set(data["runs"]) == {str(plain), str(smooth)}
    a, b = data["runs"][str(plain)], data["runs"][str(smooth)]
    change = data["change"][str(smooth)]
    assert {"jerk_rms", "mean_return"} <= set(change)
    for key in ("switches_per_day", "jerk_rms", "mean_return", "tdis_tot", "ener_tot"):
        if a[key] != 0:  # a change relative to nothing is left out, not invented
            assert change[key] == pytest.approx((b[key] - a[key]) / abs(a[key])), key
        else:
            assert key not in change
    single = json.loads(run_cli("eval", smooth, "--json").stdout)
    assert single["mean_return"] == pytest.approx(b["mean_return"])  # the same evaluation as alone
    table = run_cli("eval", plain, smooth)
    assert table.exit_code == 0 and "plain (reference)" in table.stdout and "%)" in table.stdout


def test_plot_of_hvac_runs_draws_the_week_an_engineer_reads(hvac_pair, tmp_path: Path):
    from smoothrl.run.build import load_run
    from smoothrl.run.evaluation import evaluate
    from smoothrl.tools.plotting import hvac_week

    plain, smooth = hvac_pair
    run = load_run(plain)
    week = hvac_week(run)
    steps = 7 * 24 * 4
    assert week["t_zone"].shape == (steps, 1) and week["signal"].shape == (steps, 1)
    assert np.all(week["comfort_low"] < week["comfort_high"]) and np.all(np.abs(week["signal"]) <= 1)
    assert len(np.unique(week["price"])) > 1 and week["hours"][-1] == pytest.approx((steps - 1) * 0.25)
    _, episodes = evaluate(run, episodes=1)
    np.testing.assert_allclose(week["actions"], episodes[0].actions)  # the same episode as `smoothrl eval`
    out = tmp_path / "hvac.png"
    result = run_cli("plot", plain, smooth, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
