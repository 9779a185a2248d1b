"""Tuning a rule-based baseline on a building's training weeks, as a commissioning engineer would,
and keeping the result as a preset (``baselines/<building preset>.yaml``).

The objective is the env's own: the mean return over every training week of the split, each
played once from the same initial temperatures (``seed``), all weeks simulated together. The
search is Optuna's TPE sampler, seeded, starting from the untuned defaults (so the tuned
controller is never worse on the training weeks than the untuned one). The test weeks are never
seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import yaml

from smoothrl.envs.hvac.control import RULES, baseline_file, plant_kind
from smoothrl.envs.hvac.env import HVACVectorEnv
from smoothrl.envs.hvac.spec import HVACSpec
from smoothrl.errors import SmoothRLError
from smoothrl.rundir import atomic_write_text


def search_space(name: str, spec: HVACSpec, discrete: bool) -> dict[str, tuple[float, float, bool]]:
    """
    :param name: ``thermostat`` or ``pi``
    :param spec: the building
    :param discrete: staged plant
    :return: parameter -> ``(low, high, log scale)``
    """
    occ, unocc = spec.comfort.occupied, spec.comfort.unoccupied
    space = {
        "margin": (0.0, min(1.0, (occ[1] - occ[0]) / 2), False),
        "setback_heat": (unocc[0], occ[0], False),
        "setback_cool": (occ[1], unocc[1], False),
        "heat_rate": (0.2, 10.0, True),
        "cool_rate": (0.2, 10.0, True),
        "lead_bias_h": (0.0, 3.0, False),
        "adapt": (0.0, 0.5, False),
    }
    if name == "pi":
        space.update({"gain": (0.05, 0.95, False), "ti_h": (0.1, 12.0, True)})
    else:
        space["deadband"] = (0.1, 3.0, False)
        if not discrete:
            space["output"] = (spec.plant.min_modulation, 1.0, False)
    return space


def training_return(
    name: str, spec: HVACSpec, discrete: bool, params: dict[str, Any], seed: int, split: str = "train"
) -> np.ndarray:
    """
    Play every week (start day) of a split once with a rule baseline, all at once.

    :param name: ``thermostat`` or ``pi``
    :param spec: the building
    :param discrete: staged plant
    :param params: the controller's parameters
    :param seed: seed of the initial temperatures
    :param split: ``train`` (tuning) or ``test``
    :return: the return of each week, in the split's in-order sequence
    """
    probe = HVACVectorEnv(1, spec=spec, discrete=discrete, split=split)
    n = probe.sim.distinct_episodes
    env = HVACVectorEnv(n, spec=spec, discrete=discrete, split=split, in_order=True)
    controller = RULES[name](spec, discrete, **params)
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(n)
    start = np.ones(n, dtype=bool)
    for _ in range(env.sim.episode_steps):
        actions, _ = controller.predict(obs, episode_start=start)
        obs, reward, _, _, _ = env.step(actions)
        returns += reward
        start[:] = False
    return returns


def tune(
    name: str,
    spec: HVACSpec,
    discrete: bool,
    trials: int = 200,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """
    Tune a rule baseline on the training weeks.

    :param name: ``thermostat`` or ``pi``
    :param spec: the building
    :param discrete: staged plant
    :param trials: parameter sets tried (the first: the defaults)
    :param seed: seed of the sampler and of the initial temperatures
    :param progress: called after each trial with its number and the best mean return so far
    :return: ``params`` (the best), ``train_mean_return`` (theirs), ``default_train_mean_return``,
        ``trials``, ``seed``
    :raises SmoothRLError: for an unknown controller, a PI on a staged plant, or missing Optuna
    """
    if name not in RULES:
        raise SmoothRLError(f"@controller: only rule baselines are tuned ({', '.join(RULES)}), got '{name}'")
    if name == "pi" and discrete:
        raise SmoothRLError("the pi controller needs the modulating plant; tune thermostat on a staged env")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise SmoothRLError(f"@trials must be a whole number >= 1, got {trials!r}")
    try:
        import optuna
    except ImportError:
        raise SmoothRLError("tuning a baseline needs Optuna: pip install 'smoothrl[ray]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = search_space(name, spec, discrete)

    def objective(trial: Any) -> float:
        params = {key: trial.suggest_float(key, low, high, log=log) for key, (low, high, log) in space.items()}
        return float(training_return(name, spec, discrete, params, seed).mean())

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    defaults = RULES[name](spec, discrete)
    start = {key: float(np.clip(getattr(defaults, key, low), low, high)) for key, (low, high, _) in space.items()}
    start["heat_rate"], start["cool_rate"] = defaults.heat_rate0, defaults.cool_rate0
    study.enqueue_trial(start)
    for i in range(trials):
        study.optimize(objective, n_trials=1)
        if progress is not None:
            progress(i + 1, study.best_value)
    best = {key: _round(value) for key, value in study.best_params.items()}
    return {
        "params": best,
        "train_mean_return": float(training_return(name, spec, discrete, best, seed).mean()),
        "default_train_mean_return": float(study.trials[0].value),
        "trials": trials,
        "seed": seed,
    }


def _round(value: float) -> float:
    """Four significant digits: what a preset file shows."""
    return float(f"{value:.4g}") if math.isfinite(value) else value


def save_tuned(preset: str, name: str, discrete: bool, result: dict[str, Any], command: str, path: Any = None) -> Any:
    """
    Put a tuned baseline into its building's baselines file (the other entries kept), atomically.

    :param preset: the building preset
    :param name: the controller
    :param discrete: staged plant
    :param result: from :func:`tune`
    :param command: the command that produced it (kept in the file)
    :param path: another file to write (default: ``baselines/<preset>.yaml``)
    :return: the path written
    """
    path = baseline_file(preset) if path is None else path
    data: dict[str, Any] = {}
    if path.is_file():
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise SmoothRLError(f"{path} is not a baselines file (a mapping); move it away or pass another @out")
    section = data.setdefault(plant_kind(discrete), {})
    section[name] = {**result, "command": command}
    header = (
        f"# Rule-based baselines of the building preset {preset}, tuned on its training weeks only\n"
        "# (smoothrl.envs.hvac.control.tuning); each entry names the command that produced it.\n"
    )
    return atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=True, width=1000))
