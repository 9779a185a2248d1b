"""``python -m smoothrl.cli``: the ``smoothrl`` command."""

from smoothrl.cli import main

main()
