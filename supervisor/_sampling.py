"""Figures for the live view, computed as `docker stats` does (pure).

CPU % comes from two samples of the cgroup's CPU counter: the CPU time used
between them over the wall time between them, times 100, summed over cores
(so 2 busy cores show 200 %). Memory usage is the cgroup's usage minus its
inactive file cache. Unknown stays None and is shown as "-", never as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cgroupfs


@dataclass(frozen=True)
class ContainerSample:
    """One container's row at one moment."""

    id: str
    name: str
    state: str  # running | exited | orphaned ...
    pid: int | None
    command: str
    elapsed_s: float
    cpu_percent: float | None
    memory_usage_bytes: int | None
    memory_limit_bytes: int | None
    memory_percent: float | None
    pids: int | None
    cpu_total_s: float | None = None
    supervisor_pid: int | None = None


@dataclass(frozen=True)
class HostSample:
    cpu_percent: float | None
    cpu_count: int
    memory_used_bytes: int | None
    memory_total_bytes: int | None


@dataclass(frozen=True)
class FinishedJob:
    name: str
    status: str
    exit_code: int | None
    wall_s: float
    peak_memory_bytes: int | None


@dataclass(frozen=True)
class BatchProgress:
    total: int
    done: int
    running: int
    queued: int
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def eta_s(self) -> float | None:
        """Remaining jobs at the average pace so far; None until one has finished."""
        if self.done == 0 or self.elapsed_s <= 0:
            return None
        remaining = self.total - self.done
        return remaining * self.elapsed_s / self.done


def cpu_percent(previous: cgroupfs.Stats | None, current: cgroupfs.Stats) -> float | None:
    if (previous is None or previous.cpu_usage_ns is None or current.cpu_usage_ns is None
            or previous.sampled_at_ns is None or current.sampled_at_ns is None):
        return None
    wall = current.sampled_at_ns - previous.sampled_at_ns
    if wall <= 0:
        return None
    used = current.cpu_usage_ns - previous.cpu_usage_ns
    return max(0.0, used / wall * 100.0)


def memory_usage(stats: cgroupfs.Stats) -> int | None:
    """docker's figure: usage minus inactive file cache (it can be dropped at will)."""
    if stats.memory_usage_bytes is None:
        return None
    inactive = stats.memory_inactive_file_bytes or 0
    return max(0, stats.memory_usage_bytes - inactive) if inactive <= stats.memory_usage_bytes \
        else stats.memory_usage_bytes


def memory_percent(usage: int | None, limit: int | None, host_total: int | None) -> float | None:
    """Usage against the limit, or against the host's memory when there is none (docker)."""
    denominator = limit if limit is not None else host_total
    if usage is None or not denominator:
        return None
    return usage / denominator * 100.0


def sample_container(
    *, id: str, name: str, state: str, pid: int | None, command: str, elapsed_s: float,
    previous: cgroupfs.Stats | None, current: cgroupfs.Stats | None,
    host_memory_total: int | None, supervisor_pid: int | None = None,
) -> ContainerSample:
    if current is None:
        return ContainerSample(id, name, state, pid, command, elapsed_s, None, None, None, None,
                               None, supervisor_pid=supervisor_pid)
    usage = memory_usage(current)
    limit = current.memory_limit_bytes
    return ContainerSample(
        id=id, name=name, state=state, pid=pid, command=command, elapsed_s=elapsed_s,
        cpu_percent=cpu_percent(previous, current),
        memory_usage_bytes=usage, memory_limit_bytes=limit,
        memory_percent=memory_percent(usage, limit, host_memory_total),
        pids=current.pids_current,
        cpu_total_s=None if current.cpu_usage_ns is None else current.cpu_usage_ns / 1e9,
        supervisor_pid=supervisor_pid,
    )


def busiest_first(rows: list[ContainerSample]) -> list[ContainerSample]:
    """Highest CPU first (unknown last), then most memory: what a small screen shows."""
    return sorted(rows, key=lambda r: (r.cpu_percent is None, -(r.cpu_percent or 0.0),
                                       -(r.memory_usage_bytes or 0), r.name))
