"""`supervise batch` with real containers, and the run_batch API."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from supervisor import ContainerSpec, Limits, Supervisor
from supervisor._batch import run_batch
from supervisor._batch_job import BatchJob, BatchPolicy
from supervisor._schedule import Admission
from supervisor._state import read_states, state_dir

from .conftest import container_cgroups
from .containers import PYTHON, supervise

pytestmark = pytest.mark.usefixtures("root_only")


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_name(path: Path) -> dict[str, dict[str, object]]:
    return {str(r["name"]): r for r in records(path)}


def test_the_example_batch(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(1 << 20))
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"""# jobs.txt
--name small -m 64m -- {PYTHON} -c 'print(sum(range(10**6)))'
--name hog -m 32m -- {PYTHON} -c 'x = bytearray(200 << 20)'
--name spin --cpus 0.5 --timeout 2s -- sh -c 'while :; do :; done'
gzip -9 -k {data}
""")
    results, logs = tmp_path / "results.jsonl", tmp_path / "logs"
    done = supervise("batch", str(jobs), "-j", "4", "-v", ".", "--results", str(results),
                     "--logs", str(logs), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    got = by_name(results)
    assert set(got) == {"small", "hog", "spin", "job-5"}
    assert got["small"]["status"] == "ok"
    assert (logs / "small.out").read_text() == f"{sum(range(10**6))}\n"
    hog = got["hog"]
    assert (hog["status"], hog["oom_killed"], hog["exit_code"]) == ("oom", True, 137)
    spin = got["spin"]
    assert (spin["status"], spin["timed_out"]) == ("timeout", True)
    assert isinstance(spin["wall_s"], float) and spin["wall_s"] < 2.5
    assert got["job-5"]["status"] == "ok" and Path(f"{data}.gz").exists()
    for record in got.values():
        for key in ("wall_s", "cpu_user_s", "cpu_system_s", "peak_memory_bytes"):
            assert record[key] is not None, (record["name"], key)
        assert Path(str(record["stdout_path"])).exists()
        assert Path(str(record["stderr_path"])).exists()
    assert "hog was killed: out of memory (limit 32 MiB)" in done.stderr
    assert "4 jobs: 2 ok, 1 oom, 1 timeout" in done.stderr
    assert "slowest: spin" in done.stderr


def test_two_hundred_jobs_leave_nothing_behind(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\n" * 200)
    results = tmp_path / "r.jsonl"
    done = supervise("batch", str(jobs), "-j", "8", "--results", str(results), timeout=300)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in records(results)] == ["ok"] * 200
    assert "200 jobs: 200 ok" in done.stderr
    # The autouse no_leaks fixture checks cgroups, processes and spawners.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("true\n--memroy 64m -- true\n", ":2: No such option '--memroy'"),
        ("-m 12x -- true\n", ":1: -m/--memory: invalid size '12x'"),
        ("true\necho 'open\n", ":2: unterminated quote"),
        ("-m 64m --\n", ":1: no command"),
        ("--name a -- true\n--name a -- true\n", ":2: duplicate name 'a'"),
        ("-m 1t -- true\n", ":1: memory limit 1TiB exceeds the memory budget"),
    ],
)
def test_bad_jobs_files_start_nothing(tmp_path: Path, text: str, message: str) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(text)
    results = tmp_path / "r.jsonl"
    before = container_cgroups()
    done = supervise("batch", str(jobs), "--results", str(results))
    assert done.returncode == 2
    assert f"supervise: {jobs}{message}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not results.exists()
    assert container_cgroups() == before


def test_bad_options_and_bad_values_are_reported_together(tmp_path: Path) -> None:
    """A line's unknown option and another line's bad value: one run says both, in
    the file's order (they are found by two checks), and nothing runs."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("-m lots -- true\n--memroy 5 -- true\ntrue\n--cpus x -- true\n")
    done = supervise("batch", str(jobs), "--no-live")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert [line.split(":")[2] for line in lines] == ["1", "2", "4"], done.stderr
    assert all(line.startswith(f"supervise: {jobs}:") for line in lines)


