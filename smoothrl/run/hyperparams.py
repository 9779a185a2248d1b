"""Hyperparameter values as rl-zoo3 writes them, turned into what the constructors take:
``--set`` text parsed (``parse_value``), ``policy_kwargs`` as a ``"dict(...)"`` string with torch
references (``nn.ReLU``) resolved late, ``lin_<x>`` schedules, and the ranges every number must
lie in (``check_range``, ``check_net_arch``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch as th
import yaml
from stable_baselines3.common.utils import LinearSchedule

from smoothrl.checks import POSITIVE, RANGES, Range, check_number, finite_numbers
from smoothrl.errors import SmoothRLError

_SCHEDULE_PREFIX = "lin_"


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
        return LinearSchedule(schedule_start(key, value), 0.0, 1.0)
    return value


def schedule_start(key: str, value: str) -> float:
    """
    :param key: the keyword
    :param value: a ``lin_<x>`` schedule
    :return: ``x``, its value at the start of training
    :raises SmoothRLError: when ``x`` is not a number
    """
    try:
        return float(value[len(_SCHEDULE_PREFIX) :])
    except ValueError:
        raise SmoothRLError(f"{key}='{value}' is not a schedule; write lin_<number>, e.g. lin_3e-4") from None


def check_range(key: str, value: Any) -> None:
    """
    Check a hyperparameter's value against its documented range (:data:`smoothrl.checks.RANGES`);
    every number in any value must be finite.

    :param key: the keyword
    :param value: the stored value (a number, a ``lin_<x>`` schedule, SAC's ``auto_<x>``, a
        ``[n, "step"]`` train frequency, ``policy_kwargs``)
    :raises SmoothRLError: naming the keyword, its range and the value
    """
    finite_numbers(key, value)
    if key == "policy_kwargs":
        check_net_arch(parse_policy_kwargs(value).get("net_arch"))
        return
    rule = RANGES.get(key)
    if rule is None or value is None:
        return
    if isinstance(value, str) and value.startswith(_SCHEDULE_PREFIX):  # the schedule's start
        check_number(f"{key} ({value})", schedule_start(key, value), rule)
    elif key == "ent_coef" and isinstance(value, str) and value.startswith("auto"):  # SAC's learned coefficient
        if value.startswith("auto_"):
            check_number(f"ent_coef ({value}): its initial value", parse_value(value[5:]), POSITIVE)
    elif key == "train_freq" and isinstance(value, list | tuple) and value:  # [n, "step" | "episode"]
        check_number(f"{key}[0]", value[0], rule)
    else:
        check_number(key, value, rule)


def check_net_arch(value: Any) -> None:
    """
    :param value: ``policy_kwargs.net_arch``: a list of layer widths, or ``dict(pi=[...], vf=[...])``
        (``qf`` for off-policy critics); ``None``: the algorithm's default
    :raises SmoothRLError: for anything else, or a width below 1
    """
    if value is None:
        return
    layers = value if isinstance(value, list) else None
    if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
        layers = [w for v in value.values() for w in v]
    if layers is None:
        raise SmoothRLError(
            f"policy_kwargs.net_arch must be a list of layer widths or dict(pi=[...], vf=[...]), got {value!r}"
        )
    for width in layers:
        check_number("policy_kwargs.net_arch: each layer width", width, Range(1, integer=True))
