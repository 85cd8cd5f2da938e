"""File descriptors: the limit supervise works within, and how many a batch needs.

Each running container holds one descriptor in the supervisor (its pidfd, to signal
it) and one in the spawner (its pidfd, to reap it); starts in flight hold a few more.
Both processes raise their soft RLIMIT_NOFILE to the hard limit (no privilege needed;
never above it); the containers get the soft limit supervise was started with.
"""

from __future__ import annotations

import resource
from typing import Final

__all__ = ["STARTED_SOFT", "fd_shortfall", "needed", "raise_soft_limit"]

# as this process was started (this module is imported before any raise): what the
# containers get back
STARTED_SOFT, _STARTED_HARD = resource.getrlimit(resource.RLIMIT_NOFILE)

# Besides the containers': the interpreter's, the socket, the epoll set, the journal,
# the results files, a sampler's... (counted on a running batch: 13 and 9).
BASE: Final = 32
# The spawner takes up to 32 starts at a time (nsutil.spawner.GROUP_MAX), each with
# its error pipe and what came with it (stdio, a v2 cgroup's directories): 5 or so.
IN_FLIGHT: Final = 32
PER_START: Final = 5


def raise_soft_limit() -> int:
    """This process's soft RLIMIT_NOFILE raised to its hard limit; the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def needed(concurrency: int, *, logs: bool, tag: bool) -> tuple[int, int]:
    """Descriptors the supervisor and the spawner need for `concurrency` containers
    running at once: a pidfd each in both; in the supervisor, while they start, their
    log files (--logs) or both ends of their output pipes, kept open (--tag)."""
    return (BASE + _per_container(logs, tag) * concurrency,
            BASE + PER_START * min(IN_FLIGHT, concurrency) + concurrency)


def fd_shortfall(concurrency: int, limit: int, *, logs: bool, tag: bool) -> str | None:
    """Why `concurrency` containers cannot all run at once within `limit` descriptors
    (a process's hard RLIMIT_NOFILE), and the concurrency that can; None if they can."""
    supervisor, spawner = needed(concurrency, logs=logs, tag=tag)
    if max(supervisor, spawner) <= limit:
        return None
    low, high = 0, concurrency  # the most that fit: needed() grows with concurrency
    while low < high:
        middle = (low + high + 1) // 2
        if max(needed(middle, logs=logs, tag=tag)) <= limit:
            low = middle
        else:
            high = middle - 1
    most = low
    fits = f"-j {most} fits" if most > 0 else "not even one job fits"
    return (f"{concurrency} jobs at once need about {max(supervisor, spawner)} file "
            f"descriptors in one process; the limit is {limit} (ulimit -Hn): {fits}")


def _per_container(logs: bool, tag: bool) -> int:
    return 1 + (2 if logs else 0) + (4 if tag else 0)
