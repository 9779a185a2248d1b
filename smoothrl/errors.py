"""User-facing errors.

A :class:`SmoothRLError` is a mistake the user can fix (unknown id, bad value, missing
file). The CLI prints its message as one line and exits with code 2; anything else is a bug
and keeps its traceback.

Library code names the parameter the user set, written ``@name`` in the message: ``str()``
shows the parameter (``episodes must be at least 1``), a command line shows its own option
(``--episodes must be at least 1``, :meth:`SmoothRLError.for_cli`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PARAMETER = re.compile(r"@([a-z][a-z0-9_]*)")


class SmoothRLError(ValueError):
    """A user mistake, described in one line that names the problem and the fix. A ``ValueError``:
    library code that takes a bad value raises it, and callers that catch ``ValueError`` see it.

    :param message: the line; a parameter the user set is written ``@name``
    """

    def __init__(self, message: str) -> None:
        self.template = message
        super().__init__(_PARAMETER.sub(r"\1", message))

    def __reduce__(self) -> tuple[type, tuple[str]]:  # across processes (sweeps, Ray) with its parameters
        return type(self), (self.template,)

    def for_cli(self, options: Mapping[str, str] | None = None) -> str:
        """
        The message as a command line says it: each parameter as the option that sets it.

        :param options: parameter -> option where the option is not ``--name`` with dashes
        :return: the line
        """
        names = options or {}
        return _PARAMETER.sub(lambda m: names.get(m.group(1), "--" + m.group(1).replace("_", "-")), self.template)


class TrainingInterrupted(SmoothRLError):
    """Training was stopped by the user; a checkpoint was saved and the run can be resumed."""
