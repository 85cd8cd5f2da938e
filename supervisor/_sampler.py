"""One sampler for all containers: each interval, one pass over their cgroups.

Reads only the cgroup files a live view needs (cgroupfs `stats("live")`)
and keeps the previous sample per container for CPU %; host totals come from
psutil. Synchronous and cheap: the async callers run it once per interval.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil

import cgroupfs

from ._result import iso_utc
from ._sampling import ContainerSample, HostSample, sample_container


@dataclass(frozen=True)
class Target:
    """What to sample: a container's identity and its cgroup."""

    id: str
    name: str
    pid: int | None
    command: str
    started_at: float  # epoch seconds
    cgroup: cgroupfs.Cgroup
    state: str = "running"
    supervisor_pid: int | None = None


class Sampler:
    def __init__(self) -> None:
        self._previous: dict[str, cgroupfs.Stats] = {}
        self._cpu_count = psutil.cpu_count() or 1
        psutil.cpu_percent(None)  # primes the host CPU counter: the next call has a span

    def host(self) -> HostSample:
        memory = psutil.virtual_memory()
        return HostSample(
            cpu_percent=psutil.cpu_percent(None), cpu_count=self._cpu_count,
            memory_used_bytes=memory.total - memory.available,
            memory_total_bytes=memory.total,
        )

    def sample(self, targets: Iterable[Target], host: HostSample | None = None,
               now: float | None = None) -> list[ContainerSample]:
        now = time.time() if now is None else now
        total = host.memory_total_bytes if host is not None else None
        rows: list[ContainerSample] = []
        previous, self._previous = self._previous, {}
        for target in targets:
            try:
                stats: cgroupfs.Stats | None = target.cgroup.stats("live")
            except cgroupfs.CgroupError:
                stats = None
            rows.append(sample_container(
                id=target.id, name=target.name, state=target.state, pid=target.pid,
                command=target.command, elapsed_s=max(0.0, now - target.started_at),
                previous=previous.get(target.id), current=stats, host_memory_total=total,
                supervisor_pid=target.supervisor_pid,
            ))
            if stats is not None:
                self._previous[target.id] = stats
        return rows


def sample_record(host: HostSample, rows: list[ContainerSample], now: float) -> dict[str, Any]:
    """One line of --stats-json."""
    # Shallow dicts of flat records: dataclasses.asdict deep-copies each field, and a
    # sample of a thousand containers every second is a thousand of them.
    return {"time": iso_utc(now), "host": dict(vars(host)),
            "containers": [dict(vars(r)) for r in rows]}
