"""Performative RL: environments that react to the deployed policy, and retraining to a stable policy.

- :mod:`~smoothrl.performative.protocol`: what a decision-dependent env offers (``respond``,
  ``get_dynamics``/``set_dynamics``, ``experience``);
- :mod:`~smoothrl.performative.gridworld`: the reference gridworld of Mandal et al. (ICML 2023),
  exact tabular model and gymnasium env (``smoothrl/PerformativeGridworld-v0``);
- :mod:`~smoothrl.performative.hvac`: an office whose occupants respond to the comfort they had
  (``smoothrl/PerformativeHVAC-v0``);
- :mod:`~smoothrl.performative.occupancy`, :mod:`~smoothrl.performative.qp`,
  :mod:`~smoothrl.performative.solvers`: occupancy measures, the regularized QP (cvxpy) and the
  tabular methods (repeated retraining, repeated gradient ascent, finite samples, MDRR).

Deep repeated retraining with any smoothrl algorithm drives the training pipeline, so it lives
in the application (:mod:`smoothrl.experiments.retraining`).
"""

#: the env keyword each performative id takes for its sensitivity (``smoothrl performative --beta``)
SENSITIVITY_KWARG = {
    "smoothrl/PerformativeGridworld-v0": "beta",
    "smoothrl/PerformativeHVAC-v0": "sensitivity",
}
#: the ids with an exact tabular model (the tabular methods run on them)
TABULAR_IDS = ("smoothrl/PerformativeGridworld-v0",)
