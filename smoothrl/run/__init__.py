"""One run of the pipeline: its configuration (:mod:`~smoothrl.run.config`), training with
checkpoints and resumption (:mod:`~smoothrl.run.training`), the MPC distilled into the policy
first (:mod:`~smoothrl.run.distillation`), its callbacks and evaluation.

``from smoothrl.run import resolve_config, train, resume, load_run, evaluate``: the pipeline in
five names. They load on first use (PEP 562), so importing :mod:`smoothrl.run.config` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smoothrl.run.build import load_run, make_env, make_model
    from smoothrl.run.config import RunConfig, load_config
    from smoothrl.run.evaluation import compare_runs, evaluate, evaluate_controller
    from smoothrl.run.overrides import resolve_config
    from smoothrl.run.training import resume, train

#: public name -> the module that defines it
_LAZY = {
    "RunConfig": "smoothrl.run.config",
    "load_config": "smoothrl.run.config",
    "resolve_config": "smoothrl.run.overrides",
    "train": "smoothrl.run.training",
    "resume": "smoothrl.run.training",
    "load_run": "smoothrl.run.build",
    "evaluate": "smoothrl.run.evaluation",
    "evaluate_controller": "smoothrl.run.evaluation",
    "compare_runs": "smoothrl.run.evaluation",
    "make_env": "smoothrl.run.build",
    "make_model": "smoothrl.run.build",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'smoothrl.run' has no attribute {name!r}")


__all__ = [
    "RunConfig",
    "compare_runs",
    "evaluate",
    "evaluate_controller",
    "load_config",
    "load_run",
    "make_env",
    "make_model",
    "resolve_config",
    "resume",
    "train",
]
