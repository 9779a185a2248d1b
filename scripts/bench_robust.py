"""Robustness of smoothed agents: vanilla vs noise-augmented + smoothing vs S-DQN / S-PPO.

For each task and seed, three agents are trained with the same algorithm settings:

- ``vanilla``: plain DQN (CartPole) or PPO (HVAC);
- ``noise-aug + RS``: trained on observations + N(0, sigma^2) (``obs_noise``), then smoothed at
  test time (vote over 100 copies for discrete actions, median for continuous): the earlier
  randomized-smoothing agents the reference compares against;
- ``S-DQN`` (denoiser on the vanilla DQN, vote over 100 copies) or ``S-PPO`` (median-smoothed
  actor, 20 copies while learning, 100 at test).

Each agent is evaluated clean and under attacks in the normalized observation space (Linf):
random noise, FGSM, PGD on the agent's action (10 steps), MAD, min-Q (DQN agents only: PPO has no
Q-function) and the Smoothed Attack (PGD against the decision averaged over 20 noisy copies,
fresh noise per step), at two budgets (random at the larger one). Certificates:
the certified L2 radius (discrete; Clopper-Pearson, alpha 0.001, 10,000 samples, 100 visited
states) or the mean width of the median-smoothed action's bounds (continuous), at the agent's
sigma, and for CartPole the certified median return.

Tasks and budgets (default, 3 seeds): CartPole-v1 (DQN 50k steps, S-DQN 20k on top, sigma
0.05, eps 0.02 / 0.05, 5 episodes), smoothrl/HVACDiscrete-v0 and smoothrl/HVAC-v0 (PPO / S-PPO
200k steps, sigma 0.2, eps 0.1 / 0.3, 2 test weeks). ``--quick``: 1 seed, a quarter of the
steps, 2 episodes. Writes ``results/bench_robust.json`` and ``.png``, and prints a table;
``--replot`` redraws both from an existing JSON.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from benchlib import run_jobs, save_results, study_args, t_interval
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class Task:
    """One task of the study: env, algorithms, budgets and attack budgets."""

    env: str
    algo: str
    smooth_algo: str
    steps: int
    smooth_steps: int
    sigma: float
    eps: tuple[float, float]
    episodes: int
    reward_episodes: int = 0
    overrides: tuple[str, ...] = ()


TASKS = (
    Task("CartPole-v1", "dqn", "sdqn", 50_000, 20_000, 0.05, (0.02, 0.05), 5, reward_episodes=20),
    Task("smoothrl/HVACDiscrete-v0", "ppo", "sppo", 200_000, 200_000, 0.2, (0.1, 0.3), 2),
    Task("smoothrl/HVAC-v0", "ppo", "sppo", 200_000, 200_000, 0.2, (0.1, 0.3), 2),
)
AGENTS = ("vanilla", "noise-aug + RS", "S-agent")


@dataclass(frozen=True)
class RobustJob:
    """All agents of one task and seed (S-DQN needs the vanilla DQN of the same seed)."""

    key: tuple
    task: Task
    seed: int
    scale: float = 1.0
    attacks: tuple[tuple[str, float], ...] = field(default_factory=tuple)


def attacks_for(task: Task) -> tuple[tuple[str, float], ...]:
    """The (attack, eps) pairs every agent faces."""
    small, large = task.eps
    pairs = [("clean", 0.0), ("random", large)]
    for name in ("fgsm", "pgd", "mad", "min_q", "smoothed"):
        if name != "min_q" or task.algo == "dqn":  # min_q needs a Q-function: not PPO's
            pairs += [(name, small), (name, large)]
    return tuple(pairs)


def robust_job(job: RobustJob) -> dict[str, Any]:
    """Train the three agents of a task and seed, attack and certify them."""
    import torch as th

    from smoothrl.robust.attacks import Attack
    from smoothrl.run.build import load_run
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import train
    from smoothrl.tools.robustness import attack_run, certify_run

    th.set_num_threads(1)
    task, seed = job.task, job.seed
    steps, smooth_steps = (max(2_000, int(n * job.scale)) for n in (task.steps, task.smooth_steps))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        common = [*task.overrides, "eval_freq=0"]
        vanilla = train(
            resolve_config(task.algo, task.env, None, common, n_timesteps=steps, seed=seed),
            root / "v",
            progress_bar=False,
        )
        augmented = train(
            resolve_config(
                task.algo, task.env, None, [*common, f"obs_noise={task.sigma}"], n_timesteps=steps, seed=seed
            ),
            root / "a",
            progress_bar=False,
        )
        smooth_overrides = [*common, f"smoothing_sigma={task.sigma}"]
        if task.smooth_algo == "sdqn":
            smooth_overrides.append(f"base_model={vanilla}")
        smoothed = train(
            resolve_config(task.smooth_algo, task.env, None, smooth_overrides, n_timesteps=smooth_steps, seed=seed),
            root / "s",
            progress_bar=False,
        )
        agents = {
            "vanilla": (load_run(vanilla), None),
            "noise-aug + RS": (load_run(augmented), task.sigma),
            "S-agent": (load_run(smoothed), None),
        }
        for name, (run, sigma) in agents.items():
            row: dict[str, Any] = {}
            for attack_name, eps in job.attacks:
                attack = Attack("pgd" if attack_name == "clean" else attack_name, eps, "linf", 10, task.sigma, 20)
                summary = attack_run(run, attack, task.episodes, None, sigma, 100)
                label = "clean" if attack_name == "clean" else f"{attack_name} {eps:g}"
                row[label] = summary["mean_return"]
                row[f"{label} deviation"] = summary["mean_action_deviation"]
            if name != "vanilla":
                cert = certify_run(run, task.sigma, 10_000, 0.001, 100, reward_episodes=task.reward_episodes)
                row["certificate"] = cert
            out[name] = row
    return out


def _cert_cell(cert: dict[str, Any] | None, task: Task) -> str:
    if cert is None:
        return "-"
    if cert["kind"] == "discrete":
        return f"R={cert['mean_radius']:.3f}, abstain {cert['abstain_fraction']:.2f}"
    width = cert["mean_bound_width"]
    return ", ".join(f"w({e})={width[e]:.2f}" for e in list(width)[:2])


def _half(value: float | None) -> float:
    """A 95% half-width, 0 where undefined (one seed: JSON stores nan as null)."""
    return 0.0 if value is None or math.isnan(value) else value


def plot(results: dict[str, Any], out: Path) -> None:
    """One panel per task: each agent's return (mean over seeds, 95% interval) clean and under each attack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smoothrl.rundir import atomic_write

    tasks = results["tasks"]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(15, 3.6 * len(tasks)), squeeze=False)
    for ax, (env, rows) in zip(axes[:, 0], tasks.items(), strict=True):
        labels = list(rows["vanilla"]["returns"])
        width = 0.8 / len(AGENTS)
        for i, agent in enumerate(AGENTS):
            means = [rows[agent]["returns"][label][0] for label in labels]
            halves = [_half(rows[agent]["returns"][label][1]) for label in labels]
            xs = [j + (i - (len(AGENTS) - 1) / 2) * width for j in range(len(labels))]
            smooth = "S-DQN" if results["settings"]["tasks"][env]["smooth_algo"] == "sdqn" else "S-PPO"
            ax.bar(xs, means, width, yerr=halves, capsize=2, label=smooth if agent == "S-agent" else agent)
        ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
        ax.set_title(env)
        ax.set_ylabel("return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def print_tables(results: dict[str, Any], tasks: list[Task], console: Console) -> None:
    """The README tables: return per agent and attack, and seed 0's certificate."""
    seeds = results["settings"]["seeds"]
    for task in tasks:
        rows = results["tasks"][task.env]
        labels = list(rows["vanilla"]["returns"])
        smooth_name = "S-DQN" if task.smooth_algo == "sdqn" else "S-PPO"
        table = Table(title=f"{task.env}: return under attack (Linf eps, normalized obs), {seeds} seed(s)")
        for col in ("agent", *labels, "certificate (seed 0)"):
            table.add_column(col, justify="right")
        for agent in AGENTS:
            cells = []
            for label in labels:
                mean, half = rows[agent]["returns"][label]
                cells.append(f"{mean:.1f}" + ("" if _half(half) == 0 else f" ± {half:.1f}"))
            cert = rows[agent]["per_seed"][0].get("certificate")
            name = smooth_name if agent == "S-agent" else agent
            table.add_row(name, *cells, _cert_cell(cert, task))
        console.print(table)


def main() -> None:
    args = study_args(
        __doc__,
        "bench_robust",
        seeds=(3, 1),
        workers=2,
        quick="1 seed, a quarter of the steps, 2 episodes",
        extra=lambda p: p.add_argument("--replot", action="store_true", help="only redraw tables and PNG from --out"),
    )
    seeds = args.seeds
    scale = 0.25 if args.quick else 1.0
    tasks = [replace(t, episodes=2) if args.quick else t for t in TASKS]
    console = Console(width=170)
    if args.replot:
        results = json.loads(args.out.read_text())
        print_tables(results, tasks, console)
        plot(results, args.out.with_suffix(".png"))
        return
    jobs = [RobustJob((t.env, s), t, s, scale, attacks_for(t)) for t in tasks for s in range(seeds)]
    done = run_jobs(jobs, args.workers, console, fn=robust_job, backend=args.backend, address=args.address)

    results: dict[str, Any] = {
        "settings": {
            "seeds": seeds,
            "scale": scale,
            "tasks": {t.env: {**asdict(t), "attacks": attacks_for(t)} for t in tasks},
            "attack norm": "linf, normalized observation units",
            "interval": "95% Student-t over seeds",
        },
        "tasks": {},
    }
    for task in tasks:
        per_agent = {}
        for agent in AGENTS:
            per_seed = [done[(task.env, s)][agent] for s in range(seeds)]
            labels = [k for k in per_seed[0] if k != "certificate" and not k.endswith("deviation")]
            row = {label: t_interval([p[label] for p in per_seed]) for label in labels}
            per_agent[agent] = {"returns": row, "per_seed": per_seed}
        results["tasks"][task.env] = per_agent
    save_results(results, args.out, [], console)
    print_tables(results, tasks, console)
    plot(results, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
