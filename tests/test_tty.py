"""`supervise run -t/-i`: the pseudo-terminal, stdin forwarding, the user's terminal.

Real containers, so root only. A test that needs a terminal on our side owns
one: os.openpty(), the slave as supervise's stdin/stdout/stderr and controlling
terminal (a new session), and the master driven by `Term`. Every read waits
for a pattern with a deadline and fails showing what it did read.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, cgroups)")

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0  # for one expected piece of output
EXIT_TIMEOUT = 30.0  # for supervise to end once it should
PROMPT = b"tty-test> "

# Becomes the controlling terminal of the new session Popen made (start_new_session),
# then is supervise: no preexec_fn, no fork of the test process by hand.
_CTTY_EXEC = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


# -- running supervise ------------------------------------------------------------
def supervise(*args: str) -> list[str]:
    return [sys.executable, "-m", "supervisor", "run", *args]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a supervise that overstayed: SIGTERM first, so it still removes its cgroups."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- a terminal the test owns --------------------------------------------------
def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Term:
    """A pty: the test types on and reads from the master; supervise gets the slave."""

    def __init__(self, rows: int = 33, cols: int = 97) -> None:
        self.master, self.slave = os.openpty()
        set_window_size(self.master, rows, cols)
        self.buffer = b""
        self.pos = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str], stderr: int | None = None) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CTTY_EXEC, *argv],
            stdin=self.slave, stdout=self.slave, stderr=self.slave if stderr is None else stderr,
            start_new_session=True, cwd=ROOT,
        )
        return self.proc

    def start(self, *args: str, stderr: int | None = None) -> subprocess.Popen[bytes]:
        """`supervise run ARGS` on this terminal."""
        return self.spawn(supervise(*args), stderr)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def _fill(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: no slave left open (we keep one, so not expected)
            return False
        self.buffer += data
        return bool(data)

    def expect(self, pattern: bytes, timeout: float = TIMEOUT) -> re.Match[bytes]:
        """Read until the regex matches what came since the last match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.buffer, self.pos)
            if match:
                self.pos = match.end()
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {pattern!r} within {timeout}s; read: {self.buffer[self.pos:]!r}")
            self._fill(min(remaining, 0.5))

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """supervise's exit status; reading its output meanwhile so it never blocks."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                stop(self.proc)
                pytest.fail(f"supervise did not exit within {timeout}s; "
                            f"read: {self.buffer[self.pos:]!r}")
            self._fill(0.05)
        while self._fill(0):
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def term() -> Iterator[Term]:
    t = Term()
    try:
        yield t
    finally:
        t.close()


def run_piped(*args: str, stdin: bytes = b"",
              keep_stdin_open: bool = False) -> subprocess.CompletedProcess[bytes]:
    """supervise with pipes (no terminal: a new session, stderr captured too)."""
    proc = subprocess.Popen(
        supervise(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT,
    )
    try:
        with proc:
            if keep_stdin_open:
                # Were stdin forwarded, the command would wait for it: it must not be.
                proc.wait(EXIT_TIMEOUT)
                assert proc.stdout is not None and proc.stderr is not None
                out, err = proc.stdout.read(), proc.stderr.read()
            else:
                out, err = proc.communicate(stdin, timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"supervise did not exit within {EXIT_TIMEOUT}s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def lines(output: bytes) -> bytes:
    return output.replace(b"\r\n", b"\n")


# -- the tests -------------------------------------------------------------------
def test_interactive_shell_on_a_terminal(term: Term) -> None:
    modes = termios.tcgetattr(term.slave)
    flags = fcntl.fcntl(term.slave, fcntl.F_GETFL)
    term.start("-ti", "-e", "PS1=" + PROMPT.decode(), "sh")
    term.expect(re.escape(PROMPT))  # the container's output: we are attached, raw

    # Raw while attached: no echo, no signals, no line editing by our terminal.
    attached = termios.tcgetattr(term.slave)
    assert not attached[3] & (termios.ECHO | termios.ICANON | termios.ISIG)

    term.write(b"echo $((6*7))\r")
    term.expect(rb"\r\n42\r\n")
    term.expect(re.escape(PROMPT))

    term.write(b"stty size\r")
    term.expect(rb"\r\n33 97\r\n")
    term.expect(re.escape(PROMPT))

    # The kernel sends supervise (the foreground of our terminal) SIGWINCH; it must
    # copy the size on. Asynchronous: ask until it shows, each answer read in full.
    set_window_size(term.master, 41, 123)
    deadline = time.monotonic() + TIMEOUT
    while True:
        term.write(b"stty size\r")
        size = term.expect(rb"\r\n(\d+) (\d+)\r\n")
        term.expect(re.escape(PROMPT))
        if size.groups() == (b"41", b"123"):
            break
        assert time.monotonic() < deadline, f"the window size stayed {size.groups()}"

    term.write(b"exit 3\r")
    assert term.wait() == 3
    assert termios.tcgetattr(term.slave) == modes
    assert fcntl.fcntl(term.slave, fcntl.F_GETFL) == flags


def test_terminal_modes_restored_after_a_failed_command(term: Term) -> None:
    modes = termios.tcgetattr(term.slave)
    term.start("-ti", "--", "sh", "-c", "echo started; exit 9")
    term.expect(rb"started\r\n")
    assert term.wait() == 9
    assert termios.tcgetattr(term.slave) == modes


def test_terminal_modes_restored_when_supervise_is_terminated(term: Term) -> None:
    modes = termios.tcgetattr(term.slave)
    proc = term.start("-ti", "--stop-timeout", "1", "-e", "PS1=" + PROMPT.decode(), "sh")
    term.expect(re.escape(PROMPT))
    proc.send_signal(signal.SIGTERM)  # an interactive sh ignores it: killed after 1 s
    status = term.wait()
    assert status in (128 + signal.SIGTERM, 128 + signal.SIGKILL)
    assert termios.tcgetattr(term.slave) == modes


def test_interactive_without_tty_forwards_stdin_and_eof() -> None:
    done = run_piped("-i", "--", "cat", stdin=b"a\nb\n")
    assert (done.returncode, done.stdout) == (0, b"a\nb\n"), done.stderr


def test_stdin_is_dev_null_without_interactive() -> None:
    done = run_piped("--", "cat", keep_stdin_open=True)
    assert (done.returncode, done.stdout) == (0, b""), done.stderr


def test_tty_without_a_terminal_on_our_side() -> None:
    done = run_piped("-t", "--", "sh", "-c", "test -t 0 && test -t 1 && echo tty")
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == b"tty\n"


def test_tty_output_is_complete() -> None:
    # Everything written before the container ended reaches us, in order.
    done = run_piped("-t", "--", "sh", "-c", "seq 1 20000; exit 5")
    assert done.returncode == 5, done.stderr
    expected = "".join(f"{i}\n" for i in range(1, 20001)).encode()
    assert lines(done.stdout) == expected


@pytest.mark.parametrize("script", [b"echo h''i; exit 4\n", b"echo h''i; exit 4"],
                         ids=["newline", "no-newline"])
def test_tty_with_piped_stdin_ends_at_eof(script: bytes) -> None:
    done = run_piped("-ti", "sh", stdin=script)
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert b"hi\r\n" in done.stdout  # h''i is what the pty echoes, hi what echo prints


def test_tty_with_piped_stdin_eof_without_exit() -> None:
    # No `exit`: the shell must see EOF at the end of our stdin and end by itself.
    done = run_piped("-ti", "sh", stdin=b"echo h''i\n")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert b"hi\r\n" in done.stdout


def test_tty_with_piped_stdin_many_lines() -> None:
    data = b"".join(b"line %d of some input\n" % i for i in range(3000))
    done = run_piped("-ti", "--", "wc", "-c", stdin=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"\n%d\r\n" % len(data))  # after the pty's echo of it all


def test_ctrl_c_reaches_the_container_through_the_tty(term: Term) -> None:
    modes = termios.tcgetattr(term.slave)
    term.start("-ti", "--", "sh", "-c",
               'trap "echo got-int; exit 7" INT; echo ready; while :; do sleep 0.1; done')
    term.expect(rb"ready\r\n")
    term.write(b"\x03")
    term.expect(rb"got-int\r\n")
    assert term.wait() == 7
    assert termios.tcgetattr(term.slave) == modes


def test_ctrl_c_without_interactive_is_forwarded_as_sigint(term: Term) -> None:
    # -t alone: our terminal stays cooked, so Ctrl-C signals supervise, which forwards it.
    modes = termios.tcgetattr(term.slave)
    term.start("-t", "--", "sh", "-c",
               'trap "echo got-int; exit 7" INT; echo ready; while :; do sleep 0.1; done')
    term.expect(rb"ready\r+\n")  # our cooked terminal adds a \r to the pty's \r\n
    assert termios.tcgetattr(term.slave) == modes
    term.write(b"\x03")
    term.expect(rb"got-int\r+\n")
    assert term.wait() == 7
    assert termios.tcgetattr(term.slave) == modes


def test_tty_output_to_a_closed_pipe_hangs_up_the_container() -> None:
    # Our stdout goes away: the container's terminal hangs up as a real one would,
    # so `yes` (PID 1: deaf to SIGHUP) fails on EIO instead of blocking forever.
    proc = subprocess.Popen(
        supervise("-t", "--", "yes"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT,
    )
    with proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert proc.stdout.readline().startswith(b"y")
            proc.stdout.close()
            proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop(proc)
            pytest.fail(f"supervise did not exit within {EXIT_TIMEOUT}s")
        err = proc.stderr.read()
    assert proc.returncode == 1, err  # yes's status after a write error
    assert b"internal error" not in err


def test_terminal_closed_while_attached(term: Term, tmp_path: Path) -> None:
    errors = tmp_path / "stderr"
    with errors.open("wb") as stderr:
        proc = term.start("-ti", "--stop-timeout", "2", "-e", "PS1=" + PROMPT.decode(), "sh",
                          stderr=stderr.fileno())
    term.expect(re.escape(PROMPT))
    # The terminal goes away: supervise gets SIGHUP, EIO on it; the modes cannot be
    # restored (nor need to be), and that is no reason for a traceback.
    os.close(term.master)
    term.master = os.open(os.devnull, os.O_RDONLY)  # for Term.close
    try:
        status = proc.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"supervise did not exit within {EXIT_TIMEOUT}s")
    assert status != 125, errors.read_text()
    assert "Traceback" not in errors.read_text()
    assert "internal error" not in errors.read_text()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_signal_to_the_whole_job(term: Term, sig: int) -> None:
    # A shell whose terminal closes sends SIGHUP to each job's process group, and
    # timeout(1) signals its own group: supervise's helpers get it too. The
    # container must still end as supervise decides (forwarded, then killed).
    modes = termios.tcgetattr(term.slave)
    proc = term.start("-ti", "--stop-timeout", "1", "--", "sh", "-c",
                      'trap "echo got-sig; exit 6" HUP TERM; echo ready; '
                      "while :; do sleep 0.1; done")
    term.expect(rb"ready\r\n")
    os.killpg(proc.pid, sig)
    term.expect(rb"got-sig\r\n")
    assert term.wait() == 6
    assert termios.tcgetattr(term.slave) == modes


def test_command_not_found_with_a_terminal(term: Term) -> None:
    modes = termios.tcgetattr(term.slave)
    term.start("-ti", "--", "no-such-command-here")
    term.expect(rb"supervise: .*no-such-command-here")
    assert term.wait() == 127
    assert termios.tcgetattr(term.slave) == modes
