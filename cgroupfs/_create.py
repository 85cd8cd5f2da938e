"""Placing, creating and opening a container's cgroup."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Collection, Sequence

from . import _fs
from ._errors import CgroupError
from ._layout import DEFAULT_ROOT, Layout, detect_layout, join_cgroup
from ._limits import Limits, limited_controllers
from ._placement import LEAF, SUPERVISE_DIR, supervise_parents
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
    until both are set (writing to cgroup.procs fails with ENOSPC). The parent may
    be empty too, for a moment: another supervise has just made the shared
    "supervise" directory and not filled it yet. Then the values come from the
    nearest ancestor that has them, and fill the way down.
    """
    for filename in ("cpuset.cpus", "cpuset.mems"):
        chain = [directory]
        value = _fs.read_text(f"{directory}/{filename}").strip()
        while not value and "/" in chain[-1].rstrip("/"):
            chain.append(chain[-1].rsplit("/", 1)[0])
            value = (_fs.read_optional(f"{chain[-1]}/{filename}") or "").strip()
        for below in reversed(chain[:-1]):
            if not _fs.read_text(f"{below}/{filename}").strip():
                _fs.write_text(f"{below}/{filename}", value)


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


def _v1_dirs(layout: Layout, parent: str | None, controllers: Collection[str] | None = None
             ) -> dict[str, tuple[str, list[str]]]:
    """controller -> (start directory, components below it to the parent of a new
    cgroup), for every mounted v1 hierarchy (or those of these controllers: a
    controller co-mounted with one of them comes along)."""
    placed: dict[str, tuple[str, list[str]]] = {}
    chosen = None if controllers is None else {
        m for c, m in layout.v1_mounts.items() if c in controllers}
    for controller, mountpoint in layout.v1_mounts.items():
        if chosen is not None and mountpoint not in chosen:
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
    leaf: str | None = LEAF,
    v1_controllers: Collection[str] | None = None,
    unified: bool = True,
) -> Cgroup:
    """Create ``<own cgroup>/supervise/<name>`` (or ``<parent>/<name>``) and apply ``limits``.

    A cgroup is made in every mounted hierarchy: each v1 one (controllers and named
    hierarchies alike; ``v1_controllers``: only those hierarchies) and, on a hybrid
    host, the unified tree (unless ``unified`` is False), so that a cgroup
    namespace made by a process inside is rooted at its own cgroup there. With
    ``leaf`` (the default), the processes go in a child cgroup of that name, the
    root of their namespace, and the limits are written on both: the outer one
    holds them out of the namespace's reach, the leaf shows them inside (on v1 only
    in the hierarchies with a limit to hold; v2 has one directory for all). On v2 the
    controllers are enabled down the chain; with the default placement this process
    first moves itself into ``<own>/supervisor-<pid>`` if ``<own>`` has processes
    (see :func:`prepare_v2_delegation`). If anything fails, what was made is
    removed. ``root`` relocates mountpoints below /sys/fs/cgroup (for test trees).
    """
    _check_name(name)
    resolved = _resolve(layout, root)
    owns = parent is None and remove_parent
    cgroup: V1Cgroup | V2Cgroup
    if resolved.kind == "v2":
        start, below = _v2_place(resolved, parent)
        if parent is None:
            prepare_v2_delegation(resolved)
        made = _make_chain(start, below, name, cpuset=False, v2=True)
        cgroup = V2Cgroup(name, made[-1], leaf=leaf, leaf_exists=False, owns_parent=owns)
    else:
        placed = _v1_dirs(resolved, parent, v1_controllers)
        if not placed:
            raise CgroupError("no usable cgroup v1 controller is mounted")
        controller_dirs: dict[str, str] = {}
        by_mount: dict[str, str] = {}
        all_made: list[list[str]] = []
        unified_dir: str | None = None
        try:
            for controller, (start, below) in placed.items():
                mountpoint = resolved.v1_mounts[controller]
                if mountpoint not in by_mount:
                    cpuset = resolved.v1_mounts.get("cpuset") == mountpoint
                    made = _make_chain(start, below, name, cpuset=cpuset, v2=False)
                    all_made.append(made)
                    by_mount[mountpoint] = made[-1]
                controller_dirs[controller] = by_mount[mountpoint]
            if resolved.v2_mount is not None and unified:
                # The unified tree of a hybrid host: no controllers, but a cgroup
                # namespace is rooted there too (and it has cgroup.kill).
                start, below = _v2_place(resolved, parent)
                made = _make_chain(start, below, name, cpuset=False, v2=False)
                all_made.append(made)
                unified_dir = made[-1]
        except CgroupError:
            for made in reversed(all_made):
                _remove_made(made)
            raise
        # A leaf only where there is a limit to hold (each costs a mkdir, an rmdir and
        # its own copy of the limits); elsewhere the directory is the namespace's root.
        leaf_dirs = {controller_dirs[c] for c in limited_controllers(limits)
                     if c in controller_dirs}
        cgroup = V1Cgroup(name, controller_dirs, unified=unified_dir, leaf=leaf,
                          leaf_dirs=leaf_dirs, owns_parent=owns)
    try:
        if limits is not None:
            cgroup.set_limits(limits)
        cgroup.make_leaf(limits)
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
    leaf: str | None = LEAF,
) -> Cgroup:
    """Attach to an existing cgroup made by :func:`create_cgroup` (for ps, stats, gc)."""
    _check_name(name)
    resolved = _resolve(layout, root)
    if resolved.kind == "v2":
        start, below = _v2_place(resolved, parent)
        path = join_cgroup(start, "/".join([*below, name]))
        if not _fs.exists(path):
            raise CgroupError(f"opening {path}: no such cgroup", path=path, errno=errno.ENOENT)
        return V2Cgroup(name, path, leaf=leaf, owns_parent=parent is None)
    controller_dirs = {
        controller: join_cgroup(start, "/".join([*below, name]))
        for controller, (start, below) in _v1_dirs(resolved, parent).items()
    }
    present = {c: d for c, d in controller_dirs.items() if _fs.exists(d)}
    if not present:
        shown = next(iter(controller_dirs.values()), name)
        raise CgroupError(f"opening {shown}: no such cgroup", path=shown, errno=errno.ENOENT)
    unified: str | None = None
    if resolved.v2_mount is not None:
        start, below = _v2_place(resolved, parent)
        unified = join_cgroup(start, "/".join([*below, name]))
        if not _fs.exists(unified):
            unified = None
    return V1Cgroup(name, present, unified=unified, leaf=leaf, owns_parent=parent is None)


def cgroup_at(paths: Sequence[str], *, layout: Layout | None = None,
              leaf: str | None = LEAF) -> Cgroup:
    """The cgroup at these absolute directories (as recorded by another process, e.g.
    in a state file): the single directory on a v2 host, or one per v1 hierarchy (each
    matched to the controllers mounted where it lies) plus, on a hybrid host, one in
    the unified tree. CgroupError for a directory on no cgroup mount."""
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
    v2 = [p for p, m in zip(paths, found, strict=True) if m == resolved.v2_mount]
    if len(v2) > 1:
        raise CgroupError(f"cgroup v2 has one directory per cgroup, got {len(v2)}")
    if v2 and len(paths) == 1 and not resolved.v1_mounts:
        return V2Cgroup(name, v2[0], leaf=leaf, owns_parent=False)
    controller_dirs: dict[str, str] = {}
    for directory, mountpoint in zip(paths, found, strict=True):
        for controller, controller_mount in resolved.v1_mounts.items():
            if controller_mount == mountpoint:
                controller_dirs[controller] = directory
    return V1Cgroup(name, controller_dirs, unified=v2[0] if v2 else None, leaf=leaf,
                    owns_parent=False)


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
