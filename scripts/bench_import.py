"""Start-up cost: `smoothrl --help` and `import smoothrl.metrics` against `import stable_baselines3`.

Each command runs in a fresh interpreter, alternating, ``--repeats`` times (default 10, quick 3);
the table gives the median wall time and its ratio to ``import stable_baselines3`` measured in
the same run (the machines are shared and noisy: only the ratio is meaningful). Writes
``results/bench_import.json``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import save_results, study_args, table
from rich.console import Console

SMOOTHRL = str(Path(sys.executable).with_name("smoothrl"))
COMMANDS = {
    "import stable_baselines3 (reference)": [sys.executable, "-c", "import stable_baselines3"],
    "smoothrl --help": [SMOOTHRL, "--help"],
    "import smoothrl.metrics": [sys.executable, "-c", "import smoothrl.metrics"],
    "import smoothrl": [sys.executable, "-c", "import smoothrl"],
    "import smoothrl; smoothrl.PPO": [sys.executable, "-c", "import smoothrl; smoothrl.PPO"],
}


def main() -> None:
    args = study_args(
        __doc__,
        "bench_import",
        quick="3 repeats instead of 10",
        extra=lambda p: p.add_argument("--repeats", type=int, default=None, help="runs per command"),
    )
    repeats = args.repeats or (3 if args.quick else 10)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    reference = statistics.median(times["import stable_baselines3 (reference)"])
    rows = {
        name: {"median_s": statistics.median(t), "ratio_to_sb3_import": statistics.median(t) / reference, "runs_s": t}
        for name, t in times.items()
    }
    results = {"settings": {"repeats": repeats, "python": sys.version.split()[0]}, "commands": rows}
    cells = ((name, f"{row['median_s']:.3f}", f"{row['ratio_to_sb3_import']:.2f}") for name, row in rows.items())
    title = f"start-up time, median of {repeats} fresh interpreters"
    save_results(results, args.out, [table(title, ("command", "median s", "x import SB3"), cells)], Console(width=120))


if __name__ == "__main__":
    main()
