"""The container's first moments: what the forked child does before exec.

Runs in the child the spawner forked into the new PID namespace, so it is
PID 1 there. Every step that fails is reported up the error pipe as one JSON
object {"step", "errno", "message"} and the child exits: 127 when the command
was not found, 126 when it could not be executed, 125 for anything else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import termios
from typing import Any, NoReturn

from . import _libc

EXIT_SETUP_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_NLMSG_ERROR = 2
_NETLINK_ROUTE = 0


class StepError(Exception):
    """A failed init step: which step, the errno and a message for the user."""

    def __init__(self, step: str, err: int, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.errno = err
        self.message = message


def _step(step: str, exc: OSError, what: str) -> StepError:
    err = exc.errno or errno.EIO
    return StepError(step, err, f"{what}: {os.strerror(err)}")


def bring_loopback_up(request: bytes) -> None:
    """Send a pre-encoded RTM_NEWLINK (lo up) on a netlink socket and check the ACK.

    The request is encoded once by the supervisor (with pyroute2); here it is
    only bytes, so the child needs neither pyroute2 nor its import time.
    """
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_ROUTE) as nl:
        nl.send(request)
        reply = nl.recv(65536)
    if len(reply) >= 20:
        _length, kind, _flags, _seq, _pid = struct.unpack_from("=LHHLL", reply)
        if kind == _NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", reply, 16)
            if code != 0:
                raise OSError(-code, os.strerror(-code))
            return
    raise OSError(errno.EPROTO, "unexpected netlink reply")


def _reset_signals() -> None:
    # exec keeps ignored signals ignored: Python ignores SIGPIPE and SIGXFSZ,
    # and a command should start with every disposition at its default.
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _setup(spec: dict[str, Any], fds: list[int]) -> None:
    try:
        _libc.prctl(_libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError as exc:
        raise _step("prctl", exc, "set parent-death signal") from exc

    # Join the cgroups first: every limit holds from here on, for everything
    # this process and the command will ever do.
    for path in spec.get("cgroup_procs", []):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError as exc:
            raise _step("cgroup", exc, f"joining {path}") from exc

    flags = 0
    for name in spec.get("namespaces", []):
        if name != "pid":  # the spawner already made the PID namespace
            flags |= _libc.NAMESPACE_FLAGS[name]
    if flags:
        try:
            _libc.unshare(flags)
        except OSError as exc:
            raise _step("unshare", exc, "creating namespaces") from exc

    lo_request = spec.get("loopback_request")
    if lo_request and "net" in spec.get("namespaces", []):
        try:
            bring_loopback_up(bytes.fromhex(lo_request))
        except OSError as exc:
            raise _step("loopback", exc, "bringing up lo") from exc

    if "mnt" in spec.get("namespaces", []):
        try:
            # Nothing mounted inside may propagate back to the host.
            _libc.mount(None, "/", None, _libc.MS_REC | _libc.MS_PRIVATE)
            if "pid" in spec.get("namespaces", []):
                _libc.mount("proc", "/proc", "proc",
                            _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC)
        except OSError as exc:
            raise _step("mount", exc, "mounting /proc") from exc

    hostname = spec.get("hostname")
    if hostname and "uts" in spec.get("namespaces", []):
        try:
            _libc.sethostname(hostname)
        except OSError as exc:
            raise _step("hostname", exc, f"setting hostname {hostname!r}") from exc

    try:
        os.setsid()
        stdio = spec.get("stdio", [])
        for target, index in enumerate(stdio):
            os.dup2(fds[index], target, inheritable=True)
        if spec.get("tty"):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    except OSError as exc:
        raise _step("stdio", exc, "setting up stdio") from exc

    cwd = spec.get("cwd")
    if cwd:
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise _step("chdir", exc, f"working directory {cwd!r}") from exc

    _reset_signals()
    # Only fds 0, 1 and 2 cross exec (and the error pipe closes on success).
    if not _libc.close_range_cloexec(3):
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                with contextlib.suppress(OSError):
                    os.set_inheritable(fd, False)


def _exec(spec: dict[str, Any]) -> NoReturn:
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec.get("env", {})
    try:
        if "/" in argv[0]:
            os.execve(argv[0], argv, env)
        # Search PATH as the command's own environment defines it, like execvpe(3).
        saw_eacces = False
        last: OSError | None = None
        for directory in env.get("PATH", DEFAULT_PATH).split(":"):
            candidate = os.path.join(directory or ".", argv[0])
            try:
                os.execve(candidate, argv, env)
            except OSError as exc:
                if exc.errno == errno.EACCES:
                    saw_eacces = True
                elif exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP,
                                       errno.ENAMETOOLONG):
                    last = exc
        if last is not None:
            raise last
        raise OSError(errno.EACCES if saw_eacces else errno.ENOENT, "")
    except OSError as exc:
        err = exc.errno or errno.EIO
        raise StepError("exec", err, f"exec {argv[0]!r}: {os.strerror(err)}") from exc


def child_main(spec: dict[str, Any], fds: list[int], error_fd: int) -> NoReturn:
    """Set up the container around this process and exec its command; never returns."""
    code = EXIT_SETUP_FAILED
    try:
        _setup(spec, fds)
        _exec(spec)
    except StepError as exc:
        report: dict[str, Any] = {"step": exc.step, "errno": exc.errno, "message": exc.message}
        if exc.step == "exec":
            code = EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
    except BaseException as exc:  # a bug here must still become a report, not a hang
        report = {"step": "init", "errno": 0, "message": f"{type(exc).__name__}: {exc}"}
    try:
        os.write(error_fd, json.dumps(report).encode())
    finally:
        os._exit(code)
