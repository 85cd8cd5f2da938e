"""The end-of-batch summary and GNU parallel's joblog lines, from results alone (pure)."""

from __future__ import annotations

import heapq
import re
import shlex
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._result import STATUSES, Result, Status, parse_iso_utc
from ._units import format_bytes

JOBLOG_HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"


@dataclass(frozen=True)
class Summary:
    counts: dict[Status, int]
    total: int
    slowest: list[Result]
    largest: list[Result]
    cpu_user_s: float
    cpu_system_s: float
    #: where the failed jobs could write, when they saw the host's files read-only
    #: (None: none did; () when that differs from job to job)
    failed_writable: tuple[str, ...] | None = None

    @property
    def all_ok(self) -> bool:
        return self.counts.get(Status.OK, 0) == self.total


def summarize(results: Iterable[Result], top: int = 3) -> Summary:
    tally = Tally(top)
    for result in results:
        tally.add(result)
    return tally.summary()


class Tally:
    """A summary kept as results come, in constant memory (counts, sums, the top few):
    a batch of a million jobs keeps no list of them."""

    def __init__(self, top: int = 3) -> None:
        self.top = top
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.cpu_user_s = 0.0
        self.cpu_system_s = 0.0
        # min-heaps of the top few (key, -arrival, result): the smallest goes first, and
        # of equals the latest, as a stable sort by key, largest first, would keep them
        self._slowest: list[tuple[float, int, Result]] = []
        self._largest: list[tuple[int, int, Result]] = []
        self._writable: set[tuple[str, ...]] = set()  # two at most: then they differ

    def add(self, result: Result) -> None:
        self.total += 1
        self.counts[result.status] += 1
        self.cpu_user_s += result.cpu_user_s or 0.0
        self.cpu_system_s += result.cpu_system_s or 0.0
        _keep(self._slowest, (result.wall_s, -self.total, result), self.top)
        if result.peak_memory_bytes is not None:
            _keep(self._largest, (result.peak_memory_bytes, -self.total, result), self.top)
        if (result.status == Status.FAILED and result.writable is not None
                and list(result.writable) != ["/"] and len(self._writable) < 2):
            self._writable.add(tuple(result.writable))

    def summary(self) -> Summary:
        writable = (None if not self._writable else
                    next(iter(self._writable)) if len(self._writable) == 1 else ())
        return Summary(
            counts={status: self.counts[status] for status in STATUSES if self.counts[status]},
            total=self.total,
            slowest=[r for _, _, r in sorted(self._slowest, reverse=True)],
            largest=[r for _, _, r in sorted(self._largest, reverse=True)],
            cpu_user_s=self.cpu_user_s, cpu_system_s=self.cpu_system_s,
            failed_writable=writable)


def _keep(heap: list[tuple[Any, int, Result]], entry: tuple[Any, int, Result], top: int
          ) -> None:
    if len(heap) < top:
        heapq.heappush(heap, entry)
    elif entry[:2] > heap[0][:2]:
        heapq.heapreplace(heap, entry)


def format_summary(summary: Summary, wall_s: float, not_run: int = 0) -> list[str]:
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items()) or "none"
    lines = [f"{summary.total} jobs: {counts}" + (f"; {not_run} not run" if not_run else "")]
    lines.append(
        f"wall {wall_s:.1f}s, cpu {summary.cpu_user_s + summary.cpu_system_s:.1f}s "
        f"(user {summary.cpu_user_s:.1f}s, system {summary.cpu_system_s:.1f}s)")
    if summary.slowest:
        lines.append("slowest: " + ", ".join(
            f"{r.name} {r.wall_s:.2f}s" for r in summary.slowest))
    if summary.largest:
        lines.append("largest peak memory: " + ", ".join(
            f"{r.name} {format_bytes(r.peak_memory_bytes or 0)}" for r in summary.largest))
    if summary.failed_writable is not None:
        where = (" ".join(summary.failed_writable) if summary.failed_writable
                 else "what each result's writable says")
        lines.append(f"jobs see the host's files read-only (EROFS); the failed ones could "
                     f"write to {where} (-v HOST:PATH for more)")
    return lines


def _spaced(size: str) -> str:
    """'64MiB' -> '64 MiB', for prose."""
    unit_at = len(size.rstrip("KMGTPEiB"))
    return f"{size[:unit_at]} {size[unit_at:]}"


def end_message(result: Result, timeout: float | None) -> str | None:
    """The line that says why a container ended badly (None when there is nothing to say
    beyond its exit status)."""
    if result.oom_killed:
        limit = result.memory_limit_bytes
        detail = f" (limit {_spaced(format_bytes(limit))})" if limit is not None else ""
        return f"{result.name} was killed: out of memory{detail}"
    if result.timed_out:
        after = f" after {timeout:g}s" if timeout is not None else ""
        return f"{result.name} timed out{after} and was stopped"
    if result.error:
        return result.error
    return None


def joblog_line(seq: int, result: Result, host: str = ":") -> str:
    """One line of `parallel --joblog`: Seq Host Starttime JobRuntime Send Receive
    Exitval Signal Command (Exitval is the exit status, Signal the killing signal; a
    job --timeout stopped is Exitval -1 and Signal 15, its TERM, as GNU parallel logs
    one, whatever ended it after)."""
    if result.timed_out:
        return _joblog(seq, result, host, -1, signal.SIGTERM)
    exitval = result.exit_code if result.exit_code is not None and result.signal is None else 0
    if result.signal is None and result.exit_code is None:
        exitval = -1
    return _joblog(seq, result, host, exitval, result.signal or 0)


def _joblog(seq: int, result: Result, host: str, exitval: int, sig: int) -> str:
    command = shlex.join(result.argv).replace("\t", " ").replace("\n", " ")
    return (f"{seq}\t{host}\t{parse_iso_utc(result.started_at):.3f}\t{result.wall_s:.3f}\t0\t0\t"
            f"{exitval}\t{sig}\t{command}")


class SameErrors:
    """Each job's error said as it comes, but only the first SHOWN of a kind (the same
    message, container ids aside): a thousand jobs that fail alike are three lines and
    one that says how many more there were (`rest`, at the end)."""

    SHOWN = 3

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.example: dict[str, str] = {}

    def say(self, name: str, error: str) -> str | None:
        """The line to say now for a job that ended in error, None if it is one too many."""
        kind = _CONTAINER_ID.sub("…", error)
        self.counts[kind] += 1
        self.example.setdefault(kind, error)
        return f"{name}: {error}" if self.counts[kind] <= self.SHOWN else None

    def rest(self) -> list[str]:
        return [f"{n - self.SHOWN} more jobs ended with the same error: {self.example[kind]}"
                for kind, n in self.counts.items() if n > self.SHOWN]


_CONTAINER_ID = re.compile(r"\b[0-9a-f]{12}\b")
