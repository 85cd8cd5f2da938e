"""Where supervise's cgroups live, and how to look at what is left there.

Containers go to ``<own cgroup>/supervise/<name>`` in each hierarchy (see
``create_cgroup``); on v2 a supervisor whose own cgroup holds other processes
first moves itself into ``<own>/supervisor-<pid>`` (``prepare_v2_delegation``).
These functions name those places, for the code that creates cgroups and for the
code that cleans up after a supervisor that died (``supervise gc``).
"""

from __future__ import annotations

import os
import re

from . import _fs
from ._errors import CgroupError
from ._layout import DELEGATION_LEAF_PREFIX, Layout
from ._procs import parse_procs
from ._stats import parse_flat_keyed

SUPERVISE_DIR = "supervise"
#: the child cgroup a container's processes live in, the root of its cgroup namespace
LEAF = "leaf"
_LEAF = re.compile(rf"^{DELEGATION_LEAF_PREFIX}(\d+)$")


def supervise_parents(layout: Layout) -> list[str]:
    """``<own>/supervise`` in each hierarchy where this process puts containers by
    default: the v2 one; or one per distinct v1 directory (co-mounted controllers
    share one) and, on a hybrid host, the unified tree's. They need not exist."""
    if layout.kind == "v2":
        return [f"{layout.v2_own_dir()}/{SUPERVISE_DIR}"]
    found = {f"{layout.v1_own_dir(c)}/{SUPERVISE_DIR}" for c in layout.v1_mounts}
    if layout.v2_mount is not None:
        found.add(f"{layout.v2_own_dir()}/{SUPERVISE_DIR}")
    return sorted(found)


def delegation_leaf(own_dir: str, pid: int) -> str:
    """The v2 leaf a supervisor of this pid moves itself into, below its own cgroup."""
    return f"{own_dir}/{DELEGATION_LEAF_PREFIX}{pid}"


def delegation_leaves(layout: Layout) -> list[tuple[str, int]]:
    """The v2 ``<own>/supervisor-<pid>`` leaves below this process's own cgroup, with
    the pid each is named after (none on v1)."""
    if layout.kind != "v2":
        return []
    found: list[tuple[str, int]] = []
    for path in _fs.subdirs(layout.v2_own_dir()):
        match = _LEAF.match(os.path.basename(path))
        if match is not None:
            found.append((path, int(match.group(1))))
    return found


def populated(path: str) -> bool:
    """Whether any process is in the cgroup at ``path`` or below it: v2's
    cgroup.events, else every cgroup.procs of the subtree (v1). A cgroup that exists
    but cannot be read counts as populated; one that is gone does not."""
    events = _fs.read_optional(f"{path}/cgroup.events")
    if events is not None:
        state = parse_flat_keyed(events).get("populated")
        if state is not None:
            return state != 0
    for directory, _subdirs, files in os.walk(path):
        if "cgroup.procs" not in files:
            continue
        try:
            procs = _fs.read_optional(f"{directory}/cgroup.procs")
        except CgroupError:  # unreadable: assume someone is there
            return True
        if procs is None:
            continue
        if parse_procs(procs):
            return True
    return False


def remove_empty_tree(path: str) -> None:
    """rmdir a cgroup and its child cgroups, bottom-up, without killing anything: a
    populated one fails with CgroupError (EBUSY); one already gone is fine."""
    for child in _fs.subdirs(path):
        remove_empty_tree(child)
    _fs.rmdir(path)
