"""The deployment runtime: safety filter invariants, the loop's watchdog and faults, the sim
backend against ``smoothrl eval``, a runtime without torch, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smoothrl.cli import app
from smoothrl.hardware.artefact import Artefact
from smoothrl.hardware.interface import Channels, HardwareInterface
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import parse_profile
from smoothrl.hardware.safety import SafetyFilter

TOL = 1e-9


# --------------------------------------------------------------------------------------------
# the safety filter

policy_outputs = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-3, max_value=3),
        st.sampled_from([1e300, -1e300, 0.0, 2.0, -2.0]),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(
    outputs=policy_outputs,
    rate=st.one_of(st.none(), st.floats(min_value=0.01, max_value=2.0)),
    jerk=st.one_of(st.none(), st.floats(min_value=0.001, max_value=1.0)),
    alpha=st.one_of(st.none(), st.floats(min_value=0.05, max_value=1.0)),
    span=st.floats(min_value=0.1, max_value=10.0),
)
def test_filtered_commands_never_break_bounds_rate_or_jerk(outputs, rate, jerk, alpha, span):
    """Whatever the policy outputs, the command is within bounds, rate and jerk limits."""
    f = SafetyFilter(np.array([-span / 2]), np.array([span / 2]), rate, jerk, alpha)
    history = [f.last.copy()] * 3  # starts at rest
    for value in outputs:
        command = f(np.array([value]))
        assert np.all(np.isfinite(command))
        assert -span / 2 - TOL <= command[0] <= span / 2 + TOL
        if rate is not None:
            assert abs(command[0] - history[-1][0]) <= rate + TOL
        if jerk is not None:
            third = command[0] - 3 * history[-1][0] + 3 * history[-2][0] - history[-3][0]
            assert abs(third) <= jerk + 1e-8
        history.append(command)


def test_filter_known_answers():
    f = SafetyFilter(np.array([-1.0, 0.0]), np.array([1.0, 10.0]), max_rate=np.array([0.5, 4.0]))
    np.testing.assert_allclose(f(np.array([2.0, 3.0])), [0.5, 3.0])  # rate-limited, then within
    np.testing.assert_allclose(f(np.array([np.nan, 20.0])), [0.5, 7.0])  # NaN holds; 20 -> bound 10, rate 4
    assert f.counts.nonfinite == 1 and f.counts.clipped == 2 and f.counts.rate_limited == 2
    np.testing.assert_allclose(f.safe(), [0.5, 7.0])  # hold
    jerky = SafetyFilter(np.array([-1.0]), np.array([1.0]), max_jerk=np.array([0.1]))
    steps = [jerky(np.array([1.0]))[0] for _ in range(60)]
    assert steps[0] == pytest.approx(0.1) and steps[1] == pytest.approx(0.3)  # jerk 0.1: 0.1, 0.3, 0.6 ...
    assert steps[-1] == pytest.approx(1.0, abs=1e-9)  # arrives at the target without overshoot
    assert max(steps) <= 1.0 + TOL


# --------------------------------------------------------------------------------------------
# the loop: a fake artefact and fake hardware


class FakeArtefact:
    sensors, action_dim, discrete, control_period_s = 2, 1, False, None
    manifest = {"action_space": {"type": "Box"}}
    channels = [("x", ""), ("v", "")]

    def action_bounds(self):
        return np.array([-1.0]), np.array([1.0])


class FakePolicy:
    """Outputs ``obs[0]``; sleeps ``delay`` seconds per decision."""

    def __init__(self, delay: float = 0.0) -> None:
        self.artefact, self.delay, self.calls = FakeArtefact(), delay, 0

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delay)
        return np.array([obs[0]])

    def sent(self, command: np.ndarray) -> None:
        pass


class FakeHardware(HardwareInterface):
    """Observations from ``source(k)``; records what it is sent; ``fail_write_at`` raises."""

    def __init__(self, source=None, frozen_after: int | None = None, fail_write_at: int | None = None) -> None:
        self.source = source or (lambda k: np.array([0.5, 0.0]))
        self.frozen_after, self.fail_write_at = frozen_after, fail_write_at
        self.reads, self.written, self.estops, self.active = 0, [], [], False
        self._stamp = time.monotonic()

    def configure(self) -> Channels:
        return Channels(2, 1)

    def activate(self) -> None:
        self.active = True

    def read(self):
        if self.frozen_after is None or self.reads < self.frozen_after:
            self._stamp = time.monotonic()
        self.reads += 1
        return self.source(self.reads), self._stamp

    def write(self, command) -> None:
        if self.fail_write_at is not None and len(self.written) >= self.fail_write_at:
            raise OSError("bus error")
        self.written.append(np.array(command))

    def emergency_stop(self, command) -> None:
        self.estops.append(np.array(command))
        self.written.append(np.array(command))

    def deactivate(self) -> None:
        self.active = False


def profile(**overrides) -> object:
    data = {
        "backend": "sim",
        "control_period_s": 0.01,
        "sim": {"env": "Pendulum-v1"},
        "command": {"max_rate": 0.5, "safe_action": [0.0]},
        "watchdog": {"max_overruns": 3, "on_estop": "stop"},
        "observation": {"max_age_periods": 3, "low": [-1, -1], "high": [1, 1]},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_profile(data, "test.yaml")


def run(hardware: FakeHardware, policy=None, duration: float = 0.3, log: Path | None = None, **overrides):
    loop = ControlLoop(policy or FakePolicy(), hardware, profile(**overrides), log=log)
    return loop, loop.run(duration)


def test_loop_runs_on_absolute_deadlines_and_counts_periods(tmp_path: Path):
    hardware = FakeHardware()
    loop, stats = run(hardware, log=tmp_path / "log.csv")
    assert stats.estop is None and stats.stopped_by == "duration"
    assert stats.periods == 30 and len(hardware.written) == 31 and not hardware.active
    assert hardware.written[-2][0] == pytest.approx(0.5)  # the policy's command, reached within rate limits
    assert hardware.written[-1][0] == 0.0  # the run's end writes the safe action
    assert set(stats.summary()) >= {"p99_jitter_ms", "mean_period_error_ms", "read_to_write_median_ms", "overruns"}
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == 32 and rows[0].startswith("period,utc,wall_s,plant_s,phase,")
    assert rows[0].split(",")[8:10] == ["obs:x", "obs:v"] and ",stop," in rows[-1]
    assert not (tmp_path / "log.csv.partial").exists()


@pytest.mark.parametrize(
    ("hardware", "reason"),
    [
        (FakeHardware(source=lambda k: np.array([np.nan, 0.0]) if k > 5 else np.array([0.1, 0.0])), "non-finite"),
        (FakeHardware(source=lambda k: np.array([5.0, 0.0]) if k > 5 else np.array([0.1, 0.0])), "out of range"),
        (FakeHardware(frozen_after=5), "stale observation"),
        (FakeHardware(fail_write_at=5), "write failed"),
    ],
    ids=["nan", "range", "frozen", "write"],
)
def test_watchdog_writes_the_safe_action_and_latches(hardware: FakeHardware, reason: str, tmp_path: Path):
    loop, stats = run(hardware, log=tmp_path / "log.csv")
    assert stats.estop is not None and reason in stats.estop and stats.stopped_by == "estop"
    assert hardware.estops and hardware.estops[-1][0] == 0.0  # the safe action
    assert stats.periods < 30 and not hardware.active
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == stats.periods + 2 and "estop" in rows[-2]  # complete up to the fault
    assert ",stop," in rows[-1] and hardware.written[-1][0] == 0.0  # and the safe action written at the end


def test_slow_inference_holds_the_command_every_period_then_stops():
    hardware = FakeHardware()
    loop, stats = run(hardware, policy=FakePolicy(delay=0.05), duration=1.0)
    assert "consecutive overruns" in stats.estop and stats.overruns >= 3
    assert len(hardware.written) == stats.periods + 1  # a command (held, then safe) every period, and at the end
    assert hardware.estops[-1][0] == 0.0


def test_a_loop_that_falls_behind_skips_the_missed_periods_instead_of_a_burst():
    calls = [0]

    def stalling_sleep(seconds: float) -> None:  # the controller's process stalls once, for 3.5 periods
        calls[0] += 1
        time.sleep(seconds + (0.035 if calls[0] == 5 else 0.0))

    hardware = FakeHardware()
    written_at: list[float] = []
    original = hardware.write
    hardware.write = lambda command: (written_at.append(time.monotonic()), original(command))[1]
    loop = ControlLoop(FakePolicy(), hardware, profile(), sleep=stalling_sleep)
    stats = loop.run(0.3)
    assert stats.estop is None and stats.missed >= 2 and stats.summary()["missed_periods"] == stats.missed
    assert stats.periods + stats.missed == 30  # the periods are real time, not caught up
    assert np.sum(np.diff(written_at) < 0.002) <= 1  # no burst of catch-up writes


def test_hold_on_estop_until_rearmed():
    loops: list[ControlLoop] = []

    def source(k):
        if k == 20:
            loops[0].rearm()  # an operator re-arms at the 20th period
        return np.array([np.nan, 0.0]) if 5 < k < 8 else np.array([0.2, 0.0])

    hardware = FakeHardware(source=source)
    loop = ControlLoop(FakePolicy(), hardware, profile(watchdog={"on_estop": "hold"}))
    loops.append(loop)
    stats = loop.run(0.5)
    assert stats.estops == 1 and stats.estop is None  # fired once, re-armed
    assert hardware.written[-2][0] == pytest.approx(0.2)  # back under the policy


def test_bringup_ramps_then_holds_then_hands_over():
    hardware = FakeHardware(source=lambda k: np.array([0.9, 0.0]))
    p = {
        "command": {"max_rate": 1.0, "nominal": [0.5], "safe_action": [0.0]},
        "bringup": {"ramp_s": 0.05, "hold_s": 0.05},
    }
    loop, stats = run(hardware, duration=0.2, **p)
    commands = [c[0] for c in hardware.written]
    assert commands[0] == pytest.approx(0.0) and commands[4] == pytest.approx(0.4)  # linear ramp over 5 periods
    assert commands[5:10] == pytest.approx([0.5] * 5)  # hold nominal
    assert commands[-2] == pytest.approx(0.9) and commands[-1] == 0.0  # the policy, then the end's safe action


# --------------------------------------------------------------------------------------------
# the sim backend and the CLI

runner = CliRunner()


@pytest.fixture(scope="module")
def pendulum_artefact(tmp_path_factory) -> tuple[Path, Path]:
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.export import export_run

    root = tmp_path_factory.mktemp("deploy")
    overrides = ["n_timesteps=600", "eval_freq=0", "checkpoint_freq=0", "eval_episodes=1", "normalize=true"]
    run_dir = train(resolve_config("ppo", "Pendulum-v1", "smoke", overrides), root / "run", progress_bar=False)
    return run_dir, export_run(run_dir, root / "art")


def test_lockstep_deployment_returns_what_eval_returns(pendulum_artefact, tmp_path: Path):
    from smoothrl.hardware.deploy import deploy
    from smoothrl.run.evaluation import evaluate

    run_dir, artefact = pendulum_artefact
    summary = deploy(artefact, "hardware/sim_pendulum_unlimited.yaml", log=tmp_path / "log.csv")
    reference, _ = evaluate(run_dir, episodes=1)
    assert summary["stopped_by"] == "episode end" and summary["periods"] == 200
    assert summary["episode_returns"][0] == pytest.approx(reference["mean_return"], rel=1e-4)
    assert summary["interventions"]["total"] == 0
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == 202 and ",stop," in rows[-1]  # 200 periods, then the safe action at the episode's end


def test_killed_sim_process_stops_the_loop_with_the_safe_action(pendulum_artefact, tmp_path: Path):
    from smoothrl.hardware.backends.sim import SimInterface
    from smoothrl.hardware.profile import load_profile

    _, artefact = pendulum_artefact
    prof = load_profile("hardware/sim_pendulum.yaml")
    interface = SimInterface(prof.sim, prof.control_period_s, lockstep=False)
    loop = ControlLoop(Artefact.load(artefact).policy(), interface, prof, log=tmp_path / "log.csv")

    def kill_after_20_periods() -> None:
        while loop.stats.periods < 20:
            time.sleep(0.01)
        interface._process.kill()

    threading.Thread(target=kill_after_20_periods, daemon=True).start()
    stats = loop.run(30.0)
    assert stats.estop is not None and ("read failed" in stats.estop or "stale" in stats.estop)
    assert stats.stopped_by == "estop" and 20 <= stats.periods < 200
    assert len((tmp_path / "log.csv").read_text().splitlines()) == stats.periods + 2


def assert_one_line(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_deploy_cli_and_bad_input(pendulum_artefact, tmp_path: Path):
    _, artefact = pendulum_artefact
    result = runner.invoke(app, ["deploy", str(artefact), "--hardware", "sim_pendulum", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["periods"] == 200
    bad = tmp_path / "bad.yaml"
    cases = [
        ({"backend": "sim", "control_period_s": 0.02, "sim": {"env": "Pendulum-v1"}}, "set control_period_s: 0.05"),
        (
            {"backend": "can", "control_period_s": 0.05},
            "backend: Input should be 'sim', 'udp', 'modbus', 'bacnet' or 'ros2'",
        ),
        (
            {"backend": "sim", "control_period_s": 0.05, "sim": {"env": "Pendulum-v1"}, "comand": {}},
            "unknown key 'comand'",
        ),
        ({"backend": "sim", "control_period_s": -1}, "control_period_s: Input should be greater than 0"),
        (
            {
                "backend": "sim",
                "control_period_s": 0.05,
                "sim": {"env": "Pendulum-v1"},
                "watchdog": {"on_estop": "retry"},
            },
            "watchdog.on_estop: Input should be 'stop', 'hold' or 'recover'",
        ),
        (
            {
                "backend": "sim",
                "control_period_s": 0.05,
                "watchdog": {"on_estop": "recover", "recover_after_periods": 0},
            },
            "watchdog.recover_after_periods: Input should be greater than or equal to 1",
        ),
        ({"backend": "sim", "control_period_s": 0.05, "sim": {"env": "CartPole-v1"}}, "observation and"),
        (
            {"backend": "sim", "control_period_s": 0.05, "sim": {"env": "Pendulum-v1"}, "command": {"high": [3.0]}},
            "exceed the policy's action bounds",
        ),
    ]
    import yaml

    for data, fragment in cases:
        bad.write_text(yaml.safe_dump(data))
        assert_one_line(runner.invoke(app, ["deploy", str(artefact), "--hardware", str(bad)]), fragment)
    assert_one_line(
        runner.invoke(app, ["deploy", str(tmp_path), "--hardware", "sim_pendulum"]), "not a policy artefact"
    )
    assert_one_line(
        runner.invoke(app, ["deploy", str(artefact), "--hardware", "nope.yaml"]), "cannot read hardware profile"
    )
    (tmp_path / "log.csv").write_text("keep me")
    assert_one_line(
        runner.invoke(app, ["deploy", str(artefact), "--hardware", "sim_pendulum", "--log", str(tmp_path / "log.csv")]),
        "already exists",
    )
    assert (tmp_path / "log.csv").read_text() == "keep me"


def test_export_cli(pendulum_artefact, tmp_path: Path):
    run_dir, _ = pendulum_artefact
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0 and "policy.onnx" in result.stdout
    assert_one_line(runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "a")]), "--overwrite")
    assert_one_line(
        runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "b"), "--format", "tflite"]), "--format"
    )


# --------------------------------------------------------------------------------------------
# the runtime on a controller without torch

_NO_TORCH = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "stable_baselines3"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
import numpy as np
import smoothrl.hardware
from smoothrl.hardware.artefact import Artefact
from smoothrl.hardware.interface import Channels, HardwareInterface
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import load_profile

class Hardware(HardwareInterface):
    lockstep = True
    def configure(self): return Channels(3, 1)
    def activate(self): self.sent = []
    def read(self): return np.array([1.0, 0.0, 0.0]), 0.0
    def write(self, command): self.sent.append(float(command[0]))
    def deactivate(self): pass

hardware = Hardware()
stats = ControlLoop(Artefact.load(sys.argv[1]).policy(), hardware, load_profile(sys.argv[2])).run(1.0)
assert stats.periods == 20 and len(hardware.sent) == 21, stats  # and the safe action at the end
assert "torch" not in sys.modules and "stable_baselines3" not in sys.modules
print("ran without torch")
"""


