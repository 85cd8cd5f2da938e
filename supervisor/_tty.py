"""Attaching the user's terminal to a container's pseudo-terminal.

The user's stdin is read in a thread (never made non-blocking: O_NONBLOCK
would land on the file description the user's shell shares), the pty's master
is copied to stdout in another, and both stop through a wake pipe.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import termios
import tty
from collections.abc import Iterator

import anyio

_WINSIZE = struct.Struct("HHHH")


def terminal_fd(*candidates: int) -> int | None:
    """The first of the fds that is a terminal."""
    for fd in candidates:
        try:
            if os.isatty(fd):
                return fd
        except OSError:
            continue
    return None


def copy_window_size(source_fd: int, master_fd: int) -> None:
    try:
        size = fcntl.ioctl(source_fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE.size)
        fcntl.ioctl(master_fd, termios.TIOCSWINSZ, size)
    except OSError:
        pass


@contextlib.contextmanager
def raw_mode(fd: int | None) -> Iterator[None]:
    """The terminal in raw mode while attached; its modes restored however we leave."""
    if fd is None:
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


class PtyPump:
    """Copies stdin -> master (optional) and master -> stdout until the container's
    side of the pty is closed."""

    def __init__(self, master_fd: int, stdin_fd: int, stdout_fd: int, forward_stdin: bool) -> None:
        self.master = master_fd
        self.stdin = stdin_fd
        self.stdout = stdout_fd
        self.forward_stdin = forward_stdin
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)

    def _output_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.master, self._wake_r], [], [])
            if self.master in ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: every slave fd is closed, the container is gone
                    return
                if not data:
                    return
                _write_all(self.stdout, data)
            elif self._wake_r in ready:
                return

    def _input_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.stdin, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self.stdin, 65536)
            except OSError:
                return
            if not data:
                # EOF on our stdin: the pty's EOF character ends the container's read.
                try:
                    eof = termios.tcgetattr(self.master)[6][termios.VEOF]
                    _write_all(self.master, eof if isinstance(eof, bytes) else bytes([eof]))
                except OSError:
                    pass
                return
            try:
                _write_all(self.master, data)
            except OSError:
                return

    async def pump_output(self) -> None:
        await anyio.to_thread.run_sync(self._output_loop, abandon_on_cancel=True)

    async def pump_input(self) -> None:
        if self.forward_stdin:
            await anyio.to_thread.run_sync(self._input_loop, abandon_on_cancel=True)

    def close(self) -> None:
        """Wake both threads; they return at once."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
