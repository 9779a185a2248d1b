"""User-facing errors.

A :class:`SmoothRLError` is a mistake the user can fix (unknown id, bad value, missing
file). The CLI prints its message as one line and exits with code 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class SmoothRLError(ValueError):
    """A user mistake, described in one line that names the problem and the fix. A ``ValueError``:
    library code that takes a bad value raises it, and callers that catch ``ValueError`` see it."""


class TrainingInterrupted(SmoothRLError):
    """Training was stopped by the user; a checkpoint was saved and the run can be resumed."""
