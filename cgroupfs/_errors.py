"""The one exception type of cgroupfs."""

from __future__ import annotations


class CgroupError(Exception):
    """A cgroup operation failed; the message names the path and the value.

    ``path`` is the file or directory involved (when there is one) and
    ``errno`` the OS error number (when the failure came from the kernel).
    """

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno
