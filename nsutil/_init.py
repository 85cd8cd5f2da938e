"""The container's first moments: what the forked child does before exec.

Runs in the child the spawner forked into the new PID namespace, so it is
PID 1 there. Every step that fails is reported up the error pipe as one JSON
object {"step", "errno", "message"} and the child exits: 127 when the command
was not found, 126 when it could not be executed, 125 for anything else.

Containment (all optional in the spec, so nsutil stays usable alone):
"harden_mounts" makes /sys read-only and masks /proc as docker does;
"capabilities" (the numbers to keep) trims the bounding set and sets the
process's sets; "user" [uid, gid] switches to that user with no supplementary
groups; "no_new_privs" sets PR_SET_NO_NEW_PRIVS; "init" keeps this process as a
minimal PID 1 (reaps orphans, forwards signals) and runs the command in a child.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import json
import os
import select
import signal
import socket
import struct
import termios
from typing import Any, NoReturn

from . import _caps, _libc

EXIT_SETUP_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_NLMSG_ERROR = 2
_NETLINK_ROUTE = 0

# docker's (moby's oci defaults) masked and read-only paths, with whether each
# masked path is a directory (an empty read-only tmpfs over it) or a file (/dev/null).
MASKED_PATHS: tuple[tuple[str, bool], ...] = (
    ("/proc/asound", True), ("/proc/acpi", True), ("/proc/kcore", False),
    ("/proc/keys", False), ("/proc/latency_stats", False), ("/proc/timer_list", False),
    ("/proc/timer_stats", False), ("/proc/sched_debug", False), ("/proc/scsi", True),
    ("/sys/firmware", True), ("/sys/devices/virtual/powercap", True),
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# What PID 1 under "init" passes on to the command (docker's tini forwards these too).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


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


_ignored: tuple[int, ...] | None = None


def _ignored_signals() -> tuple[int, ...]:
    """The signals this process ignores (Python ignores SIGPIPE and SIGXFSZ, the
    spawner SIGINT, SIGHUP and SIGTERM)."""
    found = []
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            if signal.getsignal(sig) == signal.SIG_IGN:
                found.append(sig)
    return tuple(found)


def _reset_signals() -> None:
    # exec resets caught signals to their default but keeps ignored ones ignored: a
    # command must start with every disposition at its default, so reset those
    # (learnt once, in prepare(): a few calls here instead of sixty-four).
    for sig in _ignored if _ignored is not None else _ignored_signals():
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _setup(spec: dict[str, Any], fds: list[int], error_fd: int) -> None:
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
        if spec.get("harden_mounts"):
            harden_mounts()

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

    drop_privileges(spec.get("capabilities"), spec.get("user"),
                    bool(spec.get("no_new_privs")), error_fd)

    # After the user switch, as runc does: the user must be able to enter it.
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


_present: tuple[tuple[str, ...], tuple[tuple[str, bool], ...]] | None = None


def prepare() -> None:
    """Learn once, in the long-lived process that forks containers, what every
    container's init would otherwise ask again: the bounding set, and which of the
    read-only and masked paths this kernel has (the host's /proc and /sys show the
    same entries as a container's fresh ones)."""
    global _present, _ignored
    _libc.bounding_set()
    _ignored = _ignored_signals()
    if _present is None:
        _present = (tuple(p for p in READONLY_PATHS if os.path.lexists(p)),
                    tuple((p, os.path.isdir(p)) for p, _ in MASKED_PATHS if os.path.lexists(p)))


def harden_mounts() -> None:
    """/sys read-only (every mount below it too), and /proc as docker leaves it:
    some paths read-only, some masked. In this mount namespace only."""
    try:
        try:
            _libc.mount_setattr_rdonly("/sys")
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
            _remount_tree_readonly("/sys")  # kernels before 5.12
    except OSError as exc:
        raise _step("mount", exc, "making /sys read-only") from exc
    readonly, masked = _present if _present is not None else (READONLY_PATHS, MASKED_PATHS)
    hidden = _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC
    for path in readonly:
        try:
            _libc.mount(path, path, None, _libc.MS_BIND | _libc.MS_REC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _step("mount", exc, f"making {path} read-only") from exc
        try:
            _libc.mount(None, path, None,
                        _libc.MS_BIND | _libc.MS_REMOUNT | _libc.MS_RDONLY | hidden)
        except OSError as exc:
            raise _step("mount", exc, f"making {path} read-only") from exc
    for path, is_dir in masked:
        try:
            try:
                _mask(path, is_dir)
            except NotADirectoryError:
                _mask(path, False)
            except IsADirectoryError:
                _mask(path, True)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _step("mount", exc, f"masking {path}") from exc


def _mask(path: str, is_dir: bool) -> None:
    if is_dir:
        _libc.mount("tmpfs", path, "tmpfs",
                    _libc.MS_RDONLY | _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC,
                    "size=0,mode=555")
    else:
        _libc.mount("/dev/null", path, None, _libc.MS_BIND)


def _remount_tree_readonly(top: str) -> None:
    """Without mount_setattr: remount top and each mount below it read-only, one by one,
    keeping each one's nosuid/nodev/noexec/noatime flags (mountinfo is read after the
    fresh /proc is mounted, so it is this namespace's)."""
    with open("/proc/self/mountinfo", "rb") as f:
        points = [line.split()[4].decode() for line in f]
    # statvfs's ST_ bits equal the MS_ flags for these (not for ST_RELATIME)
    keep = os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME
    for point in points:
        if point == top or point.startswith(top.rstrip("/") + "/"):
            point = point.replace("\\040", " ")
            flags = os.statvfs(point).f_flag & keep
            _libc.mount(None, point, None,
                        _libc.MS_BIND | _libc.MS_REMOUNT | _libc.MS_RDONLY | flags)


def drop_privileges(capabilities: list[int] | None, user: list[int] | None,
                    no_new_privs: bool, error_fd: int = -1) -> None:
    """Keep only the given capabilities (None: keep all), become the user, set no_new_privs.

    The bounding set is what holds across exec for root (execve gives root its
    bounding set), so every capability not kept is dropped from it; inheritable
    and ambient are emptied. The user switch comes before capset, so it works even
    with SETUID/SETGID dropped; leaving uid 0 empties the effective and permitted
    sets, so a non-root user ends with no capabilities.
    """
    keep = _caps.mask(capabilities) if capabilities is not None else None
    if keep is not None:
        try:
            _libc.drop_bounding(keep)
            _libc.prctl(_libc.PR_CAP_AMBIENT, _libc.PR_CAP_AMBIENT_CLEAR_ALL)
        except OSError as exc:
            raise _step("capabilities", exc, "dropping capabilities") from exc
    if user is not None:
        uid, gid = user
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        except OSError as exc:
            raise _step("user", exc, f"switching to user {uid}:{gid}") from exc
    if keep is not None:
        try:
            # Only what this process has: a host (or an outer container) may lack some
            # of what was asked for; leaving uid 0 has emptied the permitted set.
            _effective, permitted, _inheritable = _libc.capget()
            kept = keep & permitted
            _libc.capset(kept, kept, 0)
        except OSError as exc:
            raise _step("capabilities", exc, "setting capabilities") from exc
    if no_new_privs:
        try:
            _libc.prctl(_libc.PR_SET_NO_NEW_PRIVS, 1)
        except OSError as exc:
            raise _step("prctl", exc, "setting no_new_privs") from exc
    if user is not None:
        # A credential change clears the parent-death signal: arm it again, then make
        # sure the spawner did not die in between (it holds the error pipe's only
        # read end; with it gone, poll reports POLLERR on our write end).
        try:
            _libc.prctl(_libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError as exc:
            raise _step("prctl", exc, "set parent-death signal") from exc
        if error_fd >= 0 and _reader_gone(error_fd):
            os._exit(EXIT_SETUP_FAILED)


def _reader_gone(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, 0)
    return any(ev & select.POLLERR for _fd, ev in poller.poll(0))


def _run_under_init(spec: dict[str, Any]) -> NoReturn:
    """Stay PID 1 as a minimal init: the command runs in a child; this process reaps
    every orphan, forwards FORWARDED_SIGNALS to the command, and exits with the
    command's status (128+N if a signal N ended it) as soon as it ends."""
    waited = {*FORWARDED_SIGNALS, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        command = os.fork()
    except OSError as exc:
        raise _step("init", exc, "starting the command under --init") from exc
    if command == 0:
        # Its own process group, the terminal's foreground one with a tty, so that
        # ^C reaches the command once (not also via PID 1's forwarding).
        os.setpgid(0, 0)
        if spec.get("tty"):
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])
            with contextlib.suppress(OSError):
                os.tcsetpgrp(0, os.getpid())
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        _exec(spec)  # a failure is reported up the error pipe by child_main
    with contextlib.suppress(OSError):
        _libc.set_name("supervise-init")
    # The handlers never run (the signals stay blocked, taken by sigwaitinfo), but
    # they show as caught in /proc/1/status, so a stop gives the grace period.
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, _ignore)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    # Nothing of the spawner's stays open here (its socket, other containers' pipes).
    if not _libc.close_range(3):
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    while True:
        info = signal.sigwaitinfo(waited)
        if info.si_signo != signal.SIGCHLD:
            with contextlib.suppress(OSError):
                os.kill(command, info.si_signo)
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(EXIT_SETUP_FAILED)  # cannot happen: the command is our child
            if pid == 0:
                break
            if pid == command:
                code = os.waitstatus_to_exitcode(status)
                os._exit(128 - code if code < 0 else code)


def _ignore(_sig: int, _frame: object) -> None:
    pass


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
    # A collection here would walk (and so copy-on-write) the whole inherited heap: a
    # millisecond or two, measured. This process lives until exec (or, as --init's
    # reaper, makes no cycles).
    gc.disable()
    code = EXIT_SETUP_FAILED
    try:
        _setup(spec, fds, error_fd)
        if spec.get("init"):
            _run_under_init(spec)
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
