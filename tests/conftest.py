"""Shared fixtures: real-kernel guards and the leak check every container test runs under."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import cgroupfs

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def supervise_dirs() -> list[str]:
    """`<own>/supervise` in each hierarchy: where containers' cgroups live by default."""
    try:
        layout = cgroupfs.detect_layout()
    except cgroupfs.CgroupError:
        return []
    if layout.kind == "v2":
        return [layout.v2_own_dir() + "/supervise"]
    return sorted({layout.v1_own_dir(c) + "/supervise" for c in layout.v1_mounts})


def container_cgroups() -> set[str]:
    found: set[str] = set()
    for base in supervise_dirs():
        if os.path.isdir(base):
            found.update(
                os.path.join(base, entry) for entry in os.listdir(base)
                if os.path.isdir(os.path.join(base, entry))
            )
    return found


def container_processes() -> set[int]:
    """Processes in a container cgroup (a `/supervise/` cgroup in any hierarchy)."""
    pids: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path("/proc", entry, "cgroup").read_text()
        except OSError:
            continue
        if "/supervise/" in text:
            pids.add(int(entry))
    return pids


def spawner_processes() -> set[int]:
    """Spawners that should be gone: ours, or ones whose supervisor has died
    (a spawner of another live supervise on this host is not a leak)."""
    pids: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(cmdline) > 2 and b"nsutil.spawner" in b" ".join(cmdline):
                supervisor_pid = int(cmdline[-2])
                if supervisor_pid == os.getpid() or not os.path.exists(f"/proc/{supervisor_pid}"):
                    pids.add(int(entry))
    return pids


def state_files() -> set[str]:
    from supervisor._state import state_dir

    found: set[str] = set()
    for sub in ("", "names"):
        with contextlib.suppress(FileNotFoundError):
            found.update(os.path.join(sub, e) for e in os.listdir(os.path.join(state_dir(), sub))
                         if e != "names")
    return found


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


@pytest.fixture
def root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces and cgroups)")


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """No cgroup, container process, spawner, state file or fd of ours outlives a test."""
    if os.geteuid() != 0 or request.node.get_closest_marker("no_leak_check"):
        yield
        return
    cgroups, procs, spawners = container_cgroups(), container_processes(), spawner_processes()
    fds, states = open_fds(), state_files()
    yield
    leaked_cgroups = container_cgroups() - cgroups
    leaked_procs = container_processes() - procs
    leaked_spawners = spawner_processes() - spawners
    leaked_fds = {fd for fd in open_fds() - fds if _fd_target(fd) is not None}
    leaked_states = state_files() - states
    assert not leaked_cgroups, f"cgroups left behind: {sorted(leaked_cgroups)}"
    assert not leaked_procs, f"container processes left behind: {sorted(leaked_procs)}"
    assert not leaked_spawners, f"spawners left behind: {sorted(leaked_spawners)}"
    assert not leaked_states, f"state files left behind: {sorted(leaked_states)}"
    assert not leaked_fds, f"fds left open: {[(fd, _fd_target(fd)) for fd in leaked_fds]}"


def _fd_target(fd: int) -> str | None:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    # pytest's own capture files and the event loop's internals come and go.
    if target.startswith(("/tmp/pytest-of", "anon_inode:[eventpoll]", "anon_inode:[eventfd]")):
        return None
    return target
