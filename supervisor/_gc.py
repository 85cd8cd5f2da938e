"""`supervise gc`: remove what dead supervisors left behind.

A supervisor that dies without cleaning up (SIGKILL, OOM, power cut of its
session) leaves its journal and its containers' cgroups; its spawner and the
containers' PID 1s die with it (PR_SET_PDEATHSIG), but stray processes may remain
in the cgroups.

gc acts only on what it finds itself: the cgroups below this process's own
``<parent>/supervise/`` in each hierarchy (``cgroupfs.supervise_parents``) whose
names have the generated id format, and whatever lies below them. The journals
(input from a place a container may once have reached) only say which of those
belong to supervisors that died: a path or a pid a journal line names is never
killed or removed. For each such id:

- recorded by a live supervisor: left alone;
- recorded only by dead ones (stale): whatever is still in its cgroups is killed,
  the cgroups are removed, then its records (and a journal with its last one) -
  unless one of its processes is the child of a live spawner: then it is a live
  container, whatever its records say, and stays;
- reserved, not recorded: a supervisor writes a `?ID` line before it makes the
  cgroup and the record after it starts the container. Reserved by a dead one (killed
  in between): whatever is in its cgroups is killed and they are removed at once;
  by a live one: left alone;
- recorded by nobody: removed if it holds no process and is older than a minute (a
  supervise from before reservations, or one whose journal is gone); never killed.

A stale record whose id has no cgroup here is struck once the cgroups it names are
gone; while they exist (placed by --cgroup-parent, or below another cgroup's
``supervise/``, where a gc run from there finds them) it stays, and gc says so.
On cgroup v2 a ``<own>/supervisor-<pid>`` delegation leaf whose process is dead
goes too, and on v1 an empty ``spawner-<pid>-<start>`` cgroup (where a supervisor
kept its spawner, see Supervisor._make_shared) whose supervisor is dead.

The decision, :func:`plan_gc`, is pure over the facts gathered; the I/O around it is thin.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import cgroupfs

from . import _state
from ._ids import is_container_id
from ._procfs import stat_fields
from ._state import ContainerState

MIN_ORPHAN_AGE_S = 60.0
DESTROY_TIMEOUT_S = 5.0
SPAWNER_MARK = b"nsutil.spawner"  # in a spawner's command line (nsutil.spawner_command)


# -- the decision (pure) ------------------------------------------------------------
@dataclass(frozen=True)
class CgroupDir:
    """A container cgroup found below one of our ``<parent>/supervise`` dirs."""

    path: str
    age_s: float  # since it was created (its mtime/ctime)
    populated: bool | None  # processes in it or below it; None: not looked (too young)

    @property
    def id(self) -> str:
        return os.path.basename(self.path)


@dataclass(frozen=True)
class LeafDir:
    """A v2 ``supervisor-<pid>`` delegation leaf."""

    path: str
    pid: int
    pid_alive: bool
    populated: bool


@dataclass(frozen=True)
class SharedDir:
    """A ``spawner-<pid>-<start>`` cgroup: the one a supervisor's spawner sits in."""

    path: str
    pid: int
    alive: bool  # that supervisor (pid and start time) still runs
    populated: bool


SHARED_PREFIX = "spawner-"
_SHARED = re.compile(rf"^{SHARED_PREFIX}(\d+)-(\d+)-\d+$")


def shared_name(pid: int, start_ticks: int | None, serial: int) -> str:
    """The name of the cgroup a supervisor's spawner sits in (see _make_shared):
    its process, and which of the process's supervisors."""
    return f"{SHARED_PREFIX}{pid}-{start_ticks or 0}-{serial}"


@dataclass(frozen=True)
class Stale:
    """A container every record of which says its supervisor is dead."""

    id: str
    records: tuple[ContainerState, ...]
    dirs: tuple[str, ...]  # its cgroups below our parents (none: gone, or elsewhere)

    @property
    def shown(self) -> str:
        first = self.records[0]
        return f"{self.id} ({first.name}): its supervisor (pid {first.supervisor_pid}) is gone"


@dataclass(frozen=True)
class Abandoned:
    """A container whose dead supervisor reserved it (Journal.reserve) and was killed
    before recording it: its cgroups, made in between."""

    id: str
    supervisor_pid: int
    dirs: tuple[str, ...]


@dataclass(frozen=True)
class GcPlan:
    stale: tuple[Stale, ...] = ()
    orphan_dirs: tuple[str, ...] = ()
    dead_leaves: tuple[LeafDir, ...] = ()
    dead_shared: tuple[SharedDir, ...] = ()
    abandoned: tuple[Abandoned, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.stale or self.orphan_dirs or self.dead_leaves or self.dead_shared
                    or self.abandoned)


