"""Which cgroup hierarchies are mounted where, and where this process sits in them.

Detection is pure over the texts of /proc/self/mountinfo and /proc/self/cgroup,
so tests hand it fixtures; ``detect_layout()`` without arguments reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from . import _fs
from ._errors import CgroupError

# The v1 controllers a kernel may mount (named hierarchies, name=systemd and the like,
# are kept too). A container gets a cgroup in every hierarchy mounted, so that its
# cgroup namespace is rooted at its own cgroup everywhere.
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices", "blkio",
                  "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc", "debug")
DEFAULT_ROOT = "/sys/fs/cgroup"

# The leaf a v2 supervisor moves itself into (see prepare_v2_delegation); its
# children (the spawner) inherit it, so it is not their "own" cgroup.
DELEGATION_LEAF_PREFIX = "supervisor-"
_DELEGATION_LEAF = re.compile(rf"/{DELEGATION_LEAF_PREFIX}\d+$")


@dataclass(frozen=True)
class Mount:
    """One cgroup mount: where, which part of the hierarchy it shows, and its controllers."""

    mountpoint: str
    root: str
    fstype: str
    controllers: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """The cgroup layout seen by this process.

    ``v1_mounts`` maps each mounted v1 controller (and named hierarchy, as
    ``name=systemd``) to its mountpoint (co-mounted controllers share one);
    ``v1_paths`` maps it to this process's cgroup path relative to that mount.
    ``v2_mount``/``v2_path`` are the same for the unified hierarchy (``v2_path`` with
    any ``/supervisor-<pid>`` leaf removed).
    """

    kind: Literal["v1", "v2", "hybrid"]
    v1_mounts: dict[str, str] = field(default_factory=dict)
    v1_paths: dict[str, str] = field(default_factory=dict)
    v2_mount: str | None = None
    v2_path: str | None = None

    def v1_own_dir(self, controller: str) -> str:
        """This process's cgroup directory in a v1 hierarchy."""
        return join_cgroup(self.v1_mounts[controller], self.v1_paths.get(controller, "/"))

    def v2_own_dir(self) -> str:
        """This process's cgroup directory in the unified hierarchy."""
        if self.v2_mount is None:
            raise CgroupError("no cgroup v2 mount")
        return join_cgroup(self.v2_mount, self.v2_path or "/")

    def rebased(self, root: str) -> Layout:
        """The same layout with mountpoints below /sys/fs/cgroup moved below ``root``."""
        if root.rstrip("/") == DEFAULT_ROOT:
            return self

        def move(path: str) -> str:
            if path == DEFAULT_ROOT or path.startswith(DEFAULT_ROOT + "/"):
                return root.rstrip("/") + path[len(DEFAULT_ROOT) :]
            return path

        return replace(
            self,
            v1_mounts={c: move(m) for c, m in self.v1_mounts.items()},
            v2_mount=None if self.v2_mount is None else move(self.v2_mount),
        )


def join_cgroup(mountpoint: str, cgroup_path: str) -> str:
    """``/sys/fs/cgroup/pids`` + ``/a/b`` -> ``/sys/fs/cgroup/pids/a/b``."""
    relative = cgroup_path.strip("/")
    return mountpoint.rstrip("/") + ("/" + relative if relative else "") or "/"


def _unescape(field_text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts in a /proc/<pid>/mountinfo text."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        controllers: tuple[str, ...] = ()
        if tail[0] == "cgroup":
            controllers = tuple(o for o in tail[2].split(",")
                                if o in V1_CONTROLLERS or o.startswith("name="))
        mounts.append(Mount(_unescape(fields[4]), _unescape(fields[3]), tail[0], controllers))
    return mounts


def parse_proc_cgroup(text: str) -> tuple[dict[str, str], str | None]:
    """/proc/<pid>/cgroup -> (v1 controller -> path, v2 path or None)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        if hierarchy_id == "0" and controllers == "":
            v2 = path
            continue
        for controller in controllers.split(","):
            v1[controller] = path
    return v1, v2


def _relative(path: str, mount_root: str) -> str:
    """A cgroup path relative to what a mount shows (its root may be a sub-cgroup)."""
    if mount_root in ("", "/"):
        return path
    if path == mount_root:
        return "/"
    if path.startswith(mount_root.rstrip("/") + "/"):
        return path[len(mount_root.rstrip("/")) :]
    return path  # a cgroup namespace already shows paths relative to the mount


def detect_layout(mountinfo: str | None = None, proc_self_cgroup: str | None = None) -> Layout:
    """Detect v1, v2 or hybrid from mountinfo and /proc/self/cgroup texts (read when None)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8") as file:
            mountinfo = file.read()
    if proc_self_cgroup is None:
        with open("/proc/self/cgroup", encoding="utf-8") as file:
            proc_self_cgroup = file.read()
    own_v1, own_v2 = parse_proc_cgroup(proc_self_cgroup)

    v1_mounts: dict[str, str] = {}
    v1_paths: dict[str, str] = {}
    v2_mount: str | None = None
    v2_root = "/"
    for mount in parse_mountinfo(mountinfo):
        if mount.fstype == "cgroup2":
            if v2_mount is None or mount.mountpoint == DEFAULT_ROOT:
                v2_mount, v2_root = mount.mountpoint, mount.root
            continue
        for controller in mount.controllers:
            if controller in v1_mounts:
                continue  # the same hierarchy mounted again (a bind mount): keep the first
            v1_mounts[controller] = mount.mountpoint
            v1_paths[controller] = _relative(own_v1.get(controller, "/"), mount.root)

    v2_path: str | None = None
    if v2_mount is not None:
        v2_path = _DELEGATION_LEAF.sub("", _relative(own_v2 or "/", v2_root)) or "/"
    if v1_mounts and v2_mount is not None:
        kind: Literal["v1", "v2", "hybrid"] = "hybrid"
    elif v1_mounts:
        kind = "v1"
    elif v2_mount is not None:
        kind = "v2"
    else:
        raise CgroupError("no cgroup file system is mounted (see /proc/self/mountinfo)")
    return Layout(kind, v1_mounts, v1_paths, v2_mount, v2_path)


def swap_limit_supported(layout: Layout) -> bool:
    """Whether a memory+swap limit can be set below this process's cgroup (docker's
    SwapLimit): v1, its memory hierarchy has memory.memsw.* (swap accounting on); v2,
    memory.swap.max exists on a cgroup below the root (the root has none)."""
    if layout.kind != "v2":
        if "memory" not in layout.v1_mounts:
            return False
        return _fs.exists(f"{layout.v1_own_dir('memory')}/memory.memsw.limit_in_bytes")
    own = layout.v2_own_dir()
    return _fs.exists(f"{own}/memory.swap.max") or any(
        _fs.exists(f"{child}/memory.swap.max") for child in _fs.subdirs(own))
