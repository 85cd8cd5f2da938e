"""Exceptions that end in a one-line ``supervise: ...`` message, never a traceback."""

from __future__ import annotations


class SuperviseError(Exception):
    """A failure of supervise itself; the CLI prints it on one line and exits with exit_code."""

    exit_code: int = 125


class UsageError(SuperviseError, ValueError):
    """A bad flag or option value: the message names the value and says what is expected."""
