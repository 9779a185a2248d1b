"""RunConfig: preset YAML + CLI overrides -> one validated object.

Hyperparameters use the rl-zoo3 format: ``n_timesteps``, ``n_envs``, ``policy``, ``normalize``,
``env_kwargs``, ``noise_type``/``noise_std`` and ``policy_kwargs`` as a ``"dict(...)"`` string are
zoo keys; ``lin_<x>`` is a schedule decaying linearly from ``x`` to 0; every other key is a
keyword of the algorithm's constructor. Values are checked here, against the constructor's
type hints, so a bad value fails before anything is built or written.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import sys
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Annotated, Any

import torch as th
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize

from smoothrl.agents import get_algo
from smoothrl.envs import check_env_id
from smoothrl.errors import SmoothRLError
from smoothrl.presets import agent_presets

#: Constructor keywords set by smoothrl itself, with the flag a user sets them through.
RESERVED = {
    "env": "--env",
    "seed": "--seed",
    "device": "--device",
    "tensorboard_log": "the run directory",
    "verbose": "smoothrl (it logs to TensorBoard)",
    "_init_setup_model": "smoothrl",
    "action_noise": "noise_type / noise_std",
}
NOISE_TYPES = ("normal", "ornstein-uhlenbeck", "colored")
NOISE_KEYS = ("noise_type", "noise_std", "noise_beta", "noise_seq_len")
#: Keys whose value is a dict that ``--set key.sub=value`` can reach into.
DICT_KEYS = ("env_kwargs", "policy_kwargs", "normalize", "smooth_reward", "action_reg")
#: rl-zoo3 keys smoothrl does not implement.
UNSUPPORTED = ("env_wrapper", "vec_env_wrapper", "frame_stack", "callback", "normalize_kwargs", "config")
_SCHEDULE_PREFIX = "lin_"


class RunConfig(BaseModel):
    """
    Everything that defines a run. Written as ``config.yaml`` in the run directory, from which
    eval, resume, attack, certify, export and deploy rebuild the exact pipeline.

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
    :param smooth_reward: reward shaping, weight per action-derivative order (1 velocity,
        2 acceleration, 3 jerk), e.g. ``{3: 0.1}``; the last actions join the observation
    :param obs_noise: noise augmentation: training observations get ``N(0, obs_noise^2)`` added
        (in the normalized units the policy sees); evaluation sees clean observations
    """

    model_config = ConfigDict(extra="forbid")

    algo: str
    env: str
    preset: str | None = None
    seed: int = Field(0, ge=0)
    n_timesteps: int = Field(gt=0)
    n_envs: int = Field(1, ge=1)
    device: str = "auto"
    policy: str = "MlpPolicy"
    normalize: bool | dict[str, Any] = False
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    eval_freq: int = Field(ge=0)
    eval_episodes: int = Field(5, ge=1)
    checkpoint_freq: int = Field(ge=0)
    smooth_reward: dict[Annotated[int, Field(ge=1, le=3)], Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    obs_noise: float = Field(0.0, ge=0)

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


def parse_value(text: str) -> Any:
    """
    Parse a ``--set`` value: YAML (``true``, ``[64, 64]``, ``{a: 1}``), with numbers such as
    ``3e-4`` read as floats (YAML 1.1 would keep them strings).

    :param text: the text after ``=``
    :return: the value
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
    return value


