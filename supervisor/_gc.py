"""`supervise gc`: remove what dead supervisors left behind.

A supervisor that dies without cleaning up (SIGKILL, OOM, power cut of its
session) leaves its state files and its containers' cgroups; its spawner and
the containers' PID 1s die with it (PR_SET_PDEATHSIG), but stray processes may
remain in the cgroups. Three kinds of leftovers are removed:

- a container in a journal whose supervisor is dead: whatever is still in its
  cgroups is killed, the cgroups are removed, then its entry (and the journal
  with its last entry);
- a container cgroup under this process's own ``<own>/supervise/`` that no state
  file mentions, that holds no process and is older than a minute (a live
  supervisor creates the cgroup a moment before it writes the state file: the
  age guard keeps gc out of that window);
- on cgroup v2, a ``<own>/supervisor-<pid>`` delegation leaf whose process is dead.

The decision, :func:`plan_gc`, is pure over the facts gathered; the I/O around it is thin.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cgroupfs

from . import _state
from ._state import ContainerState

MIN_ORPHAN_AGE_S = 60.0
DESTROY_TIMEOUT_S = 5.0


# -- the decision (pure) ------------------------------------------------------------
@dataclass(frozen=True)
class CgroupDir:
    """A directory found below one of our ``<own>/supervise`` dirs."""

    path: str
    age_s: float  # since it was created (its mtime/ctime)
    populated: bool | None  # processes in it or below it; None: not looked (too young)


@dataclass(frozen=True)
class LeafDir:
    """A v2 ``supervisor-<pid>`` delegation leaf."""

    path: str
    pid: int
    pid_alive: bool
    populated: bool


@dataclass(frozen=True)
class GcPlan:
    stale: tuple[ContainerState, ...] = ()
    orphan_dirs: tuple[str, ...] = ()
    dead_leaves: tuple[LeafDir, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.stale or self.orphan_dirs or self.dead_leaves)


def plan_gc(
    states: Sequence[ContainerState],
    supervisor_alive: Callable[[ContainerState], bool],
    dirs: Sequence[CgroupDir] = (),
    leaves: Sequence[LeafDir] = (),
    *,
    min_age_s: float = MIN_ORPHAN_AGE_S,
) -> GcPlan:
    """What to clean: states whose supervisor is dead; container cgroups nobody claims
    that are empty and old enough; dead supervisors' v2 leaves that are empty."""
    stale = tuple(s for s in states if not supervisor_alive(s))
    claimed_paths = {os.path.normpath(p) for s in states for p in s.cgroup_paths}
    claimed_ids = {s.id for s in states}
    orphans = tuple(
        d.path for d in dirs
        if os.path.normpath(d.path) not in claimed_paths
        and os.path.basename(d.path) not in claimed_ids
        and d.age_s >= min_age_s
        and d.populated is False
    )
    dead = tuple(leaf for leaf in leaves if not leaf.pid_alive and not leaf.populated)
    return GcPlan(stale, orphans, dead)


# -- gathering the facts ----------------------------------------------------------------
def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _age_s(path: str, now: float) -> float | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return now - max(st.st_mtime, st.st_ctime)


def scan_dirs(bases: Sequence[str], *, min_age_s: float = MIN_ORPHAN_AGE_S,
              now: float | None = None) -> list[CgroupDir]:
    """The container cgroups below ``bases``; only those older than ``min_age_s`` are
    checked for processes (a big batch may have hundreds of young ones)."""
    now = time.time() if now is None else now
    found: list[CgroupDir] = []
    for base in bases:
        for path in _subdirs(base):
            age = _age_s(path, now)
            if age is not None:
                found.append(CgroupDir(path, age, cgroupfs.populated(path)
                                       if age >= min_age_s else None))
    return found


def scan_leaves(layout: cgroupfs.Layout) -> list[LeafDir]:
    return [LeafDir(path, pid, os.path.exists(f"/proc/{pid}"), cgroupfs.populated(path))
            for path, pid in cgroupfs.delegation_leaves(layout)]


# -- doing it -----------------------------------------------------------------------------
class GcError(Exception):
    pass


