"""`batch --slurm` on a real one-host Slurm (../shared/slurm-one-host: munge, slurmctld,
slurmd, started for this module and stopped after it; the packages installed with
apt-get when they are missing): the same statuses as a local batch, merged in the
file's order; a shard Slurm ends leaves its jobs not `ok`, each job still once."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor._slurm import (
    ShardRow,
    TaskInfo,
    jobs_per_task,
    merge,
    parse_task_states,
    parse_tasks,
    progress_line,
    shard_argv,
    shard_rows,
)
from supervisor._slurm_view import shards_view
from supervisor._view import render_text

from .containers import PYTHON
from .terminal import in_terminal, read_until

ROOT = Path(__file__).resolve().parent.parent
# (as scripts/test finds the cgroup-v2 VM: ../shared beside the checkout)
ONE_HOST = Path(os.environ.get("SUPERVISE_SLURM_ONE_HOST")
                or ROOT.parent / "shared" / "slurm-one-host")
PACKAGES = ["slurm-wlm", "slurmctld", "slurmd", "slurm-client", "munge"]


def test_shard_argv_keeps_the_batch_and_drops_the_coordinators_options() -> None:
    argv = ["jobs.txt", "--slurm", "--shards", "4", "-j", "8", "--results=r.jsonl",
            "--joblog", "jl", "-m", "64m", "--sbatch-arg", "--time=5", "--no-live"]
    assert shard_argv(argv, "/py", "/d") == [
        "/py", "-m", "supervisor", "batch", "--no-live", "--shard", "slurm", "--results",
        "/d/shard-$SLURM_ARRAY_TASK_ID.jsonl", "jobs.txt", "-j", "8", "-m", "64m"]
    # resuming: the shards skip what the batch's results say is ok
    assert shard_argv(["jobs.txt", "--resume", "--results", "r"], "/py", "/d", "r")[4:11] == [
        "--no-live", "--shard", "slurm", "--results", "/d/shard-$SLURM_ARRAY_TASK_ID.jsonl",
        "--resume-from", "r"]
    # after --, the command's own words are its own, whatever they look like
    assert shard_argv(["--slurm", "--", "echo", "--results", ":::", "a"], "/py", "/d")[-5:] == [
        "--", "echo", "--results", ":::", "a"]


def test_progress_line() -> None:
    rows = [ShardRow(0, 67, {"ok": 29, "failed": 1}, "RUNNING", "n1"),
            ShardRow(1, 67, {"ok": 27}, "RUNNING", "n2"), ShardRow(2, 66, {}, "PENDING")]
    assert progress_line("12", rows, 200) == (
        "slurm: array 12: tasks 1 pending, 2 running; 57/200 jobs recorded "
        "(by task 0: 30/67, 1: 27/67, 2: 0/66)")
    assert progress_line("12", [ShardRow(0, 9, {}, "PENDING")], 9) == (
        "slurm: array 12: tasks 1 pending; 0/9 jobs recorded")
    many = [ShardRow(t, 1, {"ok": 1}, "COMPLETED") for t in range(20)]
    assert progress_line("3", many, 20).endswith("15: 1/1, +4 more)")


def test_parse_tasks_pending_ranges_nodes_and_run_times() -> None:
    scontrol = (
        "JobId=117 ArrayJobId=117 ArrayTaskId=2-4,7%2 JobState=PENDING RunTime=00:00:00 "
        "NodeList=(null)\n"
        "JobId=119 ArrayJobId=117 ArrayTaskId=1 JobState=RUNNING RunTime=1-00:01:05 "
        "NodeList=vm\n"
        "JobId=118 ArrayJobId=117 ArrayTaskId=0 JobState=TIMEOUT RunTime=01:02 NodeList=n7\n")
    assert parse_tasks(scontrol) == {
        **{task: TaskInfo("PENDING", None, 0.0) for task in (2, 3, 4, 7)},
        1: TaskInfo("RUNNING", "vm", 86465.0), 0: TaskInfo("TIMEOUT", "n7", 62.0)}
    # a range is bounded: no list bigger than the limit, whatever Slurm prints
    assert len(parse_tasks("ArrayTaskId=0-999999999 JobState=PENDING", limit=100)) == 100
    assert parse_tasks("ArrayTaskId=x-2 JobState=PENDING\nnothing here") == {}


def test_shard_rows_count_each_tasks_share() -> None:
    assert jobs_per_task(10, 4) == [3, 3, 2, 2]
    rows = shard_rows(3, 7, {1: TaskInfo("RUNNING", "vm", 4.0)}, {1: {"ok": 2}})
    assert rows == [ShardRow(0, 3, {}), ShardRow(1, 2, {"ok": 2}, "RUNNING", "vm", 4.0),
                    ShardRow(2, 2, {})]


def test_the_shards_view() -> None:
    rows = [ShardRow(0, 250, {"ok": 240, "failed": 3}, "COMPLETED", "node-a", 9.0),
            ShardRow(1, 250, {"ok": 100}, "RUNNING", "node-b", 7.0),
            ShardRow(2, 250, {"ok": 20, "oom": 1}, "TIMEOUT", "node-c", 60.0),
            ShardRow(3, 250, {}, "PENDING")]
    text = render_text(shards_view("42", rows, 1000, elapsed_s=75.0, eta_s=30.0, width=80,
                                   height=24), width=80)
    lines = text.splitlines()
    assert lines[0].startswith("364/1000 done  elapsed 1m15s  ETA 30s  slurm array 42: 4 "
                               "tasks (1 completed, ")
    assert len(lines[0]) == 80 and lines[0].endswith("…")  # (cut to the width)
    assert lines[1] == "ok 360  failed 3  oom 1"
    assert lines[2].split() == ["TASK", "STATE", "NODE", "DONE", "OK", "NOT", "OK", "ELAPSED"]
    # the task Slurm ended badly first, then running, pending, completed
    assert [line.split()[:4] for line in lines[3:7]] == [
        ["2", "TIMEOUT", "node-c", "21/250"], ["1", "RUNNING", "node-b", "100/250"],
        ["3", "PENDING", "-", "0/250"], ["0", "COMPLETED", "node-a", "243/250"]]
    assert lines[6].split()[4:] == ["240", "3", "9s"]
    # a short terminal: the rows that matter, then +N more; never wider than asked
    short = render_text(shards_view("42", rows, 1000, elapsed_s=1.0, eta_s=None, width=40,
                                    height=5), width=40).splitlines()
    assert len(short) == 5 and short[3].split()[:3] == ["2", "TIMEOUT", "node-c"]
    assert short[4].strip() == "+3 more" and "ELAPSED" not in short[2]  # (dropped first)
    assert all(len(line) <= 40 for line in short)


def test_parse_task_states_and_merge() -> None:
    states = parse_task_states(
        "JobId=12 ArrayJobId=10 ArrayTaskId=2 JobName=supervise JobState=NODE_FAIL Reason=x\n"
        "JobId=10 ArrayJobId=10 ArrayTaskId=0 JobName=supervise JobState=COMPLETED\n")
    assert states == {2: "NODE_FAIL", 0: "COMPLETED"}
    merged = merge([(1, 2, "job-2", ["true"]), (3, 5, "job-5", ["false"])], 3, {}, states,
                   time.time())
    assert [(r.line, r.status) for r in merged] == [(2, "error"), (5, "error")]
    assert "array task 2) ended NODE_FAIL" in (merged[1].error or "")


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    if os.geteuid() != 0 or not ONE_HOST.is_dir():
        pytest.skip("needs root and ../shared/slurm-one-host")
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env)
            if subprocess.run(install, capture_output=True, env=env).returncode != 0:
                pytest.skip("Slurm could not be installed")
    # (munged wants every directory above its socket open to all: not pytest's tmp)
    directory = Path(tempfile.mkdtemp(prefix="supervise-slurm-"))
    directory.chmod(0o755)
    env = {**os.environ, "SLURMTEST_DIR": str(directory), "SLURMTEST_CPUS": "8"}
    up = subprocess.run(["bash", str(ONE_HOST / "slurm-up.sh")], capture_output=True,
                        text=True, env=env)
    env["SLURM_CONF"] = str(directory / "etc" / "slurm.conf")
    try:
        assert up.returncode == 0, up.stderr
        yield env
    finally:
        subprocess.run(["bash", str(ONE_HOST / "slurm-down.sh")], capture_output=True,
                       env=env)
        shutil.rmtree(directory, ignore_errors=True)


# 200 jobs: ok, failing, OOM and timeout mixed (the done-when)
MIXED = "".join(["true\n", "false\n", "sh -c 'exit 3'\n",
                 "-m 8m -- python3 -c 'x = bytearray(100 << 20)'\n",
                 "--timeout 0.5s -- sleep 5\n", "echo hi\n", "true\n", "true\n"][n % 8]
                for n in range(200))


def _batch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "supervisor", "batch", "--no-live", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _until_running(env: dict[str, str], timeout: float = 60) -> None:
    """Until a task of the array runs (Slurm schedules about once a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True,
            env=env).stdout.strip():
        time.sleep(0.2)


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.usefixtures("root_only")
def test_a_batch_on_slurm_gives_what_a_local_batch_gives(slurm: dict[str, str],
                                                        tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(MIXED)
    local, sharded = tmp_path / "local.jsonl", tmp_path / "slurm.jsonl"
    _batch(slurm, str(jobs), "-j", "4", "--results", str(local))
    done = _batch(slurm, str(jobs), "-j", "2", "--slurm", "--shards", "4", "--results",
                  str(sharded), "--joblog", str(tmp_path / "joblog"))
    assert done.returncode == 1, done.stderr
    here = {r["line"]: (r["status"], r["exit_code"]) for r in _rows(local)}
    there = _rows(sharded)
    assert len(here) == 200 and [r["line"] for r in there] == sorted(here)  # file order
    assert {r["line"]: (r["status"], r["exit_code"]) for r in there} == here
    seqs = [line.split("\t")[0] for line in (tmp_path / "joblog").read_text().splitlines()[1:]]
    assert seqs == [str(n) for n in range(1, 201)]
    assert "200 jobs: 100 ok, 50 failed, 25 oom, 25 timeout" in done.stderr
    assert "/200 jobs recorded" in done.stderr  # the progress while the array ran


@pytest.mark.slow
@pytest.mark.usefixtures("root_only")
def test_a_shard_slurm_ends_leaves_its_jobs_not_ok(slurm: dict[str, str],
                                                  tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sleep 3\n" * 6)
    results = tmp_path / "r.jsonl"
    proc = subprocess.Popen([PYTHON, "-m", "supervisor", "batch", "--no-live", str(jobs),
                             "-j", "3", "--slurm", "--shards", "2", "--results", str(results)],
                            stderr=subprocess.PIPE, text=True, env=slurm, cwd=ROOT)
    deadline = time.monotonic() + 60
    task = ""
    while not task.endswith("_1") and time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i"],
                                capture_output=True, text=True, env=slurm).stdout.split()
        task = next((t for t in listed if t.endswith("_1")), "")
        time.sleep(0.2)
    time.sleep(1)
    subprocess.run(["scancel", "--signal=KILL", "--full", task], env=slurm, check=True)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    rows = _rows(results)
    assert sorted(r["line"] for r in rows) == [1, 2, 3, 4, 5, 6]  # each job once
    by_line = {r["line"]: r["status"] for r in rows}
    assert all(by_line[line] == "ok" for line in (1, 3, 5))  # shard 1's
    assert all(by_line[line] in ("error", "cancelled", "signaled") for line in (2, 4, 6))


@pytest.mark.slow
@pytest.mark.usefixtures("root_only")
def test_resume_on_slurm_runs_what_is_not_ok_and_ctrl_c_cancels(slurm: dict[str, str],
                                                                tmp_path: Path) -> None:
    """Ctrl-C: the array is cancelled (nothing left queued), what did not run is
    `cancelled`, exit 130. --resume: a new array runs exactly what is not ok."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\n" + "sleep 2\n" * 5 + "true\n")
    results = tmp_path / "r.jsonl"
    proc = subprocess.Popen([PYTHON, "-m", "supervisor", "batch", "--no-live", str(jobs),
                             "-j", "1", "--slurm", "--shards", "2", "--results", str(results)],
                            stderr=subprocess.PIPE, text=True, env=slurm, cwd=ROOT)
    _until_running(slurm)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert not subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                              env=slurm).stdout.strip()  # nothing queued or running
    first = {r["line"]: r["status"] for r in _rows(results)}
    assert sorted(first) == list(range(1, 8)) and "cancelled" in first.values()
    done = _batch(slurm, str(jobs), "-j", "2", "--slurm", "--shards", "2", "--resume",
                  "--results", str(results))
    assert done.returncode == 0, done.stderr
    rerun = _rows(results)[7:]  # appended, as a local --resume appends
    assert sorted(r["line"] for r in rerun) == sorted(
        line for line, status in first.items() if status != "ok")
    assert all(r["status"] == "ok" for r in rerun)


@pytest.mark.slow
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_terminated_coordinator_cancels_its_array(slurm: dict[str, str], tmp_path: Path,
                                                   sig: signal.Signals) -> None:
    """A SIGTERM (a job scheduler, timeout(1)) or a closed terminal: the array must not
    outlive the coordinator. It is cancelled, what did not run is `cancelled`, 128+N."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sleep 5\n" * 4)
    results = tmp_path / "r.jsonl"
    proc = subprocess.Popen([PYTHON, "-m", "supervisor", "batch", "--no-live", str(jobs),
                             "--slurm", "--shards", "2", "--results", str(results)],
                            stderr=subprocess.PIPE, text=True, env=slurm, cwd=ROOT)
    _until_running(slurm)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert not subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                              env=slurm).stdout.strip()
    assert {r["status"] for r in _rows(results)} == {"cancelled"}


