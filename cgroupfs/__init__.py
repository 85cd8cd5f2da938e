"""cgroupfs: cgroup v1, v2 and hybrid for supervise. Synchronous, stdlib only.

Detect the layout, create a container's cgroup under this process's own
(``<own>/supervise/<name>``), apply limits, add pids, sample stats, kill and
destroy. File I/O lives in ``_fs``; translation and parsing are pure.
"""

from ._create import (
    cgroup_at,
    create_cgroup,
    mount_of,
    open_cgroup,
    remove_unused_parents,
)
from ._errors import CgroupError
from ._layout import Layout, detect_layout, swap_limit_supported
from ._limits import (
    DeviceRule,
    Limits,
    limited_controllers,
    parse_device_rule,
    shares_to_weight,
    v1_limit_files,
    v2_limit_files,
    with_default_swap,
)
from ._placement import (
    LEAF,
    SUPERVISE_DIR,
    delegation_leaves,
    populated,
    remove_empty_tree,
    supervise_parents,
)
from ._protocol import Cgroup
from ._stats import Stats, StatsMode, parse_v1_stats, parse_v2_stats
from ._v1 import V1Cgroup
from ._v2 import V2Cgroup, prepare_v2_delegation

__all__ = [
    "CgroupError",
    "Limits",
    "DeviceRule",
    "parse_device_rule",
    "limited_controllers",
    "Stats",
    "StatsMode",
    "Layout",
    "Cgroup",
    "V1Cgroup",
    "V2Cgroup",
    "v1_limit_files",
    "v2_limit_files",
    "shares_to_weight",
    "parse_v1_stats",
    "parse_v2_stats",
    "detect_layout",
    "swap_limit_supported",
    "with_default_swap",
    "prepare_v2_delegation",
    "create_cgroup",
    "open_cgroup",
    "cgroup_at",
    "mount_of",
    "remove_unused_parents",
    "LEAF",
    "SUPERVISE_DIR",
    "supervise_parents",
    "delegation_leaves",
    "populated",
    "remove_empty_tree",
]
