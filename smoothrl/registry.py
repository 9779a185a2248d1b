"""The algorithm registry: name (as the CLI and presets spell it) -> :class:`AlgoEntry`.

It sits above both algorithm packages (``smoothrl.agents`` and ``smoothrl.robust``), as rl-zoo3
keeps ``ALGOS`` outside the algorithm libraries. A name is resolved once, by
:func:`get_entry` (``RunConfig`` does it when it validates), and the entry is carried through
the pipeline: class, on/off-policy, presets, constructor keywords and their types.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, TypeAdapter
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from smoothrl.agents import A2C, DDPG, DQN, PPO, SAC, TD3
from smoothrl.agents.sde import DeterministicSDE
from smoothrl.errors import SmoothRLError
from smoothrl.presets import agent_presets
from smoothrl.robust.sdqn import SDQN, base_run_fields
from smoothrl.robust.sppo import SPPO

#: ``(hyperparams, normalizes) -> RunConfig fields`` that an algorithm derives from its keywords
RunFields = Callable[[Mapping[str, Any], bool], dict[str, Any]]


@dataclass(frozen=True, eq=False)
class AlgoEntry:
    """
    One algorithm as the pipeline sees it.

    :param name: the CLI / preset name (``"sac"``)
    :param cls: the algorithm class
    :param run_fields: derives run-level config fields from the algorithm's keywords (S-DQN: its
        base run's frozen normalization); ``None`` for most algorithms
    """

    name: str
    cls: type[BaseAlgorithm]
    run_fields: RunFields | None = None

    @property
    def off_policy(self) -> bool:
        """Whether it learns from a replay buffer."""
        return issubclass(self.cls, OffPolicyAlgorithm)

    @property
    def deterministic_sde(self) -> bool:
        """Whether its gSDE is smoothrl's for a deterministic actor (TD3, DDPG): with ``use_sde`` it
        explores with gSDE instead of the action noise (a preset's ``noise_type`` is then unused)."""
        return issubclass(self.cls, DeterministicSDE)

    @property
    def action_noise(self) -> bool:
        """Whether it explores with SB3's action noise (``noise_type`` in a config): its
        constructor takes ``action_noise``."""
        return "action_noise" in self.params

    @property
    def colored_sampling(self) -> bool:
        """Whether it samples its own exploring action and can color that sample (SAC:
        ``noise_type: colored`` sets its ``noise_beta`` instead of adding action noise)."""
        return "noise_beta" in self.params

    def presets(self) -> dict[str, dict[str, Any]]:
        """:return: its ``agents/<name>.yaml`` entries (fresh copies)"""
        return agent_presets(self.name)

    @cached_property
    def params(self) -> dict[str, inspect.Parameter]:
        """The keywords its constructor takes (smoothrl's own and SB3's), without ``policy``."""
        params: dict[str, inspect.Parameter] = {}
        for klass in self._constructors():
            for name, param in inspect.signature(klass.__init__).parameters.items():
                if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD) and name not in ("self", "policy"):
                    params.setdefault(name, param)
        return params

    def _constructors(self) -> list[type]:
        """The classes whose ``__init__`` together make the constructor (a ``**kwargs`` passes on)."""
        out = []
        for klass in self.cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            out.append(klass)
            if not any(p.kind == p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
                break
        return out

    @cached_property
    def _hints(self) -> dict[str, Any]:
        hints: dict[str, Any] = {}
        for klass in reversed(self._constructors()):  # the most derived declaration wins
            namespace = vars(sys.modules[klass.__module__])
            for name, param in inspect.signature(klass.__init__).parameters.items():
                ann = param.annotation
                if ann is inspect.Parameter.empty:
                    continue
                if isinstance(ann, str):  # postponed annotation: resolve it in its module
                    try:
                        ann = eval(ann, dict(namespace))  # noqa: S307  (a type hint of installed code)
                    except Exception:  # a name only imported for type checkers: left unchecked
                        continue
                hints[name] = ann
        return hints

    def type_adapter(self, key: str) -> TypeAdapter | None:
        """
        :param key: a constructor keyword
        :return: a pydantic validator of its type hint (``None``: no hint, or one pydantic cannot check)
        """
        hint = self._hints.get(key)
        if hint is None:
            return None
        try:
            return TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
        except Exception:
            return None

    def hint_name(self, key: str) -> str:
        """:return: the type hint of ``key`` as written, for error messages"""
        param = self.params.get(key)
        ann = param.annotation if param is not None else None
        return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


#: Every algorithm smoothrl trains.
ALGOS: dict[str, AlgoEntry] = {
    entry.name: entry
    for entry in (
        AlgoEntry("ppo", PPO),
        AlgoEntry("a2c", A2C),
        AlgoEntry("sac", SAC),
        AlgoEntry("td3", TD3),
        AlgoEntry("ddpg", DDPG),
        AlgoEntry("dqn", DQN),
        AlgoEntry("sppo", SPPO),
        AlgoEntry("sdqn", SDQN, run_fields=base_run_fields),
    )
}


def get_entry(name: str) -> AlgoEntry:
    """
    Resolve an algorithm name.

    :param name: e.g. ``"sac"`` (case-insensitive)
    :return: its entry
    :raises SmoothRLError: for an unknown name
    """
    try:
        return ALGOS[name.lower()]
    except KeyError:
        raise SmoothRLError(f"unknown algorithm '{name}'; choose one of: {', '.join(ALGOS)}") from None
