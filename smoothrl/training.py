"""The pipeline: ``make_env`` -> ``make_model`` -> ``train`` -> RUN DIR -> ``load_run`` / ``evaluate``.

The CLI only calls these functions, and every later stage (eval, attack, certify, export,
deploy, plot) rebuilds the observation pipeline through ``make_env`` from the run's
``config.yaml`` and frozen ``vecnormalize.pkl``, so it sees exactly what training saw.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import ValidationError
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from smoothrl import rundir
from smoothrl.agents.noise import ColoredActionNoise, VectorizedColoredActionNoise
from smoothrl.callbacks import AtomicCheckpointCallback, SmoothnessCallback, SmoothnessEvalCallback, save_checkpoint
from smoothrl.checks import check_seed, check_writable
from smoothrl.config import NOISE_KEYS, RunConfig, build_hyperparam, load_config, one_line
from smoothrl.envs.factory import make_vec_env
from smoothrl.envs.registration import eval_env_kwargs
from smoothrl.envs.vec_wrappers import VecObservationNoise
from smoothrl.episodes import Episode, run_episodes, summarize
from smoothrl.errors import SmoothRLError, TrainingInterrupted

#: Evaluation envs are seeded with the run's seed plus this offset, so they never replay the
#: training envs' initial states.
EVAL_SEED_OFFSET = 10_000


def _describe(space: gym.Space) -> str:
    return f"{type(space).__name__}{getattr(space, 'shape', '')}" + (
        f" n={space.n}" if isinstance(space, gym.spaces.Discrete) else ""
    )


def _same_space(a: gym.Space, b: gym.Space) -> bool:
    if type(a) is not type(b) or a.shape != b.shape:
        return False
    if isinstance(a, gym.spaces.Discrete):
        return int(a.n) == int(b.n)  # type: ignore[attr-defined]
    return True


def make_env(
    config: RunConfig,
    *,
    n_envs: int | None = None,
    training: bool = True,
    seed: int | None = None,
    vecnormalize_path: str | Path | None = None,
    env_id: str | None = None,
    env_overrides: dict[str, Any] | None = None,
    model: BaseAlgorithm | None = None,
) -> VecEnv:
    """
    Build the vectorized env of a run (:func:`smoothrl.envs.make_vec_env`), then ``VecNormalize``
    when the config normalizes. The same function serves training, evaluation and every later stage.

    :param config: the run config
    :param n_envs: parallel envs (default: ``config.n_envs``)
    :param training: ``False`` freezes the normalization statistics and reports raw rewards
    :param seed: seed of the first env (default: ``config.seed``)
    :param vecnormalize_path: load normalization statistics from this file instead of starting fresh
    :param env_id: another env to run the run's pipeline on (default: ``config.env``); it gets
        the run's ``env_kwargs`` only when it is the run's own env
    :param env_overrides: env keyword arguments to change (e.g. ``{"split": "test"}``)
    :param model: when given, the env's spaces must match the model's
    :return: the vectorized env
    :raises SmoothRLError: for an unknown id, bad ``env_kwargs`` or spaces that do not match
    """
    env_id = env_id or config.env
    env_kwargs = {**(config.env_kwargs if env_id == config.env else {}), **(env_overrides or {})}
    venv = make_vec_env(
        env_id, n_envs or config.n_envs, config.seed if seed is None else seed, env_kwargs, config.smoothness_reward
    )
    if model is not None:
        for what in ("observation_space", "action_space"):
            theirs, ours = getattr(venv, what), getattr(model, what)
            if not _same_space(theirs, ours):
                venv.close()
                if env_id == config.env:  # the run's own env: its config.yaml does not fit its model
                    raise SmoothRLError(
                        f"the run's config.yaml names {env_id}, whose {what.replace('_', ' ')} {_describe(theirs)} "
                        f"is not the model's {_describe(ours)}: config.yaml was edited or belongs to another run; "
                        "restore it"
                    )
                raise SmoothRLError(
                    f"{env_id} has {what.replace('_', ' ')} {_describe(theirs)} but the model expects "
                    f"{_describe(ours)}; evaluate on an env with the same spaces as {config.env}"
                )
    normalize = config.normalize_kwargs
    if normalize is None:
        return venv
    if vecnormalize_path is not None:
        try:
            venv = VecNormalize.load(str(vecnormalize_path), venv)
        except Exception as e:
            raise SmoothRLError(
                f"cannot load normalization statistics {vecnormalize_path} ({type(e).__name__}); restore it or retrain"
            ) from None
    else:
        venv = VecNormalize(venv, **normalize)
    if not training:
        venv.training = False
        venv.norm_reward = False
    return venv


def model_kwargs(config: RunConfig, env: VecEnv) -> dict[str, Any]:
    """
    The constructor keywords of a run's algorithm (everything but policy, env, seed, device, logging).

    :param config: the run config
    :param env: the training env (sets the action noise's dimension)
    :return: keyword arguments, with schedules, torch classes and ``action_noise`` built
    :raises SmoothRLError: when ``noise_type`` is set for a non-continuous action space
    """
    kwargs = {k: build_hyperparam(k, v) for k, v in config.hyperparams.items() if k not in NOISE_KEYS}
    noise = config.noise
    if noise is None:
        return kwargs
    if not isinstance(env.action_space, gym.spaces.Box):
        raise SmoothRLError(f"noise_type needs a continuous action space, {config.env} has {env.action_space}")
    if config.entry.name == "sac" and noise.type == "colored":  # SAC's own sampling noise, colored
        kwargs["colored_noise_beta"], kwargs["colored_noise_seq_len"] = noise.beta, noise.seq_len
        return kwargs
    n = int(np.prod(env.action_space.shape))
    sigma = (0.1 if noise.std is None else noise.std) * np.ones(n)
    if noise.type == "colored":  # one generator per env, renewed at each of its episode starts
        base = ColoredActionNoise(noise.beta, sigma, noise.seq_len, n)
        kwargs["action_noise"] = VectorizedColoredActionNoise(base, env.num_envs, seed=config.seed)
    else:
        noise_cls = NormalActionNoise if noise.type == "normal" else OrnsteinUhlenbeckActionNoise
        kwargs["action_noise"] = noise_cls(mean=np.zeros(n), sigma=sigma)
    return kwargs


def make_model(config: RunConfig, env: VecEnv, tensorboard_log: str | Path | None = None) -> BaseAlgorithm:
    """
    Build the algorithm of a run from its config.

    :param config: the run config
    :param env: the training env from :func:`make_env`
    :param tensorboard_log: TensorBoard folder (``None``: no logging)
    :return: the untrained model
    :raises SmoothRLError: when the algorithm cannot work with the env (e.g. DQN on a Box action space)
    """
    cls = config.entry.cls
    check_device(config.device)
    kwargs = model_kwargs(config, env)
    try:
        return cls(
            config.policy,
            env,
            seed=config.seed,
            device=config.device,
            tensorboard_log=None if tensorboard_log is None else str(tensorboard_log),
            verbose=0,
            **kwargs,
        )
    except (AssertionError, ValueError, KeyError) as e:
        message = str(e).replace("\n", " ").strip()
        if "only supports" in message:  # SB3's check of the env's spaces
            raise SmoothRLError(
                f"{config.algo} cannot train on {config.env}: {message}; pick another algorithm or env"
            ) from None
        raise SmoothRLError(
            f"{config.algo} rejected its settings ({message or type(e).__name__}); fix the value it names "
            f"(`smoothrl list --params {config.algo}` lists the keys)"
        ) from None


def check_device(device: str) -> None:
    """
    SB3 falls back to the CPU without a word when the device asked for is missing; a run that
    asked for a GPU should know it has none.

    :param device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    :raises SmoothRLError: when that device is not on this machine
    """
    import torch as th

    if device == "auto":
        return
    kind = th.device(device)
    if kind.type == "cuda" and not th.cuda.is_available():
        raise SmoothRLError(f"device '{device}': torch finds no CUDA device on this machine; use --device cpu or auto")
    if kind.type == "cuda" and kind.index is not None and kind.index >= th.cuda.device_count():
        raise SmoothRLError(f"device '{device}': this machine has {th.cuda.device_count()} CUDA devices; pick another")
    if kind.type == "mps" and not th.backends.mps.is_available():
        raise SmoothRLError(f"device '{device}': torch finds no MPS device on this machine; use --device cpu or auto")


@dataclass
class Run:
    """
    A finished run loaded from its directory.

    :param path: the run directory
    :param config: its config
    :param model: the trained model
    """

    path: Path
    config: RunConfig
    model: BaseAlgorithm

    @property
    def vecnormalize_path(self) -> Path | None:
        """The frozen normalization statistics, or ``None`` when the run does not normalize."""
        return self.path / rundir.VECNORMALIZE if self.config.normalize_kwargs is not None else None


def _load_model(cls: type[BaseAlgorithm], path: Path, **kwargs: Any) -> BaseAlgorithm:
    try:
        return cls.load(str(path), **kwargs)
    except ValueError as e:
        if "spaces do not match" in str(e):  # SB3's check of the env against the saved model
            raise SmoothRLError(
                f"{path} does not fit the env the run's config.yaml builds ({e}): config.yaml was edited or "
                "belongs to another run; restore it"
            ) from None
        raise SmoothRLError(
            f"{path} is corrupt or not a {cls.__name__} model ({type(e).__name__}); restore it or retrain"
        ) from None
    except Exception as e:
        raise SmoothRLError(
            f"{path} is corrupt or not a {cls.__name__} model ({type(e).__name__}); restore it or retrain"
        ) from None


def read_config(run_dir: str | Path) -> RunConfig:
    """
    :param run_dir: a run directory
    :return: its config
    :raises SmoothRLError: when the folder or its ``config.yaml`` is missing or invalid
    """
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise SmoothRLError(f"{path} is a file, not a run directory; pass a folder written by `smoothrl train`")
    if not path.is_dir():
        raise SmoothRLError(f"run directory {path} does not exist; pass a folder written by `smoothrl train`")
    if not (path / rundir.CONFIG).is_file():
        raise SmoothRLError(
            f"{path} has no {rundir.CONFIG}, so it is not a smoothrl run; pass a folder written by `smoothrl train`"
        )
    return load_config(str(path / rundir.CONFIG))


def load_run(run_dir: str | Path, device: str = "auto") -> Run:
    """
    Load a finished run: its config, model and (checked) normalization statistics.

    :param run_dir: the run directory
    :param device: torch device for the model
    :return: the run
    :raises SmoothRLError: when a file is missing or corrupt, with what to do about it
    """
    path = Path(run_dir)
    config = read_config(path)
    model_path = path / rundir.MODEL
    owner = rundir.lock_owner(path)
    if not model_path.is_file() and owner is not None:
        raise SmoothRLError(
            f"{path} is still being trained by process {owner[0]}; wait for it to finish, then evaluate it"
        )
    if not model_path.is_file():
        if rundir.latest_checkpoint(path) is not None:
            raise SmoothRLError(
                f"{path} has no {rundir.MODEL}: training did not finish; "
                f"continue it with `smoothrl train --resume --run-dir {path}`"
            )
        raise SmoothRLError(f"{path} has no {rundir.MODEL}; retrain with `smoothrl train --run-dir {path} --overwrite`")
    if config.normalize_kwargs is not None and not (path / rundir.VECNORMALIZE).is_file():
        raise SmoothRLError(
            f"{path} has no {rundir.VECNORMALIZE} but the run normalizes observations; restore it or retrain"
        )
    model = _load_model(config.entry.cls, model_path, device=device)
    return Run(path, config, model)


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
    check_seed("--seed", seed)
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
            f"{name} and {ref_name} were evaluated on different days; evaluate them with the same --episodes"
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
        env_overrides={**_split_overrides(env_id, split), **(env_kwargs or {})},
        model=run.model,
    )


def _split_overrides(env_id: str, split: str | None) -> dict[str, Any]:
    try:
        return eval_env_kwargs(env_id, split)
    except ValueError as e:
        raise SmoothRLError(str(e)) from None


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
                f"--episodes {episodes} is more than the {distinct} distinct {what} of {env_id}: "
                f"pass --episodes {distinct} or fewer (each is played once)"
            )
    n = default if episodes is None else episodes
    if n < 1:
        raise SmoothRLError(f"--episodes must be at least 1, got {n}")
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

    check_seed("--seed", seed)
    if env_id not in HVAC_FAMILY:
        raise SmoothRLError(f"--controller needs an HVAC env ({', '.join(HVAC_FAMILY)}), got {env_id}")
    params = dict(params or {})
    if env_id in EPLUS_IDS and name == "mpc-oracle":
        raise SmoothRLError(
            "the oracle MPC needs the RC simulator's full state, which EnergyPlus does not expose; "
            "use --controller mpc-realistic on EnergyPlus"
        )
    env = make_vec_env(env_id, 1, seed, {**(env_kwargs or {}), **_split_overrides(env_id, split)})
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


def _check_fresh_run_dir(run_dir: Path, overwrite: bool) -> bool:
    """Whether ``run_dir`` holds a run that ``overwrite`` will replace (refusing everything else;
    a file in its place was refused by :func:`~smoothrl.checks.check_writable` before)."""
    if rundir.is_empty_dir(run_dir):
        return False
    if not rundir.is_run_dir(run_dir):
        raise SmoothRLError(
            f"{run_dir} holds files but no smoothrl run (no {rundir.CONFIG}); "
            "--overwrite replaces runs only: pass another --run-dir"
        )
    if not overwrite:
        raise SmoothRLError(f"{run_dir} already holds a run; pass --resume to continue it or --overwrite to replace it")
    return True


def _set_aside(run_dir: Path) -> Path:
    """Move a run's files (all but the lock) into a sibling folder, to restore them if the new run fails."""
    aside = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}")
    if aside.exists():
        shutil.rmtree(aside)
    aside.mkdir()
    for child in run_dir.iterdir():
        if child.name != rundir.LOCK:
            os.replace(child, aside / child.name)
    return aside


