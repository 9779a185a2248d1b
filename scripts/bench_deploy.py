"""Deployment speed: the artefact's inference against SB3's ``model.predict``, and the control
loop's timing at 100 Hz and 500 Hz on the sim and udp backends.

1. Inference latency (median, p99) per decision on the same 1,000 evaluation observations, one
   at a time, for SAC, PPO (both with ``VecNormalize``: SB3 normalizes then predicts; the
   artefact has the normalization in its graph) and an S-PPO with 100 smoothing samples.
   The ratio ``model.predict / artefact`` is measured in the same run. Target: >= 10x.
2. The loop in real time at 100 Hz and 500 Hz for ``--seconds`` (default 30, quick 5) with the
   SAC artefact: against the sim backend (an env process stepping at the loop's rate) and the
   udp backend (a bridge process on loopback), each with the I/O on a worker with a deadline
   inside the period (what the runtime does) and called directly in the loop's thread (the
   runtime before deadlines), side by side in the same run. Reported: mean period error, p99
   jitter (|wake-up - deadline|), overruns, missed (skipped) periods, read-to-write latency.
   Targets at 100 Hz: zero overruns, p99 jitter < 1 ms.

Budgets: the policies train for 2,000 steps (speed does not depend on training), seed 0.
Writes ``results/bench_deploy.json`` and prints the tables.
"""

from __future__ import annotations

import multiprocessing as mp
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from benchlib import save_results, study_args, table
from rich.console import Console

from smoothrl.hardware.artefact import Artefact
from smoothrl.hardware.backends.sim import SimInterface
from smoothrl.hardware.backends.udp import UdpInterface, serve_env
from smoothrl.hardware.loop import ControlLoop
from smoothrl.hardware.profile import parse_profile
from smoothrl.run.build import EVAL_SEED_OFFSET, load_run, make_env
from smoothrl.run.overrides import resolve_config
from smoothrl.run.training import train
from smoothrl.tools.export import export_run

POLICIES = {
    "SAC": ("sac", ["normalize=true", "learning_starts=200"]),
    "PPO": ("ppo", ["normalize=true"]),
    "S-PPO (100 samples)": ("sppo", ["normalize=true", "smoothing_samples=4", "smoothing_samples_eval=100"]),
}
RATES = (100, 500)


