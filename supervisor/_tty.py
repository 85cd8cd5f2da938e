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
# Linux's numbers; Python's termios lacks them.
_TIOCVHANGUP = getattr(termios, "TIOCVHANGUP", 0x5437)
_TIOCGPTPEER = getattr(termios, "TIOCGPTPEER", 0x5441)  # an fd of a master's slave (4.13+)


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
        with contextlib.suppress(termios.error, OSError):  # EIO: the terminal hung up
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


def _cc_byte(value: bytes | int) -> bytes:
    return value if isinstance(value, bytes) else bytes([value])


class PtyPump:
    """Copies stdin -> master (optional) and master -> stdout until the container's
    side of the pty is closed.

    Each thread works on its own duplicates of the master and of the wake pipe's
    read end and closes them as it returns: a thread left behind (the loop does
    not wait for one stuck in a write) never touches an fd number that was
    closed and handed out again.
    """

    def __init__(self, master_fd: int, stdin_fd: int, stdout_fd: int, forward_stdin: bool) -> None:
        self.master = master_fd
        self.stdin = stdin_fd
        self.stdout = stdout_fd
        self.forward_stdin = forward_stdin
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._closed = False

    def _dup_fds(self) -> tuple[int, int]:
        master = os.dup(self.master)
        try:
            return master, os.dup(self._wake_r)
        except OSError:
            os.close(master)
            raise

    def _output_loop(self, master: int, wake: int) -> None:
        try:
            discard = False
            while True:
                ready, _, _ = select.select([master, wake], [], [])
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every slave fd is closed, the container is gone
                        return
                    if not data:
                        return
                    if discard:
                        continue
                    try:
                        _write_all(self.stdout, data)
                    except OSError:
                        # Our stdout is gone (EPIPE, a closed terminal): hang up the
                        # container's terminal as a real one would, and keep draining
                        # so that nothing in there blocks on a full pty meanwhile.
                        discard = True
                        _hang_up(master)
                elif wake in ready:
                    return
        finally:
            os.close(master)
            os.close(wake)

    def _input_loop(self, master: int, wake: int) -> None:
        try:
            last = b"\n"
            while True:
                ready, _, _ = select.select([self.stdin, wake], [], [])
                if wake in ready:
                    return
                try:
                    data = os.read(self.stdin, 65536)
                except OSError:
                    return
                if not data:
                    _send_eof(master, last)
                    return
                try:
                    _write_all(master, data)
                except OSError:
                    return
                last = data[-1:]
        finally:
            os.close(master)
            os.close(wake)

    async def pump_output(self) -> None:
        if not self._closed:
            fds = self._dup_fds()
            await anyio.to_thread.run_sync(self._output_loop, *fds, abandon_on_cancel=True)

    async def pump_input(self) -> None:
        if self.forward_stdin and not self._closed:
            fds = self._dup_fds()
            await anyio.to_thread.run_sync(self._input_loop, *fds, abandon_on_cancel=True)

    def close(self) -> None:
        """Wake both threads (they return at once) and close the wake pipe."""
        if not self._closed:
            self._closed = True
            os.close(self._wake_w)  # EOF: the read ends the threads hold become readable
            os.close(self._wake_r)


def _send_eof(master: int, last: bytes) -> None:
    """EOF on our stdin: the pty's EOF character ends the container's read.

    In canonical mode it only hands over a pending partial line, so after one
    (input that did not end with a line end) a second makes the read return 0.
    """
    try:
        cc = termios.tcgetattr(master)[6]
        eof = _cc_byte(cc[termios.VEOF])
        line_ends = {b"\n", eof, _cc_byte(cc[termios.VEOL]), _cc_byte(cc[termios.VEOL2])}
        _write_all(master, eof if last in line_ends - {b"\0"} else eof * 2)
    except OSError:
        pass


def _hang_up(master: int) -> None:
    """Hang up the container's terminal (its slave side: a master's hangup would
    not wake a writer blocked on a full pty): writes there fail with EIO and its
    session gets SIGHUP. Needs CAP_SYS_ADMIN; without, the output is only dropped."""
    try:
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.ioctl(slave, _TIOCVHANGUP)
    except OSError:
        pass
    finally:
        os.close(slave)