def test_a_batch_does_not_die_of_a_stray_signal(tmp_path: Path) -> None:
    """USR1, USR2, ALRM and a real-time signal: the batch says once that it ignores
    each, and its jobs finish ok (they used to end supervise and orphan them)."""
    sig = signal
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sleep 1\nsleep 1\n")
    proc = subprocess.Popen([PYTHON, "-m", "supervisor", "batch", "--no-live", str(jobs)],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.6)
    for s in (sig.SIGUSR1, sig.SIGUSR1, sig.SIGUSR2, sig.SIGALRM, sig.SIGRTMIN + 1):
        proc.send_signal(s)
        time.sleep(0.05)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "2 jobs: 2 ok" in err
    assert err.count("SIGUSR1 ignored") == 1 and "SIGUSR2 ignored" in err
    assert f"signal {int(sig.SIGRTMIN) + 1} ignored" in err


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[Path]:
    """A tiny tmpfs, filled up: no space and no inodes left."""
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=8", "tmpfs", str(mount)],
                   check=True)
    try:
        (mount / "logs").mkdir()
        n = 0
        with contextlib.suppress(OSError):
            while True:  # the inodes
                (mount / f"f{n}").touch()
                n += 1
        with contextlib.suppress(OSError), open(mount / "f0", "wb") as f:  # the blocks
            f.write(b"x" * (1 << 20))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.usefixtures("root_only")