def destroy_dirs(name: str, paths: Sequence[str], layout: cgroupfs.Layout,
                 timeout: float = DESTROY_TIMEOUT_S) -> None:
    """Kill what is left in a container's cgroup directories and remove them, with
    cgroupfs's own teardown (v1: freeze, SIGKILL, thaw; v2: cgroup.kill; then rmdir,
    EBUSY retried). Only directories named ``name`` on a cgroup mount are touched."""
    mounts = [*layout.v1_mounts.values(),
              *([layout.v2_mount] if layout.v2_mount is not None else [])]
    v1_dirs: list[str] = []
    v2_dirs: list[str] = []
    for raw in paths:
        path = os.path.normpath(raw)
        if os.path.basename(path) != name:
            raise GcError(f"refusing to remove {path}: not the cgroup of container {name}")
        mountpoint = cgroupfs.mount_of(path, mounts)
        if mountpoint is None:
            raise GcError(f"refusing to remove {path}: not on a cgroup mount supervise uses")
        (v2_dirs if mountpoint == layout.v2_mount else v1_dirs).append(path)
    cgroups = [cgroupfs.cgroup_at([p], layout=layout) for p in v2_dirs]
    if v1_dirs:
        cgroups.append(cgroupfs.cgroup_at(v1_dirs, layout=layout))
    for cgroup in cgroups:
        cgroup.destroy(timeout=timeout)


@dataclass
class GcReport:
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def collect(state_dir: str | None = None, *, layout: cgroupfs.Layout | None = None,
            min_age_s: float = MIN_ORPHAN_AGE_S) -> GcPlan:
    layout = layout or cgroupfs.detect_layout()
    states = _state.read_states(state_dir)
    bases = cgroupfs.supervise_parents(layout)
    return plan_gc(states, _state.supervisor_alive, scan_dirs(bases, min_age_s=min_age_s),
                   scan_leaves(layout), min_age_s=min_age_s)


def execute(plan: GcPlan, layout: cgroupfs.Layout, state_dir: str | None = None,
            say: Callable[[str], None] | None = None,
            timeout: float = DESTROY_TIMEOUT_S) -> GcReport:
    report = GcReport()

    def done(message: str) -> None:
        report.removed.append(message)
        if say is not None:
            say(message)

    touched_parents: set[str] = set()
    for state in plan.stale:
        # Re-check: the file may have been replaced, or removed by another gc.
        if _state.supervisor_alive(state):
            continue
        try:
            destroy_dirs(state.id, state.cgroup_paths, layout, timeout)
        except (GcError, cgroupfs.CgroupError) as exc:
            report.errors.append(f"{state.id} ({state.name}): {exc}")
            continue
        _state.remove_states([state.id], state_dir)
        with contextlib.suppress(ValueError):
            _state.release_name(state.name, state.id, state_dir)
        touched_parents.update(os.path.dirname(os.path.normpath(p)) for p in state.cgroup_paths)
        done(f"removed {state.id} ({state.name}): its supervisor (pid {state.supervisor_pid})"
             " is gone")
    for path in plan.orphan_dirs:
        if cgroupfs.populated(path):
            continue
        try:
            cgroupfs.remove_empty_tree(path)
        except cgroupfs.CgroupError as exc:
            report.errors.append(str(exc))
            continue
        touched_parents.add(os.path.dirname(path))
        done(f"removed cgroup {path}: no container uses it")
    for leaf in plan.dead_leaves:
        if os.path.exists(f"/proc/{leaf.pid}") or cgroupfs.populated(leaf.path):
            continue
        try:
            cgroupfs.remove_empty_tree(leaf.path)
        except cgroupfs.CgroupError as exc:
            report.errors.append(str(exc))
            continue
        done(f"removed cgroup {leaf.path}: its supervisor (pid {leaf.pid}) is gone")
    # Our own "supervise" dirs, once empty, go too (as a supervisor's last container
    # does); a supervise creating one concurrently retries on ENOENT.
    own = set(cgroupfs.supervise_parents(layout))
    for parent in sorted(touched_parents & own):
        with contextlib.suppress(OSError):
            os.rmdir(parent)
    return report


def gc(state_dir: str | None = None, *, say: Callable[[str], None] | None = None,
       min_age_s: float = MIN_ORPHAN_AGE_S, timeout: float = DESTROY_TIMEOUT_S) -> GcReport:
    layout = cgroupfs.detect_layout()
    plan = collect(state_dir, layout=layout, min_age_s=min_age_s)
    if not plan:
        return GcReport()
    return execute(plan, layout, state_dir, say, timeout)


def gc_quietly() -> None:
    """gc before `run` and `batch`: never fails them, and a leftover that will not die
    (a process in uninterruptible sleep) delays them by about a second, not five."""
    with contextlib.suppress(Exception):
        gc(timeout=1.0)
