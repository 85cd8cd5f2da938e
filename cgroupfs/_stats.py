"""Stats: one sample of a cgroup's counters, parsed purely from file texts.

Unknown values are ``None``, never 0: a missing file (an absent controller,
``memory.peak`` before Linux 5.19) or an unparsable one says nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: What a sample reads: "all" every figure; "live" what a live view shows each interval
#: (usage, limit, cache, CPU counter, pids); "final" what a finished container's result
#: needs (peak memory, OOM kills, user and system CPU time).
StatsMode = Literal["all", "live", "final"]

# v1 reports "no limit" as PAGE_COUNTER_MAX * PAGE_SIZE, e.g. 9223372036854771712.
_V1_UNLIMITED = 2**62

V1_STATS_FILES = (
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.stat",
    "memory.oom_control",
    "cpuacct.usage",
    "cpuacct.usage_user",
    "cpuacct.usage_sys",
    "cpuacct.stat",
    "cpu.stat",
    "pids.current",
    "pids.max",
)

# What a live view needs each interval (usage, limit, cache, CPU counter, pids):
# about half the reads of a full sample.
V1_LIVE_STATS_FILES = (
    "memory.usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.stat",
    "cpuacct.usage",
    "pids.current",
)
V2_LIVE_STATS_FILES = ("memory.current", "memory.max", "memory.stat", "cpu.stat", "pids.current")
# What a finished container's result needs: peak memory, OOM kills, user and system
# CPU time (each file of a new cgroup costs its first open ~20 us: no cpuacct.usage, and
# user and system from the one file that has both, per CPU).
V1_FINAL_STATS_FILES = (
    "memory.max_usage_in_bytes",
    "memory.oom_control",
    "cpuacct.usage_all",
)
V2_FINAL_STATS_FILES = ("memory.peak", "memory.events", "cpu.stat")

V2_STATS_FILES = (
    "memory.current",
    "memory.peak",
    "memory.max",
    "memory.stat",
    "memory.events",
    "cpu.stat",
    "pids.current",
    "pids.max",
)


@dataclass(frozen=True)
class Stats:
    """One sample; every counter is an int or ``None`` when unknown.

    ``sampled_at_ns`` is ``time.monotonic_ns()`` when the files were read.
    """

    memory_usage_bytes: int | None = None
    memory_peak_bytes: int | None = None
    memory_limit_bytes: int | None = None
    memory_inactive_file_bytes: int | None = None
    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    oom_kills: int | None = None
    oom_events: int | None = None
    throttled_periods: int | None = None
    total_periods: int | None = None
    throttled_ns: int | None = None
    sampled_at_ns: int | None = None


def _int(text: str | None) -> int | None:
    """A single-number file; "max" and garbage are None."""
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_flat_keyed(text: str | None) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events, ...) to a dict."""
    result: dict[str, int] = {}
    if text is None:
        return result
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def _scaled(value: int | None, factor: int) -> int | None:
    return None if value is None else value * factor


