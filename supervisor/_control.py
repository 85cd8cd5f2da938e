"""Signalling containers of any supervise on this host: `supervise kill` and `stop`.

A container is found through its state file; its PID 1 is signalled through a
pidfd that is first checked to be that very process (its start time, and its
cgroup), so a recycled pid is never signalled.
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


def in_cgroup(proc_cgroup: str, cgroup_paths: Iterable[str]) -> bool:
    """Whether a /proc/PID/cgroup text places the process in one of ``cgroup_paths``
    (absolute directories; the text's paths are relative to each hierarchy's root), or
    in its leaf, where a container's processes live."""
    paths = [os.path.normpath(p) for p in cgroup_paths]
    candidates = [*paths, *(f"{p}/{cgroupfs.LEAF}" for p in paths)]
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        relative = parts[2].strip()
        if relative in ("", "/"):
            continue
        if any(p.endswith(relative.rstrip("/")) for p in candidates):
            return True
    return False


def open_pid1(state: ContainerState) -> int | None:
    """A pidfd for the container's PID 1, or None when that process is gone.

    The pidfd is opened first, then the process it designates is checked (start
    ticks, cgroup): a pid recycled before the open fails the check; one that dies
    after it leaves a pidfd that signals nothing."""
    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        return None
    except OSError as exc:
        raise SuperviseError(f"pidfd_open({state.pid}): {exc.strerror}") from exc
    try:
        ticks = _state.process_start_ticks(state.pid)
        genuine = ticks is not None and (state.pid_start_ticks is None
                                         or ticks == state.pid_start_ticks)
        if genuine and state.cgroup_paths:
            try:
                with open(f"/proc/{state.pid}/cgroup", encoding="utf-8") as f:
                    genuine = in_cgroup(f.read(), state.cgroup_paths)
            except OSError:
                genuine = False
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
    try:
        for ref in refs:
            try:
                state = resolve(states, ref)
            except NotFound as exc:
                errors.append(str(exc))
                continue
            if state.id in seen:
                continue
            pidfd = open_pid1(state)
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