def test_a_full_disk_loses_records_not_the_batch(tmp_path: Path, full_fs: Path) -> None:
    """--results, --joblog and --stats-json on a full file system: one warning each, every
    job runs, and the batch does not report success: it says how many records were lost
    (it was an internal error before anything ran, or an exit 0 with records missing)."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\nfalse\nsleep 0.3\n")
    done = supervise("batch", "--no-live", "--results", str(full_fs / "r.jsonl"),
                     "--joblog", str(full_fs / "joblog"), "--stats-json",
                     str(full_fs / "stats.json"), "--interval", "0.1s", str(jobs))
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.returncode == 125, done.stderr
    assert "3 jobs: 2 ok, 1 failed" in done.stderr
    for name in ("r.jsonl", "joblog", "stats.json"):
        assert done.stderr.count(f"{full_fs / name}: No space left on device") == 1, name
    assert f"3 of 3 records were not written to {full_fs / 'r.jsonl'}" in done.stderr
    assert f"3 of 3 records were not written to {full_fs / 'joblog'}" in done.stderr


@pytest.mark.usefixtures("root_only")
def test_a_logs_directory_out_of_inodes_is_one_warning(tmp_path: Path, full_fs: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("echo a\necho b\n")
    done = supervise("batch", "--no-live", "--logs", str(full_fs / "logs"), str(jobs))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("--logs") == 1, done.stderr


def test_an_endless_jobs_file_is_refused_not_read_forever() -> None:
    """/dev/zero grew supervise to 1.8 GiB in 7 s and ended in a MemoryError; endless
    stdin likewise. Now: FILE:LINE and exit 2, at once, with nothing run."""
    zero = supervise("batch", "/dev/zero", timeout=30)
    assert zero.returncode == 2
    assert zero.stderr.startswith("supervise: /dev/zero:1: a line longer than")
    endless = subprocess.Popen([PYTHON, "-m", "supervisor", "batch", "-"],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert endless.stdin is not None and endless.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        while endless.poll() is None:
            endless.stdin.write(b"true\n" * 100_000)
    assert endless.wait(timeout=30) == 2
    assert b"more than 1000000 lines" in endless.stderr.read()
    with contextlib.suppress(BrokenPipeError):
        endless.stdin.close()
    endless.stderr.close()


def test_bad_batch_flags_exit_2(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\n")
    for args in (["--halt", "sometimes"], ["-j", "0"], ["--memory-budget", "lots"],
                 ["--retry-on", "bad"], ["--resume"], ["--frobnicate"]):
        done = supervise("batch", str(jobs), *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("supervise: ") and len(done.stderr.splitlines()) == 1
    missing = supervise("batch", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "nope.txt" in missing.stderr


def test_memory_budget_limits_concurrency(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("-m 40m -- sleep 0.5\n" * 10)
    results = tmp_path / "r.jsonl"
    done = supervise("batch", str(jobs), "-j", "8", "--memory-budget", "100m",
                     "--results", str(results))
    assert done.returncode == 0, done.stderr
    spans = [(str(r["started_at"]), str(r["ended_at"])) for r in records(results)]
    assert len(spans) == 10
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans],
                    key=lambda ev: (ev[0], ev[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2


def test_oom_retry_with_more_memory(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"--name grow -m 32m --memory-swap 32m -- {PYTHON} -c "
                    "'x = bytearray(60 << 20); print(len(x))'\n")
    results = tmp_path / "r.jsonl"
    done = supervise("batch", str(jobs), "--retries", "2", "--retry-memory-factor", "4",
                     "--retry-on", "oom", "--results", str(results))
    assert done.returncode == 0, done.stderr
    (record,) = records(results)
    assert (record["status"], record["attempts"]) == ("ok", 2)
    assert record["memory_limit_bytes"] == 128 << 20
    assert "grow: attempt 2 with -m 128MiB" in done.stderr


def test_halt_now_cancels_the_running_jobs(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name slow -- sleep 30\nsh -c 'sleep 0.3; exit 1'\n" + "sleep 30\n" * 5)
    results = tmp_path / "r.jsonl"
    started = time.monotonic()
    done = supervise("batch", str(jobs), "-j", "2", "--halt", "now,fail=1",
                     "--stop-timeout", "1s", "--results", str(results))
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    got = by_name(results)
    assert got["job-2"]["status"] == "failed"
    assert got["slow"]["status"] == "cancelled"
    assert len(got) == 2  # the other five never started
    assert "5 not run" in done.stderr


def _run_batch_in_background(jobs: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-m", "supervisor", "batch", str(jobs), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lines(path: Path, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {count} lines")


def _wait_for_running(prefix: str, count: int, timeout: float = 30) -> None:
    """Until the state directory lists ``count`` live containers named ``prefix...``."""
    deadline = time.monotonic() + timeout
    while sum(s.name.startswith(prefix) for s in read_states()) < count:
        assert time.monotonic() < deadline, f"{count} {prefix}* containers never ran"
        time.sleep(0.02)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                         (signal.SIGHUP, 129)])
def test_interrupt_then_resume(tmp_path: Path, sig: int, code: int) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"--name quick{i} -- true\n" for i in range(4))
                    + "".join(f"--name slow{i} -- sleep 30\n" for i in range(6)))
    results = tmp_path / "r.jsonl"
    proc = _run_batch_in_background(jobs, "-j", "4", "--results", str(results),
                                    "--stop-timeout", "1s")
    _wait_for_lines(results, 4)
    _wait_for_running("slow", 4)  # -j 4: the quick ones are done, four slow ones run
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    first = records(results)  # valid JSON Lines, every line
    statuses = {str(r["name"]): r["status"] for r in first}
    assert all(statuses[f"quick{i}"] == "ok" for i in range(4))
    assert {s for n, s in statuses.items() if n.startswith("slow")} == {"cancelled"}
    assert len(statuses) == 8 and "2 not run" in err  # -j 4: two slow ones never started
    # Rerun: only what is not ok yet runs (cut short by a timeout this time).
    again = supervise("batch", str(jobs), "--resume", "--results", str(results),
                      "--timeout", "0.2s", "--retries", "0")
    ran = records(results)[len(first):]
    assert sorted(str(r["name"]) for r in ran) == [f"slow{i}" for i in range(6)]
    assert "4 jobs skipped: already ok" in again.stderr


def test_joblog_in_parallels_format(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    # sleep as PID 1 has no SIGTERM handler: at its timeout it is SIGKILLed at once.
    jobs.write_text("true\nsh -c 'exit 3'\n--timeout 0.3s -- sleep 5\n")
    joblog = tmp_path / "joblog"
    supervise("batch", str(jobs), "-j", "1", "--joblog", str(joblog))
    header, *lines = joblog.read_text().splitlines()
    assert header.split("\t") == ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive",
                                  "Exitval", "Signal", "Command"]
    rows = [line.split("\t") for line in lines]
    # a job --timeout stopped: Exitval -1, Signal 15 (its TERM), as GNU parallel logs it
    assert [(r[0], r[6], r[7]) for r in rows] == [("1", "0", "0"), ("2", "3", "0"),
                                                  ("3", "-1", "15")]
    assert rows[1][8] == "sh -c 'exit 3'" and rows[2][8] == "sleep 5"
    assert float(rows[0][2]) > 1.7e9 and float(rows[0][3]) >= 0


def test_joblog_seq_is_the_jobs_place_in_the_input(tmp_path: Path) -> None:
    """Seq numbers the jobs as they come in the file (comments and blank lines do not
    count), not as they finish: GNU parallel's --resume relies on it."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("# slow first\nsleep 0.6\n\nsleep 0.3\ntrue\n")
    joblog = tmp_path / "joblog"
    done = supervise("batch", str(jobs), "-j", "3", "--no-live", "--joblog", str(joblog))
    assert done.returncode == 0, done.stderr
    _header, *lines = joblog.read_text().splitlines()
    rows = [line.split("\t") for line in lines]
    assert [r[8] for r in rows] == ["true", "sleep 0.3", "sleep 0.6"]  # finishing order
    assert [r[0] for r in rows] == ["3", "2", "1"]


