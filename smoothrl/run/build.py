"""What every stage builds from a run's ``config.yaml``: the vectorized env (``make_env``: the
observation pipeline and, for a finished run, its frozen ``vecnormalize.pkl``), the model
(``make_model``), and a finished run loaded back (``load_run``). Evaluation, attack, certify,
export, deploy and plot all go through ``make_env``, so they see exactly what training saw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from smoothrl import rundir
from smoothrl.agents.noise import ColoredActionNoise, VectorizedColoredActionNoise
from smoothrl.envs.factory import make_vec_env
from smoothrl.errors import SmoothRLError
from smoothrl.run.config import NOISE_KEYS, RunConfig, load_config
from smoothrl.run.hyperparams import build_hyperparam

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
    if config.entry.colored_sampling and noise.type == "colored":  # its own sampling noise, colored (SAC)
        kwargs["noise_beta"], kwargs["noise_seq_len"] = noise.beta, noise.seq_len
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
    except SmoothRLError:  # the algorithm's own one-line refusal
        raise
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
        raise SmoothRLError(f"device '{device}': torch finds no CUDA device on this machine; use @device cpu or auto")
    if kind.type == "cuda" and kind.index is not None and kind.index >= th.cuda.device_count():
        raise SmoothRLError(f"device '{device}': this machine has {th.cuda.device_count()} CUDA devices; pick another")
    if kind.type == "mps" and not th.backends.mps.is_available():
        raise SmoothRLError(f"device '{device}': torch finds no MPS device on this machine; use @device cpu or auto")


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


def load_model(cls: type[BaseAlgorithm], path: Path, **kwargs: Any) -> BaseAlgorithm:
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
    model = load_model(config.entry.cls, model_path, device=device)
    return Run(path, config, model)
