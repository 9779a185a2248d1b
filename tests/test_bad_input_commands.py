"""Every mistake, in every command beyond training: one clear line, exit code 2, and nothing lost.

The same assertions as ``test_bad_input.py`` (exit 2, at most 3 lines, no traceback, the words
naming the problem, no new folder, unchanged checksums of every existing file), for ``export``,
``deploy``, ``bridge``, ``performative``, ``sweep``, ``tune``, ``tune-baseline`` and ``plot``; and
hypothesis drawing bad numbers (non-finite, negative, zero, past their range, not a number at all)
for every numeric option of those commands.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smoothrl.cli import app

runner = CliRunner()
SHIPPED = Path("models/hvac-v0-ppo-mpc/artefact").resolve()
SWEEP = {"base": {"algo": "ppo", "env": "Pendulum-v1", "preset": "smoke", "timesteps": 64}, "seeds": 1}


def checksums(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        if folder.is_dir()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(args: list[str], words: str, tmp_path: Path, protected: list[Path]) -> None:
    before = checksums(*protected)
    listing = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, args)
    output = result.output.strip()
    assert result.exit_code == 2, (result.exit_code, output, result.exception)
    assert "Traceback" not in output and len(output.splitlines()) <= 3, output
    assert words.lower() in output.lower(), output
    assert checksums(*protected) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no new file or folder


# -- setups: files a case needs (made in tmp, never the originals) ---------------------------


def sweep_file(tmp: Path, **changes) -> str:
    data = yaml.safe_load(yaml.safe_dump(SWEEP))
    for key, value in changes.items():
        data[key] = value
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def sweep_variant_sets_seed(tmp: Path) -> str:
    return sweep_file(tmp, variants=[{"name": "a", "set": {"seed": 3}}])


def sweep_negative_seed(tmp: Path) -> str:
    return sweep_file(tmp, seeds=[0, -1], variants=[{"name": "a"}])


def sweep_huge_seed(tmp: Path) -> str:
    return sweep_file(tmp, seeds=[2**32], variants=[{"name": "a"}])


def sweep_too_many_seeds(tmp: Path) -> str:
    return sweep_file(tmp, seeds=10**6, variants=[{"name": "a"}])


def sweep_render_human(tmp: Path) -> str:
    return sweep_file(tmp, variants=[{"name": "a", "set": {"env_kwargs": {"render_mode": "human"}}}])


def sweep_env_kwarg_unknown(tmp: Path) -> str:
    return sweep_file(tmp, variants=[{"name": "a", "set": {"env_kwargs": {"gravity": "strong"}}}])


def sweep_ok(tmp: Path) -> str:
    return sweep_file(tmp, variants=[{"name": "a"}])


def training_run(tmp: Path) -> str:
    run = tmp / "trained"
    run.mkdir()
    (run / "config.yaml").write_text("algo: ppo\nenv: Pendulum-v1\n")
    (run / "model.zip").write_bytes(b"weights")
    return str(run)


def cut_log(tmp: Path) -> str:
    path = tmp / "cut.csv"
    path.write_bytes(b"\x00\xff" * 50)
    return str(path)


def performative_file_dir(tmp: Path) -> str:
    folder = tmp / "perf"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    return str(folder)


def unfinished_deep_run(tmp: Path) -> str:
    folder = tmp / "unfinished"
    folder.mkdir()
    (folder / "performative.yaml").write_text("method: deep\nenv: smoothrl/PerformativeGridworld-v0\nalgo: ppo\n")
    return str(folder)


SETUPS: dict[str, Callable[[Path], str]] = {
    f.__name__: f
    for f in (
        sweep_variant_sets_seed,
        sweep_negative_seed,
        sweep_huge_seed,
        sweep_too_many_seeds,
        sweep_render_human,
        sweep_env_kwarg_unknown,
        sweep_ok,
        training_run,
        cut_log,
        performative_file_dir,
        unfinished_deep_run,
    )
}

BRIDGE = ["bridge", "pybullet", "--env", "Pendulum-v1"]
PLANT = ["bridge", "modbus-hvac"]
BACNET = ["bridge", "bacnet-hvac"]
ROS2 = ["bridge", "ros2", "--env", "Pendulum-v1"]
DEPLOY = ["deploy", str(SHIPPED), "--hardware", "modbus_hvac_office"]
PERF = ["performative", "--run-dir", "{tmp}/p", "--no-progress"]
TUNE = ["tune", "--algo", "ppo", "--env", "Pendulum-v1", "--backend", "local", "--out", "{tmp}/t"]

CASES: list[tuple[str, list[str], str]] = [
    # export
    ("export-seed-negative", ["export", "{sac}", "--out", "{tmp}/a", "--seed", "-1"], "--seed"),
    ("export-seed-huge", ["export", "{sac}", "--out", "{tmp}/a", "--seed", "4294967296"], "--seed"),
    ("export-certify-samples", ["export", "{sac}", "--out", "{tmp}/a", "--certify-samples", "0"], "--certify-samples"),
    ("export-certify-states", ["export", "{sac}", "--out", "{tmp}/a", "--certify-states", "-3"], "--certify-states"),
    ("export-config-other-env", ["export", "{edited}", "--out", "{tmp}/a"], "config.yaml names"),
    ("export-not-a-run", ["export", "{tmp}", "--out", "{tmp}/a"], "config.yaml"),
    # deploy
    ("deploy-duration-nan", [*DEPLOY, "--duration", "nan"], "--duration"),
    ("deploy-duration-inf", [*DEPLOY, "--duration", "inf"], "--duration"),
    ("deploy-duration-zero", [*DEPLOY, "--duration", "0"], "--duration"),
    ("deploy-duration-negative", [*DEPLOY, "--duration", "-5"], "--duration"),
    ("deploy-speedup-nan", [*DEPLOY, "--speedup", "nan"], "--speedup"),
    ("deploy-speedup-zero", [*DEPLOY, "--speedup", "0"], "--speedup"),
    ("deploy-speedup-inf", [*DEPLOY, "--speedup", "inf"], "--speedup"),
    ("deploy-profile-missing", ["deploy", str(SHIPPED), "--hardware", "{tmp}/none.yaml"], "cannot read"),
    ("deploy-artefact-missing", ["deploy", "{tmp}/none", "--hardware", "modbus_hvac_office"], "manifest"),
    ("deploy-log-is-a-run", [*DEPLOY, "--log", "{training_run}/config.yaml"], "already exists"),
    # bridges
    ("bridge-port-huge", [*BRIDGE, "--port", "70000"], "--port"),
    ("bridge-port-zero", [*BRIDGE, "--port", "0"], "--port"),
    ("bridge-port-negative", [*BRIDGE, "--port", "-1"], "--port"),
    ("bridge-seed-negative", [*BRIDGE, "--seed", "-1"], "--seed"),
    ("bridge-seed-huge", [*BRIDGE, "--seed", "4294967296"], "--seed"),
    ("bridge-episodes-zero", [*BRIDGE, "--episodes", "0"], "--episodes"),
    ("bridge-episodes-negative", [*BRIDGE, "--episodes", "-1"], "--episodes"),
    ("bridge-env-unknown", ["bridge", "pybullet", "--env", "Pendulm-v1"], "Pendulum-v1"),
    ("plant-port-huge", [*PLANT, "--port", "70000"], "--port"),
    ("plant-speedup-nan", [*PLANT, "--speedup", "nan"], "--speedup"),
    ("plant-speedup-zero", [*PLANT, "--speedup", "0"], "--speedup"),
    ("plant-seed-negative", [*PLANT, "--seed", "-1"], "--seed"),
    ("plant-split", [*PLANT, "--split", "validation"], "--split"),
    ("plant-env", [*PLANT, "--env", "smoothrl/HVACDiscrete-v0"], "--env"),
    ("bacnet-port-huge", [*BACNET, "--port", "70000"], "--port"),
    ("bacnet-device-negative", [*BACNET, "--device", "-1"], "--device"),
    ("bacnet-device-wildcard", [*BACNET, "--device", "4194303"], "--device"),
    ("bacnet-speedup-inf", [*BACNET, "--speedup", "inf"], "--speedup"),
    ("bacnet-fallback", [*BACNET, "--fallback", "mpc-oracle"], "--fallback"),
    ("bacnet-env", [*BACNET, "--env", "smoothrl/HVACDiscrete-v0"], "--env"),
    ("ros2-domain-huge", [*ROS2, "--domain-id", "233"], "--domain-id"),
    ("ros2-domain-negative", [*ROS2, "--domain-id", "-1"], "--domain-id"),
    ("ros2-episodes-zero", [*ROS2, "--episodes", "0"], "--episodes"),
    ("ros2-seed-huge", [*ROS2, "--seed", "4294967296"], "--seed"),
    ("ros2-env-unknown", ["bridge", "ros2", "--env", "Pendulm-v1"], "Pendulum-v1"),
    # performative
    ("perf-lam-huge", [*PERF, "--lam", "1e308"], "--lam"),
    ("perf-beta-huge", [*PERF, "--lam", "1", "--beta", "1e308"], "--beta"),
    ("perf-eta-inf", [*PERF, "--method", "rga", "--lam", "1", "--eta", "inf"], "--eta"),
    ("perf-eta-huge", [*PERF, "--method", "rga", "--lam", "1", "--eta", "1e300"], "--eta"),
    ("perf-samples-huge", [*PERF, "--method", "finite", "--lam", "1", "--samples", "10000000"], "--samples"),
    ("perf-rounds-huge", [*PERF, "--lam", "1", "--rounds", "100000000"], "--rounds"),
    ("perf-seed-negative", [*PERF, "--lam", "1", "--seed", "-1"], "--seed"),
    ("perf-episodes-zero", [*PERF, "--method", "deep", "--algo", "ppo", "--episodes", "0"], "--episodes"),
    ("perf-steps-zero", [*PERF, "--method", "deep", "--algo", "ppo", "--steps", "0"], "--steps"),
    (
        "perf-set-beta-negative",
        [*PERF, "--method", "deep", "--algo", "ppo", "--set", "env_kwargs.beta=-5"],
        "env_kwargs.beta",
    ),
    (
        "perf-set-adaptation",
        [*PERF, "--method", "deep", "--algo", "ppo", "--set", "env_kwargs.adaptation=2"],
        "env_kwargs.adaptation",
    ),
    ("perf-set-tabular", [*PERF, "--lam", "1", "--set", "gamma=0.5"], "--set"),
    ("perf-resume-no-dir", ["performative", "--resume"], "--run-dir"),
    ("perf-resume-nothing", ["performative", "--resume", "--run-dir", "{tmp}/none"], "no performative run"),
    ("perf-resume-overwrite", [*PERF, "--lam", "1", "--resume", "--overwrite"], "--resume"),
    ("perf-into-files", ["performative", "--lam", "1", "--run-dir", "{performative_file_dir}"], "no performative"),
    ("perf-unfinished", ["performative", "--lam", "1", "--run-dir", "{unfinished_deep_run}"], "--resume"),
    ("perf-resume-damaged", ["performative", "--resume", "--run-dir", "{unfinished_deep_run}"], "no finished round"),
    # sweep
    ("sweep-variant-seed", ["sweep", "{sweep_variant_sets_seed}", "--backend", "local"], "'seed'"),
    ("sweep-seed-negative", ["sweep", "{sweep_negative_seed}", "--backend", "local"], "seed"),
    ("sweep-seed-huge", ["sweep", "{sweep_huge_seed}", "--backend", "local"], "4294967295"),
    ("sweep-seeds-count", ["sweep", "{sweep_too_many_seeds}", "--backend", "local"], "seeds"),
    ("sweep-render-human", ["sweep", "{sweep_render_human}", "--backend", "local"], "render_mode"),
    ("sweep-env-kwarg", ["sweep", "{sweep_env_kwarg_unknown}", "--backend", "local"], "does not start"),
    ("sweep-out-run", ["sweep", "{sweep_ok}", "--backend", "local", "--out", "{training_run}"], "training run"),
    ("sweep-max-parallel", ["sweep", "{sweep_ok}", "--backend", "local", "--max-parallel", "0"], "--max-parallel"),
    ("sweep-backend", ["sweep", "{sweep_ok}", "--backend", "slurm"], "--backend"),
    ("sweep-missing", ["sweep", "{tmp}/none.yaml"], "not found"),
    # tune
    ("tune-out-run", [*TUNE[:-1], "{training_run}"], "training run"),
    ("tune-divide-by-zero", [*TUNE, "--objective", "return / 0"], "divides by zero"),
    ("tune-overflow", [*TUNE, "--objective", "9 ** 9 ** 9"], "overflows"),
    ("tune-complex", [*TUNE, "--objective", "(-1 - jerk_rms * jerk_rms) ** 0.5"], "not a finite real"),
    ("tune-seed-negative", [*TUNE, "--seed", "-1"], "--seed"),
    ("tune-timesteps-zero", [*TUNE, "--timesteps", "0"], "--timesteps"),
    ("tune-evals-zero", [*TUNE, "--evals", "0"], "--evals"),
    ("tune-episodes-zero", [*TUNE, "--episodes", "0"], "--episodes"),
    ("tune-max-parallel", [*TUNE, "--max-parallel", "0"], "--max-parallel"),
    ("tune-baseline-seed", ["tune-baseline", "--env", "smoothrl/HVAC-v0", "--seed", "-1"], "--seed"),
    ("tune-baseline-env", ["tune-baseline", "--env", "Pendulum-v1"], "Pendulum-v1"),
    ("tune-baseline-trials", ["tune-baseline", "--env", "smoothrl/HVAC-v0", "--trials", "0"], "--trials"),
    ("tune-baseline-controller", ["tune-baseline", "--env", "smoothrl/HVAC-v0", "--controller", "mpc"], "--controller"),
    (
        "tune-baseline-out-under-a-file",
        ["tune-baseline", "--env", "smoothrl/HVAC-v0", "--out", "{cut_log}/b.yaml"],
        "--out",
    ),
    ("perf-delay-zero", [*PERF, "--method", "mdrr", "--lam", "1", "--samples", "10", "--delay", "0"], "--delay"),
    ("sweep-seed-unknown", ["sweep", "{sweep_ok}", "--backend", "local", "--seed", "7"], "no variant or seed 7"),
    ("sweep-variant-unknown", ["sweep", "{sweep_ok}", "--backend", "local", "--variant", "b"], "no variant or seed b"),
    ("deploy-log-under-a-file", [*DEPLOY, "--log", "{cut_log}/log.csv"], "--log"),
    ("deploy-hardware-folder", ["deploy", str(SHIPPED), "--hardware", "{tmp}"], "cannot read"),
    # plot
    ("plot-deploy-log-binary", ["plot", "--deploy-log", "{cut_log}", "--out", "{tmp}/d.png"], "deploy log"),
    ("plot-deploy-log-missing", ["plot", "--deploy-log", "{tmp}/none.csv", "--out", "{tmp}/d.png"], "cannot read"),
    ("plot-out-not-png", ["plot", "--deploy-log", "{cut_log}", "--out", "{tmp}/d.jpg"], "png"),
]


@pytest.fixture(scope="module")
def edited_run(sac_run: Path, tmp_path_factory) -> Path:
    run = Path(shutil.copytree(sac_run, tmp_path_factory.mktemp("edited") / "run"))
    text = (run / "config.yaml").read_text().replace("env: Pendulum-v1", "env: MountainCarContinuous-v0")
    (run / "config.yaml").write_text(text)
    return run


def test_the_cases_are_many_and_each_is_named_once():
    from tests.test_bad_input import CASES as TRAINING_CASES

    names = [name for name, _, _ in CASES]
    assert len(set(names)) == len(names)
    assert len(names) + len(TRAINING_CASES) + EXAMPLES * len(NUMERIC) >= 250  # the numeric ones drawn by hypothesis


@pytest.mark.parametrize(("name", "argv", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_clear_line_and_changes_nothing(
    name: str, argv: list[str], words: str, sac_run: Path, edited_run: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    values = {"tmp": str(tmp_path), "sac": str(sac_run), "edited": str(edited_run)}
    for key, setup in SETUPS.items():
        if any("{" + key + "}" in a for a in argv):
            values[key] = setup(tmp_path)
    args = [a.format(**values) for a in argv]
    protected = [sac_run, edited_run, SHIPPED.parent, *(Path(v) for k, v in values.items() if k in SETUPS)]
    assert_refused(args, words, tmp_path, [p for p in protected if p.is_dir()])


def test_a_deploy_log_cut_mid_row_still_plots(tmp_path: Path):
    """A killed deploy's log ends mid-row: the rows before it are drawn, the cut one left out."""
    log = tmp_path / "log.csv"
    head = (
        "period,utc,wall_s,plant_s,phase,period_error_ms,inference_ms,obs_age_ms,obs:x,raw:0,cmd:0,interventions,estop"
    )
    rows = [f"{k},2026-12-06T00:00:00Z,{k * 0.05},{k * 0.05},policy,0.1,0.2,0.0,{k / 10},0.5,0.5,0," for k in range(20)]
    log.write_text("\n".join([head, *rows]) + "\n20,2026-12-06T00:00:01Z,1.0,1.")
    result = runner.invoke(app, ["plot", "--deploy-log", str(log), "--out", str(tmp_path / "d.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


# -- hypothesis: bad numbers for every numeric option -----------------------------------------

#: (command line before the option, option, how the value must be: "count" (whole >= 1), "seed",
#: "port", "positive" (finite > 0), "nonnegative" (finite >= 0, bounded))
NUMERIC: list[tuple[list[str], str, str]] = [
    (BRIDGE, "--port", "port"),
    (BRIDGE, "--seed", "seed"),
    (BRIDGE, "--episodes", "count"),
    (PLANT, "--port", "port"),
    (PLANT, "--seed", "seed"),
    (PLANT, "--speedup", "positive"),
    (DEPLOY, "--duration", "positive"),
    (DEPLOY, "--speedup", "positive"),
    (["export", str(SHIPPED.parent), "--out", "{tmp}/a"], "--seed", "seed"),
    (["export", str(SHIPPED.parent), "--out", "{tmp}/a"], "--certify-samples", "count"),
    ([*PERF, "--method", "rr"], "--lam", "nonnegative"),
    ([*PERF, "--lam", "1"], "--beta", "nonnegative"),
    ([*PERF, "--method", "rga", "--lam", "1"], "--eta", "positive"),
    ([*PERF, "--lam", "1"], "--rounds", "count"),
    ([*PERF, "--lam", "1"], "--adaptation", "unit"),
    ([*PERF, "--lam", "1"], "--seed", "seed"),
    (TUNE, "--trials", "count"),
    (TUNE, "--timesteps", "count"),
    (TUNE, "--evals", "count"),
    (TUNE, "--episodes", "count"),
    (TUNE, "--seed", "seed"),
    (TUNE, "--max-parallel", "count"),
]


#: bad values hypothesis draws per numeric option
EXAMPLES = 6


def bad_values(kind: str) -> st.SearchStrategy[str]:
    """Values outside what ``kind`` allows, as a user would type them."""
    words = st.sampled_from(["abc", "", "1,5", "0x", "--"])
    if kind in ("count", "seed", "port"):
        low = {"count": 0, "seed": -1, "port": 0}[kind]
        high = {"count": None, "seed": 2**32, "port": 65536}[kind]
        numbers = (
            st.integers(max_value=low)
            if high is None
            else st.one_of(st.integers(max_value=low), st.integers(min_value=high, max_value=2**80))
        )
        fractions = st.floats(min_value=0.1, max_value=1e3).filter(lambda x: not x.is_integer()).map(repr)
        return st.one_of(numbers.map(str), fractions, words, st.sampled_from(["nan", "inf", "-inf"]))
    non_finite = st.sampled_from(["nan", "inf", "-inf", "1e309"])
    if kind == "unit":
        outside = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0001, max_value=1e300)).map(repr)
    elif kind == "positive":
        outside = st.floats(max_value=0.0, allow_infinity=False, allow_nan=False).map(repr)
    else:
        outside = st.one_of(st.floats(max_value=-1e-9, allow_infinity=False), st.floats(min_value=1e7, max_value=1e300))
        outside = outside.map(repr)
    return st.one_of(non_finite, outside, words)


@pytest.mark.parametrize(("base", "option", "kind"), NUMERIC, ids=[f"{b[0]}-{b[1]}{o}" for b, o, _ in NUMERIC])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_bad_number_in_any_numeric_option_is_one_line(base, option, kind, data, tmp_path: Path):
    value = data.draw(bad_values(kind))
    args = [a.replace("{tmp}", str(tmp_path)) for a in base] + [f"{option}={value}"]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, args)
    output = result.output.strip()
    assert result.exit_code == 2, (args, result.exit_code, output, result.exception)
    assert "Traceback" not in output and len(output.splitlines()) <= 3, output
    assert option in output or option.lstrip("-") in output, (option, output)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