def test_tag_prefixes_each_line_with_the_name(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name a -- printf 'one\\ntwo\\n'\n--name b -- sh -c 'echo err >&2'\n")
    done = supervise("batch", str(jobs), "--tag")
    assert sorted(done.stdout.splitlines()) == ["a\tone", "a\ttwo"]
    assert "b\terr" in done.stderr.splitlines()


def test_big_output_lands_whole_in_the_log(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name big -- head -c 100000000 /dev/zero\n")
    done = supervise("batch", str(jobs), "--logs", str(tmp_path / "logs"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "logs" / "big.out").stat().st_size == 100_000_000


def test_jobs_from_stdin(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    done = supervise("batch", "-", "--results", str(results), input="echo hi\nfalse\n")
    assert done.returncode == 1
    assert [r["status"] for r in sorted(records(results), key=lambda r: str(r["name"]))] == [
        "ok", "failed"]


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_run_batch_api() -> None:
    jobs = [BatchJob(f"j{i}", ContainerSpec(["sh", "-c", f"exit {i % 2}"], name=f"j{i}",
                                            limits=Limits(memory_bytes=64 << 20)))
            for i in range(6)]
    seen: list[str] = []
    async with Supervisor() as sup:
        outcome = await run_batch(
            sup, jobs, BatchPolicy(Admission(max_jobs=3, memory_budget=1 << 30)),
            on_result=lambda job, result: seen.append(job.name))
    assert sorted(r.name for r in outcome.results) == [f"j{i}" for i in range(6)]
    assert {r.name: r.status for r in outcome.results} == {
        f"j{i}": "ok" if i % 2 == 0 else "failed" for i in range(6)}
    assert sorted(seen) == sorted(r.name for r in outcome.results)


@pytest.mark.anyio
async def test_cancelling_run_batch_records_cancelled_jobs() -> None:
    jobs = [BatchJob(f"s{i}", ContainerSpec(["sleep", "30"], name=f"s{i}", stop_timeout=0.2))
            for i in range(3)]
    seen: list[str] = []
    async with Supervisor() as sup, anyio.create_task_group() as tg:
        async def batch() -> None:
            await run_batch(sup, jobs, BatchPolicy(Admission(max_jobs=2)),
                            on_result=lambda job, result: seen.append(result.status))

        tg.start_soon(batch)
        with anyio.fail_after(30):
            while len(sup.containers) < 2:  # -j 2: both slots taken, the third waits
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert seen == ["cancelled", "cancelled"]


def test_two_batches_at_once_may_share_default_job_names(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sleep 0.5\n" * 3)
    first = _run_batch_in_background(jobs, "-j", "3", "--no-live")
    second = _run_batch_in_background(jobs, "-j", "3", "--no-live")
    _, err1 = first.communicate(timeout=60)
    _, err2 = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), err1 + err2
    named = tmp_path / "named.txt"
    named.write_text("--name unique-x -- sleep 2\n")
    holder = _run_batch_in_background(named, "--no-live")
    try:
        deadline = time.monotonic() + 20
        while not (Path(state_dir(), "names", "unique-x").is_symlink()
                   or time.monotonic() > deadline):
            time.sleep(0.05)
        clash = supervise("batch", str(named), "--no-live")
        assert clash.returncode == 1
        assert "the name 'unique-x' is already in use" in clash.stderr
    finally:
        holder.communicate(timeout=60)
