"""Exceptions that end in a one-line ``supervise: ...`` message, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence


class SuperviseError(Exception):
    """A failure of supervise itself; the CLI prints it on one line and exits with exit_code."""

    exit_code: int = 125


class UsageError(SuperviseError, ValueError):
    """A bad flag or option value: the message names the value and says what is expected."""


class JobsFileError(UsageError):
    """One or more lines of a jobs file are wrong; nothing has started."""

    exit_code = 2

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__(errors[0] if len(errors) == 1 else f"{len(errors)} errors in jobs file")
        self.errors = list(errors)
