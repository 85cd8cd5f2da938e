"""The end-of-batch summary, kept as results come (_summary.Tally): the same as sorting
them all, in constant memory."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from supervisor._result import Result
from supervisor._summary import Tally, summarize

_BASE = Result(name="x", line=1, argv=["true"], status="ok", exit_code=0, signal=None,
               oom_killed=False, timed_out=False, attempts=1,
               started_at="2026-01-01T00:00:00Z", ended_at="2026-01-01T00:00:00Z",
               wall_s=0.0, cpu_user_s=0.5, cpu_system_s=0.25, peak_memory_bytes=None,
               memory_limit_bytes=None, stdout_path=None, stderr_path=None, error=None)


@given(st.lists(st.tuples(st.sampled_from([0.1, 0.2, 1.0, 3.0]),
                          st.sampled_from([None, 5, 7, 9]),
                          st.sampled_from(["ok", "failed", "oom"])), max_size=40))
def test_the_tally_is_the_sorted_top_and_the_counts(jobs: list[tuple[float, int | None, str]]
                                                    ) -> None:
    results = [dataclasses.replace(_BASE, name=f"job-{n}", wall_s=wall, peak_memory_bytes=peak,
                                   status=status)
               for n, (wall, peak, status) in enumerate(jobs)]
    summary = summarize(results)
    assert summary.slowest == sorted(results, key=lambda r: r.wall_s, reverse=True)[:3]
    assert summary.largest == sorted([r for r in results if r.peak_memory_bytes is not None],
                                     key=lambda r: r.peak_memory_bytes or 0, reverse=True)[:3]
    assert summary.total == len(results)
    assert sum(summary.counts.values()) == len(results)
    assert summary.cpu_user_s == 0.5 * len(results)


def test_a_tally_keeps_no_list_of_results() -> None:
    tally = Tally()
    for n in range(10_000):
        tally.add(dataclasses.replace(_BASE, name=f"job-{n}", wall_s=n % 97, peak_memory_bytes=n))
    held = [v for v in vars(tally).values() if isinstance(v, (list, set, dict))]
    assert max(len(v) for v in held) <= 3
    assert [r.name for r in tally.summary().largest] == ["job-9999", "job-9998", "job-9997"]
