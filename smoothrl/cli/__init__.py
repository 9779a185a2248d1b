"""``smoothrl``: the command line. Thin: parses, then calls :mod:`smoothrl.run` and the tools and
experiments above it. One module per command group; :mod:`~smoothrl.cli.app` holds the group and
its error handling, :mod:`~smoothrl.cli.tables` how results are printed."""

# the commands are listed in --help in the order their modules register them
# isort: off
from smoothrl.cli import training  # noqa: F401
from smoothrl.cli import evaluation  # noqa: F401
from smoothrl.cli import deployment  # noqa: F401
from smoothrl.cli import experiments  # noqa: F401
from smoothrl.cli.app import app, main

# isort: on

__all__ = ["app", "main"]
