"""User-facing errors.

A :class:`SmoothRLError` is a mistake the user can fix (unknown id, bad value, missing
file). The CLI prints its message as one line and exits with code 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class SmoothRLError(Exception):
    """A user mistake, described in one line that names the problem and the fix."""


class TrainingInterrupted(SmoothRLError):
    """Training was stopped by the user; a checkpoint was saved and the run can be resumed."""