def observations(run_dir: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` raw and normalized observations of evaluation episodes (random actions)."""
    run = load_run(run_dir)
    env = make_env(run.config, n_envs=1, training=False, seed=EVAL_SEED_OFFSET, vecnormalize_path=run.vecnormalize_path)
    env.reset()
    raw, normalized = [], []
    rng = np.random.default_rng(0)
    for _ in range(n):
        original = env.get_original_obs()
        raw.append(original[0].astype(np.float32))
        normalized.append(env.normalize_obs(original)[0])
        env.step(rng.uniform(-2, 2, (1, 1)).astype(np.float32))
    env.close()
    return np.stack(raw), np.stack(normalized)


def latency(fn, inputs: np.ndarray) -> list[float]:
    out = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - start)
    return out


def inference(root: Path, n: int) -> dict[str, dict[str, float]]:
    rows = {}
    for name, (algo, overrides) in POLICIES.items():
        config = resolve_config(algo, "Pendulum-v1", "smoke", [*overrides, "eval_freq=0", "checkpoint_freq=0"])
        config = config.model_validate({**config.model_dump(), "n_timesteps": 2000, "eval_episodes": 1})
        run_dir = train(config, root / algo, progress_bar=False)
        artefact = export_run(run_dir, root / f"{algo}_art")
        raw, _ = observations(run_dir, n)
        run = load_run(run_dir)
        env = make_env(run.config, n_envs=1, training=False, vecnormalize_path=run.vecnormalize_path)
        policy = Artefact.load(artefact).policy()
        sb3 = latency(lambda x: run.model.predict(env.normalize_obs(x[None]), deterministic=True), raw)  # noqa: B023
        ours = latency(policy.act, raw)
        env.close()
        rows[name] = {
            "predict_median_ms": 1000 * statistics.median(sb3),
            "predict_p99_ms": 1000 * float(np.percentile(sb3, 99)),
            "artefact_median_ms": 1000 * statistics.median(ours),
            "artefact_p99_ms": 1000 * float(np.percentile(ours, 99)),
            "speedup_median": statistics.median(sb3) / statistics.median(ours),
        }
    return rows


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loop_timing(artefact: Path, backend: str, rate: int, seconds: float, deadlines: bool) -> dict[str, float]:
    period = 1.0 / rate
    bridge = None
    if backend == "sim":
        settings = {"env": "Pendulum-v1", "seed": 0}
        data = {"backend": "sim", "control_period_s": period, "sim": settings}
    else:
        port = free_port()
        bridge = mp.get_context("spawn").Process(
            target=serve_env, args=("Pendulum-v1", port), kwargs={"lockstep": False, "period": period}, daemon=True
        )
        bridge.start()
        time.sleep(3.0)  # the bridge imports gymnasium and binds
        data = {
            "backend": "udp",
            "control_period_s": period,
            "udp": {"port": port, "observations": 3, "commands": 1, "lockstep": False},
        }
    data |= {
        "observation": {"max_age_periods": 10},
        "command": {"safe_action": "zero"},
        "watchdog": {"max_overruns": 1000},
    }
    profile = parse_profile(data, f"bench-{backend}-{rate}Hz")
    interface = (
        SimInterface(profile.sim, period, lockstep=False)
        if backend == "sim"
        else UdpInterface(profile.udp, period, lockstep=False)
    )
    stats = ControlLoop(Artefact.load(artefact).policy(), interface, profile, io_deadlines=deadlines).run(seconds)
    if bridge is not None:
        bridge.kill()
        bridge.join()
    s = stats.summary()
    keys = ("periods", "overruns", "missed_periods", "mean_period_error_ms", "p99_jitter_ms", "read_to_write_median_ms")
    return {**{k: s[k] for k in keys}, "read_to_write_p99_ms": s["read_to_write_p99_ms"], "estop": s["estop"]}


def main() -> None:
    args = study_args(
        __doc__,
        "bench_deploy",
        quick="5 s of loop per backend and rate, 200 observations",
        extra=lambda p: p.add_argument("--seconds", type=float, default=None, help="loop seconds per backend and rate"),
    )
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    n = 200 if args.quick else 1000
    console = Console(width=150)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        console.print("inference latency ...")
        latencies = inference(root, n)
        console.print("loop timing ...")
        loops = {
            f"{backend} @ {rate} Hz, {'deadline' if deadlines else 'direct'} I/O": loop_timing(
                root / "sac_art", backend, rate, seconds, deadlines
            )
            for backend in ("sim", "udp")
            for rate in RATES
            for deadlines in (True, False)
        }
    results = {
        "settings": {"observations": n, "loop_seconds": seconds, "seed": 0, "train_steps": 2000},
        "inference": latencies,
        "loop": loops,
    }
    infer = table(
        f"inference per decision, {n} observations one at a time",
        ("policy", "predict median ms", "predict p99 ms", "artefact median ms", "artefact p99 ms", "x faster"),
        (
            (
                name,
                f"{r['predict_median_ms']:.3f}",
                f"{r['predict_p99_ms']:.3f}",
                f"{r['artefact_median_ms']:.3f}",
                f"{r['artefact_p99_ms']:.3f}",
                f"{r['speedup_median']:.1f}",
            )
            for name, r in latencies.items()
        ),
    )
    timing = table(
        f"control loop, real time, {seconds:g} s each",
        (
            "backend",
            "periods",
            "overruns",
            "missed",
            "mean period error ms",
            "p99 jitter ms",
            "read->write median ms",
            "p99 ms",
        ),
        (
            (
                name,
                str(r["periods"]),
                str(r["overruns"]),
                str(r["missed_periods"]),
                f"{r['mean_period_error_ms']:.3f}",
                f"{r['p99_jitter_ms']:.3f}",
                f"{r['read_to_write_median_ms']:.3f}",
                f"{r['read_to_write_p99_ms']:.3f}",
            )
            for name, r in loops.items()
        ),
    )
    save_results(results, args.out, [infer, timing], console)


if __name__ == "__main__":
    main()
