"""Speed of the HVAC simulator, against EnergyPlus simulating the same week, in one run.

Measures, on this machine and in this run:
- single-env ``step()`` rate of ``smoothrl/HVAC-v0`` (the raw env, and through ``gymnasium.make``);
- batched zone-steps per second of the vector env for 1, 64 and 1024 buildings
  (single-zone and 5-zone offices);
- the same week (Denver TMY3, January 15-21, 15-minute steps) simulated by EnergyPlus
  (through ``pyenergyplus``, its shipped ASHRAE 90.1 small office, 5 conditioned zones,
  sizing and warm-up included), by the same EnergyPlus run stepped through ``smoothrl/EPlus-v0``
  (the handshake's overhead as a ratio), and by smoothrl's 5-zone office preset with Denver weather.

Writes ``results/bench_hvac.json`` and prints a table. Targets (2-core machine): 20,000
single-env steps/s and 2,000,000 batched zone-steps/s. Seeds: envs reset with seed 0,
actions from ``numpy.random.default_rng(0)``.

    python scripts/bench_hvac.py            # about 1 minute
    python scripts/bench_hvac.py --quick    # about 15 seconds
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from benchlib import save_results, study_args, table
from rich.console import Console

import smoothrl
from smoothrl.building.weather import resolve_weather
from smoothrl.envs.hvac.env import HVACEnv, HVACVectorEnv

TARGET_SINGLE = 20_000
TARGET_BATCHED = 2_000_000
WEEK = (1, 15, 1, 21)  # January 15-21
DENVER = "USA_CO_Denver-Aurora-Buckley.AFB.724695_TMY3"


def single_env_rate(steps: int, through_make: bool) -> float:
    env = gym.make("smoothrl/HVAC-v0") if through_make else HVACEnv()
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 1)).astype(np.float32)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def batched_rate(buildings: int, preset: str, seconds: float) -> float:
    env = HVACVectorEnv(buildings, preset=preset)
    env.reset(seed=0)
    zones = len(env.sim.spec.zones)
    actions = np.random.default_rng(0).uniform(-1, 1, (buildings, zones)).astype(np.float32)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions)
        steps += 1
    return buildings * zones * steps / (time.perf_counter() - start)


def smoothrl_week_seconds() -> float:
    start = time.perf_counter()
    env = HVACEnv(preset="office_5zone_chicago", weather=DENVER)  # includes weather loading and setup
    env.reset(seed=0, options={"start_day": 14})
    actions = np.random.default_rng(0).uniform(-1, 1, (env.sim.episode_steps, 5)).astype(np.float32)
    for a in actions:
        env.step(a)
    return time.perf_counter() - start


def energyplus_week_seconds() -> float:
    import pyenergyplus
    from pyenergyplus.api import EnergyPlusAPI

    data = Path(pyenergyplus.__file__).resolve().parent / "data"
    idf = (data / "model" / "ASHRAE901_OfficeSmall_STD2019_Denver.idf").read_text()
    idf = re.sub(r"\n\s*RunPeriod,.*?;[^\n]*", "", idf, flags=re.S)
    idf += (
        "\nRunPeriod,\n    BENCH WEEK,\n    {}, {}, ,\n    {}, {}, ,\n    Sunday,\n    No, No, No, Yes, Yes;\n".format(
            *WEEK
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "week.idf"
        path.write_text(idf)
        api = EnergyPlusAPI()
        state = api.state_manager.new_state()
        api.runtime.set_console_output_status(state, False)
        start = time.perf_counter()
        rc = api.runtime.run_energyplus(state, ["-w", str(resolve_weather(DENVER)), "-d", tmp, str(path)])
        seconds = time.perf_counter() - start
        api.state_manager.delete_state(state)
    if rc != 0:
        raise RuntimeError(f"EnergyPlus exited with {rc}")
    return seconds


def energyplus_gym_week_seconds() -> float:
    """The same week through ``smoothrl/EPlus-v0``: reset (sizing, warm-up) and 672 steps of random signals."""
    from smoothrl.envs.eplus.env import EPlusEnv

    start = time.perf_counter()
    env = EPlusEnv(preset="office_5zone_denver")
    env.reset(seed=0, options={"start_day": 14})
    actions = np.random.default_rng(0).uniform(-1, 1, (env.sim.episode_steps, 5)).astype(np.float32)
    for a in actions:
        env.step(a)
    env.close()
    return time.perf_counter() - start


def main() -> None:
    args = study_args(__doc__, "bench_hvac", quick="shorter measurements (about 15 s)")
    console = Console(width=150)
    steps = 10_000 if args.quick else 50_000
    seconds = 0.5 if args.quick else 2.0
    week_zone_steps = 5 * 7 * 96

    console.print("single env ...")
    single_raw = single_env_rate(steps, through_make=False)
    single_make = single_env_rate(steps, through_make=True)
    batched = {}
    for preset, label in (("office_1zone_denver", "1-zone"), ("office_5zone_chicago", "5-zone")):
        for n in (1, 64, 1024):
            console.print(f"batched {label} x {n} ...")
            batched[f"{label} x {n}"] = batched_rate(n, preset, seconds)
    console.print("the same week: smoothrl and EnergyPlus ...")
    ours_week = min(smoothrl_week_seconds() for _ in range(3))
    eplus_week = min(energyplus_week_seconds() for _ in range(1 if args.quick else 3))
    eplus_gym_week = min(energyplus_gym_week_seconds() for _ in range(1 if args.quick else 3))

    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "smoothrl": smoothrl.__version__,
        },
        "settings": {"quick": args.quick, "single_env_steps": steps, "batched_seconds": seconds, "seed": 0},
        "single_env_steps_per_s": {
            "raw_env": single_raw,
            "gymnasium_make": single_make,
            "target": TARGET_SINGLE,
            "raw_env_over_target": single_raw / TARGET_SINGLE,
        },
        "batched_zone_steps_per_s": {
            **batched,
            "target": TARGET_BATCHED,
            "best_over_target": max(batched.values()) / TARGET_BATCHED,
        },
        "same_week": {
            "week": "Denver TMY3, Jan 15-21, 15-min steps, 5 zones",
            "smoothrl_seconds": ours_week,
            "energyplus_seconds": eplus_week,
            "smoothrl_zone_steps_per_s": week_zone_steps / ours_week,
            "energyplus_zone_steps_per_s": week_zone_steps / eplus_week,
            "speedup_vs_energyplus": eplus_week / ours_week,
            "batched_speedup_vs_energyplus": max(batched.values()) / (week_zone_steps / eplus_week),
            "energyplus_gym_seconds": eplus_gym_week,
            "energyplus_gym_steps_per_s": week_zone_steps / 5 / eplus_gym_week,
            "energyplus_raw_steps_per_s": week_zone_steps / 5 / eplus_week,
            "gym_handshake_ratio": eplus_week / eplus_gym_week,
        },
    }
    rows = [
        ("single env steps/s (raw)", f"{single_raw:,.0f}", f"{single_raw / TARGET_SINGLE:.2f} x target"),
        ("single env steps/s (gymnasium.make)", f"{single_make:,.0f}", f"{single_make / TARGET_SINGLE:.2f} x target"),
        *(
            (f"batched zone-steps/s, {key}", f"{value:,.0f}", f"{value / TARGET_BATCHED:.2f} x target")
            for key, value in batched.items()
        ),
        ("one week, 5 zones: smoothrl (s)", f"{ours_week:.3f}", f"{eplus_week / ours_week:.1f} x EnergyPlus"),
        ("one week, 5 zones: EnergyPlus (s)", f"{eplus_week:.3f}", "1.0"),
        (
            "one week, 5 zones: EnergyPlus through smoothrl/EPlus-v0 (s)",
            f"{eplus_gym_week:.3f}",
            f"{eplus_week / eplus_gym_week:.2f} x raw EnergyPlus",
        ),
    ]
    title = f"HVAC simulator speed ({'quick' if args.quick else 'full'}; {os.cpu_count()} cpus)"
    save_results(results, args.out, [table(title, ("measurement", "value", "ratio"), rows)], console)


if __name__ == "__main__":
    main()
