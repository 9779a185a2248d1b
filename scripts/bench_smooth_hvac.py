"""Do action-derivative penalties make HVAC control smooth at little cost? Both forms, PPO.

Trains PPO on ``smoothrl/HVAC-v0`` (modulating heat pump) and ``smoothrl/HVACDiscrete-v0``
(on/off heat pump) with no penalty and with a 1st-, 2nd- or 3rd-order action penalty, in both
forms: reward shaping (``smoothness_reward``: the penalty on the actions sent, history in the
observation) and a policy-loss term (``action_reg``: the penalty on the policy's deterministic
action along consecutive rollout states). Every run is evaluated on the test weeks and
compared with the thermostat and PI baselines. The claim under test (published for HVAC):
third-order (jerk) penalties give the smoothest control and cut equipment switching by about
60% while the return stays competitive.

Penalty weights: ``w_j = w * 2 / ||c_j||^2`` with ``c_j`` the coefficients of the order-j
difference (``||c||^2`` = 2, 6, 20), so every order costs the same on white-noise actions
(otherwise jerk would simply be a 10x stronger penalty than velocity). ``w`` is
``--weight`` (reward form, in reward units) and ``--loss-weight`` (loss form).

Budget: ``--quick`` 1 seed x 150k steps per run (about 5 minutes in all); default 3 seeds x
300k steps (about 30 minutes on 2 cores). Evaluation: 10 deterministic test episodes (weeks),
seed 10000. Writes ``results/bench_smooth_hvac.json`` and prints a table.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace

from benchlib import Job, run_jobs, save_results, seed_summary, study_args, table
from rich.console import Console

from smoothrl.metrics import difference_coefficients
from smoothrl.run.evaluation import evaluate_controller

ENVS = ("smoothrl/HVAC-v0", "smoothrl/HVACDiscrete-v0")
#: name -> (form, order)
VARIANTS = {
    "none": (None, None),
    "reward order 1": ("reward", 1),
    "reward order 2": ("reward", 2),
    "reward order 3 (jerk)": ("reward", 3),
    "loss order 1": ("loss", 1),
    "loss order 2": ("loss", 2),
    "loss order 3 (jerk)": ("loss", 3),
}
KEYS = (
    "mean_return",
    "switches_per_day",
    "atvl_tot",
    "jerk_rms",
    "continuity_cost",
    "tdis_tot",
    "ener_tot",
    "cost_tot",
)


def weight(order: int, base: float) -> float:
    """Weight of an order so that white-noise actions cost the same at every order."""
    norm = sum(c**2 for c in difference_coefficients(order))
    return base * 2.0 / norm


def overrides(form: str | None, order: int | None, args: Namespace) -> tuple[str, ...]:
    """The ``--set`` items of one variant."""
    if form == "reward":
        return (f"smoothness_reward.{order}={weight(order, args.weight)}",)
    if form == "loss":
        return (f"action_reg.temporal={{{order}: {weight(order, args.loss_weight)}}}",)
    return ()


COLUMNS = ("variant", "return", "switches/day", "vs none", "atvl", "jerk RMS", "tdis K h", "kWh/m2", "$/m2")


def _options(parser: ArgumentParser) -> None:
    parser.add_argument("--weight", type=float, default=0.05, help="reward-form base weight w (default 0.05)")
    parser.add_argument("--loss-weight", type=float, default=1.0, help="loss-form base weight (default 1.0)")


def main() -> None:
    args = study_args(
        __doc__,
        "bench_smooth_hvac",
        seeds=(3, 1),
        timesteps=(300_000, 150_000),
        episodes=(10, 10),
        workers=2,
        extra=_options,
    )
    console = Console(width=150)
    jobs = [
        Job(
            (env_id, name, seed), "ppo", env_id, overrides(form, order, args), args.timesteps, seed, args.episodes, KEYS
        )
        for env_id in ENVS
        for name, (form, order) in VARIANTS.items()
        for seed in range(args.seeds)
    ]
    done = run_jobs(jobs, args.workers, console, backend=args.backend, address=args.address)
    envs: dict[str, dict] = {}
    for env_id in ENVS:
        rows = {name: seed_summary([done[(env_id, name, s)] for s in range(args.seeds)], KEYS) for name in VARIANTS}
        for controller in ("thermostat", "pi"):
            if controller == "pi" and "Discrete" in env_id:
                continue
            summary, _ = evaluate_controller(controller, env_id, episodes=args.episodes)
            rows[controller] = {k: summary[k] for k in KEYS}
        base = rows["none"]["switches_per_day"]
        for row in rows.values():
            row["switching_change_vs_none"] = row["switches_per_day"] / base - 1.0 if base > 0 else float("nan")
        envs[env_id] = rows
    results = {
        "settings": {
            "algo": "ppo",
            "seeds": args.seeds,
            "timesteps": args.timesteps,
            "reward_weight": args.weight,
            "loss_weight": args.loss_weight,
            "episodes": args.episodes,
            "eval_seed": 10_000,
            "split": "test",
        },
        "envs": envs,
    }
    tables = [
        table(
            f"{env_id}: PPO {args.timesteps:,} steps x {args.seeds} seed(s), {args.episodes} test weeks",
            COLUMNS,
            (
                (
                    name,
                    f"{row['mean_return']:.2f}",
                    f"{row['switches_per_day']:.2f}",
                    f"{100 * row['switching_change_vs_none']:+.0f}%",
                    f"{row['atvl_tot']:.1f}",
                    f"{row['jerk_rms']:.3f}",
                    f"{row['tdis_tot']:.2f}",
                    f"{row['ener_tot']:.3f}",
                    f"{row['cost_tot']:.3f}",
                )
                for name, row in rows.items()
            ),
        )
        for env_id, rows in envs.items()
    ]
    save_results(results, args.out, tables, console)


if __name__ == "__main__":
    main()
