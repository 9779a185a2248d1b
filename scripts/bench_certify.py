"""How fast is certification? Batched noise samples vs one state at a time vs one sample at a time.

Certifies the vote-smoothed decision of an untrained SB3 DQN (64x64 MLP, CartPole-v1 spaces)
and the median-smoothed action of a PPO policy (64x64, Pendulum-v1 spaces) at 100 states with
N = 10,000 noise samples each (plus 100 selection samples for the vote), and compares, in the
same run:

- ``batched``: smoothrl's certify (all states' samples through the network in chunks of 65,536);
- ``per state``: the same certificate, one state (one batch of N samples) per call;
- ``per sample``: one forward pass per noisy sample, timed on 500 samples and scaled to N.

Reports milliseconds per certified state and the speed-up ratios. ``--quick``: 20 states.
Writes ``results/bench_certify.json`` and prints a table.
"""

from __future__ import annotations

import time

import torch as th
from benchlib import save_results, study_args, table
from rich.console import Console
from stable_baselines3 import DQN, PPO

from smoothrl.robust.certify import certify_continuous, certify_discrete
from smoothrl.robust.smoothing import noisy_copies
from smoothrl.robust.views import PolicyView

SIGMA, N, N0 = 0.2, 10_000, 100


def certify(view: PolicyView, states: th.Tensor) -> None:
    """smoothrl's certificate for a batch of states."""
    generator = th.Generator().manual_seed(0)
    if view.discrete:
        certify_discrete(view, states, SIGMA, N, N0, 0.001, "cp", generator)
    else:
        certify_continuous(view, states, SIGMA, N, [0.1, 0.2], 0.001, generator)


def per_state(view: PolicyView, states: th.Tensor) -> float:
    """Seconds to certify the states one call (one batch of N samples) at a time."""
    start = time.perf_counter()
    for i in range(len(states)):
        certify(view, states[i : i + 1])
    return time.perf_counter() - start


def per_sample(view: PolicyView, state: th.Tensor, samples: int = 500) -> float:
    """Seconds per state for single-sample forward passes, from ``samples`` of them."""
    start = time.perf_counter()
    with th.no_grad():
        for _ in range(samples):
            view.output(noisy_copies(state[None], SIGMA, 1))
    return (time.perf_counter() - start) / samples * (N + (N0 if view.discrete else 0))


def main() -> None:
    args = study_args(__doc__, "bench_certify", quick="20 states instead of 100")
    n_states = 20 if args.quick else 100
    th.manual_seed(0)
    models = {
        "DQN vote (CartPole-v1 spaces)": DQN("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [64, 64]}, seed=0),
        "PPO median (Pendulum-v1 spaces)": PPO("MlpPolicy", "Pendulum-v1", seed=0),
    }
    results: dict = {"settings": {"sigma": SIGMA, "samples": N, "selection": N0, "states": n_states}, "rows": {}}
    for name, model in models.items():
        view = PolicyView(model)
        states = th.randn(n_states, *view.obs_shape)
        start = time.perf_counter()
        certify(view, states)
        batched = (time.perf_counter() - start) / n_states
        state_loop = per_state(view, states) / n_states
        sample_loop = per_sample(view, states[0])
        results["rows"][name] = {
            "batched_ms_per_state": 1000 * batched,
            "per_state_ms": 1000 * state_loop,
            "per_sample_ms": 1000 * sample_loop,
            "speedup_vs_per_state": state_loop / batched,
            "speedup_vs_per_sample": sample_loop / batched,
        }
    rows = (
        (
            name,
            f"{row['batched_ms_per_state']:.2f}",
            f"{row['per_state_ms']:.2f}",
            f"{row['per_sample_ms']:.0f}",
            f"{row['speedup_vs_per_state']:.2f}",
            f"{row['speedup_vs_per_sample']:.0f}",
        )
        for name, row in results["rows"].items()
    )
    columns = ("policy", "batched ms/state", "per-state ms", "per-sample ms", "x vs per-state", "x vs per-sample")
    title = f"certify: {n_states} states x {N:,} samples, sigma {SIGMA}, {th.get_num_threads()} threads"
    save_results(results, args.out, [table(title, columns, rows)], Console(width=140))


if __name__ == "__main__":
    main()