@pytest.mark.slow
@pytest.mark.usefixtures("root_only")
def test_the_live_view_shows_each_shards_slurm_state_and_jobs(slurm: dict[str, str],
                                                             tmp_path: Path) -> None:
    """In a terminal: a row per array task with Slurm's state, its node and the jobs its
    shard has recorded, as they go; the last frame the tasks' end states. A shard whose
    jobs failed still COMPLETED (its own failure would be FAILED)."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sleep 1\nfalse\n" * 4)
    with in_terminal([PYTHON, "-m", "supervisor", "batch", str(jobs), "-j", "1", "--slurm",
                      "--shards", "2", "--interval", "0.2s", "--results",
                      str(tmp_path / "r.jsonl")], cols=100, env=slurm, cwd=ROOT
                     ) as (proc, master, _slave):
        screen = read_until(master, [b"TASK", b"RUNNING", b"NOT OK", b"/4"])
        screen += read_until(master, [b"8 jobs: 4 ok, 4 failed"])
        assert proc.wait(timeout=60) == 1
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert re.search(r"0\s+RUNNING\s+\S+\s+[0-3]/4", text)  # while it ran
    final = text[text.rindex("TASK"):]
    # (by place, round robin: task 0 has the sleeps, task 1 the falses)
    assert re.search(r"0\s+COMPLETED\s+\S+\s+4/4\s+4\s+0\s", final)
    assert re.search(r"1\s+COMPLETED\s+\S+\s+4/4\s+0\s+4\s", final)
    assert "8/8 done" in text
