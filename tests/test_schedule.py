"""Admission, retries and halting (pure)."""

from __future__ import annotations

import pytest

from supervisor._errors import UsageError
from supervisor._result import Status
from supervisor._schedule import (
    FAILED_STATUSES,
    Admission,
    HaltPolicy,
    parse_halt,
    parse_retry_on,
    retry_memory,
    should_retry,
)

MiB = 1 << 20


def test_admission_counts_jobs_and_memory() -> None:
    adm = Admission(max_jobs=3, memory_budget=100 * MiB)
    assert adm.can_start(40 * MiB, [])
    assert adm.can_start(40 * MiB, [40 * MiB])
    assert not adm.can_start(40 * MiB, [40 * MiB, 40 * MiB])  # 120 > 100
    assert adm.can_start(20 * MiB, [40 * MiB, 40 * MiB])
    assert not adm.can_start(0, [1, 1, 1])  # max_jobs
    assert adm.too_big(101 * MiB) and not adm.too_big(100 * MiB)


def test_jobs_without_a_limit_count_the_default_or_nothing() -> None:
    assert Admission(max_jobs=2, memory_budget=10).memory_of(None) == 0
    assert Admission(max_jobs=2, memory_budget=10, default_memory=7).memory_of(None) == 7
    assert Admission(max_jobs=2, memory_budget=10, default_memory=7).memory_of(3) == 3
    assert Admission(max_jobs=1).can_start(10**15, [])  # no budget: only the count matters


def test_retry_memory_grows_within_the_budget() -> None:
    assert retry_memory(32 * MiB, 4, None) == 128 * MiB
    assert retry_memory(32 * MiB, 4, 100 * MiB) == 100 * MiB
    assert retry_memory(None, 4, None) is None
    assert retry_memory(32 * MiB, 1, None) == 32 * MiB


def test_retry_decisions() -> None:
    on = parse_retry_on("oom,timeout")
    assert should_retry("oom", 1, 2, on) and should_retry("oom", 2, 2, on)
    assert not should_retry("oom", 3, 2, on)
    assert not should_retry("failed", 1, 2, on)
    assert not should_retry("ok", 1, 2, on)
    with pytest.raises(UsageError, match="--retry-on nope"):
        parse_retry_on("nope")


def test_failed_statuses_are_every_status_but_ok_and_cancelled() -> None:
    """One set: what --halt fail counts is what --retry-on may name."""
    assert set(Status) - {Status.OK, Status.CANCELLED} == FAILED_STATUSES
    assert parse_retry_on("failed,oom,timeout,signaled,error") == FAILED_STATUSES
    assert all(isinstance(s, Status) for s in parse_retry_on(" oom , timeout"))
    with pytest.raises(UsageError, match=r"expected a comma-separated list of "
                                          r"error, failed, oom, signaled, timeout$"):
        parse_retry_on("cancelled")


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("never", None),
        ("now,fail=1", HaltPolicy("now", "fail", count=1)),
        ("soon,fail=5%", HaltPolicy("soon", "fail", percent=5.0)),
        ("soon,oom=10%", HaltPolicy("soon", "oom", percent=10.0)),
        ("now,success=3", HaltPolicy("now", "success", count=3)),
        ("2", HaltPolicy("now", "fail", count=1)),
    ],
)
def test_parse_halt(text: str, policy: HaltPolicy | None) -> None:
    assert parse_halt(text) == policy


@pytest.mark.parametrize("text", ["sometimes", "now", "now,fail", "now,fail=0", "later,fail=1",
                                  "now,bad=1", "soon,fail=0%", "soon,fail=101%", "now,fail=x"])
def test_parse_halt_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--halt"):
        parse_halt(text)


def test_halt_triggers() -> None:
    fail1 = HaltPolicy("now", "fail", count=1)
    assert not fail1.triggered({"ok": 5}, 10)
    assert fail1.triggered({"ok": 5, "timeout": 1}, 10)
    pct = HaltPolicy("soon", "fail", percent=20)
    assert not pct.triggered({"failed": 1}, 10)
    assert pct.triggered({"failed": 1, "oom": 1}, 10)
    oom = HaltPolicy("soon", "oom", percent=10)
    assert not oom.triggered({"failed": 5}, 10) and oom.triggered({"oom": 1}, 10)
    done = HaltPolicy("soon", "done", count=3)
    assert done.triggered({"ok": 2, "failed": 1}, 10)