def _restore(aside: Path, run_dir: Path) -> None:
    """Put a run set aside back in place of a failed or interrupted new one."""
    for child in run_dir.iterdir():
        if child.name != rundir.LOCK:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for child in aside.iterdir():
        os.replace(child, run_dir / child.name)
    aside.rmdir()


def _learn(
    model: BaseAlgorithm,
    config: RunConfig,
    run_dir: Path,
    callbacks: list[BaseCallback],
    progress_bar: bool,
    reset: bool,
) -> None:
    try:
        model.learn(
            total_timesteps=config.n_timesteps - (0 if reset else model.num_timesteps),
            callback=CallbackList(callbacks),
            tb_log_name=rundir.TB_RUN_NAME,
            reset_num_timesteps=reset,
            progress_bar=progress_bar,
        )
    except KeyboardInterrupt:
        steps = save_checkpoint(model, run_dir)
        raise TrainingInterrupted(
            f"training interrupted at {steps} steps; checkpoint saved, continue with "
            f"`smoothrl train --resume --run-dir {run_dir}`"
        ) from None


def _training_env(config: RunConfig, vecnormalize_path: str | Path | None = None) -> VecEnv:
    """
    The training env of a run: normalization statistics from a checkpoint (``--resume``), from
    ``config.initial_normalization`` or fresh, frozen when ``config.freeze_normalization``; with
    ``obs_noise`` the observations are noise-augmented.
    """
    env = make_env(config, training=True, vecnormalize_path=vecnormalize_path or config.initial_normalization)
    if config.freeze_normalization and isinstance(env, VecNormalize):
        env.training = False
    if config.obs_noise > 0:
        if isinstance(env, VecNormalize) and config.entry.off_policy:
            env.close()
            # SB3's replay buffers store VecNormalize's original (clean) observations: the noise would be lost
            raise SmoothRLError(
                f"obs_noise with normalize is not supported for off-policy {config.algo}; "
                "use normalize=false or PPO/A2C"
            )
        env = VecObservationNoise(env, config.obs_noise, config.seed)
    return env