def plan_gc(
    states: Sequence[ContainerState],
    supervisor_alive: Callable[[ContainerState], bool],
    dirs: Sequence[CgroupDir] = (),
    leaves: Sequence[LeafDir] = (),
    shared: Sequence[SharedDir] = (),
    *,
    min_age_s: float = MIN_ORPHAN_AGE_S,
    reserved: Mapping[str, tuple[int, bool]] | None = None,
) -> GcPlan:
    """What to clean (see the module's docstring): the ids recorded only by dead
    supervisors, with their cgroups among dirs; the dirs no record claims that are empty
    and old enough, or at once if a dead supervisor reserved their id (reserved: id ->
    (its pid, whether it lives)); dead supervisors' v2 leaves that are empty. Only dirs
    named with a container id are considered; records' paths are never used."""
    reserved = reserved or {}
    dirs = [d for d in dirs if is_container_id(d.id)]
    records: dict[str, list[ContainerState]] = {}
    for state in states:
        records.setdefault(state.id, []).append(state)
    paths: dict[str, list[str]] = {}  # id -> its dirs (one per hierarchy): no n x m scan
    for d in dirs:
        paths.setdefault(d.id, []).append(d.path)
    stale = tuple(
        Stale(cid, tuple(found), tuple(paths.get(cid, ())))
        for cid, found in records.items()
        if not any(supervisor_alive(s) for s in found)
    )
    unrecorded = [d for d in dirs if d.id not in records]
    abandoned = tuple(
        Abandoned(cid, reserved[cid][0], tuple(paths[cid]))
        for cid in sorted({d.id for d in unrecorded
                           if d.id in reserved and not reserved[d.id][1]}))
    orphans = tuple(
        d.path for d in unrecorded
        if d.id not in reserved and d.age_s >= min_age_s and d.populated is False
    )
    dead = tuple(leaf for leaf in leaves if not leaf.pid_alive and not leaf.populated)
    dead_shared = tuple(d for d in shared if not d.alive and not d.populated)
    return GcPlan(stale, orphans, dead, dead_shared, abandoned)


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
    """The container cgroups below ``bases`` (directories named with a container id;
    anything else there is not ours to judge); only those older than ``min_age_s`` are
    checked for processes (a big batch may have hundreds of young ones)."""
    now = time.time() if now is None else now
    found: list[CgroupDir] = []
    for base in bases:
        for path in _subdirs(base):
            if not is_container_id(os.path.basename(path)):
                continue
            age = _age_s(path, now)
            if age is not None:
                found.append(CgroupDir(path, age, cgroupfs.populated(path)
                                       if age >= min_age_s else None))
    return found


def scan_shared(bases: Sequence[str]) -> list[SharedDir]:
    found: list[SharedDir] = []
    for base in bases:
        for path in _subdirs(base):
            match = _SHARED.match(os.path.basename(path))
            if match is not None:
                pid, ticks = int(match.group(1)), int(match.group(2))
                found.append(SharedDir(path, pid, _state.is_alive(pid, ticks or None),
                                       cgroupfs.populated(path)))
    return found


def scan_leaves(layout: cgroupfs.Layout) -> list[LeafDir]:
    return [LeafDir(path, pid, os.path.exists(f"/proc/{pid}"), cgroupfs.populated(path))
            for path, pid in cgroupfs.delegation_leaves(layout)]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def spawned_by_live_spawner(dirs: Sequence[str]) -> bool:
    """Whether a process in these cgroups (or below them) is the child of a live
    spawner outside them: the PID 1 of a live container, whatever the journals say."""
    pids = {int(pid) for top in dirs for directory, _subdirs, _files in os.walk(top)
            for pid in (_read(f"{directory}/cgroup.procs") or b"").split()}
    for pid in pids:
        fields = stat_fields(pid) or []
        parent = int(fields[1]) if len(fields) > 1 else 0
        if parent not in pids and SPAWNER_MARK in (_read(f"/proc/{parent}/cmdline") or b""):
            return True
    return False


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
    left: list[str] = field(default_factory=list)  # what gc may not remove, and why


def collect(state_dir: str | None = None, *, layout: cgroupfs.Layout | None = None,
            min_age_s: float = MIN_ORPHAN_AGE_S,
            warn: Callable[[str], None] | None = None) -> GcPlan:
    layout = layout or cgroupfs.detect_layout()
    states = _state.read_states(state_dir, warn=warn)
    reserved = {cid: (pid, _state.is_alive(pid, ticks))
                for cid, (pid, ticks) in _state.reserved(state_dir).items()}
    bases = cgroupfs.supervise_parents(layout)
    return plan_gc(states, _state.supervisor_alive, scan_dirs(bases, min_age_s=min_age_s),
                   scan_leaves(layout), scan_shared(bases), min_age_s=min_age_s,
                   reserved=reserved)


