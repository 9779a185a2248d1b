"""RunConfig: preset YAML + CLI overrides -> one validated object.

Hyperparameters use the rl-zoo3 format: ``n_timesteps``, ``n_envs``, ``policy``, ``normalize``,
``env_kwargs``, ``noise_type``/``noise_std`` and ``policy_kwargs`` as a ``"dict(...)"`` string are
zoo keys; ``lin_<x>`` is a schedule decaying linearly from ``x`` to 0; every other key is a
keyword of the algorithm's constructor. Values are checked here, against the constructor's
type hints, so a bad value fails before anything is built or written.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch as th
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from stable_baselines3.common.vec_env import VecNormalize

from smoothrl.checks import MAX_SEED
from smoothrl.envs import HVAC_FAMILY
from smoothrl.envs.registration import has_controllers
from smoothrl.errors import SmoothRLError
from smoothrl.metrics import check_derivative_weights
from smoothrl.registry import ALGOS, AlgoEntry, get_entry
from smoothrl.run.hyperparams import (
    build_hyperparam,
    check_range,
)

#: Constructor keywords set by smoothrl itself, with the flag a user sets them through.
RESERVED = {
    "env": "@env",
    "seed": "@seed",
    "device": "@device",
    "tensorboard_log": "the run directory",
    "verbose": "smoothrl (it logs to TensorBoard)",
    "_init_setup_model": "smoothrl",
    "action_noise": "noise_type / noise_std",
}
NOISE_KEYS = ("noise_type", "noise_std", "noise_beta", "noise_seq_len")
#: Keys whose value is a dict that ``--set key.sub=value`` can reach into.
DICT_KEYS = ("env_kwargs", "policy_kwargs", "normalize", "smoothness_reward", "action_reg", "pretrain")
#: RunConfig fields a user does not set: the run's identity and what the algorithm derives.
DERIVED_FIELDS = ("algo", "env", "preset", "hyperparams", "initial_normalization", "freeze_normalization")
#: Keys renamed in smoothrl 0.1 (one word per meaning): old spelling -> the new one.
RENAMED = {
    "smooth_reward": "smoothness_reward",
    "smooth_sigma": "smoothing_sigma",
    "smooth_samples": "smoothing_samples",
    "smooth_samples_eval": "smoothing_samples_eval",
    "colored_noise_beta": "noise_type=colored with noise_beta",
    "colored_noise_seq_len": "noise_seq_len (with noise_type=colored)",
}
#: rl-zoo3 keys smoothrl does not implement.
UNSUPPORTED = ("env_wrapper", "vec_env_wrapper", "frame_stack", "callback", "normalize_kwargs", "config")


class ExplorationNoise(BaseModel):
    """
    The exploration noise of a run, from the rl-zoo3 keys ``noise_type`` / ``noise_std`` (plus
    smoothrl's ``noise_beta`` / ``noise_seq_len`` for colored noise), validated together.

    - TD3, DDPG (and SAC with ``normal`` / ``ornstein-uhlenbeck``): additive action noise of
      standard deviation ``noise_std``; ``colored`` is additive ``1/f^beta`` noise, one generator
      per env renewed at that env's episode start.
    - SAC with ``colored``: the policy's own Gaussian sampling draws its unit noise from a
      ``1/f^beta`` sequence per env (its scale is the learned std, so ``noise_std`` does not apply).

    :param type: ``normal``, ``ornstein-uhlenbeck`` or ``colored``
    :param std: standard deviation of additive noise
    :param beta: spectral exponent of colored noise (0 white, 1 pink, 2 red)
    :param seq_len: steps per generated colored sequence
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["normal", "ornstein-uhlenbeck", "colored"]
    std: float | None = Field(None, gt=0)
    beta: float = Field(1.0, ge=0)
    seq_len: int = Field(1000, ge=2)

    @classmethod
    def from_hyperparams(cls, hyperparams: Mapping[str, Any]) -> ExplorationNoise | None:
        """
        :param hyperparams: a run's hyperparameters
        :return: the noise, or ``None`` when ``noise_type`` is not set
        :raises SmoothRLError: for a bad value or a key that needs another one
        """
        given = {k.removeprefix("noise_"): hyperparams[k] for k in NOISE_KEYS if k in hyperparams}
        if not given:
            return None
        if "type" not in given:
            raise SmoothRLError(f"{', '.join('noise_' + k for k in given)} needs noise_type; set noise_type=normal")
        if given["type"] != "colored":
            extra = [f"noise_{k}" for k in ("beta", "seq_len") if k in given]
            if extra:
                raise SmoothRLError(f"{', '.join(extra)} applies to noise_type=colored only; remove it")
        try:
            return cls(**given)
        except ValidationError as e:
            raise one_line(e, prefix="noise_") from None

    def check_for(self, entry: AlgoEntry) -> None:
        """
        :param entry: the run's algorithm
        :raises SmoothRLError: when the algorithm cannot use this noise
        """
        if not entry.action_noise:
            takers = ", ".join(e.name.upper() for e in ALGOS.values() if e.action_noise)
            raise SmoothRLError(f"noise_type applies to {takers}, not to {entry.name}; remove it")
        if entry.colored_sampling and self.type == "colored" and self.std is not None:
            raise SmoothRLError(
                f"{entry.name.upper()}'s colored exploration is scaled by its learned std; remove noise_std"
            )


class Pretrain(BaseModel):
    """
    Distillation before RL training: the policy learns to act like a controller that is not
    learned (the HVAC envs' economic MPC or a tuned rule baseline), by behaviour cloning on the
    teacher's decisions gathered in DAgger rounds (Ross, Gordon and Bagnell, 2011): round 0 the
    teacher drives; in round ``i`` each building follows the teacher with probability
    ``beta**i`` and the policy otherwise, and the teacher labels every state visited. After each
    round the policy (and its value function, on the discounted returns it reached) is fitted to
    all decisions gathered so far. RL training (``n_timesteps``) then fine-tunes it.

    :param teacher: ``mpc-oracle``, ``mpc-realistic``, ``pi`` or ``thermostat``
    :param teacher_params: the teacher's keyword arguments (on top of the tuned ones)
    :param rounds: DAgger rounds (1: behaviour cloning on the teacher's own trajectories)
    :param steps: teacher decisions gathered per round, over all buildings
    :param buildings: buildings simulated together while gathering (training days, random starts)
    :param beta: the teacher's share of the driving decays as ``beta**round``
    :param epochs: passes over the gathered decisions after each round
    :param batch_size: decisions per gradient step
    :param learning_rate: Adam's step size for the cloning loss
    :param from_run: start from the policy another run distilled from the same teacher on the same
        env and network (that run's checkpoint 0) instead of distilling again: one distillation,
        many fine-tunings (the new run keeps its own exploration std)
    :param keep_normalization: RL fine-tuning keeps the observation normalization the policy was
        distilled with (the gathered decisions' statistics) instead of updating it at every step
        (the reward scale still updates): where RL visits states the teacher did not, updated
        statistics change what the distilled policy sees before it has learned anything
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    teacher: str
    teacher_params: dict[str, Any] = Field(default_factory=dict)
    rounds: int = Field(4, ge=1, le=100)
    steps: int = Field(16384, ge=1)
    buildings: int = Field(16, ge=1, le=4096)
    beta: float = Field(0.3, ge=0, le=1)
    epochs: int = Field(20, ge=1, le=10000)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    from_run: str | None = None
    keep_normalization: bool = False

    @field_validator("teacher")
    @classmethod
    def _teacher(cls, value: str) -> str:
        from smoothrl.envs.hvac.control import CONTROLLERS

        if value not in CONTROLLERS:
            raise ValueError(f"unknown teacher '{value}'; choose one of: {', '.join(CONTROLLERS)}")
        return value


def refuse_renamed(key: str) -> None:
    """
    :param key: a config key as the user wrote it
    :raises SmoothRLError: when it is a spelling renamed in 0.1, naming the new one
    """
    if key in RENAMED:
        raise SmoothRLError(f"'{key}' is now spelled {RENAMED[key]}; rename it")


def one_line(error: ValidationError, where: str = "", prefix: str = "") -> SmoothRLError:
    """
    The first error of a pydantic validation as one line (the one place that does it).

    :param error: pydantic's error
    :param where: what was validated, e.g. ``"runs/x/config.yaml is not a valid run config: "``
    :param prefix: prepended to the field name (``"noise_"`` for ``ExplorationNoise``)
    :return: the user error to raise
    """
    err = error.errors()[0]
    field = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else "config"
    if err["type"] == "value_error":  # a message of ours, raised in a validator: already one line
        detail = str(err["msg"]).removeprefix("Value error, ")
    elif err["type"] == "extra_forbidden":
        detail = f"unknown key '{field}'; remove it or fix its spelling"
    elif err["type"] == "missing":
        detail = f"the key '{field}' is missing; add it"
    else:
        detail = f"invalid value for {field}: {err['msg']} (got {err.get('input')!r})"
    return SmoothRLError(where + detail)


class RunConfig(BaseModel):
    """
    Everything that defines a run, validated whenever one is built (a new run, ``--resume``, a
    hand-edited ``config.yaml``): the algorithm is resolved in the registry and every
    hyperparameter is checked against its constructor. Written as ``config.yaml`` in the run
    directory, from which eval, resume, attack and certify rebuild the exact pipeline.

    :param algo: algorithm name (``smoothrl list``)
    :param env: gymnasium id
    :param preset: the preset entry used (``None``: the entry keyed by ``env``, if any)
    :param seed: random seed of the model and of the training envs
    :param n_timesteps: environment steps to train for, over all envs
    :param n_envs: parallel training environments
    :param device: torch device (``auto``, ``cpu``, ``cuda``)
    :param policy: SB3 policy name
    :param normalize: ``VecNormalize`` on/off, or its keyword arguments
    :param env_kwargs: keyword arguments of ``gymnasium.make``
    :param hyperparams: algorithm keywords in rl-zoo3 format (plus ``noise_type``/``noise_std``)
    :param eval_freq: evaluate every this many steps during training (0: never)
    :param eval_episodes: episodes per evaluation, and for ``eval.json`` at the end
    :param checkpoint_freq: checkpoint every this many steps (0: only when interrupted)
    :param smoothness_reward: reward shaping, weight per action-derivative order (1 velocity,
        2 acceleration, 3 jerk), e.g. ``{3: 0.1}``; the last actions join the observation
    :param obs_noise: noise augmentation: training observations get ``N(0, obs_noise^2)`` added
        (in the normalized units the policy sees); evaluation sees clean observations
    :param initial_normalization: start training from these ``VecNormalize`` statistics (a
        ``vecnormalize.pkl``) instead of fresh ones; set by the algorithm (S-DQN: its base run's)
    :param freeze_normalization: never update the normalization statistics while training
    :param pretrain: distil a controller that is not learned into the policy before RL training
        (:class:`Pretrain`); with it, ``n_timesteps`` may be 0 (the distilled policy as it is)
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    algo: str
    env: str
    preset: str | None = None
    seed: int = Field(0, ge=0, le=MAX_SEED)
    n_timesteps: int = Field(ge=0)
    n_envs: int = Field(1, ge=1)
    device: str = "auto"
    policy: str = "MlpPolicy"
    normalize: bool | dict[str, Any] = False
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    eval_freq: int = Field(ge=0)
    eval_episodes: int = Field(5, ge=1)
    checkpoint_freq: int = Field(ge=0)
    smoothness_reward: dict[int, float] = Field(default_factory=dict)
    obs_noise: float = Field(0.0, ge=0)
    initial_normalization: str | None = None
    freeze_normalization: bool = False
    pretrain: Pretrain | None = None

    _entry: AlgoEntry = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in [*data, *(data.get("hyperparams") or {})]:
                refuse_renamed(key)
        return data

    @field_validator("smoothness_reward", mode="before")
    @classmethod
    def _orders(cls, value: Any) -> dict[int, float]:
        return check_derivative_weights(value, "smoothness_reward")

    @field_validator("env_kwargs")
    @classmethod
    def _headless(cls, value: dict[str, Any]) -> dict[str, Any]:
        mode = value.get("render_mode")
        if mode not in (None, "rgb_array"):
            raise ValueError(
                f"env_kwargs.render_mode {mode!r} opens a window that training and evaluation never draw; "
                "drop it (smoothrl plot draws runs) or use rgb_array"
            )
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            th.device(value)
        except (RuntimeError, ValueError):
            raise ValueError(f"'{value}' is not a torch device; use auto, cpu, cuda or cuda:N") from None
        return value

    @field_validator("normalize")
    @classmethod
    def _normalize_keys(cls, value: bool | dict[str, Any]) -> bool | dict[str, Any]:
        if isinstance(value, dict):
            bad = set(value) - set(inspect.signature(VecNormalize.__init__).parameters) - {"venv"}
            if bad or "venv" in value:
                raise ValueError(
                    f"normalize has unknown keys {sorted(bad | ({'venv'} & set(value)))}; use VecNormalize's keywords"
                )
        return value

    @model_validator(mode="after")
    def _resolve(self) -> RunConfig:
        self._entry = get_entry(self.algo)
        for key, value in self.hyperparams.items():
            check_hyperparam(self._entry, key, value)
        noise = ExplorationNoise.from_hyperparams(self.hyperparams)
        if noise is not None:
            noise.check_for(self._entry)
        if self.n_timesteps == 0 and self.pretrain is None:
            raise ValueError("n_timesteps (@timesteps) must be > 0; 0, no RL training, goes only with pretrain")
        if self.pretrain is not None:
            if self._entry.off_policy:
                raise ValueError(f"pretrain distils into an on-policy actor-critic (ppo, a2c, sppo), not {self.algo}")
            if not has_controllers(self.env):
                raise ValueError(
                    f"pretrain needs an HVAC env, whose controllers teach ({', '.join(HVAC_FAMILY)}); "
                    f"{self.env} has none"
                )
            if self.smoothness_reward:
                raise ValueError(
                    "pretrain cannot be combined with smoothness_reward (the teachers read the env's own "
                    "observation, without the action history); use action_reg for smoothness"
                )
        return self

    @property
    def entry(self) -> AlgoEntry:
        """The algorithm, resolved once when the config was validated."""
        if self._entry.name != self.algo:  # a model_copy(update={"algo": ...}) skipped validation
            raise ValueError("RunConfig.algo changed without validation; build it with RunConfig.model_validate")
        return self._entry

    @property
    def noise(self) -> ExplorationNoise | None:
        """The exploration noise (``None``: the algorithm's own; TD3 and DDPG with ``use_sde``
        explore with gSDE instead of the action noise, so a preset's ``noise_type`` is unused)."""
        if self.entry.deterministic_sde and self.hyperparams.get("use_sde"):
            return None
        return ExplorationNoise.from_hyperparams(self.hyperparams)

    @property
    def normalize_kwargs(self) -> dict[str, Any] | None:
        """``VecNormalize`` keyword arguments, or ``None`` when normalization is off."""
        if self.normalize is False:
            return None
        kwargs = {} if self.normalize is True else dict(self.normalize)
        if "gamma" in self.hyperparams:
            kwargs.setdefault("gamma", self.hyperparams["gamma"])
        return kwargs

    def to_yaml(self) -> str:
        """:return: the config as YAML (what ``config.yaml`` holds)"""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------------------------------------
# values


# ---------------------------------------------------------------------------------------------
# validation against the algorithm's constructor


# ---------------------------------------------------------------------------------------------
# resolution


def load_config(path: str | Path) -> RunConfig:
    """
    Read and validate a ``config.yaml`` written by ``train`` (perhaps edited by hand since).

    :param path: the file
    :return: the config
    :raises SmoothRLError: for a missing or invalid file, naming the file and the bad key
    """
    from smoothrl.presets import load_yaml

    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SmoothRLError(f"{path} is not a smoothrl run config; restore it or retrain")
    where = f"{path} is not a valid run config"
    try:
        return RunConfig(**data)
    except ValidationError as e:
        raise one_line(e, where=f"{where}: ") from None
    except SmoothRLError as e:
        raise SmoothRLError(f"{where}: {e}") from None


def check_hyperparam(entry: AlgoEntry, key: str, value: Any) -> None:
    """
    Check one hyperparameter: a known keyword, with a value of the right type.

    :param entry: the algorithm
    :param key: the keyword
    :param value: the stored value
    :raises SmoothRLError: naming the problem and the fix
    """
    if key in RESERVED:
        raise SmoothRLError(f"'{key}' is set by {RESERVED[key]}, not as a hyperparameter; remove it")
    if key in UNSUPPORTED:
        raise SmoothRLError(f"the rl-zoo3 key '{key}' is not supported by smoothrl; remove it")
    if key in NOISE_KEYS:  # checked together, by ExplorationNoise
        return
    params = entry.params
    if key == "action_reg" and key in params:
        from smoothrl.agents.losses import as_action_reg

        try:
            as_action_reg(value)
        except (TypeError, ValueError) as e:
            raise SmoothRLError(f"action_reg {value!r}: {e}; e.g. action_reg.order=3 action_reg.weight=0.1") from None
        return
    if key not in params:
        close = difflib.get_close_matches(key, list(params) + list(NOISE_KEYS) + list(RunConfig.model_fields), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise SmoothRLError(
            f"'{key}' is not a parameter of {entry.name}; {hint}run `smoothrl list --params {entry.name}` "
            "for the valid keys"
        )
    adapter = entry.type_adapter(key)
    if adapter is not None:
        try:
            adapter.validate_python(build_hyperparam(key, value))
        except ValidationError as e:
            raise SmoothRLError(
                f"{key}={value!r} has the wrong type for {entry.name} ({e.errors()[0]['msg']}); "
                f"expected {entry.hint_name(key)}"
            ) from None
    check_range(key, value)