class _Names:
    """Stands for ``nn`` / ``th`` in zoo ``policy_kwargs`` strings: ``nn.ReLU`` -> ``"nn.ReLU"``."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    def __getattr__(self, name: str) -> _Names:
        return _Names(f"{self._prefix}.{name}")


def _names_to_str(value: Any) -> Any:
    if isinstance(value, _Names):
        return value._prefix
    if isinstance(value, dict):
        return {k: _names_to_str(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_names_to_str(v) for v in value]
    return value


def parse_policy_kwargs(value: Any) -> dict[str, Any]:
    """
    Read zoo ``policy_kwargs`` (a ``"dict(...)"`` string or a dict) into plain YAML data;
    torch references such as ``nn.ReLU`` stay strings until :func:`build_policy_kwargs`.

    :param value: the zoo value
    :return: a dict of YAML-serializable values
    """
    if isinstance(value, str):
        namespace = {"dict": dict, "nn": _Names("nn"), "th": _Names("th"), "True": True, "False": False, "None": None}
        try:
            value = eval(value, {"__builtins__": {}}, namespace)  # noqa: S307  (zoo format; names are inert)
        except Exception as e:
            raise SmoothRLError(f"policy_kwargs '{value}' is not a valid dict(...) expression ({e}); fix it") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SmoothRLError(f"policy_kwargs must be a dict, got {value!r}; write e.g. dict(net_arch=[64, 64])")
    return _names_to_str(value)


def _torch_ref(text: str) -> Any:
    obj: Any = {"nn": th.nn, "th": th}[text.split(".", 1)[0]]
    for part in text.split(".")[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            raise SmoothRLError(f"policy_kwargs names '{text}', which torch does not have; fix the name")
    return obj


def build_policy_kwargs(value: Mapping[str, Any]) -> dict[str, Any]:
    """
    Turn stored ``policy_kwargs`` into what SB3 takes (``"nn.ReLU"`` -> ``torch.nn.ReLU``).

    :param value: the stored dict
    :return: keyword arguments for the policy
    """

    def conv(v: Any) -> Any:
        if isinstance(v, str) and v.split(".", 1)[0] in ("nn", "th") and "." in v:
            return _torch_ref(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(dict(value))


def build_hyperparam(key: str, value: Any) -> Any:
    """
    Turn one stored hyperparameter into the object the constructor takes.

    :param key: the keyword
    :param value: the stored value (``lin_<x>`` strings become linear schedules)
    :return: the constructor value
    """
    if key == "policy_kwargs":
        return build_policy_kwargs(parse_policy_kwargs(value))
    if isinstance(value, str) and value.startswith(_SCHEDULE_PREFIX):
        try:
            start = float(value[len(_SCHEDULE_PREFIX) :])
        except ValueError:
            raise SmoothRLError(f"{key}='{value}' is not a schedule; write lin_<number>, e.g. lin_3e-4") from None
        return LinearSchedule(start, 0.0, 1.0)
    return value


# ---------------------------------------------------------------------------------------------
# validation against the algorithm's constructor


@cache
def constructor_params(algo: str) -> dict[str, inspect.Parameter]:
    """
    :param algo: algorithm name
    :return: the keywords its constructor takes (smoothrl's own and SB3's)
    """
    params: dict[str, inspect.Parameter] = {}
    for klass in get_algo(algo).__mro__:  # a subclass taking **kwargs passes them on to its base
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        signature = inspect.signature(init).parameters
        for name, param in signature.items():
            if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD) and name not in ("self", "policy"):
                params.setdefault(name, param)
        if not any(p.kind == p.VAR_KEYWORD for p in signature.values()):
            break
    return params


def _annotation(algo: str, key: str) -> tuple[Any, dict[str, Any]] | None:
    """The annotation of constructor keyword ``key`` and the globals of the module declaring it."""
    for klass in get_algo(algo).__mro__:
        init = klass.__dict__.get("__init__")
        param = inspect.signature(init).parameters.get(key) if init is not None else None
        if param is not None and param.annotation is not inspect.Parameter.empty:
            return param.annotation, vars(sys.modules[klass.__module__])
    return None


@cache
def _type_adapter(algo: str, key: str) -> TypeAdapter | None:
    found = _annotation(algo, key)
    if found is None:
        return None
    ann, module_globals = found
    try:
        hint = typing._eval_type(  # type: ignore[attr-defined]
            typing.ForwardRef(ann) if isinstance(ann, str) else ann, module_globals, None
        )
        return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # a hint pydantic cannot check (forward reference to a class): skip the check
        return None


def check_hyperparam(algo: str, key: str, value: Any) -> None:
    """
    Check one hyperparameter: a known keyword, with a value of the right type.

    :param algo: algorithm name
    :param key: the keyword
    :param value: the stored value
    :raises SmoothRLError: naming the problem and the fix
    """
    if key in RESERVED:
        raise SmoothRLError(f"'{key}' is set by {RESERVED[key]}, not as a hyperparameter; remove it")
    if key in UNSUPPORTED:
        raise SmoothRLError(f"the rl-zoo3 key '{key}' is not supported by smoothrl; remove it")
    if key == "noise_type":
        if value not in NOISE_TYPES:
            raise SmoothRLError(f"noise_type must be one of {', '.join(NOISE_TYPES)}, got {value!r}")
        return
    if key in ("noise_std", "noise_beta"):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or value < (0 if key == "noise_beta" else 1e-12)
        ):
            raise SmoothRLError(
                f"{key} must be a {'non-negative' if key == 'noise_beta' else 'positive'} number, got {value!r}"
            )
        return
    if key == "noise_seq_len":
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise SmoothRLError(f"noise_seq_len must be an integer >= 2, got {value!r}")
        return
    params = constructor_params(algo)
    if key == "action_reg" and key in params:
        from smoothrl.agents.regularizers import as_action_reg

        try:
            as_action_reg(value)
        except (TypeError, ValueError) as e:
            raise SmoothRLError(f"action_reg {value!r}: {e}; e.g. action_reg.order=3 action_reg.weight=0.1") from None
        return
    if key not in params:
        close = difflib.get_close_matches(key, list(params) + list(NOISE_KEYS) + list(RunConfig.model_fields), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise SmoothRLError(
            f"'{key}' is not a parameter of {algo}; {hint}run `smoothrl list --params {algo}` for the valid keys"
        )
    adapter = _type_adapter(algo, key)
    if adapter is None:
        return
    try:
        adapter.validate_python(build_hyperparam(key, value))
    except ValidationError as e:
        ann = _annotation(algo, key)[0]  # type: ignore[index]
        expected = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
        raise SmoothRLError(
            f"{key}={value!r} has the wrong type for {algo} ({e.errors()[0]['msg']}); expected {expected}"
        ) from None


# ---------------------------------------------------------------------------------------------
# resolution


def _auto_freq(n_timesteps: int) -> int:
    """Ten evaluations / checkpoints per run, rounded to a thousand steps (at least 1000)."""
    return max(1000, (n_timesteps // 10) // 1000 * 1000)


def _set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    head, _, sub = key.partition(".")
    if sub:
        if head not in DICT_KEYS:
            raise SmoothRLError(f"'{key}': only {', '.join(DICT_KEYS)} take a sub-key; write {head}=value")
        current = raw.get(head)
        if head == "policy_kwargs":
            current = parse_policy_kwargs(current)
        elif head == "normalize":
            current = {} if current in (None, False, True) else dict(current)
        else:
            current = dict(current or {})
        current[sub] = value
        raw[head] = current
    else:
        raw[key] = value


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """
    Parse ``--set key=value`` items.

    :param items: ``["learning_rate=3e-4", "policy_kwargs.net_arch=[64, 64]"]``
    :return: ``[(key, value), ...]``
    :raises SmoothRLError: for an item without ``=``
    """
    out = []
    for item in items:
        key, eq, text = item.partition("=")
        if not eq or not key.strip():
            raise SmoothRLError(f"--set '{item}' is not key=value; write e.g. --set learning_rate=3e-4")
        out.append((key.strip(), parse_value(text.strip())))
    return out


def resolve_config(
    algo: str,
    env: str,
    preset: str | None = None,
    overrides: Sequence[str] = (),
    **fields: Any,
) -> RunConfig:
    """
    Build the RunConfig of a new run: preset, then ``--set`` overrides, then explicit fields.

    :param algo: algorithm name
    :param env: gymnasium id
    :param preset: preset entry of ``agents/<algo>.yaml`` (default: the entry keyed by ``env``,
        or SB3's defaults when there is none)
    :param overrides: ``key=value`` items
    :param fields: RunConfig fields given explicitly (``seed``, ``n_timesteps``, ``n_envs``,
        ``device``, ...); ``None`` values are ignored
    :return: the validated config
    :raises SmoothRLError: for any unknown name or bad value
    """
    algo = algo.lower()
    get_algo(algo)
    check_env_id(env)
    presets = agent_presets(algo)
    if preset is not None and preset not in presets:
        raise SmoothRLError(
            f"no preset '{preset}' in agents/{algo}.yaml; choose one of: {', '.join(presets) or '(none)'}"
        )
    raw: dict[str, Any] = dict(presets.get(preset or env, {}))
    for key, value in parse_overrides(overrides):
        _set_key(raw, key, value)
    for key, value in fields.items():
        if value is not None:
            raw[key] = value
    return build_config(algo, env, preset, raw)


def build_config(algo: str, env: str, preset: str | None, raw: Mapping[str, Any]) -> RunConfig:
    """
    Split a flat rl-zoo3 style dict into RunConfig fields and validate it.

    :param algo: algorithm name
    :param env: gymnasium id
    :param preset: the preset name recorded in the config
    :param raw: zoo keys, RunConfig fields and constructor keywords, flat
    :return: the validated config
    :raises SmoothRLError: for any unknown name or bad value
    """
    raw = dict(raw)
    top = {k: raw.pop(k) for k in list(raw) if k in RunConfig.model_fields and k not in ("hyperparams",)}
    top.pop("algo", None)
    top.pop("env", None)
    top.pop("preset", None)
    if isinstance(top.get("normalize"), str):
        try:
            top["normalize"] = ast.literal_eval(top["normalize"])
        except (ValueError, SyntaxError):
            raise SmoothRLError(f"normalize '{top['normalize']}' is not a bool or a dict; fix it") from None
    if isinstance(top.get("n_timesteps"), float) and float(top["n_timesteps"]).is_integer():
        top["n_timesteps"] = int(top["n_timesteps"])
    hyperparams = dict(raw.pop("hyperparams", {}) or {})
    hyperparams.update(raw)
    if "policy_kwargs" in hyperparams:
        hyperparams["policy_kwargs"] = parse_policy_kwargs(hyperparams["policy_kwargs"])
    for key, value in hyperparams.items():
        check_hyperparam(algo, key, value)
    n_timesteps = top.get("n_timesteps")
    if isinstance(n_timesteps, int) and n_timesteps > 0:
        top.setdefault("eval_freq", _auto_freq(n_timesteps))
        top.setdefault("checkpoint_freq", _auto_freq(n_timesteps))
    if isinstance(top.get("normalize"), dict):
        bad = set(top["normalize"]) - set(inspect.signature(VecNormalize.__init__).parameters) - {"venv"}
        if bad or "venv" in top["normalize"]:
            raise SmoothRLError(f"normalize has unknown keys {sorted(bad)}; use VecNormalize's keywords")
    try:
        return RunConfig(algo=algo, env=env, preset=preset, hyperparams=hyperparams, **top)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "missing" and where == "n_timesteps":
            raise SmoothRLError(
                f"no training budget for {algo} on {env}: the preset has no n_timesteps; pass --timesteps N"
            ) from None
        raise SmoothRLError(f"invalid value for {where}: {err['msg']} (got {err.get('input')!r})") from None


def load_config(path: str) -> RunConfig:
    """
    Read a ``config.yaml`` written by ``train``.

    :param path: the file
    :return: the config
    :raises SmoothRLError: for a missing or invalid file
    """
    from smoothrl.presets import load_yaml

    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SmoothRLError(f"{path} is not a smoothrl run config; restore it or retrain")
    try:
        return RunConfig(**data)
    except ValidationError as e:
        err = e.errors()[0]
        raise SmoothRLError(
            f"{path} is not a valid run config ({'.'.join(map(str, err['loc']))}: {err['msg']}); restore it or retrain"
        ) from None
