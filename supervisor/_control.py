"""Signalling containers of any supervise on this host: `supervise kill` and `stop`.

A container is found through its journal record, which is input (a container may
once have written the state directory): its PID 1 is signalled through a pidfd only
once the process it designates is checked, by the kernel's word, to be that very
process: the start time recorded, the cgroups recorded (directories named with the
container's id), and PID 1 of a PID namespace. A record without a start time or a
cgroup is refused: nothing else could tell a container from any host process.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cgroupfs

from . import _state
from ._errors import SuperviseError, UsageError
from ._procfs import catches_signal
from ._state import ContainerState

KILL_WAIT_S = 10.0  # how long stop waits after SIGKILL


class NotFound(SuperviseError):
    """A reference that names no container, or several: docker's exit status 1."""

    exit_code = 1


def parse_signal(text: str) -> signal.Signals:
    """KILL, SIGKILL, kill, 9 -> SIGKILL."""
    value = text.strip()
    if value.isdigit():
        try:
            return signal.Signals(int(value))
        except ValueError:
            raise UsageError(f"invalid signal: {text}") from None
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise UsageError(f"invalid signal: {text}") from None


def resolve(states: Sequence[ContainerState], ref: str) -> ContainerState:
    matches = _state.find(states, ref)
    if not matches:
        raise NotFound(f"no such container: {ref}")
    if len(matches) > 1:
        ids = ", ".join(s.id for s in matches)
        raise NotFound(f"{ref} designates {len(matches)} containers ({ids}): use an id")
    return matches[0]


def unverifiable(state: ContainerState) -> str | None:
    """Why a record gives nothing to check its PID 1 against (then it is not
    signalled), or None."""
    missing = [what for what, absent in (("start time", state.pid_start_ticks is None),
                                         ("cgroup", not state.cgroup_paths)) if absent]
    if not missing:
        return None
    return f"its record has no {' or '.join(missing)} to check its PID 1 by: not signalled"


def cgroup_dirs(proc_cgroup: str, mountinfo: str) -> set[str]:
    """The cgroup directories (absolute) a /proc/PID/cgroup text places a process in,
    in each hierarchy supervise uses that the mountinfo text shows mounted."""
    try:
        layout = cgroupfs.detect_layout(mountinfo, proc_cgroup)
    except cgroupfs.CgroupError:
        return set()
    dirs = {layout.v1_own_dir(controller) for controller in layout.v1_mounts}
    if layout.v2_mount is not None:
        dirs.add(layout.v2_own_dir())
    return dirs


def in_cgroups(dirs: Iterable[str], cgroup_paths: Iterable[str]) -> bool:
    """Whether a process in these directories is in every one of cgroup_paths, or in a
    cgroup below it."""
    paths = [os.path.normpath(p) for p in cgroup_paths]
    return bool(paths) and all(
        any(d == p or d.startswith(p.rstrip("/") + "/") for d in dirs) for p in paths)


def is_namespace_init(status: str) -> bool:
    """Whether a /proc/PID/status text is that of the PID 1 of a PID namespace below
    the reader's (NSpid: HOSTPID ... 1)."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            pids = line.split()[1:]
            return len(pids) > 1 and pids[-1] == "1"
    return False


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def open_pid1(state: ContainerState, mountinfo: str | None = None) -> int | None:
    """A pidfd for the container's PID 1, or None when that process is gone (or the pid
    is another's now). The record must have a start time and cgroups (see unverifiable).

    The pidfd is opened first, then the process it designates is checked: its start
    ticks, its cgroups, and that it is a PID namespace's init. A pid recycled before
    the open fails the check; one that dies after it leaves a pidfd that signals
    nothing."""
    assert unverifiable(state) is None
    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        return None
    except OSError as exc:
        raise SuperviseError(f"pidfd_open({state.pid}): {exc.strerror}") from exc
    try:
        genuine = _state.process_start_ticks(state.pid) == state.pid_start_ticks
        if genuine:
            proc_cgroup = _read(f"/proc/{state.pid}/cgroup")
            mountinfo = mountinfo if mountinfo is not None else _read("/proc/self/mountinfo")
            genuine = (proc_cgroup is not None and mountinfo is not None
                       and in_cgroups(cgroup_dirs(proc_cgroup, mountinfo), state.cgroup_paths)
                       and is_namespace_init(_read(f"/proc/{state.pid}/status") or ""))
    except BaseException:
        os.close(pidfd)
        raise
    if not genuine:
        os.close(pidfd)
        return None
    return pidfd


def send(pidfd: int, sig: int) -> bool:
    """Signal by pidfd; False if the process has already exited."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return False
    return True


def wait_exited(pidfds: Iterable[int], timeout: float) -> set[int]:
    """Wait until every pidfd is readable (its process has exited) or timeout passes;
    the pidfds whose processes are still there."""
    poller = select.poll()
    pending = set(pidfds)
    for fd in pending:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _events in poller.poll(max(1, int(left * 1000))):
            pending.discard(fd)
            poller.unregister(fd)
    return pending


@dataclass
class Target:
    state: ContainerState
    pidfd: int


def open_targets(states: Sequence[ContainerState], refs: Sequence[str]
                 ) -> tuple[list[Target], list[str]]:
    """Each ref's container with a checked pidfd (one per container); the errors."""
    targets: list[Target] = []
    errors: list[str] = []
    seen: set[str] = set()
    mountinfo = _read("/proc/self/mountinfo")
    try:
        for ref in refs:
            try:
                state = resolve(states, ref)
            except NotFound as exc:
                errors.append(str(exc))
                continue
            if state.id in seen:
                continue
            problem = unverifiable(state)
            if problem is not None:
                errors.append(f"{ref}: {problem}")
                continue
            pidfd = open_pid1(state, mountinfo)
            if pidfd is None:
                errors.append(f"{ref} is not running")
                continue
            seen.add(state.id)
            targets.append(Target(state, pidfd))
    except BaseException:
        close_targets(targets)
        raise
    return targets, errors


def close_targets(targets: Iterable[Target]) -> None:
    for target in targets:
        with contextlib.suppress(OSError):
            os.close(target.pidfd)


def stop(targets: Sequence[Target], timeout: float, kill_wait: float = KILL_WAIT_S
         ) -> list[Target]:
    """SIGTERM every target (SIGKILL at once for a PID 1 without a SIGTERM handler: the
    kernel would drop the SIGTERM), wait up to timeout, SIGKILL the rest, wait (bounded).
    The targets whose PID 1 is still there at the end."""
    for target in targets:
        handles_term = catches_signal(target.state.pid, signal.SIGTERM) is not False
        send(target.pidfd, signal.SIGTERM if handles_term else signal.SIGKILL)
    left = wait_exited([t.pidfd for t in targets], timeout)
    stubborn = [t for t in targets if t.pidfd in left]
    for target in stubborn:
        send(target.pidfd, signal.SIGKILL)
    still = wait_exited([t.pidfd for t in stubborn], kill_wait)
    return [t for t in stubborn if t.pidfd in still]
