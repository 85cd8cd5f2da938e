"""cgroup v2: one directory in the unified hierarchy."""

from __future__ import annotations

import errno
import os
import time

from . import _fs
from ._errors import CgroupError
from ._layout import Layout
from ._limits import Limits, v2_limit_files
from ._placement import delegation_leaf, populated
from ._procs import kill_pids, parse_procs, wait_until
from ._stats import (
    V2_FINAL_STATS_FILES,
    V2_LIVE_STATS_FILES,
    V2_STATS_FILES,
    Stats,
    StatsMode,
    parse_flat_keyed,
    parse_v2_stats,
)
from ._teardown import remove_cgroup_dir, remove_if_unused, try_remove_all

_FREEZE_TIMEOUT = 1.0
_V2_FILES: dict[StatsMode, tuple[str, ...]] = {
    "all": V2_STATS_FILES, "live": V2_LIVE_STATS_FILES, "final": V2_FINAL_STATS_FILES}
WANTED_CONTROLLERS = ("cpu", "cpuset", "memory", "pids")


class V2Cgroup:
    """A cgroup in the unified hierarchy. With ``leaf``, the processes live in a child
    of that name (the root of their cgroup namespace: a cgroup with controllers
    enabled for its children may hold no process itself), the limits are written on
    both (held on the outer one, shown on the leaf) and the figures read from the leaf.
    """

    def __init__(self, name: str, path: str, *, leaf: str | None = None,
                 leaf_exists: bool | None = None, owns_parent: bool) -> None:
        """leaf_exists None: look (a cgroup opened by its path)."""
        self.name = name
        self.path = path
        self.paths: tuple[str, ...] = (path,)
        self._leaf = leaf
        self.inner = path if leaf is None else f"{path}/{leaf}"
        self.procs_files: tuple[str, ...] = (f"{self.inner}/cgroup.procs",)
        self.join_files: tuple[str, ...] = ()
        self.v2_join_file: str | None = self.procs_files[0]
        self._owns_parent = owns_parent
        self._leaf_made = (leaf is not None and _fs.exists(self.inner)
                           if leaf_exists is None else leaf_exists)

    @property
    def leaf_paths(self) -> tuple[str, ...]:
        return (self.inner,)

    def __repr__(self) -> str:
        return f"V2Cgroup({self.name!r}, path={self.path!r}, leaf={self._leaf!r})"

    def set_limits(self, limits: Limits) -> None:
        """Write the limits on the directory, then (when it exists) on the leaf."""
        self._write_limits(limits, self.path)
        if self._leaf is not None and self._leaf_made:
            self._write_limits(limits, self.inner)

    def make_leaf(self, limits: Limits | None) -> None:
        """Enable the controllers for the leaf, create it and show the limits there."""
        if self._leaf is None:
            return
        enable_controllers(self.path)
        _fs.mkdir(self.inner)
        self._leaf_made = True
        if limits is not None:
            self._write_limits(limits, self.inner)

    @staticmethod
    def _write_limits(limits: Limits, directory: str) -> None:
        for filename, text in v2_limit_files(limits):
            path = f"{directory}/{filename}"
            if not _fs.exists(path):
                raise CgroupError(
                    f"cannot set {filename}={text}: {path} does not exist (controller not"
                    " enabled in the parent's cgroup.subtree_control, or no swap accounting)",
                    path=path,
                )
            _fs.write_text(path, text)

    def open_for_clone(self) -> int | None:
        """The leaf, opened for clone3's CLONE_INTO_CGROUP (the caller closes it); None
        if it cannot be opened, and a process joins by writing v2_join_file."""
        try:
            return os.open(self.inner, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None

    def open_device_target(self) -> int | None:
        return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def add_pid(self, pid: int) -> None:
        _fs.write_text(self.procs_files[0], str(pid))

    def pids(self) -> list[int]:
        """Every process in the cgroup or below it."""
        found: set[int] = set()
        for directory, _subdirs, files in os.walk(self.path):
            if "cgroup.procs" in files:
                found.update(parse_procs(_fs.read_optional(f"{directory}/cgroup.procs")))
        return sorted(found)

    def _populated(self) -> bool:
        """Processes here or in child cgroups."""
        return populated(self.path)

    def stats(self, mode: StatsMode = "all") -> Stats:
        """A sample of the figures the mode asks for (see StatsMode), from the leaf."""
        files: dict[str, str] = {}
        sampled_at_ns = time.monotonic_ns()
        for filename in _V2_FILES[mode]:
            text = _fs.read_optional(f"{self.inner}/{filename}")
            if text is not None:
                files[filename] = text
        return parse_v2_stats(files, sampled_at_ns=sampled_at_ns)

    def kill(self) -> None:
        """cgroup.kill (Linux >= 5.14), else freeze, SIGKILL each pid, thaw; the whole
        subtree either way."""
        if not _fs.exists(self.path):
            return
        kill_file = f"{self.path}/cgroup.kill"
        if _fs.exists(kill_file):
            _fs.write_text(kill_file, "1")
            return
        freeze = f"{self.path}/cgroup.freeze"
        if not _fs.exists(freeze):
            wait_until(lambda: not _kill_round(self), _FREEZE_TIMEOUT)
            return
        _fs.write_text(freeze, "1")
        try:
            wait_until(
                lambda: (
                    parse_flat_keyed(_fs.read_optional(f"{self.path}/cgroup.events")).get(
                        "frozen", 1
                    )
                    == 1
                ),
                _FREEZE_TIMEOUT,
            )
            kill_pids(self.pids())
        finally:
            if _fs.exists(freeze):
                _fs.write_text(freeze, "0")

    def remove_if_empty(self) -> bool:
        dirs = (self.inner, self.path) if self._leaf is not None else (self.path,)
        if try_remove_all(dirs):
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
                f"destroying {self.path}: processes {self.pids()} still there after {timeout}s",
                path=self.path,
            )
        remove_cgroup_dir(self.path, deadline)
        self._remove_parent()

    def _remove_parent(self) -> None:
        if self._owns_parent:
            remove_if_unused(os.path.dirname(self.path))


