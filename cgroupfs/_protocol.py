"""The one interface both backends implement."""

from __future__ import annotations

from typing import Protocol

from ._limits import Limits
from ._stats import Stats, StatsMode


class Cgroup(Protocol):
    """A container's cgroup: one directory per hierarchy on v1, one on v2."""

    name: str
    #: absolute paths of the cgroup.procs files (the cgroup's processes)
    procs_files: tuple[str, ...]
    #: the files a single-threaded process writes "0" into to join itself: v1's
    #: ``tasks`` (moving only the writing thread takes no global lock, where a
    #: cgroup.procs write waits for an RCU grace period, ~5-12 ms after a quiet
    #: spell), v2's cgroup.procs (v2 moves threads only within threaded subtrees)
    join_files: tuple[str, ...]
    #: the cgroup directories
    paths: tuple[str, ...]

    def set_limits(self, limits: Limits) -> None:
        """Write the limits that are not None."""

    def open_for_clone(self) -> int | None:
        """An fd of the cgroup's directory for clone3's CLONE_INTO_CGROUP, so a child
        is born inside it (no migration, no join); the caller closes it. None where
        there is none (v1), and a child joins by writing join_files instead."""

    def add_pid(self, pid: int) -> None:
        """Move a process (all its threads) into the cgroup."""

    def pids(self) -> list[int]:
        """The pids in the cgroup, sorted."""

    def stats(self, mode: StatsMode = "all") -> Stats:
        """Sample the counters the mode asks for, now."""

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, without letting any escape by forking."""

    def remove_if_empty(self) -> bool:
        """Remove every directory if no process is left, without waiting: one rmdir
        each, the usual end of a container. False if any is still busy (then destroy)."""

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left, wait for it to go (up to timeout: this blocks, so async
        code runs it in a worker thread), remove every directory; idempotent."""
