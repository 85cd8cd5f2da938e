"""Batch scheduling decisions, as pure functions: admission, retries, halting."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ._errors import UsageError
from ._result import Status

# A job that ran and did not succeed: what --halt fail counts, what --retry-on may name
# (and retries by default). Not ok, and not cancelled: a cancelled job was stopped by
# the user or a halt, not failed by itself.
FAILED_STATUSES: Final[frozenset[Status]] = frozenset(
    {Status.FAILED, Status.OOM, Status.TIMEOUT, Status.SIGNALED, Status.ERROR})


@dataclass(frozen=True)
class Admission:
    """At most max_jobs at once; with a budget, the memory limits of the running jobs
    plus the next one's must fit it (a job without a limit counts default_memory, or 0)."""

    max_jobs: int
    memory_budget: int | None = None
    default_memory: int | None = None

    def memory_of(self, limit: int | None) -> int:
        if limit is not None:
            return limit
        return self.default_memory or 0

    def can_start(self, memory: int, running: Iterable[int]) -> bool:
        held = list(running)
        if len(held) >= self.max_jobs:
            return False
        return self.memory_budget is None or sum(held) + memory <= self.memory_budget

    def too_big(self, memory: int) -> bool:
        return self.memory_budget is not None and memory > self.memory_budget


def retry_memory(limit: int | None, factor: float, budget: int | None) -> int | None:
    """The memory limit for the next attempt after an OOM: factor times, within the budget."""
    if limit is None or factor <= 1:
        return limit
    raised = int(limit * factor)
    return min(raised, budget) if budget is not None else raised


def parse_retry_on(text: str) -> frozenset[Status]:
    reasons = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not reasons or not reasons <= FAILED_STATUSES:
        raise UsageError(
            f"--retry-on {text}: expected a comma-separated list of "
            f"{', '.join(sorted(FAILED_STATUSES))}")
    return frozenset(Status(reason) for reason in reasons)


def should_retry(status: Status, attempt: int, retries: int, retry_on: frozenset[str]) -> bool:
    return status in retry_on and attempt <= retries


@dataclass(frozen=True)
class HaltPolicy:
    """GNU parallel's --halt: when=soon stops starting jobs, when=now also stops the
    running ones, once `condition` jobs reach `count` (or `percent` of all jobs)."""

    when: Literal["soon", "now"]
    condition: Literal["fail", "success", "done", "oom"]
    count: int | None = None
    percent: float | None = None

    def triggered(self, counts: Mapping[str, int], total: int) -> bool:
        if self.condition == "fail":
            reached = sum(counts.get(s, 0) for s in FAILED_STATUSES)
        elif self.condition == "success":
            reached = counts.get(Status.OK, 0)
        elif self.condition == "oom":
            reached = counts.get(Status.OOM, 0)
        else:
            reached = sum(counts.values())
        if reached == 0:
            return False
        if self.count is not None:
            return reached >= self.count
        assert self.percent is not None
        return reached >= math.ceil(total * self.percent / 100)


def parse_halt(text: str) -> HaltPolicy | None:
    """`never`, or `now|soon,fail|success|done|oom=N|P%` (also parallel's `now,fail=1`
    shorthand forms `1` = soon,fail=1 and `2` = now,fail=1)."""
    value = text.strip()
    if value in ("never", "0"):
        return None
    if value == "1":
        return HaltPolicy("soon", "fail", count=1)
    if value == "2":
        return HaltPolicy("now", "fail", count=1)
    expected = (f"--halt {text}: expected never, or soon|now,fail|success|done|oom=N or =N% "
                "(e.g. now,fail=1 or soon,fail=5%)")
    try:
        when, rest = value.split(",", 1)
        condition, amount = rest.split("=", 1)
    except ValueError:
        raise UsageError(expected) from None
    if when not in ("soon", "now") or condition not in ("fail", "success", "done", "oom"):
        raise UsageError(expected)
    try:
        if amount.endswith("%"):
            percent = float(amount[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return HaltPolicy(when, condition, percent=percent)  # type: ignore[arg-type]
        count = int(amount)
        if count < 1:
            raise ValueError
        return HaltPolicy(when, condition, count=count)  # type: ignore[arg-type]
    except ValueError:
        raise UsageError(expected) from None
