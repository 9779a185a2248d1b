"""Evaluation: a run (``evaluate``) or a rule/MPC controller (``evaluate_controller``) on the
test split, on the same episodes and initial states (HVAC: every distinct test week, in order);
runs compared with each other and with the baselines (``compare_runs``: paired wins by week, the
gap to the oracle)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv

from smoothrl.checks import check_seed
from smoothrl.envs.factory import make_vec_env
from smoothrl.envs.registration import eval_env_kwargs
from smoothrl.errors import SmoothRLError
from smoothrl.run.build import EVAL_SEED_OFFSET, Run, load_run, make_env
from smoothrl.run.config import RunConfig
from smoothrl.run.episodes import Episode, run_episodes, summarize


def evaluate(
    run: Run | str | Path,
    episodes: int | None = None,
    env_id: str | None = None,
    deterministic: bool = True,
    seed: int | None = None,
    split: str | None = None,
    policy: Any = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Episode]]:
    """
    Evaluate a run on its own observation pipeline (frozen normalization), or on another env
    with the same spaces. HVAC envs are evaluated on their test days unless ``split`` says otherwise.

    :param run: a loaded run or its directory
    :param episodes: episodes to play (default: every distinct test week of an HVAC env, else the
        run's ``eval_episodes``)
    :param env_id: evaluate on this env instead of the run's
    :param deterministic: deterministic or sampled actions
    :param seed: seed of the env and of the action sampling (default: run seed + 10000)
    :param split: HVAC days to evaluate on (default ``"test"``); an error for other envs
    :param policy: what acts instead of the run's model (anything with SB3's ``predict``, e.g. a
        smoothed or attacked policy built on it); it sees the run's normalized observations
    :param env_kwargs: keyword arguments of ``env_id`` (e.g. the EnergyPlus env's ``preset``)
    :return: the summary (``mean_return``, ``std_return``, ``episodes``, the smoothness metrics,
        the env's KPIs) and the episodes themselves
    :raises SmoothRLError: for bad input
    """
    check_seed("@seed", seed)
    if not isinstance(run, Run):
        run = load_run(run)
    env_id = env_id or run.config.env
    seed = run.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    env = eval_env(run, seed, env_id, split, env_kwargs)
    return _play(
        run.model if policy is None else policy, env, episodes, deterministic, seed, env_id, run.config.eval_episodes
    )


#: what a comparison of runs puts beside the reference run, as a relative change (in the order shown)
COMPARED = ("mean_return", "tdis_tot", "ener_tot", "cost_tot", "switches_per_day", "jerk_rms", "continuity_cost", "sm")


def regularized(config: RunConfig) -> bool:
    """:return: whether a run was trained with action smoothness (``action_reg`` or ``smoothness_reward``)"""
    from smoothrl.agents.losses import as_action_reg

    active_reward = any(w > 0 for w in config.smoothness_reward.values())
    return active_reward or as_action_reg(config.hyperparams.get("action_reg")) is not None


def compare_runs(
    summaries: dict[str, dict[str, Any]],
    configs: dict[str, RunConfig],
    baselines: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """
    Put each run beside a reference: the first run trained without action smoothness (else
    the first run), with the relative change of return, switching, jerk and the KPIs (left out
    where the reference's value is 0); where the episodes were played on the same days, the
    episodes each run won against the reference (paired by day); and where the oracle MPC is
    among them, every controller's gap to it in return.

    :param summaries: run directory -> its evaluation summary
    :param configs: run directory -> its config
    :param baselines: controllers that are not learned, evaluated on the same episodes (name ->
        summary); they are compared too, never the reference
    :return: ``{"reference": run, "runs": {name: summary}, "change": {name: {metric: relative
        change}}, "wins": {name: [won, played]}, "oracle": name or None, "oracle_gap": {name: gap}}``
    :raises SmoothRLError: when runs paired by day were not played on the same days
    """
    reference = next((n for n in summaries if not regularized(configs[n])), next(iter(summaries)))
    summaries = {**summaries, **(baselines or {})}
    names = list(summaries)
    base = summaries[reference]
    change: dict[str, dict[str, float]] = {}
    for name in names:
        if name == reference:
            continue
        change[name] = {}
        for key in COMPARED:
            a, b = base.get(key), summaries[name].get(key)
            if isinstance(a, int | float) and isinstance(b, int | float) and a == a and b == b and a != 0:
                change[name][key] = (b - a) / abs(a)
    wins = {name: paired_wins(summaries[name], base, name, reference) for name in names if name != reference}
    oracle = next((n for n in names if summaries[n].get("controller") == "mpc-oracle"), None)
    gap: dict[str, float] = {}
    if oracle is not None:
        best = summaries[oracle]["mean_return"]
        gap = {name: oracle_gap(summaries[name]["mean_return"], best) for name in names}
    return {
        "reference": reference,
        "runs": summaries,
        "change": change,
        "wins": {k: v for k, v in wins.items() if v is not None},
        "oracle": oracle,
        "oracle_gap": gap,
    }


def oracle_gap(mean_return: float, oracle_return: float) -> float:
    """
    :param mean_return: a controller's mean return
    :param oracle_return: the oracle MPC's on the same episodes
    :return: how far the controller falls short of the oracle, as a fraction of the oracle's return
    """
    return (oracle_return - mean_return) / abs(oracle_return) if oracle_return else float("nan")


def paired_wins(summary: dict[str, Any], reference: dict[str, Any], name: str, ref_name: str) -> list[int] | None:
    """
    :param summary: a controller's evaluation summary
    :param reference: the reference's, on the same days
    :param name: the controller (for the message)
    :param ref_name: the reference (for the message)
    :return: ``[episodes won, episodes]`` against the reference, paired by start day (``None``
        when the env does not report start days)
    :raises SmoothRLError: when the two were not played on the same days
    """
    days, ref_days = summary.get("episode_start_days"), reference.get("episode_start_days")
    if days is None or ref_days is None:
        return None
    if sorted(days) != sorted(ref_days):
        raise SmoothRLError(
            f"{name} and {ref_name} were evaluated on different days; evaluate them with the same @episodes"
        )
    ref = dict(zip(ref_days, reference["episode_returns"], strict=True))
    won = sum(r > ref[d] for d, r in zip(days, summary["episode_returns"], strict=True))
    return [int(won), len(days)]


def eval_env(
    run: Run, seed: int, env_id: str | None = None, split: str | None = None, env_kwargs: dict[str, Any] | None = None
) -> VecEnv:
    """
    The evaluation env of a run: one env, its frozen normalization, the test split of HVAC envs.

    :param run: the loaded run
    :param seed: the env's seed
    :param env_id: another env with the same spaces (default: the run's)
    :param split: HVAC days (default ``"test"``)
    :param env_kwargs: keyword arguments of ``env_id`` on top of the split's
    :return: the env
    """
    env_id = env_id or run.config.env
    return make_env(
        run.config,
        n_envs=1,
        training=False,
        seed=seed,
        vecnormalize_path=run.vecnormalize_path,
        env_id=env_id,
        env_overrides={**split_overrides(env_id, split), **(env_kwargs or {})},
        model=run.model,
    )


def split_overrides(env_id: str, split: str | None) -> dict[str, Any]:
    """:return: the env kwargs that evaluate ``env_id`` on ``split`` (see
    :func:`~smoothrl.envs.registration.eval_env_kwargs`)"""
    return eval_env_kwargs(env_id, split)


def episodes_to_play(env: VecEnv, env_id: str, episodes: int | None, default: int) -> int:
    """
    How many episodes an evaluation plays: on an env that plays its days in order (HVAC
    evaluation), all its distinct days by default and never more than it has, so that no week
    counts twice; elsewhere ``episodes`` or ``default``.

    :param env: the evaluation env
    :param env_id: its id (for the message)
    :param episodes: what the user asked for (``None``: the default)
    :param default: episodes of an env without days in order
    :return: the number of episodes
    :raises SmoothRLError: for fewer than 1, or more than the distinct days
    """
    sims = _simulators(env)
    if sims and sims[0].in_order:
        distinct = sims[0].distinct_episodes
        if episodes is None:
            return distinct
        if episodes > distinct:
            what = f"{sims[0].split} weeks" if sims[0].spec.episode_days == 7 else f"{sims[0].split} start days"
            raise SmoothRLError(
                f"@episodes {episodes} is more than the {distinct} distinct {what} of {env_id}: "
                f"pass @episodes {distinct} or fewer (each is played once)"
            )
    n = default if episodes is None else episodes
    if n < 1:
        raise SmoothRLError(f"@episodes must be at least 1, got {n}")
    return n


def _simulators(env: VecEnv) -> list[Any]:
    """The HVAC simulators of an env's buildings (empty for other envs)."""
    try:
        return [s for s in env.get_attr("sim") if s is not None]
    except AttributeError:
        return []


def _play(
    policy: Any, env: VecEnv, episodes: int | None, deterministic: bool, seed: int, env_id: str, default: int = 5
) -> tuple[dict[str, Any], list[Episode]]:
    try:
        episodes = episodes_to_play(env, env_id, episodes, default)
    except SmoothRLError:
        env.close()
        raise
    set_random_seed(seed)
    try:
        played = run_episodes(policy, env, episodes, deterministic)
    finally:
        env.close()
    summary = summarize(played)
    summary["env"] = env_id
    summary["deterministic"] = deterministic
    summary["seed"] = seed
    return summary, played


def evaluate_controller(
    name: str,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    episodes: int | None = None,
    seed: int = EVAL_SEED_OFFSET,
    split: str | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[Episode]]:
    """
    Evaluate a controller that is not learned (a rule baseline, tuned for the env's building
    when ``baselines/`` has it, or an MPC) with the same episode runner, metrics and KPIs as a
    trained run, on the same distinct test weeks and initial states.

    :param name: one of ``smoothrl.envs.hvac.control.CONTROLLERS``
    :param env_id: an HVAC id
    :param env_kwargs: env keyword arguments (e.g. ``{"preset": "house_denver"}``)
    :param episodes: episodes to play (default: every distinct test week)
    :param seed: env seed (the realistic MPC's forecast errors too)
    :param split: HVAC days (default ``"test"``)
    :param params: the controller's parameters (on top of the tuned ones)
    :return: the summary (with ``controller``, ``controller_params``, ``tuned`` and
        ``ms_per_decision``) and the episodes
    :raises SmoothRLError: for a non-HVAC env, an unknown controller or one the env cannot run
    """
    from smoothrl.envs import HVAC_FAMILY
    from smoothrl.envs.eplus import EPLUS_IDS
    from smoothrl.envs.hvac.control import MPCS, believed_model, make_controller, tuned_params
    from smoothrl.envs.registration import has_controllers

    check_seed("@seed", seed)
    if not has_controllers(env_id):
        raise SmoothRLError(f"@controller needs an HVAC env ({', '.join(HVAC_FAMILY)}), got {env_id}")
    params = dict(params or {})
    if env_id in EPLUS_IDS and name == "mpc-oracle":
        raise SmoothRLError(
            "the oracle MPC needs the RC simulator's full state, which EnergyPlus does not expose; "
            "use @controller mpc-realistic on EnergyPlus"
        )
    env = make_vec_env(env_id, 1, seed, {**(env_kwargs or {}), **split_overrides(env_id, split)})
    sim = env.get_attr("sim")[0]
    if env_id in EPLUS_IDS and name == "mpc-realistic" and "model_preset" not in params:
        params["model_preset"] = believed_model(sim)
    try:
        controller = make_controller(name, sim, params, seed=seed)
    except SmoothRLError:
        env.close()
        raise
    timed = _Timed(controller)
    summary, played = _play(timed, env, episodes, True, seed, env_id)
    entry = None if name in MPCS else tuned_params(name, sim.spec.name, sim.discrete)
    summary["controller"] = name
    summary["controller_params"] = {**(entry["params"] if entry else {}), **params}
    summary["tuned"] = entry is not None
    summary["ms_per_decision"] = timed.ms_per_decision
    if name in MPCS:
        summary["ms_per_solve"] = controller.ms_per_solve
    return summary, played


class _Timed:
    """A policy whose ``predict`` calls are timed (wall clock, ms per decision)."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.seconds, self.calls = policy, 0.0, 0

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        out = self.policy.predict(*args, **kwargs)
        self.seconds += time.perf_counter() - began
        self.calls += 1
        return out

    @property
    def ms_per_decision(self) -> float:
        return 1000.0 * self.seconds / max(self.calls, 1)
