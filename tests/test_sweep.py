"""Sweeps on Ray Tune and a local pool, aggregated with rliable; hyperparameter search with Optuna."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from scripts.benchlib import loopback_cluster
from smoothrl.cli import app
from smoothrl.experiments.report import aggregate
from smoothrl.experiments.sweep import load_sweep, sweep

pytest.importorskip("ray")
pytest.importorskip("optuna")
pytest.importorskip("rliable")

runner = CliRunner()

TINY = {
    "name": "tiny",
    "base": {"algo": "ppo", "env": "Pendulum-v1", "preset": "smoke", "timesteps": 256, "episodes": 1},
    "variants": [{"name": "plain"}, {"name": "smooth", "set": {"action_reg": {"order": 1, "weight": 1.0}}}],
    "seeds": 2,
    "metrics": ["return", "jerk_rms"],
}


def write_sweep(folder: Path, data: dict, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_rows(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(out / "results.csv") as f:
        return {(r["variant"], r["seed"]): r for r in csv.DictReader(f)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tiny_sweep_same_numbers_on_ray_and_local_then_resume_skips(tmp_path):
    path = write_sweep(tmp_path, TINY)
    spec = load_sweep(path)
    local = sweep(spec, tmp_path / "local", backend="local", max_parallel=2)
    on_ray = sweep(spec, tmp_path / "ray", backend="ray", max_parallel=2)
    assert len(local.records) == len(on_ray.records) == 4
    a, b = read_rows(tmp_path / "local"), read_rows(tmp_path / "ray")
    assert set(a) == {("plain", "0"), ("plain", "1"), ("smooth", "0"), ("smooth", "1")}
    for key in a:
        assert a[key]["status"] == b[key]["status"] == "ok"
        for metric in ("mean_return", "jerk_rms"):
            assert a[key][metric] == b[key][metric], (key, metric)
    assert local.summary == on_ray.summary
    for out in (tmp_path / "local", tmp_path / "ray"):
        summary = (out / "summary.md").read_text()
        assert "| plain |" in summary and "| smooth |" in summary and "## jerk_rms" in summary
        assert (out / "sweep.png").stat().st_size > 0
        for variant in ("plain", "smooth"):  # every trial is a run directory TensorBoard sees under OUT
            for seed in (0, 1):
                run = out / variant / f"seed_{seed}"
                assert (run / "model.zip").exists() and list((run / "tb").glob("run_*"))
    # resume: the same sweep again skips every finished trial and rewrites nothing of theirs
    trial = tmp_path / "local" / "plain" / "seed_0" / "trial.json"
    before = trial.stat().st_mtime_ns
    again = sweep(spec, tmp_path / "local", backend="local", max_parallel=2)
    assert again.skipped == 4 and trial.stat().st_mtime_ns == before
    # a trial that finished but stopped before its trial.json keeps its run: nothing is retrained
    (tmp_path / "local" / "smooth" / "seed_1" / "trial.json").unlink()
    model = tmp_path / "local" / "smooth" / "seed_1" / "model.zip"
    model_before = model.stat().st_mtime_ns
    rerun = sweep(spec, tmp_path / "local", backend="local", max_parallel=2)
    assert rerun.skipped == 3 and model.stat().st_mtime_ns == model_before
    assert all(read_rows(tmp_path / "local")[k][m] == a[k][m] for k in a for m in ("mean_return", "jerk_rms"))
    # a trial whose run was made with another config (the sweep file changed under it) starts over
    run = tmp_path / "local" / "plain" / "seed_1"
    (run / "trial.json").unlink()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["hyperparams"]["learning_rate"] = 0.5
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    sweep(spec, tmp_path / "local", backend="local", max_parallel=2)
    assert json.loads((run / "trial.json").read_text())["resumed_from"] == 0
    assert read_rows(tmp_path / "local")[("plain", "1")]["mean_return"] == a[("plain", "1")]["mean_return"]
    # another sweep into the same folder is refused, nothing changes
    other = write_sweep(tmp_path, {**TINY, "seeds": 3}, "other.yaml")
    result = runner.invoke(app, ["sweep", str(other), "--out", str(tmp_path / "local"), "--backend", "local"])
    assert result.exit_code == 2 and "another sweep" in result.output


def test_interrupted_trial_continues_from_its_latest_checkpoint(tmp_path):
    data = {**TINY, "base": {**TINY["base"], "timesteps": 512, "set": {"checkpoint_freq": 256}}, "seeds": 1}
    data["variants"] = data["variants"][:1]
    spec = load_sweep(write_sweep(tmp_path, data))
    out = tmp_path / "out"
    sweep(spec, out, backend="local")
    run = out / "plain" / "seed_0"
    assert json.loads((run / "trial.json").read_text())["resumed_from"] == 0
    steps = sorted(int(p.stem.split("_")[-2]) for p in (run / "checkpoints").glob("model_*_steps.zip"))
    assert steps[0] == 256 and steps[-1] >= 512
    # what an interruption after the first checkpoint leaves: that checkpoint, no final files
    for name in ("trial.json", "eval.json", "model.zip", "vecnormalize.pkl"):
        (run / name).unlink(missing_ok=True)
    for path in (run / "checkpoints").iterdir():
        if f"_{steps[0]}_steps" not in path.name:
            path.unlink()
    result = sweep(spec, out, backend="local")
    record = json.loads((run / "trial.json").read_text())
    assert result.skipped == 0 and record["status"] == "ok" and record["resumed_from"] == 256
    assert (run / "model.zip").is_file() and (run / "eval.json").is_file()
    from smoothrl.run.build import load_run

    assert load_run(run).model.num_timesteps >= 512  # the steps done before the interruption count


def test_a_subset_of_variants_and_seeds_runs_alone_then_the_rest(tmp_path):
    path = write_sweep(tmp_path, TINY)
    out = tmp_path / "out"
    args = ["sweep", str(path), "--out", str(out), "--backend", "local"]
    result = runner.invoke(app, [*args, "--variant", "smooth", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "1 of 4 trials selected" in " ".join(result.output.split())
    assert set(read_rows(out)) == {("smooth", "1")}
    assert not (out / "plain").exists() and not (out / "smooth" / "seed_0").exists()
    # the rest of the same sweep in the same folder: the finished trial is kept, the others run
    trial = out / "smooth" / "seed_1" / "trial.json"
    before = trial.stat().st_mtime_ns
    rest = sweep(load_sweep(path), out, backend="local", only_seeds=[0, 1], sweep_text=path.read_text())
    assert rest.skipped == 1 and trial.stat().st_mtime_ns == before
    assert set(read_rows(out)) == {(v, s) for v in ("plain", "smooth") for s in ("0", "1")}
    # a variant or seed the sweep does not have: one line, nothing runs
    for option, value in (("--variant", "smoth"), ("--seed", "7")):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / "other"), option, value])
        assert result.exit_code == 2 and f"no variant or seed {value}" in result.output, result.output
        assert not (tmp_path / "other").exists()


def test_failing_variant_is_reported_and_the_rest_complete(tmp_path):
    data = {
        **TINY,
        # a config that validates and an env that starts, but a model SB3 refuses to build (one transition per update)
        "variants": [{"name": "good"}, {"name": "broken", "set": {"n_steps": 1, "n_envs": 1}}],
        "seeds": 1,
        "metrics": ["return"],
    }
    path = write_sweep(tmp_path, data)
    result = runner.invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out"), "--backend", "local"])
    assert result.exit_code == 1, result.output
    assert "failed broken seed 0" in result.output.replace("\n", " ")
    rows = read_rows(tmp_path / "out")
    assert rows[("good", "0")]["status"] == "ok" and rows[("broken", "0")]["status"] == "failed"
    assert "n_steps" in rows[("broken", "0")]["error"]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Failed trials" in summary and "broken seed 0" in summary and "| good |" in summary


def test_aggregation_matches_rliable_and_a_known_iqm():
    from rliable import library
    from rliable import metrics as rly

    rng = np.random.default_rng(0)
    values = {"a": rng.normal(0, 1, 8), "b": rng.normal(1, 2, 8)}
    records = [
        {"variant": v, "seed": i, "status": "ok", "mean_return": float(x)}
        for v, xs in values.items()
        for i, x in enumerate(xs)
    ]
    records.append({"variant": "a", "seed": 99, "status": "failed", "mean_return": 1e9})  # failed trials do not count
    ours = aggregate(records, ["a", "b"], ["mean_return"])
    scores = {v: xs[:, None] for v, xs in values.items()}
    np.random.seed(0)  # rliable's bootstrap draws from numpy's global generator
    points, intervals = library.get_interval_estimates(
        scores, lambda x: np.array([rly.aggregate_iqm(x)]), reps=2000, random_state=np.random.RandomState(0)
    )
    assert aggregate(records, ["a", "b"], ["mean_return"]) == ours  # reproducible
    for v in values:
        row = ours["metrics"]["mean_return"][v]
        assert row["iqm"] == pytest.approx(points[v][0])
        assert row["iqm"] == pytest.approx(stats.trim_mean(values[v], 0.25))  # IQM of 8: the mean of the middle 4
        assert (row["low"], row["high"]) == pytest.approx(tuple(intervals[v][:, 0]))
        assert row["n"] == 8
    expected = rly.probability_of_improvement(values["b"][:, None], values["a"][:, None])
    assert ours["improvement"]["b"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"epochs": 3}, "epochs"),
        ({"variants": None, "grid": {}}, "grid"),
        ({"variants": None, "grid": {"learning_rate": []}}, "no values"),
        ({"variants": []}, "empty"),
        ({"metrics": ["return", "tdis_tot"]}, "unknown metric 'tdis_tot'"),
        ({"metrics": ["nope"]}, "unknown metric"),
        ({"base": {**TINY["base"], "algo": "nope"}}, "nope"),
        ({"variants": [{"name": "a", "set": {"lerning_rate": 1}}]}, "lerning_rate"),
        ({"variants": [{"name": "a/b"}]}, "variant name"),
        ({"seeds": 0}, "seeds"),
    ],
)
def test_bad_sweep_files_one_line_exit_2(tmp_path, change, words):
    data = {k: v for k, v in {**TINY, **change}.items() if v is not None}
    path = write_sweep(tmp_path, data)
    result = runner.invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out"), "--backend", "local"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "out").exists()


def test_unreachable_address_and_missing_file_one_line_exit_2(tmp_path):
    path = write_sweep(tmp_path, TINY)
    port = free_port()
    result = runner.invoke(app, ["sweep", str(path), "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and f"no Ray head at 127.0.0.1:{port}" in result.output
    result = runner.invoke(app, ["sweep", str(path), "--address", "nonsense", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
    result = runner.invoke(app, ["sweep", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "not found" in result.output
    assert not (tmp_path / "o").exists()


def test_grid_expands_to_every_combination(tmp_path):
    data = {**TINY, "variants": None, "grid": {"learning_rate": [0.001, 0.0003], "n_epochs": [1, 2]}}
    spec = load_sweep(write_sweep(tmp_path, {k: v for k, v in data.items() if v is not None}))
    names = [v.name for v in spec.expanded()]
    assert len(names) == 4 and len(set(names)) == 4
    assert {tuple(sorted(v.set.items())) for v in spec.expanded()} == {
        (("learning_rate", lr), ("n_epochs", n)) for lr in (0.001, 0.0003) for n in (1, 2)
    }


def test_real_cluster_head_and_worker_on_loopback_spread_the_trials(tmp_path):
    data = {**TINY, "seeds": 1, "metrics": ["return"], "resources": {"cpu": 1}}
    path = write_sweep(tmp_path, data)
    with loopback_cluster(nodes=2, cpus_per_node=1) as address:
        result = runner.invoke(
            app, ["sweep", str(path), "--address", address, "--max-parallel", "2", "--out", str(tmp_path / "c")]
        )
        assert result.exit_code == 0, result.output
        nodes = {
            json.loads((tmp_path / "c" / v / "seed_0" / "trial.json").read_text())["node"] for v in ("plain", "smooth")
        }
        assert len(nodes) == 2  # one CPU per node, two trials at once: one on each node
    port = int(address.rsplit(":", 1)[1])
    with pytest.raises(OSError):  # the cluster is gone
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_tune_pruning_plumbing_prunes_trials_below_the_median(tmp_path, monkeypatch):
    from smoothrl.experiments import tuning

    def fake(spec, params, objective, report, metrics=None):
        value = -float(len(calls))  # each trial worse than the last: from the third on, below the median
        calls.append(params)
        for step in range(1, spec.evals + 1):
            if not report(step, value):
                break
        return value

    calls: list = []
    monkeypatch.setattr(tuning, "run_trial", fake)
    spec = tuning.TuneSpec("ppo", "Pendulum-v1", trials=5, timesteps=100, evals=3, preset="smoke")
    best, records = tuning.tune(spec, tmp_path / "t", backend="local")
    assert [r["state"] for r in records] == ["complete", "complete", "pruned", "pruned", "pruned"]
    assert best["Pendulum-v1"] == {**best["Pendulum-v1"], **records[0]["params"]}


def test_tune_runs_four_trials_with_pruning_and_writes_a_loadable_preset(tmp_path):
    from smoothrl.run.overrides import build_config

    out = tmp_path / "tune"
    result = runner.invoke(app, ["tune", "--algo", "ppo", "--env", "Pendulum-v1", "--preset", "smoke", "--trials", "4",
                                 "--timesteps", "1024", "--evals", "2", "--episodes", "1", "--backend", "local",
                                 "--objective", "return - 10 * jerk_rms", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["state"] for r in rows} <= {"complete", "pruned"}
    preset = yaml.safe_load((out / "best.yaml").read_text())
    entry = preset["Pendulum-v1"]
    best = max((r for r in rows if r["state"] == "complete"), key=lambda r: float(r["objective"]))
    assert {k: entry[k] for k in json.loads(best["params"])} == json.loads(best["params"])
    config = build_config("ppo", "Pendulum-v1", None, entry)  # the entry is a valid agents/ppo.yaml entry
    assert config.n_timesteps == 1024 and config.hyperparams["learning_rate"] == entry["learning_rate"]
    again = runner.invoke(app, ["tune", "--algo", "ppo", "--env", "Pendulum-v1", "--trials", "1", "--out", str(out)])
    assert again.exit_code == 2 and "already holds" in again.output


def test_tune_on_ray_writes_its_trials(tmp_path):
    out = tmp_path / "tune"
    result = runner.invoke(app, ["tune", "--algo", "ppo", "--env", "Pendulum-v1", "--preset", "smoke", "--trials", "4",
                                 "--timesteps", "512", "--evals", "2", "--episodes", "1", "--backend", "ray",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["state"] for r in rows} <= {"complete", "pruned"}
    assert "Pendulum-v1" in yaml.safe_load((out / "best.yaml").read_text())


@pytest.mark.parametrize(
    "args, words",
    [
        (["--objective", "return +"], "arithmetic"),
        (["--objective", "return - tdis_tot"], "'tdis_tot'"),
        (["--objective", "__import__('os')"], "numbers, metric names"),
        (["--sampler", "grid"], "--sampler"),
        (["--pruner", "hyperband"], "--pruner"),
        (["--trials", "0"], "--trials"),
        (["--algo", "sdqn"], "search space"),
    ],
)
def test_tune_bad_settings_one_line_exit_2(tmp_path, args, words):
    base = {"--algo": "ppo", "--env": "Pendulum-v1", "--backend": "local", "--out": str(tmp_path / "t")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [x for kv in base.items() for x in kv]
    result = runner.invoke(app, ["tune", *flat])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output
    assert not (tmp_path / "t").exists()


def test_report_summarizes_what_finished_and_runs_nothing(tmp_path):
    data = {**TINY, "seeds": 1, "metrics": ["return"]}
    path = write_sweep(tmp_path, data)
    out = tmp_path / "out"
    empty = runner.invoke(app, ["sweep", str(path), "--out", str(out), "--backend", "local", "--report"])
    assert empty.exit_code == 0, empty.output
    assert "0 of 2 trials finished so far" in empty.output and not (out / "plain" / "seed_0").exists()
    assert "0 of 0 trials finished" in (out / "summary.md").read_text()


def test_on_ray_a_trial_stopped_early_is_told_to_the_sampler_as_pruned():
    """As Optuna's own pruner tells it (local backend), not as complete with its last intermediate objective."""
    import optuna

    from smoothrl.experiments.ray_search import PruningOptunaSearch
    from smoothrl.experiments.tuning import DefineByRun

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=0)
    search = PruningOptunaSearch(2, space=DefineByRun("ppo"), metric="objective", mode="max", sampler=sampler)
    for trial, evaluation in (("stopped", 1), ("complete", 2)):
        assert set(search.suggest(trial)) >= {"learning_rate", "n_steps"}
        search.on_trial_complete(trial, {"objective": -5.0, "evaluation": evaluation})
    search.suggest("failed")
    search.on_trial_complete("failed", None, error=True)
    assert [t.state.name for t in search._ot_study.trials] == ["PRUNED", "COMPLETE", "FAIL"]