def _strike(stales: Sequence[Stale], state_dir: str | None) -> None:
    """Their records out of the journals, at once (each journal read once, however many
    go: a dead batch of thousands is not thousands of replays), their names released."""
    if not stales:
        return
    _state.remove_states([stale.id for stale in stales], state_dir)
    for stale in stales:
        for record in stale.records:
            with contextlib.suppress(ValueError):
                _state.release_name(record.name, record.id, state_dir)


def execute(plan: GcPlan, layout: cgroupfs.Layout, state_dir: str | None = None,
            say: Callable[[str], None] | None = None,
            timeout: float = DESTROY_TIMEOUT_S) -> GcReport:
    report = GcReport()

    def done(message: str) -> None:
        report.removed.append(message)
        if say is not None:
            say(message)

    touched_parents: set[str] = set()
    own = set(cgroupfs.supervise_parents(layout))

    def destroy(cid: str, dirs: Sequence[str], shown: str, why: str) -> bool:
        """Kill what is in a dead supervisor's container's cgroups and remove them;
        False if they stay (a live spawner runs it after all, or an error)."""
        if spawned_by_live_spawner(dirs):
            report.left.append(f"{cid}: {why}, but a live spawner runs it: left alone")
            return False
        try:
            destroy_dirs(cid, dirs, layout, timeout)
        except (GcError, cgroupfs.CgroupError) as exc:
            report.errors.append(f"{shown}: {exc}")
            return False
        touched_parents.update(os.path.dirname(p) for p in dirs)
        return True

    struck: list[Stale] = []
    for stale in plan.stale:
        # Re-check: a record may have been replaced, or removed by another gc.
        if any(_state.supervisor_alive(s) for s in stale.records):
            continue
        if not stale.dirs:
            # Only a stat of what the records name: nothing there is touched.
            elsewhere = sorted({p for s in stale.records for p in s.cgroup_paths
                                if os.path.isdir(p)})
            if elsewhere:
                report.left.append(
                    f"{stale.shown}, but its cgroups are not below {', '.join(sorted(own))}:"
                    f" not removed ({', '.join(elsewhere)})")
                continue
        elif not destroy(stale.id, stale.dirs, f"{stale.id} ({stale.records[0].name})",
                         "its records say its supervisor is gone"):
            continue
        struck.append(stale)
        done(f"removed {stale.shown}")
    _strike(struck, state_dir)

    def remove_empty(path: str, why: str) -> bool:
        """rmdir a cgroup no process uses (none is ever killed here); True if it went."""
        if cgroupfs.populated(path):
            return False
        try:
            cgroupfs.remove_empty_tree(path)
        except cgroupfs.CgroupError as exc:
            report.errors.append(str(exc))
            return False
        done(f"removed cgroup {path}: {why}")
        return True

    for lost in plan.abandoned:
        if not destroy(lost.id, lost.dirs, lost.id, "its supervisor is gone"):
            continue
        _state.remove_states([lost.id], state_dir)
        done(f"removed {lost.id}: its supervisor (pid {lost.supervisor_pid}) was killed "
             "while starting it")
    for path in plan.orphan_dirs:
        if remove_empty(path, "no container uses it"):
            touched_parents.add(os.path.dirname(path))
    for leaf in plan.dead_leaves:
        if not os.path.exists(f"/proc/{leaf.pid}"):
            remove_empty(leaf.path, f"its supervisor (pid {leaf.pid}) is gone")
    for shared in plan.dead_shared:
        if remove_empty(shared.path, f"its supervisor (pid {shared.pid}) is gone"):
            touched_parents.add(os.path.dirname(shared.path))
    # Our own "supervise" dirs, once empty, go too (as a supervisor's last container
    # does); a supervise creating one concurrently retries on ENOENT.
    for parent in sorted(touched_parents & own):
        with contextlib.suppress(OSError):
            os.rmdir(parent)
    return report


def gc(state_dir: str | None = None, *, say: Callable[[str], None] | None = None,
       warn: Callable[[str], None] | None = None,
       min_age_s: float = MIN_ORPHAN_AGE_S, timeout: float = DESTROY_TIMEOUT_S) -> GcReport:
    layout = cgroupfs.detect_layout()
    plan = collect(state_dir, layout=layout, min_age_s=min_age_s, warn=warn)
    if not plan:
        return GcReport()
    return execute(plan, layout, state_dir, say, timeout)


def gc_quietly() -> None:
    """gc before `run` and `batch`: never fails them, and a leftover that will not die
    (a process in uninterruptible sleep) delays them by about a second, not five."""
    with contextlib.suppress(Exception):
        gc(timeout=1.0)
