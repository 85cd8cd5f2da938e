"""cgroup v1 (and the v1 half of a hybrid layout): one directory per hierarchy."""

from __future__ import annotations

import errno
import os
import time

from . import _fs
from ._errors import CgroupError
from ._limits import Limits, v1_limit_files
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
    """A cgroup present in each mounted v1 hierarchy under the same relative path.

    ``controller_dirs`` maps every mounted controller (memory, cpu, cpuacct,
    cpuset, pids, freezer) to its directory; co-mounted controllers share one.
    """

    def __init__(self, name: str, controller_dirs: dict[str, str], *, owns_parent: bool) -> None:
        self.name = name
        self._dirs = dict(controller_dirs)
        self.paths: tuple[str, ...] = tuple(dict.fromkeys(self._dirs.values()))
        self.procs_files: tuple[str, ...] = tuple(f"{d}/cgroup.procs" for d in self.paths)
        self.join_files: tuple[str, ...] = tuple(f"{d}/tasks" for d in self.paths)
        self._owns_parent = owns_parent

    def __repr__(self) -> str:
        return f"V1Cgroup({self.name!r}, paths={self.paths!r})"

    def _dir(self, controller: str, purpose: str) -> str:
        try:
            return self._dirs[controller]
        except KeyError:
            raise CgroupError(
                f"cannot {purpose}: the {controller} controller is not mounted (cgroup v1)"
            ) from None

    def set_limits(self, limits: Limits) -> None:
        """Write each limit; memsw after memory, except when raising both."""
        writes = v1_limit_files(limits)
        index = 0
        while index < len(writes):
            controller, filename, text = writes[index]
            path = f"{self._dir(controller, f'set {filename}={text}')}/{filename}"
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
        """None: on v1 a process joins by writing join_files (there is no one
        directory to be born in)."""
        return None

    def add_pid(self, pid: int) -> None:
        for procs in self.procs_files:
            _fs.write_text(procs, str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            found.update(parse_procs(_fs.read_optional(procs)))
        return sorted(found)

    def stats(self, mode: StatsMode = "all") -> Stats:
        """A sample of the figures the mode asks for (see StatsMode)."""
        files: dict[str, str] = {}
        sampled_at_ns = time.monotonic_ns()
        chosen = _V1_FILES[mode]
        for filename in chosen:
            directory = self._dirs.get(filename.split(".", 1)[0])
            if directory is None:
                if filename == "pids.current" and self.paths:
                    # No pids hierarchy (made only for a pids limit): count the tasks,
                    # which every hierarchy of the container lists alike.
                    tasks = _fs.read_optional(f"{self.paths[0]}/tasks")
                    if tasks is not None:
                        files[filename] = str(len(tasks.split()))
                continue
            text = _fs.read_optional(f"{directory}/{filename}")
            if text is not None:
                files[filename] = text
        return parse_v1_stats(files, sampled_at_ns=sampled_at_ns)

    def kill(self) -> None:
        """Freeze (so nothing forks away), SIGKILL everyone, thaw so the kills land."""
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
        if try_remove_all(self.paths):
            self._remove_parent()
            return True
        return False

    def destroy(self, timeout: float = 5.0) -> None:
        if self.remove_if_empty():  # empty already: nothing to kill or wait for
            return
        deadline = time.monotonic() + timeout
        if self.pids():
            self.kill()
        if not wait_until(lambda: not self.pids(), max(0.0, deadline - time.monotonic())):
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
