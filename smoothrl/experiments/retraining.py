"""``smoothrl performative``: a sequence of deployments against an environment that reacts to them.

Tabular methods (``rr``, ``rga``, ``finite``, ``mdrr``) run on the gridworld's exact model
(:mod:`smoothrl.performative.solvers`). ``deep`` repeats retraining with any smoothrl algorithm
on a performative env: deploy the policy (evaluation episodes with its deterministic actions),
let the env respond (one response, handed to every copy), then train the same model further
(warm start) in the env its deployment induced; ``rounds`` retrainings are ``rounds + 1``
deployments. Per deployment: the relative occupancy change (exact for tabular envs, from the
rollouts' visitation histogram otherwise), the performative return, the response, the KPIs.

Run directory (written by :mod:`smoothrl.experiments.retraining_run`): ``performative.yaml``
(the settings), ``performative.json`` (every round),
``performative.png`` (convergence, log scale), ``tb/`` (one scalar per deployment under
``performative/``), and for ``deep`` the run's ``config.yaml``, ``model.zip`` and
``vecnormalize.pkl`` as ``smoothrl train`` writes them (``smoothrl eval RUN_DIR`` works).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from smoothrl import rundir
from smoothrl.checks import COUNT, Range, check_number, check_seed
from smoothrl.errors import SmoothRLError
from smoothrl.performative import SENSITIVITY_KWARG, TABULAR_IDS
from smoothrl.performative.gridworld import PerformativeGridworld
from smoothrl.performative.occupancy import relative_change, value
from smoothrl.performative.protocol import as_table, merge_experience
from smoothrl.performative.solvers import retrain
from smoothrl.run.config import RunConfig, one_line
from smoothrl.run.overrides import resolve_config

SETTINGS = "performative.yaml"
RESULTS = "performative.json"
PLOT = "performative.png"
TB_TAG = "performative"
#: the relative change a run counts as converged at (the README's "rounds to 1e-3")
TOLERANCE = 1e-3
#: largest rounds / samples taken
MAX_ROUNDS = 100_000
MAX_SAMPLES = 1_000_000
#: largest regularization, sensitivity or step size taken (beyond it the solvers overflow)
MAX_COEFFICIENT = 1e6
#: the in-progress record of a deep run (rounds so far, the env's dynamics, the last occupancy)
PROGRESS = "progress.json"
#: the deep run's model after its latest finished round, to resume from
ROUND_CHECKPOINT = "round"


class PerformativeSettings(BaseModel):
    """
    :param env: a performative env id
    :param method: ``rr``, ``rga``, ``finite``, ``mdrr`` (tabular) or ``deep``
    :param lam: L2 regularization (tabular methods)
    :param beta: the env's sensitivity (the gridworld's beta, the HVAC occupants' sensitivity)
    :param eta: RGA's step size
    :param samples: trajectories per deployment (``finite``, ``mdrr``)
    :param rounds: retrainings
    :param delay: deployments per retraining (``mdrr``)
    :param adaptation: how far the env moves toward its response per deployment, ``(0, 1]``
    :param seed: seed of sampling and training
    :param algo: the algorithm of ``deep``
    :param steps: training steps per retraining (``deep``)
    :param episodes: evaluation episodes per deployment (``deep``)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    env: str = "smoothrl/PerformativeGridworld-v0"
    method: Literal["rr", "rga", "finite", "mdrr", "deep"] = "rr"
    lam: float | None = None
    beta: float | None = None
    eta: float | None = None
    samples: int | None = None
    rounds: int = 100
    delay: int = 1
    adaptation: float = 1.0
    seed: int = 0
    algo: str | None = None
    steps: int | None = None
    episodes: int = 5

    @property
    def tabular(self) -> bool:
        """Whether the method runs on the exact tabular model."""
        return self.method != "deep"


