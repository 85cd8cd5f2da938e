"""The end-of-batch summary and GNU parallel's joblog lines, from results alone (pure)."""

from __future__ import annotations

import shlex
import signal
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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


def summarize(results: Sequence[Result], top: int = 3) -> Summary:
    counts = Counter(r.status for r in results)
    with_peak = [r for r in results if r.peak_memory_bytes is not None]
    return Summary(
        counts={status: counts[status] for status in STATUSES if counts[status]},
        total=len(results),
        slowest=sorted(results, key=lambda r: r.wall_s, reverse=True)[:top],
        largest=sorted(with_peak, key=lambda r: r.peak_memory_bytes or 0, reverse=True)[:top],
        cpu_user_s=sum(r.cpu_user_s or 0.0 for r in results),
        cpu_system_s=sum(r.cpu_system_s or 0.0 for r in results),
        failed_writable=_failed_writable(results),
    )


def _failed_writable(results: Sequence[Result]) -> tuple[str, ...] | None:
    """What the failed jobs could write to, for the reader of an EROFS in their logs."""
    seen = {tuple(r.writable) for r in results
            if r.status == Status.FAILED and r.writable is not None and list(r.writable) != ["/"]}
    if not seen:
        return None
    return seen.pop() if len(seen) == 1 else ()


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
