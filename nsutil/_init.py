"""The container's first moments: what the forked child does before exec.

Runs in the child the spawner forked into the new PID namespace, so it is PID 1
there, and runs the `_plan.Plan` the spawner compiled from the spec before it
forked. Every step that fails is reported up the error pipe as one marshalled
`StepReport` (its wire form) and the child exits: 127 when the command was not
found, 126 when it could not be executed, 125 for anything else.

Containment, as the `InitSpec` says: harden_mounts makes /sys read-only and masks
/proc as docker does; capabilities (the numbers to keep) trims the bounding set and
sets the process's sets; user (uid, gid) switches to that user with no
supplementary groups; no_new_privs sets PR_SET_NO_NEW_PRIVS; seccomp installs the
filter the spawner compiled, as the last step (what follows, exec and under init
fork, signals and waits, any profile a command can start under allows); init keeps this
process as a minimal PID 1 (reaps orphans, forwards signals) and runs the command
in a child.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import marshal
import os
import signal

from . import _libc
from ._messages import InitEnded, StepReport, to_wire
from ._plan import CAPSET, CLOSE_RANGE, IGNORE, MASK, SETATTR, SKIP_MISSING, Plan, exec_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

    from ._plan import Failure, Step

EXIT_SETUP_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127

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


def run_steps(steps: tuple[Step, ...]) -> None:
    """Make each call in turn; a failure the step's policy does not forgive raises
    StepError."""
    for fn, args, failure in steps:
        try:
            if fn(*args) >= 0:
                continue
            err = ctypes.get_errno()
        except OSError as exc:
            err = exc.errno or errno.EIO
        _recover(failure, err)


def _recover(failure: Failure, err: int) -> None:
    step, what, policy, extra = failure
    if policy == IGNORE:
        return
    if policy in (SKIP_MISSING, MASK) and err == errno.ENOENT:
        return
    try:
        if policy == MASK and err in (errno.ENOTDIR, errno.EISDIR):
            run_steps((extra,))  # a directory where a file was, or the other way round
            return
        if policy == SETATTR and err == errno.ENOSYS:
            _remount_tree_readonly(extra)
            return
        if policy == CAPSET and err == errno.EPERM:
            _effective, permitted, _inheritable = _libc.capget()
            _libc.capset(extra & permitted, extra & permitted, 0)
            return
        if policy == CLOSE_RANGE:
            for name in os.listdir("/proc/self/fd"):
                if int(name) >= extra:
                    with contextlib.suppress(OSError):
                        os.set_inheritable(int(name), False)
            return
    except OSError as exc:
        err = exc.errno or errno.EIO
    raise StepError(step, err, f"{what}: {os.strerror(err)}")


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


_ENDED_FD = 3


def _run_under_init(plan: Plan, error_fd: int) -> NoReturn:
    """Stay PID 1 as a minimal init: the command runs in a child; this process reaps
    every orphan, forwards FORWARDED_SIGNALS to the command, and exits with the
    command's status (128+N if a signal N ended it) as soon as it ends.

    This process is a fork of the spawner and keeps its image: the specs (environment
    included) of the containers forked with this one, and whatever else the spawner's
    heap still holds; it cannot unmap or scrub that. So the plan made it non-dumpable
    before the command exists (`_plan`): its memory, environ, maps and fds are closed
    to the command, which lacks CAP_SYS_PTRACE, root or not, and no core of it is
    written. (The command's exec makes the command dumpable again, with an image of
    its own.) Its fds are closed below."""
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
        if plan.tty:
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])
            with contextlib.suppress(OSError):
                os.tcsetpgrp(0, os.getpid())
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        _exec(plan)  # a failure is reported up the error pipe by child_main
    with contextlib.suppress(OSError):
        _libc.set_name("supervise-init")
    # The handlers never run (the signals stay blocked, taken by sigwaitinfo), but
    # they show as caught in /proc/1/status, so a stop gives the grace period.
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, _ignore)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    # Nothing of the spawner's stays open here (its socket, other containers' pipes)
    # but the error pipe, as fd 3: how the command ended, when a signal ended it.
    if error_fd != _ENDED_FD:
        os.dup2(error_fd, _ENDED_FD)
    if not _libc.close_range(_ENDED_FD + 1):
        os.closerange(_ENDED_FD + 1, os.sysconf("SC_OPEN_MAX"))
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
                if code < 0:
                    with contextlib.suppress(OSError):
                        os.write(_ENDED_FD, marshal.dumps(to_wire(InitEnded(signal=-code))))
                os._exit(128 - code if code < 0 else code)


def _ignore(_sig: int, _frame: object) -> None:
    pass


def _exec(plan: Plan) -> NoReturn:
    """exec the command: each candidate path in turn, judged like execvpe(3) does."""
    errnos = []
    execve = _libc.libc.execve
    for path in plan.candidates:
        execve(path, plan.argv, plan.envp)
        errnos.append(ctypes.get_errno())
    err = exec_error(errnos)
    raise StepError("exec", err, f"exec {plan.argv0!r}: {os.strerror(err)}")


def child_main(plan: Plan, error_fd: int) -> NoReturn:
    """Set up the container around this process and exec its command; never returns."""
    # A collection here would walk (and so copy-on-write) the whole inherited heap: a
    # millisecond or two, measured. This process lives until exec (or, as --init's
    # reaper, makes no cycles).
    gc.disable()
    code = EXIT_SETUP_FAILED
    try:
        run_steps(plan.steps)
        if plan.init:
            _run_under_init(plan, error_fd)
        _exec(plan)
    except StepError as exc:
        report = StepReport(step=exc.step, errno=exc.errno, message=exc.message)
        if exc.step == "exec":
            code = EXIT_NOT_FOUND if exc.errno == errno.ENOENT else EXIT_NOT_EXECUTABLE
    except BaseException as exc:  # a bug here must still become a report, not a hang
        report = StepReport(step="init", errno=0, message=f"{type(exc).__name__}: {exc}")
    try:
        os.write(error_fd, marshal.dumps(to_wire(report)))
    finally:
        os._exit(code)