#: (option, rule) of each number, for the one-line messages
_RULES: dict[str, tuple[str, Range]] = {
    "lam": ("@lam", Range(0, MAX_COEFFICIENT)),
    "beta": ("@beta", Range(0, MAX_COEFFICIENT)),
    "eta": ("@eta", Range(0, MAX_COEFFICIENT, low_open=True)),
    "samples": ("@samples", Range(1, MAX_SAMPLES, integer=True)),
    "rounds": ("@rounds", Range(1, MAX_ROUNDS, integer=True)),
    "delay": ("@delay", COUNT),
    "adaptation": ("@adaptation", Range(0, 1, low_open=True)),
    "steps": ("@steps", Range(1, 1e9, integer=True)),
    "episodes": ("@episodes", COUNT),
}
#: options that belong to some methods only
_ONLY: dict[str, tuple[str, tuple[str, ...]]] = {
    "lam": ("@lam", ("rr", "rga", "finite", "mdrr")),
    "eta": ("@eta", ("rga",)),
    "samples": ("@samples", ("finite", "mdrr")),
    "algo": ("@algo", ("deep",)),
    "steps": ("@steps", ("deep",)),
}


def make_settings(**given: Any) -> PerformativeSettings:
    """
    Validate the options of ``smoothrl performative`` (``None`` values take the defaults).

    :return: the settings
    :raises SmoothRLError: one line naming the option and the fix
    """
    given = {k: v for k, v in given.items() if v is not None}
    method = given.get("method", "rr")
    for key, (option, rule) in _RULES.items():
        if key in given:
            check_number(option, given[key], rule)
    check_seed("@seed", given.get("seed"))
    for key, (option, methods) in _ONLY.items():
        if key in given and method in ("rr", "rga", "finite", "mdrr", "deep") and method not in methods:
            hint = " (deep retraining regularizes through the algorithm's own settings, @set)" if key == "lam" else ""
            raise SmoothRLError(f"{option} applies to @method {'|'.join(methods)} only, not {method}; drop it{hint}")
    if "delay" in given and given["delay"] != 1 and method != "mdrr":
        raise SmoothRLError(f"@delay applies to @method mdrr only, not {method}; drop it")
    try:
        settings = PerformativeSettings(**given)
    except ValidationError as e:
        raise one_line(e, prefix="performative: ") from None
    if settings.env not in SENSITIVITY_KWARG:
        raise SmoothRLError(f"{settings.env} is not a performative env; use one of {', '.join(SENSITIVITY_KWARG)}")
    if settings.tabular and settings.env not in TABULAR_IDS:
        raise SmoothRLError(
            f"@method {settings.method} needs an exact tabular model ({', '.join(TABULAR_IDS)}); "
            f"for {settings.env} use @method deep"
        )
    if settings.tabular and settings.lam is None:
        raise SmoothRLError(f"@method {settings.method} needs @lam (the L2 regularization, e.g. 1)")
    if settings.method == "rga" and settings.eta is None:
        raise SmoothRLError("@method rga needs @eta (the step size, e.g. 0.1)")
    if settings.method in ("finite", "mdrr") and settings.samples is None:
        raise SmoothRLError(f"@method {settings.method} needs @samples (trajectories per deployment, e.g. 200)")
    if settings.method == "mdrr" and settings.adaptation == 1:
        raise SmoothRLError("@method mdrr is for a gradually shifting env: give @adaptation below 1 (e.g. 0.3)")
    if settings.method == "deep" and settings.algo is None:
        raise SmoothRLError("@method deep needs @algo (e.g. ppo)")
    return settings


def env_kwargs(settings: PerformativeSettings) -> dict[str, Any]:
    """:return: the env keywords the settings fix (sensitivity, adaptation)"""
    kwargs: dict[str, Any] = {"adaptation": settings.adaptation}
    if settings.beta is not None:
        kwargs[SENSITIVITY_KWARG[settings.env]] = settings.beta
    return kwargs


def run_tabular(settings: PerformativeSettings, on_round: Callable[[dict[str, float]], Any] | None = None) -> dict:
    """
    :param settings: a tabular method's settings
    :param on_round: called after each round
    :return: the results (``rounds``, ``rounds_to_tolerance``, ``final_relative_change``,
        ``distance_to_stable`` when the run converged, ``seconds_per_round``)
    """
    beta = 5.0 if settings.beta is None else settings.beta
    world = PerformativeGridworld(beta=beta, adaptation=settings.adaptation)
    run = retrain(
        world,
        settings.method,
        settings.lam,
        settings.rounds,
        eta=settings.eta,
        samples=settings.samples,
        delay=settings.delay,
        seed=settings.seed,
        on_round=on_round,
    )
    distance = run.distance_to_stable()
    return {
        "rounds": run.rounds,
        "rounds_to_tolerance": run.rounds_to(TOLERANCE),
        "final_relative_change": run.rounds[-1]["relative_change"],
        "distance_to_stable": None if distance is None else distance.tolist(),
        "seconds_per_round": float(np.mean(run.series("seconds"))),
    }


