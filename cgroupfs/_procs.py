"""Process-level helpers shared by the v1 and v2 backends: pid lists, signals, bounded waits."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable


def parse_procs(text: str | None) -> list[int]:
    """A cgroup.procs text to pids (a missing file is an empty cgroup)."""
    if text is None:
        return []
    return [int(line) for line in text.split() if line.isdigit()]


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    """Signal each pid; ones that are already gone are fine."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 0.05)