def _pretrain(model: BaseAlgorithm, env: VecEnv, config: RunConfig, progress_bar: bool) -> list[dict[str, Any]] | None:
    """Distil the config's teacher into the new model (``config.pretrain``), with a progress bar."""
    if config.pretrain is None:
        return None
    if config.pretrain.from_run is not None:
        return _distilled_in(Path(config.pretrain.from_run), model, env, config)
    from rich.progress import Progress

    from smoothrl.distillation import distill

    with Progress(transient=True, disable=not progress_bar) as bar:
        task = bar.add_task(f"distilling {config.pretrain.teacher}", total=None)
        return distill(model, env, config, progress=lambda done, total: bar.update(task, completed=done, total=total))


def _distilled_in(source: Path, model: BaseAlgorithm, env: VecEnv, config: RunConfig) -> list[dict[str, Any]]:
    """Take the policy (and normalization statistics) another run distilled, its checkpoint 0."""
    theirs = read_config(source)
    where = f"pretrain.from_run {source}"
    if theirs.pretrain is None or theirs.pretrain.teacher != config.pretrain.teacher:
        raise SmoothRLError(f"{where} was not distilled from {config.pretrain.teacher}; name a run that was")
    same = ("algo", "env", "env_kwargs", "policy", "normalize", "smoothness_reward")
    differ = [key for key in same if getattr(theirs, key) != getattr(config, key)]
    arch = (theirs.hyperparams.get("policy_kwargs") or {}).get("net_arch")
    if arch != (config.hyperparams.get("policy_kwargs") or {}).get("net_arch"):
        differ.append("policy_kwargs.net_arch")
    if differ:
        raise SmoothRLError(f"{where} differs in {', '.join(differ)}; distil with the same settings or drop from_run")
    ckpt = rundir.checkpoint_paths(source, 0)
    if not ckpt.model.is_file():
        raise SmoothRLError(f"{where} has no checkpoint 0 (the distilled policy); name a run trained with pretrain")
    distilled = _load_model(config.entry.cls, ckpt.model, device=model.device)
    state = {k: v for k, v in distilled.policy.state_dict().items() if k != "log_std"}  # the new run's own std
    try:
        model.policy.load_state_dict(state, strict=False)
    except RuntimeError:
        raise SmoothRLError(f"{where} has another network than this run; distil with the same policy_kwargs") from None
    normalize = model.get_vec_normalize_env()
    if normalize is not None:
        try:
            stats = VecNormalize.load(str(ckpt.vecnormalize), normalize.venv)
        except Exception as e:
            raise SmoothRLError(f"{where}: cannot read {ckpt.vecnormalize} ({type(e).__name__}); restore it") from None
        normalize.obs_rms, normalize.ret_rms = stats.obs_rms, stats.ret_rms
    record = source / rundir.PRETRAIN
    rounds = json.loads(record.read_text())["rounds"] if record.is_file() else []
    return [{**r, "from_run": str(source)} for r in rounds]


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    progress_bar: bool = True,
    callbacks: list[BaseCallback] | None = None,
) -> Path:
    """
    Train a new run and write its directory (``model.zip``, ``config.yaml``,
    ``vecnormalize.pkl``, ``tb/``, ``checkpoints/``, ``eval.json``).

    :param config: the run config (from :func:`smoothrl.config.resolve_config`)
    :param run_dir: where to write; must be new or empty unless ``overwrite``
    :param overwrite: replace a run already there
    :param progress_bar: show a progress bar
    :param callbacks: extra SB3 callbacks
    :return: the run directory
    :raises SmoothRLError: for bad input; :class:`TrainingInterrupted` on Ctrl-C (after checkpointing)
    """
    run_dir = check_writable(run_dir, "--run-dir", folder=True)
    existed = run_dir.exists()
    _check_fresh_run_dir(run_dir, overwrite)
    try:
        with rundir.locked(run_dir):
            rundir.clean_temp_files(run_dir)
            replacing = _check_fresh_run_dir(run_dir, overwrite)  # again, now that no one else writes
            try:
                env = _training_env(config)
                model = make_model(config, env, tensorboard_log=run_dir / rundir.TB)
                pretrained = _pretrain(model, env, config, progress_bar)
            except KeyboardInterrupt:
                kept = f"; the run in {run_dir} is unchanged" if replacing else ""
                raise TrainingInterrupted(
                    f"interrupted while starting, before training began: nothing written{kept}"
                ) from None
            # only now, once the new run is known to build, is the old one set aside; it is removed
            # once the new one has finished, and restored if the new one fails or is interrupted
            aside = _set_aside(run_dir) if replacing else None
            try:
                rundir.atomic_write_text(run_dir / rundir.CONFIG, config.to_yaml())
                if pretrained is not None:  # the distilled policy is checkpoint 0: RL starts (or resumes) from it
                    rundir.atomic_write_json(run_dir / rundir.PRETRAIN, {"rounds": pretrained})
                    save_checkpoint(model, run_dir)
                callbacks = _callbacks(config, run_dir) + list(callbacks or [])
                _learn(model, config, run_dir, callbacks, progress_bar, reset=True)
                _finish(model, config, run_dir)
            except BaseException as e:
                if aside is None:
                    raise
                _restore(aside, run_dir)
                if isinstance(e, TrainingInterrupted | KeyboardInterrupt):
                    raise TrainingInterrupted(
                        f"training interrupted; the previous run in {run_dir} is restored, the new one discarded"
                    ) from None
                raise
            if aside is not None:
                shutil.rmtree(aside)
    finally:
        if not existed and rundir.is_empty_dir(run_dir) and run_dir.is_dir():
            shutil.rmtree(run_dir)  # nothing was written: leave no empty folder behind
    return run_dir


