"""cgroup v1 (and hybrid: v1 hierarchies plus the unified tree without controllers):
one directory per hierarchy."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Collection

from . import _fs
from ._errors import CgroupError
from ._limits import Limits, v1_limit_files
from ._placement import populated
from ._procs import kill_pids, parse_procs, wait_until
from ._stats import (
    V1_FINAL_STATS_FILES,
    V1_LIVE_STATS_FILES,
    V1_STATS_FILES,
    Stats,
    StatsMode,
    parse_v1_stats,
)
from ._teardown import remove_cgroup_dir, remove_if_unused, try_remove_all

_FREEZE_TIMEOUT = 1.0
_V1_FILES: dict[StatsMode, tuple[str, ...]] = {
    "all": V1_STATS_FILES, "live": V1_LIVE_STATS_FILES, "final": V1_FINAL_STATS_FILES}


class V1Cgroup:
    """A cgroup present in each mounted v1 hierarchy under the same relative path, and
    on a hybrid host in the unified tree too.

    ``controller_dirs`` maps every mounted controller (and named hierarchy) to its
    directory; co-mounted controllers share one. ``leaf_dirs`` are the directories
    whose processes live in a child named ``leaf`` (the root of their cgroup
    namespace there): those with a limit to hold, which is written on both (held on
    the outer one, which the namespace cannot reach; shown on the leaf); a directory
    without a limit is its namespace's root itself. ``leaf_dirs`` None: every
    directory with a ``leaf`` child on disk (a cgroup opened by its recorded paths).
    The figures are read where the processes are.
    """

    def __init__(self, name: str, controller_dirs: dict[str, str], *,
                 unified: str | None = None, leaf: str | None = None,
                 leaf_dirs: Collection[str] | None = None, owns_parent: bool) -> None:
        self.name = name
        self._dirs = dict(controller_dirs)
        self._unified = unified
        outer = tuple(dict.fromkeys(self._dirs.values()))
        self.paths: tuple[str, ...] = outer + ((unified,) if unified is not None else ())
        self._leaf = leaf
        if leaf is None:
            self._leaf_dirs: frozenset[str] = frozenset()
        elif leaf_dirs is None:
            self._leaf_dirs = frozenset(d for d in self.paths if _fs.exists(f"{d}/{leaf}"))
        else:
            self._leaf_dirs = frozenset(leaf_dirs)
        # the leaves exist: found on disk, or (given) once make_leaf has made them
        self._leaves_made = leaf_dirs is None
        self._inner = {c: self._in(d) for c, d in self._dirs.items()}
        inner = tuple(self._in(d) for d in outer)
        self._inner_unified = self._in(unified) if unified is not None else None
        self.procs_files: tuple[str, ...] = tuple(f"{d}/cgroup.procs" for d in inner)
        self.join_files: tuple[str, ...] = tuple(f"{d}/tasks" for d in inner)
        self.v2_join_file: str | None = (
            f"{self._inner_unified}/cgroup.procs" if self._inner_unified is not None else None)
        self._owns_parent = owns_parent

    def _in(self, directory: str) -> str:
        return f"{directory}/{self._leaf}" if directory in self._leaf_dirs else directory

    @property
    def leaf_paths(self) -> tuple[str, ...]:
        """Where the processes are: the leaf of each directory that has one, the
        directory itself otherwise."""
        return tuple(self._in(p) for p in self.paths)

    def __repr__(self) -> str:
        return f"V1Cgroup({self.name!r}, paths={self.paths!r}, leaf={self._leaf!r})"

    def _dir(self, controller: str, purpose: str, dirs: dict[str, str]) -> str:
        try:
            return dirs[controller]
        except KeyError:
            raise CgroupError(
                f"cannot {purpose}: the {controller} controller is not mounted (cgroup v1)"
            ) from None

    def set_limits(self, limits: Limits) -> None:
        """Write each limit on the directories, then on the leaves that exist."""
        self._write_limits(limits, self._dirs)
        made = {c: d for c, d in self._inner.items()
                if d != self._dirs[c]} if self._leaves_made else {}
        if made:
            self._write_limits(limits, made, only_these=True)

    def make_leaf(self, limits: Limits | None) -> None:
        """Create the leaf below each directory that has one, with the limits shown
        there too. A cpuset leaf copies cpuset.cpus/mems from its parent at creation
        (clone_children, inherited from the supervise directory)."""
        if not self._leaf_dirs:
            return
        for directory in sorted(self._leaf_dirs):
            _fs.mkdir(self._in(directory))
        self._leaves_made = True
        cpuset = self._inner.get("cpuset")
        if cpuset is not None and cpuset != self._dirs["cpuset"]:
            for filename in ("cpuset.cpus", "cpuset.mems"):
                if not _fs.read_text(f"{cpuset}/{filename}").strip():
                    parent = os.path.dirname(cpuset)
                    _fs.write_text(f"{cpuset}/{filename}",
                                   _fs.read_text(f"{parent}/{filename}").strip())
        if limits is not None:
            self._write_limits(limits, {c: d for c, d in self._inner.items()
                                        if d != self._dirs[c]}, only_these=True)

    def _write_limits(self, limits: Limits, dirs: dict[str, str], *,
                      only_these: bool = False) -> None:
        """Write each limit; memsw after memory, except when raising both. A limit of
        a controller not in dirs is an error, unless only_these (the leaves)."""
        writes = v1_limit_files(limits)
        if only_these:
            writes = [w for w in writes if w[0] in dirs]
        index = 0
        while index < len(writes):
            controller, filename, text = writes[index]
            path = f"{self._dir(controller, f'set {filename}={text}', dirs)}/{filename}"
            if filename == "memory.memsw.limit_in_bytes" and not _fs.exists(path):
                raise CgroupError(
                    f"cannot set {filename}={text}: {path} does not exist"
                    " (swap accounting is off; boot with swapaccount=1 or drop the swap limit)",
                    path=path,
                )
            try:
                _fs.write_text(path, text)
            except CgroupError as exc:
                # Raising the memory limit above the current memsw limit is EINVAL:
                # then memsw must go first (runc does the same).
                following = writes[index + 1] if index + 1 < len(writes) else None
                if (
                    exc.errno == errno.EINVAL
                    and filename == "memory.limit_in_bytes"
                    and following is not None
                    and following[1] == "memory.memsw.limit_in_bytes"
                ):
                    _fs.write_text(f"{os.path.dirname(path)}/{following[1]}", following[2])
                    _fs.write_text(path, text)
                    index += 2
                    continue
                raise
            index += 1

    def open_for_clone(self) -> int | None:
        """The unified leaf on a hybrid host (clone3 makes the child there, and it
        joins the v1 hierarchies through join_files); None on plain v1."""
        if self._inner_unified is None:
            return None
        try:
            return os.open(self._inner_unified, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None

    def open_device_target(self) -> int | None:
        return None  # the devices controller's files hold the rules

    def add_pid(self, pid: int) -> None:
        for procs in self.procs_files:
            _fs.write_text(procs, str(pid))
        if self.v2_join_file is not None:
            _fs.write_text(self.v2_join_file, str(pid))

    def pids(self) -> list[int]:
        """Every process in the cgroup or below it (one hierarchy's subtree holds them
        all: a process is in some cgroup of every hierarchy)."""
        top = next(iter(self.paths), None)
        if top is None:
            return []
        found: set[int] = set()
        for directory, _subdirs, files in os.walk(top):
            if "cgroup.procs" in files:
                found.update(parse_procs(_fs.read_optional(f"{directory}/cgroup.procs")))
        return sorted(found)

    def _populated(self) -> bool:
        if self._unified is not None and populated(self._unified):
            return True
        return bool(self.pids())

    def stats(self, mode: StatsMode = "all") -> Stats:
        """A sample of the figures the mode asks for (see StatsMode), from the leaf."""
        files: dict[str, str] = {}
        sampled_at_ns = time.monotonic_ns()
        for filename in _V1_FILES[mode]:
            directory = self._inner.get(filename.split(".", 1)[0])
            if directory is None:
                if filename == "pids.current" and self.paths:
                    # No pids hierarchy mounted: count the tasks, which every
                    # hierarchy of the container lists alike.
                    tasks = _fs.read_optional(f"{self._in(self.paths[0])}/tasks")
                    if tasks is not None:
                        files[filename] = str(len(tasks.split()))
                continue
            text = _fs.read_optional(f"{directory}/{filename}")
            if text is not None:
                files[filename] = text
        return parse_v1_stats(files, sampled_at_ns=sampled_at_ns)

    def kill(self) -> None:
        """SIGKILL everything below: the unified tree's cgroup.kill on a hybrid host
        (Linux >= 5.14), else freeze (so nothing forks away), SIGKILL, thaw."""
        if self._unified is not None:
            kill_file = f"{self._unified}/cgroup.kill"
            if _fs.exists(kill_file):
                _fs.write_text(kill_file, "1")
                # A process that joined the v1 hierarchies but not the unified one
                # (joined by hand, not born there) is not in the unified tree.
                kill_pids(self.pids())
                return
        freezer = self._dirs.get("freezer")
        state = f"{freezer}/freezer.state" if freezer else None
        if state is None or not _fs.exists(state):
            self._kill_unfrozen()
            return
        try:
            _fs.write_text(state, "FROZEN")
        except CgroupError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        try:
            # FREEZING may last while a task sits in an uninterruptible sleep: bounded.
            wait_until(
                lambda: (_fs.read_optional(state) or "FROZEN").strip() == "FROZEN",
                _FREEZE_TIMEOUT,
            )
            kill_pids(self.pids())
        finally:
            if _fs.exists(state):
                _fs.write_text(state, "THAWED")

    def _kill_unfrozen(self) -> None:
        def all_killed() -> bool:
            pids = self.pids()
            kill_pids(pids)
            return not pids

        wait_until(all_killed, _FREEZE_TIMEOUT)

    def remove_if_empty(self) -> bool:
        inner = tuple(self._in(p) for p in sorted(self._leaf_dirs))
        if try_remove_all((*inner, *self.paths)):
            self._remove_parent()
            return True
        return False

    def destroy(self, timeout: float = 5.0) -> None:
        if self.remove_if_empty():  # empty already: nothing to kill or wait for
            return
        deadline = time.monotonic() + timeout
        if self._populated():
            self.kill()
        if not wait_until(lambda: not self._populated(), max(0.0, deadline - time.monotonic())):
            raise CgroupError(
                f"destroying {self.paths[0]}: processes {self.pids()} still there after {timeout}s",
                path=self.paths[0],
            )
        errors: list[CgroupError] = []
        for path in self.paths:
            try:
                remove_cgroup_dir(path, deadline)
            except CgroupError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        self._remove_parent()

    def _remove_parent(self) -> None:
        if self._owns_parent:
            for path in self.paths:
                remove_if_unused(os.path.dirname(path))
