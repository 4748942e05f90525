"""Project exceptions.

A failed *experiment* is data (a :class:`~autosci_graph.state.RunResult`); a failed *system* is one
of these. Every message names the cause and how to fix it, so the CLI can print it as one line
instead of a traceback.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Stable codes, so callers and docs can refer to a failure by name."""

    INVALID_TASK = "INVALID_TASK"
    DATA_UNAVAILABLE = "DATA_UNAVAILABLE"
    INVALID_CHANGE = "INVALID_CHANGE"
    MEMORY_CORRUPT = "MEMORY_CORRUPT"
    MEMORY_EMBEDDING_MISMATCH = "MEMORY_EMBEDDING_MISMATCH"
    MEMORY_UNREACHABLE = "MEMORY_UNREACHABLE"
    CHECKPOINT = "CHECKPOINT"
    PROVIDER_MISSING = "PROVIDER_MISSING"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    INVALID_SETTINGS = "INVALID_SETTINGS"
    FINAL_EVAL_TAMPERED = "FINAL_EVAL_TAMPERED"
    SANDBOX_UNAVAILABLE = "SANDBOX_UNAVAILABLE"


class AutosciError(Exception):
    """Base class of every error this package raises on purpose."""

    code: ErrorCode = ErrorCode.INVALID_SETTINGS

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"[{self.code.value}] {self.args[0]}"


class TaskError(AutosciError):
    """A task folder or ``task.toml`` is malformed."""

    code = ErrorCode.INVALID_TASK


class DataUnavailableError(AutosciError):
    """A task's data preparation could not obtain its data."""

    code = ErrorCode.DATA_UNAVAILABLE


class MemoryError_(AutosciError):
    """The experiment memory cannot be opened or reached."""

    code = ErrorCode.MEMORY_CORRUPT


class SettingsError(AutosciError):
    """Run settings are inconsistent or out of range."""

    code = ErrorCode.INVALID_SETTINGS
