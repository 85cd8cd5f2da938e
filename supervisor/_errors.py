"""Exceptions that end in a one-line ``supervise: ...`` message, never a traceback."""

from __future__ import annotations

import errno as _errno
from collections.abc import Sequence


class SuperviseError(Exception):
    """A failure of supervise itself; the CLI prints it on one line and exits with exit_code.

    errno: the OS error behind it, when there is one (a batch waits for room on the
    ones that say the machine is short of something: see shortage)."""

    exit_code: int = 125

    def __init__(self, *args: object, errno: int | None = None) -> None:
        super().__init__(*args)
        self.errno = errno

    @property
    def shortage(self) -> bool:
        """Whether it failed for want of a resource others hold (descriptors, memory,
        processes, cgroups): the same start may work once something ends."""
        return self.errno in _SHORTAGE


# EMFILE, ENFILE: descriptors; ENOMEM; EAGAIN: processes (pids.max, threads-max);
# ENOSPC: cgroups (cgroup.max.descendants) or inotify/keys; EUSERS: namespaces.
_SHORTAGE = frozenset({_errno.EMFILE, _errno.ENFILE, _errno.ENOMEM, _errno.EAGAIN,
                       _errno.ENOSPC, _errno.EUSERS})


class UsageError(SuperviseError, ValueError):
    """A bad flag or option value: the message names the value and says what is expected."""


class JobsFileError(UsageError):
    """One or more lines of a jobs file are wrong; nothing has started."""

    exit_code = 2

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__(errors[0] if len(errors) == 1 else f"{len(errors)} errors in jobs file")
        self.errors = list(errors)
