"""What is done with a finished run: export it to a deployable artefact
(:mod:`~smoothrl.tools.export`), attack and certify it (:mod:`~smoothrl.tools.robustness`), plot
it (:mod:`~smoothrl.tools.plotting`)."""
