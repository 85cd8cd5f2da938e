"""A pty for tests of what supervise draws in a terminal (the live views): supervise
started on its slave as its controlling terminal, its output read from the master."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .containers import PYTHON

# setsid, then the terminal on fd 0 becomes the controlling one; then the command
_CTTY_EXEC = ("import fcntl, os, sys, termios; os.setsid(); "
              "fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])")


@contextlib.contextmanager
def in_terminal(argv: Sequence[str], rows: int = 24, cols: int = 80, **popen: Any
                ) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """argv started with a new pty of rows x cols as its terminal (stdin, stdout and
    stderr): the process, the master and the slave; at the end the process killed if
    it still runs, and the pty closed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        proc = subprocess.Popen([PYTHON, "-c", _CTTY_EXEC, *argv], stdin=slave,
                                stdout=slave, stderr=slave, close_fds=True, **popen)
        try:
            yield proc, master, slave
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        os.close(master)
        os.close(slave)


def read_until(fd: int, needles: list[bytes], timeout: float = 30) -> bytes:
    """What fd gives until every needle has been seen; AssertionError after timeout."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not all(n in seen for n in needles):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"never saw {needles}; got {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen
