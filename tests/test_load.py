"""Load: a thousand jobs with mixed endings, and jobs whose I/O could stall a batch.

"1000 jobs at -j 32 with mixed exits, 10% OOM and 10% timeouts: 1000 correct
records, and zero leaked cgroups, processes, fds or state files" (conftest's
autouse no_leaks fixture checks the session's cgroups, processes, state files and
fds after each test). Run with -s to see the figures.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from supervisor import ContainerSpec, Supervisor
from supervisor._batch import run_batch
from supervisor._batch_job import BatchJob, BatchPolicy
from supervisor._schedule import Admission

from .containers import PYTHON, supervise

pytestmark = [pytest.mark.hardening, pytest.mark.slow, pytest.mark.usefixtures("root_only")]

EXIT_CODES = (0, 0, 0, 1, 2, 3, 42, 127, 128, 255)


def expected_for(line: int) -> tuple[str, str]:
    """(jobs-file line, expected kind) for line number `line` (1-based)."""
    i = line - 1
    if i % 10 == 3:
        return (f"-m 16m --memory-swap 16m -- {PYTHON} -c 'x = bytearray(100 << 20)'", "oom")
    if i % 10 == 7:
        return "--timeout 0.3s -- sleep 10", "timeout"
    code = EXIT_CODES[(i * 7) % len(EXIT_CODES)]
    return f"sh -c 'exit {code}'", f"exit {code}"


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_thousand_mixed_jobs_at_j32(tmp_path: Path) -> None:
    total = 1000
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(expected_for(n)[0] + "\n" for n in range(1, total + 1)))
    results = tmp_path / "results.jsonl"
    started = time.monotonic()
    done = supervise("batch", str(jobs), "-j", "32", "--results", str(results), "--no-live",
                     timeout=600)
    wall = time.monotonic() - started
    print(f"\n[load] {total} jobs at -j 32: {wall:.1f}s wall, {total / wall:.0f} jobs/s")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr

    got = records(results)
    assert len(got) == total
    by_line = {int(str(r["line"])): r for r in got}
    assert sorted(by_line) == list(range(1, total + 1))
    wrong = []
    for line, record in sorted(by_line.items()):
        kind = expected_for(line)[1]
        status, code = record["status"], record["exit_code"]
        if kind == "oom":
            ok = status == "oom" and record["oom_killed"] is True and code == 137
        elif kind == "timeout":
            ok = status == "timeout" and record["timed_out"] is True
        else:
            want = int(kind.split()[1])
            ok = (status, code) == ("ok" if want == 0 else "failed", want)
            ok = ok and record["oom_killed"] is False and record["timed_out"] is False
        for key in ("wall_s", "cpu_user_s", "cpu_system_s", "peak_memory_bytes"):
            ok = ok and record[key] is not None
        ok = ok and record["name"] == f"job-{line}" and record["attempts"] == 1
        if not ok:
            wrong.append((line, kind, record))
    assert not wrong, f"{len(wrong)} wrong records, first: {wrong[:3]}"
    counts = {s: sum(1 for r in got if r["status"] == s) for s in ("oom", "timeout")}
    assert counts == {"oom": 100, "timeout": 100}
    timeouts = [float(str(r["wall_s"])) for r in got if r["status"] == "timeout"]
    assert max(timeouts) < 3, max(timeouts)  # killed near 0.3s, not after sleep's 10s
    assert f"{total} jobs:" in done.stderr


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.trio
async def test_five_hundred_jobs_in_process_leave_no_fd() -> None:
    """As `supervise batch` runs them: on trio."""
    jobs = [BatchJob(f"t{i}", ContainerSpec(["true"], name=f"t{i}")) for i in range(500)]
    before = _fd_count()
    started = time.monotonic()
    async with Supervisor() as sup:
        outcome = await run_batch(sup, jobs, BatchPolicy(Admission(max_jobs=16)))
    statuses = [r.status for r in outcome.results]
    wall = time.monotonic() - started
    after = _fd_count()
    print(f"\n[load] 500 x true in-process at -j 16: {wall:.1f}s, {500 / wall:.0f} jobs/s; "
          f"fds {before} -> {after}")
    assert statuses == ["ok"] * 500
    assert after == before, sorted(os.listdir("/proc/self/fd"))


def test_big_output_and_stdin_at_eof_stall_nothing(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name big -- head -c 100000000 /dev/zero\n--name cat -- cat\n"
                    + "true\n" * 20)
    results, logs = tmp_path / "results.jsonl", tmp_path / "logs"
    started = time.monotonic()
    done = supervise("batch", str(jobs), "-j", "4", "--logs", str(logs), "--results",
                     str(results), "--no-live", timeout=120)
    wall = time.monotonic() - started
    print(f"\n[load] 100 MB to a log + cat at EOF + 20 x true: {wall:.1f}s wall")
    assert done.returncode == 0, done.stderr
    got = {str(r["name"]): r for r in records(results)}
    assert len(got) == 22 and all(r["status"] == "ok" for r in got.values())
    assert (logs / "big.out").stat().st_size == 100_000_000
    cat_wall = float(str(got["cat"]["wall_s"]))
    print(f"[load] cat wall {cat_wall:.3f}s, big wall {float(str(got['big']['wall_s'])):.2f}s")
    assert cat_wall < 2
    assert wall < 60
