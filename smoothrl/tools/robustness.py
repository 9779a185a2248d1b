"""Attack and certify a trained run: what ``smoothrl attack`` and ``smoothrl certify`` call."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from smoothrl.checks import BUDGET, COUNT, STEPS, check_number, check_seed
from smoothrl.robust.attacks import Attack, AttackedPolicy
from smoothrl.robust.certify import (
    Bound,
    certify_continuous,
    certify_discrete,
    check_alpha,
    reward_lower_bound,
)
from smoothrl.robust.smoothing import SmoothedPolicy, check_smoothing
from smoothrl.robust.views import PolicyView
from smoothrl.run.build import EVAL_SEED_OFFSET, Run, load_run
from smoothrl.run.evaluation import evaluate

#: default radii (discrete) and perturbation sizes (continuous) reported by ``certify``
DEFAULT_RADII = (0.0, 0.05, 0.1, 0.2, 0.5)
DEFAULT_EPS = (0.05, 0.1, 0.2, 0.5)


def _as_run(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def acting_policy(run: Run, sigma: float | None = None, m: int = 100, mode: str | None = None, seed: int = 0) -> Any:
    """
    The agent that acts in ``attack``: the run's own smoothed decision when its algorithm smooths
    (S-PPO, S-DQN), else the model, smoothed on request.

    :param run: the run
    :param sigma: smooth the model with this noise (``None``: as trained)
    :param m: noisy copies per decision
    :param mode: smoothing mode (default: vote for discrete, median for continuous actions)
    :param seed: seed of the smoothing noise
    :return: an object with SB3's ``predict``
    """
    if sigma is None:
        return run.model
    return SmoothedPolicy(run.model, sigma, m, mode, seed)  # type: ignore[arg-type]


def attack_run(
    run: Run | str | Path,
    attack: Attack,
    episodes: int | None = None,
    seed: int | None = None,
    smoothing_sigma: float | None = None,
    smoothing_samples: int = 100,
    smoothing_mode: str | None = None,
) -> dict[str, Any]:
    """
    Play a run's evaluation episodes with every observation attacked.

    :param run: a run or its directory
    :param attack: the attack and its budget
    :param episodes: episodes (default: every distinct test week of an HVAC env, else the run's ``eval_episodes``)
    :param seed: env, attack and smoothing seed (default: run seed + 10000)
    :param smoothing_sigma: act with the model smoothed at this noise (``None``: the model itself)
    :param smoothing_samples: noisy copies per smoothed decision
    :param smoothing_mode: smoothing mode
    :return: the evaluation summary plus ``attack``, ``eps``, ``norm``, ``max_perturbation``
        (never above ``eps``), ``mean_action_deviation`` (L2 in [-1, 1] action units, or the
        fraction of changed discrete actions) and ``smoothing``
    :raises SmoothRLError: for bad input
    """
    check_seed("@seed", seed)
    run = _as_run(run)
    seed = run.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    view = PolicyView(run.model)
    policy = acting_policy(run, smoothing_sigma, smoothing_samples, smoothing_mode, seed)
    attacked = AttackedPolicy(policy, view, attack, seed)
    summary, _ = evaluate(run, episodes=episodes, seed=seed, policy=attacked)
    summary.update(
        attack=attack.name,
        eps=attack.eps,
        norm=attack.norm,
        steps=1 if attack.name == "fgsm" else attack.steps,
        max_perturbation=float(max(attacked.perturbation_norms, default=0.0)),
        mean_action_deviation=float(np.mean(attacked.action_deviations)) if attacked.action_deviations else 0.0,
        smoothing=None
        if smoothing_sigma is None
        else {"sigma": smoothing_sigma, "samples": smoothing_samples, "mode": getattr(policy, "mode", None)},
    )
    return summary


class _StateRecorder:
    """Acts with a policy and keeps every observation it sees."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.states: list[np.ndarray] = []

    def predict(self, observation: np.ndarray, *args: Any, **kwargs: Any) -> tuple[np.ndarray, Any]:
        self.states.extend(np.asarray(observation))
        return self.policy.predict(observation, *args, **kwargs)


def visited_states(run: Run, n_states: int, seed: int, max_episodes: int = 50) -> np.ndarray:
    """
    States the clean policy visits on evaluation episodes, evenly spaced along them.

    :param run: the run
    :param n_states: how many
    :param seed: evaluation seed
    :param max_episodes: stop playing after this many episodes even when fewer states were seen
    :return: ``(n_states, *obs_shape)`` normalized observations (fewer if the episodes were short)
    """
    recorder = _StateRecorder(run.model)
    episode = 0
    while len(recorder.states) < n_states and episode < max_episodes:
        evaluate(run, episodes=1, seed=seed + episode, policy=recorder)
        episode += 1
    states = np.asarray(recorder.states)
    pick = np.linspace(0, len(states) - 1, min(n_states, len(states))).round().astype(int)
    return states[pick]


def certify_run(
    run: Run | str | Path,
    sigma: float,
    samples: int,
    alpha: float = 0.001,
    n_states: int = 100,
    n0: int = 100,
    bound: Bound = "cp",
    radii: Sequence[float] = DEFAULT_RADII,
    eps: Sequence[float] = DEFAULT_EPS,
    reward_episodes: int = 0,
    seed: int | None = None,
) -> dict[str, Any]:
    """
    Certify a run's smoothed policy on states its clean policy visits.

    :param run: a run or its directory
    :param sigma: smoothing noise (normalized observation units)
    :param samples: noise samples per state
    :param alpha: probability that a certificate is wrong
    :param n_states: states to certify
    :param n0: selection samples per state (discrete actions)
    :param bound: ``"cp"`` (Clopper-Pearson) or ``"hoeffding"`` (discrete actions)
    :param radii: L2 radii at which to report the certified fraction (discrete actions)
    :param eps: L2 perturbation sizes at which to bound the actions (continuous) and the return
    :param reward_episodes: episodes of the single-draw smoothed policy for the reward bound (0: none)
    :param seed: seed (default: run seed + 10000)
    :return: the certificate summary
    :raises SmoothRLError: for bad input
    """
    check_smoothing(sigma, samples, "certify", ("@sigma", "@samples"))
    check_alpha(alpha)
    for e in eps:
        check_number("@eps", e, BUDGET)
    check_number("@states", n_states, COUNT)
    check_number("@reward_episodes", reward_episodes, STEPS)
    check_seed("@seed", seed)
    run = _as_run(run)
    seed = run.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    view = PolicyView(run.model)
    states = view.tensor(visited_states(run, n_states, seed))
    generator = th.Generator(device=view.device)
    generator.manual_seed(seed)
    out: dict[str, Any] = {
        "env": run.config.env,
        "algo": run.config.algo,
        "sigma": sigma,
        "samples": samples,
        "alpha": alpha,
        "states": int(states.shape[0]),
        "seed": seed,
    }
    start = time.perf_counter()
    if view.discrete:
        cert = certify_discrete(view, states, sigma, samples, n0, alpha, bound, generator)
        out["ms_per_state"] = 1000 * (time.perf_counter() - start) / len(states)
        radius = cert["radius"]
        out.update(
            kind="discrete",
            bound=bound,
            n0=n0,
            abstain_fraction=float(np.mean(cert["action"] < 0)),
            mean_radius=float(radius.mean()),
            certified_fraction={str(r): float(np.mean((cert["action"] >= 0) & (radius >= r))) for r in radii},
        )
    else:
        cert = certify_continuous(view, states, sigma, samples, list(eps), alpha, generator)
        out["ms_per_state"] = 1000 * (time.perf_counter() - start) / len(states)
        out.update(
            kind="continuous", mean_bound_width={str(e): float(w) for e, w in zip(eps, cert["width"], strict=True)}
        )
    if reward_episodes > 0:
        noisy = SmoothedPolicy(run.model, sigma, 1, "mean", seed)  # one fresh draw per step
        summary, played = evaluate(run, episodes=reward_episodes, seed=seed, policy=noisy)
        returns = [e.ret for e in played]
        horizon = float(np.mean([e.length for e in played]))
        out["reward"] = {
            "episodes": reward_episodes,
            "noisy_mean_return": summary["mean_return"],
            "noisy_median_return": float(np.median(returns)),
            "mean_length": horizon,
            "lower_bound_median": {
                str(e): reward_lower_bound(returns, sigma, e * math.sqrt(horizon), 0.5, alpha) for e in eps
            },
            "budget": "per-step L2 eps over the episode: total B = eps * sqrt(mean length)",
        }
    return out
