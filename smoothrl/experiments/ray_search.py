"""Optuna's sampler as Ray Tune's search algorithm, told of stopped trials as Optuna's own pruner
tells it (imported only with the ``ray`` extra).

Ray Tune's ``OptunaSearch`` reports a trial that the median stopping rule ended early to the
sampler as *complete*, with its last intermediate objective; ``smoothrl tune --backend local``
(Optuna alone, its ``MedianPruner``) reports it as *pruned*, which TPE treats differently. So
that both backends feed the sampler the same kind of history, a trial that did not reach its
last evaluation is told as pruned here too.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch


class PruningOptunaSearch(OptunaSearch):
    """
    ``OptunaSearch`` that tells a trial stopped before its last evaluation as pruned.

    :param evals: the evaluations a complete trial reports (``evaluation`` in its results)
    :param kwargs: ``OptunaSearch``'s keywords
    """

    def __init__(self, evals: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evals = evals

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result is not None and not error and result.get("evaluation") != self.evals:
            result = None  # stopped early: OptunaSearch tells a trial without a result as pruned
        super().on_trial_complete(trial_id, result, error)
