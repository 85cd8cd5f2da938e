"""Removing cgroup directories: children first, EBUSY retried until a deadline."""

from __future__ import annotations

import errno
import time

from . import _fs
from ._errors import CgroupError


def remove_cgroup_dir(path: str, deadline: float) -> None:
    """rmdir ``path`` and any child cgroups below it (bottom-up).

    A process that was just killed may keep its cgroup busy for a moment after
    cgroup.procs looks empty, so EBUSY is retried until ``deadline``
    (``time.monotonic()``); a missing directory is already removed.
    """
    for child in _fs.subdirs(path):
        remove_cgroup_dir(child, deadline)
    delay = 0.005
    while True:
        try:
            _fs.rmdir(path)
            return
        except CgroupError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def remove_if_unused(path: str) -> None:
    """rmdir a shared parent (the "supervise" dir) unless another cgroup still uses it."""
    try:
        _fs.rmdir(path)
    except CgroupError as exc:
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT):
            raise


def try_remove_all(paths: tuple[str, ...]) -> bool:
    """The common end of a container: its processes are gone, so each directory goes
    with one rmdir. True if all went; False (some left) if any is still busy or has
    child cgroups, and the caller must kill and wait first."""
    done = True
    for path in paths:
        try:
            _fs.rmdir(path)
        except CgroupError as exc:
            if exc.errno != errno.ENOENT:
                done = False
    return done
