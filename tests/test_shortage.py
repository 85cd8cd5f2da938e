"""Out of file descriptors: one start that finds no room fails alone (or waits), the
running containers and the spawner go on; a batch too wide for the limit says so before
anything starts; containers keep the descriptor limit supervise was started with."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import time
from pathlib import Path

import pytest

from supervisor._fds import fd_shortfall, needed
from supervisor._summary import SameErrors

from .containers import PYTHON

ROOT = Path(__file__).resolve().parent.parent


def test_the_descriptors_a_batch_needs() -> None:
    assert needed(100, logs=False, tag=False) == (32 + 100, 32 + 5 * 32 + 100)
    assert needed(100, logs=True, tag=False)[0] == 32 + 3 * 100
    assert needed(4, logs=False, tag=True) == (32 + 5 * 4, 32 + 5 * 4 + 4)
    assert fd_shortfall(10_000, 20_000, logs=False, tag=False) is None
    assert fd_shortfall(300, 256, logs=False, tag=False) == (
        "300 jobs at once need about 492 file descriptors in one process; the limit is 256 "
        "(ulimit -Hn): -j 64 fits")
    # the concurrency said to fit does, and one more does not
    for limit in (60, 256, 1000, 20_000):
        message = fd_shortfall(50_000, limit, logs=True, tag=False)
        assert message is not None
        most = int(message.rsplit("-j ", 1)[1].split()[0])
        assert max(needed(most, logs=True, tag=False)) <= limit
        assert max(needed(most + 1, logs=True, tag=False)) > limit
    assert "not even one job fits" in (fd_shortfall(5, 30, logs=False, tag=False) or "")


def _in_shell(script: str, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    """script run by bash, "$1" the interpreter, then args."""
    return subprocess.run(["bash", "-c", script, "bash", PYTHON, *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, **(env or {})})


@pytest.mark.usefixtures("root_only")
def test_a_batch_too_wide_for_the_limit_fails_before_starting(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\n" * 300)
    results = tmp_path / "r.jsonl"
    done = _in_shell('ulimit -n 256; exec "$1" -m supervisor batch --no-live -j 300 '
                     '--results "$2" "$3"', str(results), str(jobs))
    assert done.returncode == 2
    assert done.stderr == ("supervise: 300 jobs at once need about 492 file descriptors in "
                           "one process; the limit is 256 (ulimit -Hn): -j 64 fits\n")
    assert not results.exists()  # nothing ran
    fits = _in_shell('ulimit -n 256; exec "$1" -m supervisor batch --no-live -j 64 "$2"',
                     str(jobs))
    assert fits.returncode == 0, fits.stderr


@pytest.mark.usefixtures("root_only")
def test_containers_keep_the_soft_limit_supervise_was_started_with(tmp_path: Path) -> None:
    """supervise raises its own soft limit to the hard one (a pidfd per container in
    each of its processes); a container gets back the one supervise was given, as a
    command run directly would have, by each way a container starts."""
    hard = str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    for env, extra in (({}, ""), ({}, "--init"), ({"SUPERVISE_SPAWN": "fork"}, "")):
        done = _in_shell(f'ulimit -Sn 100; exec "$1" -m supervisor run {extra} -- '
                         'sh -c "ulimit -Sn; ulimit -Hn"', env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["100", hard], (env, extra)
    # ...while the batch itself holds more than that: 150 running at once
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sleep 1\n" * 150)
    done = _in_shell('ulimit -Sn 100; exec "$1" -m supervisor batch --no-live -j 150 '
                     '--results "$2" "$3"', str(tmp_path / "r.jsonl"), str(jobs))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("150 jobs: 150 ok") == 1


def _pidfds(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[pidfd]"
    return count


def _spawner_of(pid: int) -> int:
    for _ in range(500):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            if b"nsutil.spawner" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        time.sleep(0.01)
    raise AssertionError("no spawner")


@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("starved", ["spawner", "supervisor"])
def test_a_start_short_of_descriptors_waits_and_the_running_go_on(
        tmp_path: Path, starved: str) -> None:
    """With 40 containers running, the spawner's (or the supervisor's) descriptor limit
    is cut below what it holds: each start then finds no room (the spawner cannot make
    its error pipe; the supervisor loses the new pidfd in transit, and has the spawner
    kill that container). Neither process dies, the running jobs finish ok, and the
    rest wait for room, each ending ok; the batch says so once."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sleep 1.5\n" * 100)
    results = tmp_path / "r.jsonl"
    batch = subprocess.Popen([PYTHON, "-m", "supervisor", "batch", "--no-live", "-j", "40",
                              "--results", str(results), str(jobs)], stderr=subprocess.PIPE,
                             text=True, cwd=ROOT)
    try:
        spawner = _spawner_of(batch.pid)
        deadline = time.monotonic() + 30
        while _pidfds(spawner) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = spawner if starved == "spawner" else batch.pid
        held = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (held - 10, held - 10))
        _out, err = batch.communicate(timeout=120)
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.wait()
    assert batch.returncode == 0, err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 100 and {r["status"] for r in rows} == {"ok"}
    said = [line for line in err.splitlines() if "the rest wait" in line]
    # (where it ran short: its error pipe, its fork, the spawn's descriptors dropped on
    # the way in, or the child's cgroup files: each says descriptors)
    assert len(said) == 1 and ("Too many open files" in said[0]
                               or "out of file descriptors" in said[0]), err
    if starved == "supervisor":
        assert "(in the supervisor) with " in said[0]
    assert "died" not in err and "error" not in err


def test_errors_alike_are_said_three_times_then_counted() -> None:
    errors = SameErrors()
    said = [errors.say(f"job-{n}", f"joining /sys/fs/cgroup/pids/supervise/{n:012x}/tasks: "
                       "Too many open files") for n in range(1, 1001)]
    said.append(errors.say("job-x", "the spawner died"))
    assert said[:3] == [f"job-{n}: joining /sys/fs/cgroup/pids/supervise/{n:012x}/tasks: Too "
                        "many open files" for n in (1, 2, 3)]
    assert said[3:1000] == [None] * 997 and said[1000] == "job-x: the spawner died"
    assert errors.rest() == ["997 more jobs ended with the same error: joining "
                             "/sys/fs/cgroup/pids/supervise/000000000001/tasks: Too many open "
                             "files"]


@pytest.mark.usefixtures("root_only")
def test_a_batch_says_an_error_of_many_jobs_in_four_lines(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("-w /nonexistent -- true\n" * 40 + "true\n")
    done = subprocess.run([PYTHON, "-m", "supervisor", "batch", "--no-live", str(jobs)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "/nonexistent" in line]
    assert len(lines) == 4 and lines[3] == (
        "supervise: 37 more jobs ended with the same error: working directory "
        "'/nonexistent': No such file or directory")
    assert "41 jobs: 1 ok, 40 error" in done.stderr
