"""Placing, creating and opening a container's cgroup."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Sequence

from . import _fs
from ._errors import CgroupError
from ._layout import DEFAULT_ROOT, V1_CONTROLLERS, Layout, detect_layout, join_cgroup
from ._limits import Limits
from ._placement import SUPERVISE_DIR, supervise_parents
from ._protocol import Cgroup
from ._teardown import remove_if_unused
from ._v1 import V1Cgroup
from ._v2 import V2Cgroup, enable_controllers, prepare_v2_delegation

_MKDIR_ATTEMPTS = 5


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\n" in name or "\0" in name:
        raise CgroupError(f"invalid cgroup name {name!r}")


def _components(cgroup_path: str) -> list[str]:
    parts = [p for p in cgroup_path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise CgroupError(f"invalid cgroup parent {cgroup_path!r}")
    return parts


def _resolve(layout: Layout | None, root: str) -> Layout:
    return (layout or detect_layout()).rebased(root)


def _copy_cpuset(directory: str) -> None:
    """Fill an empty v1 cpuset.cpus/mems from the parent.

    A new v1 cpuset cgroup starts with both empty, and no task can join it
    until both are set (writing to cgroup.procs fails with ENOSPC).
    """
    parent = directory.rsplit("/", 1)[0]
    for filename in ("cpuset.cpus", "cpuset.mems"):
        if _fs.read_text(f"{directory}/{filename}").strip():
            continue
        _fs.write_text(f"{directory}/{filename}", _fs.read_text(f"{parent}/{filename}").strip())


def _make_chain(start: str, below: list[str], name: str, *, cpuset: bool, v2: bool) -> list[str]:
    """mkdir ``start/below.../name``; the directories created, outermost first.

    Another supervise may rmdir the shared "supervise" directory between our
    mkdirs (ENOENT): start over a few times.
    """
    leaf = "/".join([start, *below, name])
    try:
        # The usual case: an earlier container made the parents; one mkdir does.
        if not _fs.mkdir(leaf):
            raise CgroupError(f"creating {leaf}: cgroup already exists", path=leaf)
        if cpuset:
            _copy_cpuset(leaf)  # set by the kernel already when the parent clones children
        return [leaf]
    except CgroupError as exc:
        if exc.errno != errno.ENOENT:
            if _fs.exists(leaf) and exc.path != leaf:
                _remove_made([leaf])
            raise
    for attempt in range(_MKDIR_ATTEMPTS):
        made: list[str] = []
        try:
            directory = start
            if v2:
                enable_controllers(directory)
            for part in below:
                directory = f"{directory}/{part}"
                if _fs.mkdir(directory):
                    made.append(directory)
                    if cpuset:
                        # New children copy cpuset.cpus/mems from here (v1's
                        # cgroup.clone_children), so a leaf is ready as made.
                        _fs.write_text(f"{directory}/cgroup.clone_children", "1")
                if cpuset:
                    _copy_cpuset(directory)
                if v2:
                    enable_controllers(directory)
            leaf = f"{directory}/{name}"
            if not _fs.mkdir(leaf):
                raise CgroupError(f"creating {leaf}: cgroup already exists", path=leaf)
            made.append(leaf)
            if cpuset:
                _copy_cpuset(leaf)
            return made
        except CgroupError as exc:
            _remove_made(made)
            if exc.errno == errno.ENOENT and attempt + 1 < _MKDIR_ATTEMPTS:
                continue
            raise
    raise AssertionError("unreachable")


def _remove_made(made: list[str]) -> None:
    for directory in reversed(made):
        with contextlib.suppress(CgroupError):
            remove_if_unused(directory)


def v1_controllers_for(limits: Limits | None) -> tuple[str, ...]:
    """The v1 hierarchies a container in its own PID namespace needs (pure): memory
    and cpuacct always (its figures), pids, cpu and cpuset only for their limits
    (without a pids hierarchy the count of tasks comes from another one's ``tasks``).
    No freezer: killing PID 1 kills the whole PID namespace at once. Fewer
    hierarchies, less work per container: each costs a mkdir, an rmdir and the
    child's join, ~0.1 ms in the kernel here."""
    chosen = ["memory", "cpuacct"]
    if limits is not None:
        if limits.pids_max is not None:
            chosen.append("pids")
        if limits.cpu_shares is not None or limits.cpu_quota_us is not None:
            chosen.append("cpu")
        if limits.cpuset_cpus is not None or limits.cpuset_mems is not None:
            chosen.append("cpuset")
    return tuple(c for c in V1_CONTROLLERS if c in chosen)


def _v1_dirs(layout: Layout, name: str, parent: str | None,
             controllers: Sequence[str] | None = None) -> dict[str, tuple[str, list[str]]]:
    """controller -> (start directory, components below it to the parent of ``name``)."""
    placed: dict[str, tuple[str, list[str]]] = {}
    for controller in V1_CONTROLLERS if controllers is None else controllers:
        mountpoint = layout.v1_mounts.get(controller)
        if mountpoint is None:
            continue
        if parent is None:
            placed[controller] = (layout.v1_own_dir(controller), [SUPERVISE_DIR])
        else:
            placed[controller] = (mountpoint.rstrip("/"), _components(parent))
    return placed


def _v2_place(layout: Layout, parent: str | None) -> tuple[str, list[str]]:
    if layout.v2_mount is None:
        raise CgroupError("no cgroup v2 mount")
    if parent is None:
        return layout.v2_own_dir(), [SUPERVISE_DIR]
    return layout.v2_mount.rstrip("/"), _components(parent)


def create_cgroup(
    name: str,
    *,
    limits: Limits | None = None,
    parent: str | None = None,
    layout: Layout | None = None,
    root: str = DEFAULT_ROOT,
    remove_parent: bool = True,
    v1_controllers: Sequence[str] | None = None,
) -> Cgroup:
    """Create ``<own cgroup>/supervise/<name>`` (or ``<parent>/<name>``) and apply ``limits``.

    v1 and hybrid layouts get one directory per mounted hierarchy among
    memory, cpu, cpuacct, cpuset, pids, freezer. On v2 the controllers are
    enabled down the chain; with the default placement this process first moves
    itself into ``<own>/supervisor-<pid>`` if ``<own>`` has processes (see
    :func:`prepare_v2_delegation`). If anything fails, what was made is removed.
    ``root`` relocates mountpoints below /sys/fs/cgroup (for test trees).
    """
    _check_name(name)
    resolved = _resolve(layout, root)
    cgroup: V1Cgroup | V2Cgroup
    if resolved.kind == "v2":
        start, below = _v2_place(resolved, parent)
        if parent is None:
            prepare_v2_delegation(resolved)
        made = _make_chain(start, below, name, cpuset=False, v2=True)
        cgroup = V2Cgroup(name, made[-1], owns_parent=parent is None and remove_parent)
    else:
        placed = _v1_dirs(resolved, name, parent, v1_controllers)
        if not placed:
            raise CgroupError("no usable cgroup v1 controller is mounted")
        controller_dirs: dict[str, str] = {}
        by_mount: dict[str, str] = {}
        all_made: list[list[str]] = []
        try:
            for controller, (start, below) in placed.items():
                mountpoint = resolved.v1_mounts[controller]
                if mountpoint not in by_mount:
                    cpuset = resolved.v1_mounts.get("cpuset") == mountpoint
                    made = _make_chain(start, below, name, cpuset=cpuset, v2=False)
                    all_made.append(made)
                    by_mount[mountpoint] = made[-1]
                controller_dirs[controller] = by_mount[mountpoint]
        except CgroupError:
            for made in reversed(all_made):
                _remove_made(made)
            raise
        cgroup = V1Cgroup(name, controller_dirs, owns_parent=parent is None and remove_parent)
    if limits is not None:
        try:
            cgroup.set_limits(limits)
        except CgroupError:
            cgroup.destroy(timeout=1.0)
            raise
    return cgroup


def open_cgroup(
    name: str,
    *,
    parent: str | None = None,
    layout: Layout | None = None,
    root: str = DEFAULT_ROOT,
) -> Cgroup:
    """Attach to an existing cgroup made by :func:`create_cgroup` (for ps, stats, gc)."""
    _check_name(name)
    resolved = _resolve(layout, root)
    if resolved.kind == "v2":
        start, below = _v2_place(resolved, parent)
        path = join_cgroup(start, "/".join([*below, name]))
        if not _fs.exists(path):
            raise CgroupError(f"opening {path}: no such cgroup", path=path, errno=errno.ENOENT)
        return V2Cgroup(name, path, owns_parent=parent is None)
    controller_dirs = {
        controller: join_cgroup(start, "/".join([*below, name]))
        for controller, (start, below) in _v1_dirs(resolved, name, parent).items()
    }
    present = {c: d for c, d in controller_dirs.items() if _fs.exists(d)}
    if not present:
        shown = next(iter(controller_dirs.values()), name)
        raise CgroupError(f"opening {shown}: no such cgroup", path=shown, errno=errno.ENOENT)
    return V1Cgroup(name, present, owns_parent=parent is None)


def cgroup_at(paths: Sequence[str], *, layout: Layout | None = None) -> Cgroup:
    """The cgroup at these absolute directories (as recorded by another process, e.g.
    in a state file): the single v2 directory, or one per v1 hierarchy, each matched to
    the controllers mounted where it lies. CgroupError for a directory on no cgroup
    mount, or for a mix."""
    resolved = layout or detect_layout()
    if not paths:
        raise CgroupError("no cgroup directories given")
    name = paths[0].rstrip("/").rsplit("/", 1)[-1]
    mounts = [*resolved.v1_mounts.values(),
              *([resolved.v2_mount] if resolved.v2_mount is not None else [])]
    found = [mount_of(p, mounts) for p in paths]
    for path, mountpoint in zip(paths, found, strict=True):
        if mountpoint is None:
            raise CgroupError(f"{path}: not on a cgroup mount", path=path)
    if resolved.v2_mount is not None and resolved.v2_mount in found:
        if len(paths) != 1:
            raise CgroupError(f"cgroup v2 has one directory per cgroup, got {len(paths)}")
        return V2Cgroup(name, paths[0], owns_parent=False)
    controller_dirs: dict[str, str] = {}
    for directory, mountpoint in zip(paths, found, strict=True):
        for controller, controller_mount in resolved.v1_mounts.items():
            if controller_mount == mountpoint:
                controller_dirs[controller] = directory
    return V1Cgroup(name, controller_dirs, owns_parent=False)


def mount_of(path: str, mountpoints: Sequence[str]) -> str | None:
    """The mountpoint among these that ``path`` lies below (the longest), if any."""
    for mountpoint in sorted(mountpoints, key=len, reverse=True):
        if path.startswith(mountpoint.rstrip("/") + "/"):
            return mountpoint
    return None


def remove_unused_parents(layout: Layout | None = None, root: str = DEFAULT_ROOT) -> None:
    """rmdir ``<own cgroup>/supervise`` in each hierarchy unless a cgroup still uses it
    (for callers that created cgroups with remove_parent=False, once at the end)."""
    resolved = _resolve(layout, root)
    if resolved.kind == "v2" and resolved.v2_mount is None:
        return
    for parent in supervise_parents(resolved):
        with contextlib.suppress(CgroupError):
            remove_if_unused(parent)