class DeployedPolicy:
    """
    A model as the env sees it: on raw observations, through the run's frozen normalization.

    :param model: an SB3 model
    :param normalizer: the training env's ``VecNormalize`` (or ``None``)
    """

    def __init__(self, model: Any, normalizer: Any = None) -> None:
        self.model, self.normalizer = model, normalizer

    def _obs(self, observations: np.ndarray) -> np.ndarray:
        return observations if self.normalizer is None else self.normalizer.normalize_obs(observations)

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ):
        """SB3's ``predict`` on raw observations."""
        return self.model.predict(self._obs(observation), state, episode_start, deterministic)

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        """:return: ``(N, A)`` action probabilities of a discrete-action policy"""
        import torch

        obs, _ = self.model.policy.obs_to_tensor(self._obs(np.asarray(observations)))
        with torch.no_grad():
            dist = self.model.policy.get_distribution(obs)
        return dist.distribution.probs.cpu().numpy().astype(np.float64)


def deep_config(settings: PerformativeSettings, overrides: list[str]) -> RunConfig:
    """:return: the RunConfig of a deep run (the algorithm's preset for the env, the overrides, the env keywords)"""
    steps = settings.steps
    config = resolve_config(settings.algo, settings.env, None, overrides, seed=settings.seed)
    steps = steps or max(config.n_timesteps // max(settings.rounds, 1), 1)
    sensitivity = SENSITIVITY_KWARG[settings.env]
    if sensitivity in config.env_kwargs:  # @set env_kwargs.beta=... obeys the rule @beta does
        check_number(f"@set env_kwargs.{sensitivity}", config.env_kwargs[sensitivity], _RULES["beta"][1])
    if "adaptation" in config.env_kwargs:
        check_number("@set env_kwargs.adaptation", config.env_kwargs["adaptation"], _RULES["adaptation"][1])
    kwargs = {**config.env_kwargs, **env_kwargs(settings)}
    return config.model_copy(update={"env_kwargs": kwargs, "n_timesteps": steps * settings.rounds})


def run_deep(
    settings: PerformativeSettings,
    config: RunConfig,
    out: Path,
    on_round: Callable[[dict[str, float]], Any] | None = None,
    resume: bool = False,
) -> dict:
    """
    Deep repeated retraining (warm-started) with the run's algorithm. After every deployment the
    model, its normalization, the env's dynamics and the rounds so far are saved, so a killed
    run resumes from its last finished round.

    :param settings: the settings (``method="deep"``)
    :param config: from :func:`deep_config`
    :param out: the run directory: the model, normalization and TensorBoard go there
    :param on_round: called after each deployment
    :param resume: continue from the last finished round saved in ``out``
    :return: the results, as :func:`run_tabular`'s
    """
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    from smoothrl.envs.registration import eval_env_kwargs
    from smoothrl.run.build import EVAL_SEED_OFFSET, load_model, make_env, make_model
    from smoothrl.run.episodes import run_episodes, summarize

    steps = config.n_timesteps // settings.rounds
    saved = read_progress(out) if resume else None
    checkpoint = out / ROUND_CHECKPOINT
    normalization = checkpoint / rundir.VECNORMALIZE
    env = make_env(
        config, training=True, vecnormalize_path=normalization if saved and normalization.is_file() else None
    )
    evaluation = make_env(
        config, n_envs=1, training=False, seed=config.seed + EVAL_SEED_OFFSET, env_overrides=eval_env_kwargs(config.env)
    )
    if saved:
        model = load_model(config.entry.cls, checkpoint / rundir.MODEL, env=env, tensorboard_log=str(out / rundir.TB))
        for copy in (env, evaluation):
            copy.env_method("set_dynamics", np.asarray(saved["dynamics"]))
    else:
        model = make_model(config, env, tensorboard_log=out / rundir.TB)
    normalizer = env if isinstance(env, VecNormalize) else None
    tabular = config.env in TABULAR_IDS
    rounds: list[dict[str, float]] = list(saved["rounds"]) if saved else []
    d_last: np.ndarray | None = None if not saved or saved["d_last"] is None else np.asarray(saved["d_last"])
    try:
        for t in range(len(rounds), settings.rounds + 1):
            if t > 0:  # retrain in the env the last deployment induced
                model.learn(steps, reset_num_timesteps=False, tb_log_name=rundir.TB_RUN_NAME, progress_bar=False)
            if normalizer is not None:
                sync_envs_normalization(env, evaluation)
            deployed = DeployedPolicy(model, normalizer)
            evaluation.env_method("set_dynamics", evaluation.env_method("get_dynamics", indices=[0])[0])
            summary = summarize(run_episodes(model, evaluation, settings.episodes, deterministic=True))
            record: dict[str, float] = {"round": t, "deployment_return": summary["mean_return"]}
            record.update({k: v for k, v in summary.items() if k in ("tdis_tot", "ener_tot", "switches_per_day")})
            experience = evaluation.env_method("experience")
            if tabular:
                n_states = evaluation.observation_space.n
                table = as_table(deployed, np.arange(n_states), evaluation.action_space.n)
                d = evaluation.env_method("occupancy", table, indices=[0])[0]
            else:
                table = None
                visits = np.asarray(merge_experience(experience)["visits"], dtype=np.float64)
                d = visits / max(visits.sum(), 1.0)
            if d_last is not None:
                record["relative_change"] = relative_change(d, d_last)
            d_last = d
            response = evaluation.env_method("respond", table, experience, indices=[0])[0]
            dynamics = evaluation.env_method("get_dynamics", indices=[0])[0]
            env.env_method("set_dynamics", dynamics)
            evaluation.env_method("set_dynamics", dynamics)
            if tabular:
                record["performative_return"] = value(evaluation.env_method("tabular", indices=[0])[0], table)
            record.update({f"response_{k}": float(v) for k, v in response.items()})
            rounds.append(record)
            _save_round(out, model, rounds, dynamics, d_last)
            if on_round is not None:
                on_round(record)
        _save_model(model, out, config)
    finally:
        env.close()
        evaluation.close()
    changes = [r for r in rounds if "relative_change" in r]
    below = [r["round"] for r in changes if r["relative_change"] < TOLERANCE]
    return {
        "rounds": rounds,
        "rounds_to_tolerance": int(below[0]) if below else None,
        "final_relative_change": changes[-1]["relative_change"] if changes else None,
        "distance_to_stable": None,
    }


def _save_round(out: Path, model: Any, rounds: list[dict[str, float]], dynamics: Any, d_last: np.ndarray) -> None:
    """What a resumed deep run starts from: the model and normalization, then (last, so it names only
    complete files) the rounds, the env's dynamics and the last occupancy."""
    checkpoint = out / ROUND_CHECKPOINT
    checkpoint.mkdir(exist_ok=True)
    rundir.atomic_write(checkpoint / rundir.MODEL, model.save)
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        rundir.atomic_write(checkpoint / rundir.VECNORMALIZE, vec_normalize.save)
    progress = {"rounds": rounds, "dynamics": np.asarray(dynamics).tolist(), "d_last": np.asarray(d_last).tolist()}
    rundir.atomic_write_json(out / PROGRESS, progress)


def read_progress(out: Path) -> dict[str, Any]:
    """:return: the saved progress of a deep run; :raises SmoothRLError: when there is none to resume"""
    import json

    path = out / PROGRESS
    try:
        progress = json.loads(path.read_text())
        assert isinstance(progress["rounds"], list) and "dynamics" in progress and "d_last" in progress
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise SmoothRLError(
            f"{out} has no finished round to resume from ({PROGRESS}); start it again with @overwrite"
        ) from None
    if not (out / ROUND_CHECKPOINT / rundir.MODEL).is_file():
        raise SmoothRLError(f"{out} lacks the model of its last round; start it again with @overwrite")
    return progress


def _save_model(model: Any, out: Path, config: RunConfig) -> None:
    rundir.atomic_write_text(out / rundir.CONFIG, config.to_yaml())
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        rundir.atomic_write(out / rundir.VECNORMALIZE, vec_normalize.save)
    rundir.atomic_write(out / rundir.MODEL, model.save)


def log_round(writer: Any, record: dict[str, float]) -> None:
    step = int(record["round"])
    for key, val in record.items():
        if key != "round" and isinstance(val, int | float) and np.isfinite(val):
            writer.add_scalar(f"{TB_TAG}/{key}", float(val), step)
