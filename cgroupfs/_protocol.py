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
    #: the v1 files a single-threaded process writes "0" into to join itself: each
    #: hierarchy's ``tasks`` (moving only the writing thread takes no global lock,
    #: where a cgroup.procs write waits for an RCU grace period, ~5-12 ms after a
    #: quiet spell); none on v2
    join_files: tuple[str, ...]
    #: the v2 cgroup.procs (v2, or a hybrid host's unified tree) a process joins by
    #: writing "0" when it was not born there by clone3 (see open_for_clone)
    v2_join_file: str | None
    #: the cgroup directories, one per hierarchy (the limits are held here)
    paths: tuple[str, ...]

    @property
    def leaf_paths(self) -> tuple[str, ...]:
        """Where the processes are: the leaf below each directory (the root of their
        cgroup namespace), or the directories themselves without a leaf."""

    def set_limits(self, limits: Limits) -> None:
        """Write the limits that are not None, on the directories and (once made)
        the leaf. Lowering a limit some hierarchies check against the parent (v1
        cpu quota, cpuset) may need the leaf first: make a new cgroup instead."""

    def make_leaf(self, limits: Limits | None) -> None:
        """Create the leaf (nothing without one) and show the limits there."""

    def open_for_clone(self) -> int | None:
        """An fd of the v2 leaf (v2, or a hybrid host's unified tree) for clone3's
        CLONE_INTO_CGROUP, so a child is born inside it (no migration); the caller
        closes it. None where there is none (plain v1)."""

    def open_device_target(self) -> int | None:
        """v2: an fd of the directory (the one whose limits hold) to attach a
        BPF_PROG_TYPE_CGROUP_DEVICE program to; the caller closes it. None on v1,
        where Limits.devices are the devices controller's files."""

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
