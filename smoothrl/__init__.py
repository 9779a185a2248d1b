"""smoothrl: Stable-Baselines3 extensions for smooth, robust and deployable RL control.

``from smoothrl import PPO, A2C, SAC, TD3, DDPG, DQN, SPPO, SDQN``: drop-in subclasses of the SB3
classes. Importing ``smoothrl`` registers its ``smoothrl/*`` environment ids with gymnasium and
imports nothing heavier than gymnasium: the algorithms (torch, SB3) load on first use (PEP 562),
so ``smoothrl.metrics`` and the CLI's ``--help`` stay light.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from importlib import import_module
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from importlib.util import find_spec, spec_from_loader
from types import ModuleType
from typing import TYPE_CHECKING, Any

if sys.argv and os.path.basename(sys.argv[0]) == "smoothrl":  # the console script, still importing

    def _interrupted_at_start_up(signum: int, frame: Any) -> None:
        """A Ctrl-C before the CLI's own handling starts: one line, exit 130 (``cli.main`` restores Python's)."""
        sys.stderr.write("interrupted (Ctrl-C) before anything was written\n")
        sys.stderr.flush()
        os._exit(130)

    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a job started with Ctrl-C ignored keeps ignoring it
        signal.signal(signal.SIGINT, _interrupted_at_start_up)

#: module paths of 0.1 that moved -> the module that now answers for them (importable through
#: 0.x, with a DeprecationWarning): no module file stays at the top level for them
_MOVED = {
    "smoothrl.config": "smoothrl.run",
    "smoothrl.training": "smoothrl.run",
    "smoothrl.sweep": "smoothrl.experiments.sweep",
    "smoothrl.tuning": "smoothrl.experiments.tuning",
    "smoothrl.retraining": "smoothrl.experiments.retraining_run",
    "smoothrl.export": "smoothrl.tools.export",
    "smoothrl.plotting": "smoothrl.tools.plotting",
    "smoothrl.robustness": "smoothrl.tools.robustness",
}


class _MovedModules(MetaPathFinder, Loader):
    """Imports a moved module path as the module that now holds its names."""

    def __init__(self) -> None:
        self._specs: dict[str, ModuleSpec] = {}  # the target modules' own specs, between create and exec

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        return spec_from_loader(name, self) if name in _MOVED else None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} is now {_MOVED[spec.name]}; import from there", DeprecationWarning, stacklevel=2)
        module = import_module(_MOVED[spec.name])
        self._specs[module.__name__] = module.__spec__  # the import system sets __spec__ next: put it back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._specs.pop(module.__name__)


sys.meta_path.append(_MovedModules())

if find_spec("smoothrl.envs") is not None:  # absent from the controller's runtime (smoothrl-runtime)
    from smoothrl import envs  # noqa: F401  (registers the smoothrl/* env ids; imports gymnasium only)

if TYPE_CHECKING:
    from smoothrl.agents import A2C, DDPG, DQN, PPO, SAC, TD3
    from smoothrl.registry import ALGOS
    from smoothrl.robust.sdqn import SDQN
    from smoothrl.robust.sppo import SPPO

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "A2C": "smoothrl.agents.a2c",
    "DDPG": "smoothrl.agents.ddpg",
    "DQN": "smoothrl.agents.dqn",
    "PPO": "smoothrl.agents.ppo",
    "SAC": "smoothrl.agents.sac",
    "TD3": "smoothrl.agents.td3",
    "SPPO": "smoothrl.robust.sppo",
    "SDQN": "smoothrl.robust.sdqn",
    "ALGOS": "smoothrl.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'smoothrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["A2C", "ALGOS", "DDPG", "DQN", "PPO", "SAC", "SDQN", "SPPO", "TD3", "__version__"]
