"""User-facing errors: one line naming the file, the item and the problem.

The CLI prints ``str(err)`` and exits with code 2; anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class ScopesegError(Exception):
    """Anything a user can cause (bad file, bad option, bad data). Message is a single line."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None):
        message = " ".join(str(message).split())  # one line, always
        if path is not None:
            message = f"{path}: {message}"
        super().__init__(message)
        self.path = None if path is None else str(path)


class ConfigError(ScopesegError):
    """Unknown config key, wrong type, unknown preset."""


class DataError(ScopesegError):
    """Malformed or inconsistent data set / annotation / image / video."""


class ModelError(ScopesegError):
    """Unknown model name, incompatible checkpoint, missing weights."""


class TrainingError(ScopesegError):
    """Training stopped for a reason the user must act on (NaN loss, empty data set)."""