def test_runtime_runs_without_torch(pendulum_artefact, tmp_path: Path):
    _, artefact = pendulum_artefact
    script = tmp_path / "controller.py"
    script.write_text(textwrap.dedent(_NO_TORCH))
    out = subprocess.run(
        [sys.executable, str(script), str(artefact), "hardware/sim_pendulum.yaml"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "ran without torch" in out.stdout


def test_plot_draws_a_deploy_log(tmp_path: Path):
    hardware = FakeHardware()
    run(hardware, duration=0.1, log=tmp_path / "log.csv")
    result = runner.invoke(app, ["plot", "--deploy-log", str(tmp_path / "log.csv"), "--out", str(tmp_path / "d.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    assert_one_line(runner.invoke(app, ["plot", "--deploy-log", str(tmp_path / "bad.csv")]), "not a deploy log")


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_writes_the_safe_action_and_keeps_the_log(pendulum_artefact, tmp_path: Path):
    import signal

    _, artefact = pendulum_artefact
    log = tmp_path / "log.csv"
    smoothrl = Path(sys.executable).with_name("smoothrl")
    args = [str(smoothrl), "deploy", str(artefact), "--hardware", "sim_pendulum", "--realtime", "--duration", "60"]
    # a default SIGINT in the child even when the tests run in a background job (which ignores it)
    process = subprocess.Popen(
        [*args, "--log", str(log), "--json"], stdout=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not log.with_name("log.csv.partial").exists() or _rows(tmp_path) < 10):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    summary = json.loads(out)
    assert summary["stopped_by"] == "interrupt" and summary["estop"] == "interrupted"
    rows = log.read_text().splitlines()
    assert len(rows) == summary["periods"] + 2 and not log.with_name("log.csv.partial").exists()
    assert ",stop," in rows[-1] and float(rows[-1].split(",")[-3]) == 0.0  # the safe action, logged last


def _rows(folder: Path) -> int:
    partial = folder / "log.csv.partial"
    return len(partial.read_text().splitlines()) if partial.exists() else 0