def resume(
    run_dir: str | Path,
    *,
    n_timesteps: int | None = None,
    progress_bar: bool = True,
    callbacks: list[BaseCallback] | None = None,
) -> Path:
    """
    Continue a run from its latest checkpoint with its saved config; steps already done count.

    :param run_dir: the run directory
    :param n_timesteps: a new total budget (to train a finished run further)
    :param progress_bar: show a progress bar
    :param callbacks: extra SB3 callbacks
    :return: the run directory
    :raises SmoothRLError: when there is nothing to resume
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    check_writable(run_dir, "--run-dir", folder=True)
    with rundir.locked(run_dir):
        rundir.clean_temp_files(run_dir)
        return _resume(run_dir, config, n_timesteps, progress_bar, callbacks)


def final_files(run_dir: Path, ckpt: rundir.Checkpoint) -> tuple[bool, bool]:
    """
    :param run_dir: a run directory
    :param ckpt: its latest checkpoint
    :return: whether the final model was saved after that checkpoint, and whether the final
        evaluation was written after that model (both: the run finished)
    """
    final, summary = run_dir / rundir.MODEL, run_dir / rundir.EVAL
    # the final files are written after the last checkpoint, in this order: newer means finished
    saved = final.is_file() and final.stat().st_mtime_ns >= ckpt.model.stat().st_mtime_ns
    evaluated = saved and summary.is_file() and summary.stat().st_mtime_ns >= final.stat().st_mtime_ns
    return saved, evaluated


def _resume(
    run_dir: Path,
    config: RunConfig,
    n_timesteps: int | None,
    progress_bar: bool,
    callbacks: list[BaseCallback] | None,
) -> Path:
    if n_timesteps is not None:
        try:
            config = RunConfig.model_validate({**config.model_dump(), "n_timesteps": n_timesteps})
        except ValidationError as e:
            raise one_line(e, where="--timesteps: ") from None
    ckpt = rundir.latest_checkpoint(run_dir)
    if ckpt is None:
        raise SmoothRLError(f"{run_dir} has no checkpoint to resume from; start it again with --overwrite")
    trained = ckpt.steps >= config.n_timesteps
    saved, evaluated = final_files(run_dir, ckpt)
    if trained and evaluated:
        raise SmoothRLError(
            f"{run_dir} is already trained for {ckpt.steps} steps; pass --timesteps with a larger total to continue"
        )
    if trained and saved:  # the final evaluation was interrupted: finish it
        _final_evaluation(load_run(run_dir))
        return run_dir
    vecnormalize = ckpt.vecnormalize if config.normalize_kwargs is not None else None
    if vecnormalize is not None and not vecnormalize.is_file():
        raise SmoothRLError(f"{vecnormalize} is missing, so {ckpt.model.name} cannot be resumed; restore it or retrain")
    check_device(config.device)
    env = _training_env(config, vecnormalize)
    model = _load_model(
        config.entry.cls, ckpt.model, env=env, device=config.device, tensorboard_log=str(run_dir / rundir.TB)
    )
    if config.entry.off_policy:
        if not ckpt.replay_buffer.is_file():
            raise SmoothRLError(
                f"{ckpt.model.name} has no replay buffer ({ckpt.replay_buffer.name}), so resuming would start from "
                "an empty buffer; restore the file, or retrain with --overwrite"
            )
        try:
            model.load_replay_buffer(str(ckpt.replay_buffer))  # type: ignore[attr-defined]
        except Exception as e:  # truncated or damaged: resuming on an empty buffer would lose it silently
            raise SmoothRLError(
                f"{ckpt.replay_buffer} is damaged ({type(e).__name__}), so {ckpt.model.name} cannot be resumed with "
                "its replay buffer; restore the file, or retrain with --overwrite"
            ) from None
    rundir.atomic_write_text(run_dir / rundir.CONFIG, config.to_yaml())
    if not trained:  # else: stopped after its last checkpoint, before the final files; write them now
        _learn(model, config, run_dir, _callbacks(config, run_dir) + list(callbacks or []), progress_bar, reset=False)
    return _finish(model, config, run_dir)


def _callbacks(config: RunConfig, run_dir: Path) -> list[BaseCallback]:
    callbacks: list[BaseCallback] = [SmoothnessCallback()]
    if config.checkpoint_freq > 0:
        callbacks.append(AtomicCheckpointCallback(run_dir, config.checkpoint_freq))
    if config.eval_freq > 0:
        eval_env = make_env(
            config,
            n_envs=1,
            training=False,
            seed=config.seed + EVAL_SEED_OFFSET,
            env_overrides=_split_overrides(config.env, None),
        )
        callbacks.append(SmoothnessEvalCallback(eval_env, config.eval_freq, config.eval_episodes))
    return callbacks


def _finish(model: BaseAlgorithm, config: RunConfig, run_dir: Path) -> Path:
    try:
        save_checkpoint(model, run_dir)
        vec_normalize = model.get_vec_normalize_env()
        if vec_normalize is not None:
            rundir.atomic_write(run_dir / rundir.VECNORMALIZE, vec_normalize.save)
        rundir.atomic_write(run_dir / rundir.MODEL, model.save)
    except KeyboardInterrupt:  # the checkpoint is complete (atomic writes) or the previous one stands
        raise TrainingInterrupted(
            f"interrupted while saving the trained model; continue with `smoothrl train --resume --run-dir {run_dir}`"
        ) from None
    _final_evaluation(Run(run_dir, config, model))
    model.get_env().close()
    return run_dir


def _final_evaluation(run: Run) -> None:
    """Evaluate a trained run and write ``eval.json``; Ctrl-C leaves the model and says how to finish."""
    try:
        summary, _ = evaluate(run, run.config.eval_episodes)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted during the final evaluation; the trained model is saved in {run.path}: evaluate it with "
            f"`smoothrl eval {run.path}` or write eval.json with `smoothrl train --resume --run-dir {run.path}`"
        ) from None
    rundir.atomic_write_json(run.path / rundir.EVAL, summary)
