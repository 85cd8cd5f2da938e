"""This test session's own cgroup: what the suite checks and cleans is only what it made.

As root, the session makes ``<own>/supervise-tests-<pid>`` in every hierarchy supervise
uses and moves pytest into it. Every container a test starts, in process or through a
CLI child (children inherit the cgroup), then lands below ``<session>/supervise``, which
no other supervise on the host uses; a process the session left behind is one in the
session's cgroups other than pytest, whatever its command line says.

cgroup v1 (and hybrid, where supervise uses v1): one session directory per mounted
hierarchy among supervise's controllers, cpuset.cpus/mems copied from the parent so
that a task may join. cgroup v2: the session directory, with pytest in
``<session>/supervisor-<pid>``, the leaf supervise's own delegation would move it to
(:func:`cgroupfs.prepare_v2_delegation`; ``detect_layout`` sees through it): the session
has no process of its own, so it can enable controllers for ``<session>/supervise``,
for the in-process Supervisor and for CLI children alike.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import cgroupfs

SESSION_PREFIX = "supervise-tests-"
# The v2 controllers cgroupfs enables down to a container (cgroupfs._v2.WANTED_CONTROLLERS).
V2_CONTROLLERS = ("cpu", "cpuset", "memory", "pids")
_KILL_WAIT_S = 10.0


class SessionError(Exception):
    """The session cgroup could not be made (what was made is undone)."""


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def _procs(directory: str) -> set[int]:
    try:
        return {int(line) for line in _read(f"{directory}/cgroup.procs").split()}
    except (FileNotFoundError, ValueError):
        return set()


def _subtree(directory: str) -> list[str]:
    """``directory`` and every cgroup below it, parents first."""
    found = [directory]
    for parent, children, _files in os.walk(directory):
        found.extend(os.path.join(parent, child) for child in children)
    return found


def processes_below(directories: list[str]) -> set[int]:
    """Every live process in these cgroups or below them. Zombies are left out: they
    are dead already, and a v2 cgroup lists one until its new parent reaps it (an
    orphaned PID 1 goes to the host's init, which here may take seconds)."""
    pids: set[int] = set()
    for top in directories:
        for directory in _subtree(top):
            pids |= _procs(directory)
    return {pid for pid in pids if not _zombie(pid)}


def _zombie(pid: int) -> bool:
    from supervisor._state import process_start_ticks  # None: gone, or a zombie

    return process_start_ticks(pid) is None


def _enable_controllers(directory: str) -> list[str]:
    """Enable supervise's v2 controllers for the children of ``directory``; those it
    had to enable (OSError EBUSY when ``directory`` has processes of its own)."""
    available = _read(f"{directory}/cgroup.controllers").split()
    enabled = _read(f"{directory}/cgroup.subtree_control").split()
    missing = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
    if missing:
        _write(f"{directory}/cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    return missing


def _disable_controllers(directory: str, controllers: list[str]) -> None:
    if controllers:
        _write(f"{directory}/cgroup.subtree_control", " ".join(f"-{c}" for c in controllers))


@dataclass
class SessionCgroup:
    """The session's cgroup directories, and how to undo them."""

    kind: str  # "v1" (v1 or hybrid) or "v2"
    dirs: list[str]  # the session directory in each hierarchy (v2: one)
    origins: dict[str, str]  # session directory -> the cgroup pytest came from there
    leaf: str | None = None  # v2: <session>/supervisor-<pid>, where pytest sits
    enabled: dict[str, list[str]] = field(default_factory=dict)  # v2: dir -> what we enabled

    @classmethod
    def create(cls) -> SessionCgroup:
        """Make the session cgroup and move pytest into it; SessionError if it cannot be."""
        try:
            layout = cgroupfs.detect_layout()
        except cgroupfs.CgroupError as exc:
            raise SessionError(str(exc)) from exc
        name = f"{SESSION_PREFIX}{os.getpid()}"
        if layout.kind == "v2":
            return cls._create_v2(layout, name)
        if not layout.v1_mounts:
            raise SessionError("no cgroup v1 controller supervise uses is mounted")
        return cls._create_v1(layout, name)

    @classmethod
    def _create_v1(cls, layout: cgroupfs.Layout, name: str) -> SessionCgroup:
        own_by_mount: dict[str, str] = {}
        for controller, mountpoint in sorted(layout.v1_mounts.items()):
            own_by_mount.setdefault(mountpoint, layout.v1_own_dir(controller))
        if layout.v2_mount is not None:  # a hybrid host's unified tree: supervise uses it too
            own_by_mount[layout.v2_mount] = layout.v2_own_dir()
        session = cls("v1", [], {})
        try:
            for mountpoint, own in sorted(own_by_mount.items()):
                directory = f"{own}/{name}"
                os.mkdir(directory, 0o755)
                session.dirs.append(directory)
                if mountpoint == layout.v1_mounts.get("cpuset"):
                    for filename in ("cpuset.cpus", "cpuset.mems"):  # empty: nobody may join
                        _write(f"{directory}/{filename}", _read(f"{own}/{filename}").strip())
            for directory in session.dirs:
                _write(f"{directory}/cgroup.procs", str(os.getpid()))
                session.origins[directory] = os.path.dirname(directory)
        except OSError as exc:
            problems = session.close()
            raise SessionError(f"{exc}" + "".join(f"; {p}" for p in problems)) from exc
        return session

    @classmethod
    def _create_v2(cls, layout: cgroupfs.Layout, name: str) -> SessionCgroup:
        own = layout.v2_own_dir()
        directory = f"{own}/{name}"
        leaf = f"{directory}/supervisor-{os.getpid()}"
        session = cls("v2", [], {})
        try:
            os.mkdir(directory, 0o755)
            session.dirs.append(directory)
            os.mkdir(leaf, 0o755)
            session.leaf = leaf
            _write(f"{leaf}/cgroup.procs", str(os.getpid()))
            session.origins[directory] = own
            # Controllers for the session (own may now delegate: pytest has left it,
            # unless others are still there: EBUSY), then for <session>/supervise.
            enabled = _enable_controllers(own)
            if own != layout.v2_mount:  # the root's are the host's: never taken back
                session.enabled[own] = enabled
            session.enabled[directory] = _enable_controllers(directory)
        except OSError as exc:
            problems = session.close()
            reason = str(exc)
            if exc.errno == errno.EBUSY:
                reason += f" ({own} has other processes, so it cannot delegate controllers)"
            raise SessionError(reason + "".join(f"; {p}" for p in problems)) from exc
        return session

    def processes(self) -> set[int]:
        """Every process in the session's cgroups, pytest included."""
        return processes_below(self.dirs)

    def supervise_dirs(self) -> list[str]:
        """``<session>/supervise`` in each hierarchy: where containers are made."""
        return [f"{directory}/supervise" for directory in self.dirs]

    def close(self) -> list[str]:
        """Kill what is left in the session (reported), move pytest back where it was,
        and remove the session's cgroups bottom-up; what went wrong, as sentences."""
        problems: list[str] = []
        left = self.processes() - {os.getpid()}
        if left:
            problems.append("processes left in the session's cgroups (killed): "
                            + ", ".join(f"{pid} ({command_line(pid)})" for pid in sorted(left)))
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + _KILL_WAIT_S
            while self.processes() - {os.getpid()} and time.monotonic() < deadline:
                time.sleep(0.02)
        # Bottom-up, all but the cgroups pytest is in (the session and the v2 leaf).
        keep = {*self.dirs, *(() if self.leaf is None else (self.leaf,))}
        for top in self.dirs:
            for directory in reversed(_subtree(top)):
                if directory not in keep:
                    problems += _rmdir(directory)
        if self.kind == "v2":
            # Take back what we enabled, children first (a parent's cannot go while a
            # child enables it), so that pytest may join its old cgroup again.
            for directory in reversed(list(self.enabled)):
                try:
                    _disable_controllers(directory, self.enabled[directory])
                except OSError as exc:
                    problems.append(f"disabling {self.enabled[directory]} in {directory}: {exc}")
        for origin in reversed(list(self.origins.values())):
            try:
                _write(f"{origin}/cgroup.procs", str(os.getpid()))
            except OSError as exc:
                problems.append(f"moving pytest back to {origin}: {exc}")
        for directory in [*([self.leaf] if self.leaf else []), *reversed(self.dirs)]:
            problems += _rmdir(directory)
        return problems


def _rmdir(directory: str) -> list[str]:
    """rmdir a cgroup (EBUSY retried a moment: a process just killed may still hold it)."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            os.rmdir(directory)
            return []
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            procs = sorted(_procs(directory))
            return [f"cannot remove {directory}: {exc.strerror}"
                    + (f" (processes {procs} in it)" if procs else "")]


def command_line(pid: int) -> str:
    """A process's command line, for messages ("?" once it is gone or has none)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        argv = []
    return " ".join(a.decode(errors="replace") for a in argv) or "?"


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (the fallback when there is no session cgroup)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
