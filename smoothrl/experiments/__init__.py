"""Many runs at once: sweeps of variants x seeds (:mod:`~smoothrl.experiments.sweep`), tuning with
Optuna (:mod:`~smoothrl.experiments.tuning`), deep performative retraining
(:mod:`~smoothrl.experiments.retraining`), all on one executor for a local process pool and Ray
(:mod:`~smoothrl.experiments.executor`)."""
