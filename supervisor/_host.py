"""Facts about this host that option translation needs, read once."""

from __future__ import annotations

import os

from ._options import HostFacts
from ._units import parse_cpu_list_file


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def host_facts() -> HostFacts:
    cpus = frozenset(os.sched_getaffinity(0))
    online = _read("/sys/devices/system/cpu/online")
    if online:
        cpus = cpus & parse_cpu_list_file(online) or cpus
    nodes = _read("/sys/devices/system/node/online")
    mems = parse_cpu_list_file(nodes) if nodes else frozenset({0})
    return HostFacts(cpu_count=len(cpus), cpus=cpus, mems=mems, environ=dict(os.environ))