def parse_v1_stats(
    files: Mapping[str, str],
    *,
    clk_tck: int | None = None,
    sampled_at_ns: int | None = None,
) -> Stats:
    """Stats from cgroup v1 files, keyed by file name (see ``V1_STATS_FILES``).

    ``cpuacct.stat`` counts USER_HZ ticks (``clk_tck``, default
    ``os.sysconf("SC_CLK_TCK")``); ``cpuacct.usage_user``/``usage_sys``, or else
    ``cpuacct.usage_all`` (the same, per CPU), are nanoseconds and preferred.
    """
    memory_stat = parse_flat_keyed(files.get("memory.stat"))
    oom_control = parse_flat_keyed(files.get("memory.oom_control"))
    cpu_stat = parse_flat_keyed(files.get("cpu.stat"))

    limit = _int(files.get("memory.limit_in_bytes"))
    if limit is not None and limit >= _V1_UNLIMITED:
        limit = None

    user_ns = _int(files.get("cpuacct.usage_user"))
    system_ns = _int(files.get("cpuacct.usage_sys"))
    if user_ns is None or system_ns is None:
        user_ns, system_ns = _usage_all(files.get("cpuacct.usage_all"))
    if user_ns is None or system_ns is None:
        ticks = parse_flat_keyed(files.get("cpuacct.stat"))
        hz = clk_tck or os.sysconf("SC_CLK_TCK")
        if user_ns is None and "user" in ticks:
            user_ns = ticks["user"] * 1_000_000_000 // hz
        if system_ns is None and "system" in ticks:
            system_ns = ticks["system"] * 1_000_000_000 // hz

    inactive_file = memory_stat.get("total_inactive_file", memory_stat.get("inactive_file"))
    return Stats(
        memory_usage_bytes=_int(files.get("memory.usage_in_bytes")),
        memory_peak_bytes=_int(files.get("memory.max_usage_in_bytes")),
        memory_limit_bytes=limit,
        memory_inactive_file_bytes=inactive_file,
        cpu_usage_ns=_int(files.get("cpuacct.usage")),
        cpu_user_ns=user_ns,
        cpu_system_ns=system_ns,
        pids_current=_int(files.get("pids.current")),
        pids_limit=_int(files.get("pids.max")),
        oom_kills=oom_control.get("oom_kill"),
        oom_events=None,  # v1 has no count of OOM events, only under_oom (a state)
        throttled_periods=cpu_stat.get("nr_throttled"),
        total_periods=cpu_stat.get("nr_periods"),
        throttled_ns=cpu_stat.get("throttled_time"),
        sampled_at_ns=sampled_at_ns,
    )


def _usage_all(text: str | None) -> tuple[int | None, int | None]:
    """User and system nanoseconds summed over the CPUs of cpuacct.usage_all
    ("cpu user system" and a line per CPU); (None, None) if it is not that."""
    if text is None:
        return None, None
    lines = text.split("\n")
    if lines[0].split() != ["cpu", "user", "system"]:
        return None, None
    user = system = 0
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            return None, None
        user += int(fields[1])
        system += int(fields[2])
    return user, system


def parse_v2_stats(files: Mapping[str, str], *, sampled_at_ns: int | None = None) -> Stats:
    """Stats from cgroup v2 files, keyed by file name (see ``V2_STATS_FILES``)."""
    memory_stat = parse_flat_keyed(files.get("memory.stat"))
    events = parse_flat_keyed(files.get("memory.events"))
    cpu_stat = parse_flat_keyed(files.get("cpu.stat"))
    return Stats(
        memory_usage_bytes=_int(files.get("memory.current")),
        memory_peak_bytes=_int(files.get("memory.peak")),
        memory_limit_bytes=_int(files.get("memory.max")),
        memory_inactive_file_bytes=memory_stat.get("inactive_file"),
        cpu_usage_ns=_scaled(cpu_stat.get("usage_usec"), 1000),
        cpu_user_ns=_scaled(cpu_stat.get("user_usec"), 1000),
        cpu_system_ns=_scaled(cpu_stat.get("system_usec"), 1000),
        pids_current=_int(files.get("pids.current")),
        pids_limit=_int(files.get("pids.max")),
        oom_kills=events.get("oom_kill"),
        oom_events=events.get("oom"),
        throttled_periods=cpu_stat.get("nr_throttled"),
        total_periods=cpu_stat.get("nr_periods"),
        throttled_ns=_scaled(cpu_stat.get("throttled_usec"), 1000),
        sampled_at_ns=sampled_at_ns,
    )


def parse_cpu_max(text: str) -> tuple[int | None, int]:
    """v2 ``cpu.max`` ("QUOTA PERIOD", QUOTA may be "max") to (quota_us or None, period_us)."""
    quota, _, period = text.strip().partition(" ")
    return (None if quota == "max" else int(quota)), int(period or 100_000)