def _kill_round(cgroup: V2Cgroup) -> bool:
    pids = cgroup.pids()
    kill_pids(pids)
    return bool(pids)


def enable_controllers(directory: str) -> None:
    """Enable cpu, cpuset, memory, pids (those available) for the children of ``directory``.

    A cgroup with processes of its own cannot enable controllers for children
    (the no-internal-processes rule): the kernel says EBUSY.
    """
    available = (_fs.read_optional(f"{directory}/cgroup.controllers") or "").split()
    enabled = (_fs.read_optional(f"{directory}/cgroup.subtree_control") or "").split()
    missing = [c for c in WANTED_CONTROLLERS if c in available and c not in enabled]
    if not missing:
        return
    path = f"{directory}/cgroup.subtree_control"
    try:
        _fs.write_text(path, " ".join(f"+{c}" for c in missing))
    except CgroupError as exc:
        if exc.errno == errno.EBUSY:
            raise CgroupError(
                f"{exc}: {directory} has processes of its own, so it cannot delegate"
                " controllers; move them into a leaf cgroup or use --cgroup-parent",
                path=path,
                errno=exc.errno,
            ) from exc
        raise


def prepare_v2_delegation(layout: Layout) -> str | None:
    """Move this process into ``<own>/supervisor-<pid>`` so ``<own>`` can delegate controllers.

    cgroup v2 forbids enabling controllers for the children of a cgroup that
    has processes itself (the root excepted). The leaf is returned (None when
    nothing had to move); ``detect_layout`` ignores it, so children of this
    process still place their cgroups under ``<own>/supervise``. The leaf stays
    while this process lives in it.
    """
    if layout.v2_mount is None or layout.v2_path in (None, "/"):
        return None
    own = layout.v2_own_dir()
    if not parse_procs(_fs.read_optional(f"{own}/cgroup.procs")):
        return None
    leaf = delegation_leaf(own, os.getpid())
    _fs.mkdir(leaf)
    _fs.write_text(f"{leaf}/cgroup.procs", str(os.getpid()))
    return leaf
