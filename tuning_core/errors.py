"""The errors tunesmith raises on purpose.

Each carries a message a person can act on. Front ends catch `TuningError` and show its
message (the CLI on stderr with a non-zero exit, the app as a notification); anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations


class TuningError(Exception):
    """Base class: a problem with the person's input or environment, not a bug."""

    title = "Something went wrong"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class DatasetError(TuningError):
    title = "Data problem"


class PlanError(TuningError):
    title = "Plan problem"


class ModelError(TuningError):
    title = "Model problem"


class RunError(TuningError):
    title = "Run problem"


class ExportError(TuningError):
    title = "Export problem"


class SessionError(TuningError):
    title = "Session problem"
