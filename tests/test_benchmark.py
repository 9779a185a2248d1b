"""The study skeleton's bookkeeping: trials kept in the repository, seeds pooled with an earlier aggregate,
the HVAC control benchmark read only where it played the same weeks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts.benchlib import bench_controllers, keep_trials, pool_seeds

KEYS = ("a", "b")


def read_fake(run: Path) -> dict | None:
    """A study's reader: the record a fake trial left, nothing for a trial that has not started."""
    path = run / "progress.json"
    return json.loads(path.read_text()) if path.is_file() else None


def fake_trial(sweep: Path, variant: str, seed: int, record: dict | None) -> None:
    run = sweep / variant / f"seed_{seed}"
    run.mkdir(parents=True, exist_ok=True)
    if record is not None:
        (run / "progress.json").write_text(json.dumps(record))


def test_kept_trials_outlive_the_sweep_folder_and_are_never_downgraded(tmp_path):
    sweep, kept = tmp_path / "runs" / "s", tmp_path / "results" / "trials" / "s"
    fake_trial(sweep, "plain", 0, {"finished": True, "steps_done": 100, "ret": 1.0})
    fake_trial(sweep, "plain", 1, {"finished": False, "steps_done": 40, "ret": 0.0})
    fake_trial(sweep, "smooth", 0, None)  # started, nothing to keep yet
    got = keep_trials(sweep, kept, read_fake)
    assert got == {
        "plain": {0: {"finished": True, "steps_done": 100, "ret": 1.0}, 1: read_fake(sweep / "plain/seed_1")}
    }
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*.json")) == [
        "plain/seed_0.json",
        "plain/seed_1.json",
    ]
    # a new machine: the sweep's folder is gone, the study still has every trial
    shutil.rmtree(tmp_path / "runs")
    assert keep_trials(sweep, kept, read_fake) == got
    # the same sweep rerun there: an unfinished rerun does not replace a finished trial, nor a shorter one a longer one
    fake_trial(sweep, "plain", 0, {"finished": False, "steps_done": 150, "ret": 9.0})
    fake_trial(sweep, "plain", 1, {"finished": False, "steps_done": 20, "ret": 9.0})
    assert keep_trials(sweep, kept, read_fake) == got
    # progress is kept: more steps, or the finished trial
    fake_trial(sweep, "plain", 1, {"finished": True, "steps_done": 100, "ret": 2.0})
    assert keep_trials(sweep, kept, read_fake)["plain"][1]["ret"] == 2.0


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.tuples(*(st.floats(-1e3, 1e3, allow_nan=False) for _ in KEYS)), min_size=1, max_size=8),
    split=st.integers(0, 8),
)
def test_pooling_an_earlier_aggregate_with_the_other_seeds_equals_the_direct_statistics(values, split):
    rows = [dict(zip(KEYS, v, strict=True)) for v in values]
    split = min(split, len(rows))
    earlier = None
    if split:
        first = np.array([[r[k] for k in KEYS] for r in rows[:split]])
        earlier = {
            "seeds": list(range(split)),
            "mean": dict(zip(KEYS, first.mean(0), strict=True)),
            "std": first[:, 1].std(),
        }
    trials = dict(enumerate(rows))  # seeds already in the aggregate must not count twice
    pooled = pool_seeds(earlier, trials, KEYS, "b")
    direct = np.array([[r[k] for k in KEYS] for r in rows])
    assert pooled["seeds"] == len(rows) and pooled["seed_list"] == list(range(len(rows)))
    for i, k in enumerate(KEYS):
        assert pooled[k] == pytest.approx(direct[:, i].mean(), rel=1e-9, abs=1e-9)
    assert pooled["b_std"] == pytest.approx(direct[:, 1].std(), rel=1e-6, abs=1e-5)


def test_pooling_nothing_is_refused():
    with pytest.raises(ValueError, match="at least one trial"):
        pool_seeds(None, {}, KEYS, "b")


def test_bench_controllers_only_where_the_benchmark_played_the_same_weeks(tmp_path):
    path = tmp_path / "bench_hvac_control.json"
    assert bench_controllers("smoothrl/HVAC-v0", 10_000, 13, path) == {}  # no benchmark yet
    pi = {"mean_return": -7.5, "episode_returns": [-7.0, -8.0], "episode_start_days": [21, 49]}
    bench = {"settings": {"seed": 10_000, "episodes": 13}, "results": {"HVAC-v0": {"pi": pi}}}
    path.write_text(json.dumps(bench))
    assert bench_controllers("smoothrl/HVAC-v0", 10_000, 13, path) == {"pi": pi}
    assert bench_controllers("HVAC-v0", 10_000, 13, path) == {"pi": pi}
    assert bench_controllers("smoothrl/HVAC-v0", 10_001, 13, path) == {}  # other weeks
    assert bench_controllers("smoothrl/HVAC-v0", 10_000, 2, path) == {}  # a quick benchmark
    assert bench_controllers("smoothrl/EPlus-v0", 10_000, 13, path) == {}  # another plant
