"""`supervise ps`, `kill`, `stop` and `gc`: pure parts, then real containers started by
another `supervise run` process (each test with its own state directory)."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cgroupfs
from supervisor import _control, _gc
from supervisor._errors import UsageError
from supervisor._state import ContainerState
from supervisor.cli._ps import (
    created_ago,
    format_table,
    human_duration,
    printable,
    status_of,
)

from .conftest import session_spawners

PYTHON = sys.executable


# -- pure ----------------------------------------------------------------------------
@pytest.mark.parametrize(("seconds", "text"), [
    (0, "Less than a second"), (0.9, "Less than a second"), (1, "1 second"),
    (1.7, "1 second"), (5, "5 seconds"), (59.9, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (59 * 60, "59 minutes"),
    (3600, "About an hour"), (2 * 3600, "2 hours"), (47 * 3600, "47 hours"),
    (48 * 3600, "2 days"), (13 * 86400, "13 days"), (14 * 86400, "2 weeks"),
    (59 * 86400, "8 weeks"), (60 * 86400, "2 months"), (400 * 86400, "13 months"),
    (730 * 86400, "2 years"),
])
def test_human_duration_as_docker(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_created_ago() -> None:
    start = 1_800_000_000.25
    iso = "2027-01-15T08:00:00.250000Z"
    assert created_ago(iso, start + 5) == "5 seconds ago"
    assert created_ago(iso, start + 3 * 3600) == "3 hours ago"
    assert created_ago(iso, start - 3) == "Less than a second ago"  # clock went back
    assert created_ago("not a time", start) == "not a time"


def test_status_and_table() -> None:
    assert status_of(True, True) == "running"
    assert status_of(True, False) == "exited"
    assert status_of(False, True) == status_of(False, False) == "orphaned"
    rows = [["ID", "COMMAND", "X"], ["a", "sh -c 'a very long command line here'", "yy"]]
    lines = format_table(rows, width=30, shrink_column=1)
    assert lines[0].split() == ["ID", "COMMAND", "X"]
    assert "…" in lines[1] and lines[1].endswith("yy")
    assert "sh -c 'a very long …   yy" in lines[1]  # never narrower than 20
    full = format_table(rows, width=None, shrink_column=1)
    assert "here'" in full[1]


def test_printable() -> None:
    assert printable("sh -c 'a\nb'") == "sh -c 'a\\nb'"
    assert printable("caf\xe9 \udcff") == "caf\xe9 \\udcff"


def test_parse_signal() -> None:
    for text in ("KILL", "SIGKILL", "kill", "9"):
        assert _control.parse_signal(text) == signal.SIGKILL
    assert _control.parse_signal("term") == signal.SIGTERM
    for bad in ("NOPE", "999", ""):
        with pytest.raises(UsageError):
            _control.parse_signal(bad)


def test_in_cgroup() -> None:
    paths = ["/sys/fs/cgroup/memory/a/supervise/abc", "/sys/fs/cgroup/pids/supervise/abc"]
    assert _control.in_cgroup("4:memory:/a/supervise/abc\n8:pids:/supervise/abc\n", paths)
    assert not _control.in_cgroup("4:memory:/a/supervise/abd\n0::/\n", paths)
    assert not _control.in_cgroup("4:memory:/\n", paths)  # the root matches nothing
    assert _control.in_cgroup("0::/x/supervise/abc\n", ["/sys/fs/cgroup/x/supervise/abc"])
    assert not _control.in_cgroup("0::/bc\n", ["/sys/fs/cgroup/x/supervise/abc"])


def _state(cid: str, name: str = "", paths: list[str] | None = None, **kw: Any
           ) -> ContainerState:
    values: dict[str, Any] = dict(
        id=cid, name=name or cid, pid=10, pid_start_ticks=None, supervisor_pid=20,
        supervisor_start_ticks=None, cgroup_paths=paths or [], argv=["true"],
        started_at="2026-01-01T00:00:00.000000Z")
    values.update(kw)
    return ContainerState(**values)


def test_resolve() -> None:
    states = [_state("abc111", "web"), _state("abc222", "db"), _state("fff000", "abc111x")]
    assert _control.resolve(states, "web").id == "abc111"
    assert _control.resolve(states, "abc2").id == "abc222"
    assert _control.resolve(states, "abc111x").id == "fff000"
    with pytest.raises(_control.NotFound, match="no such container: nope"):
        _control.resolve(states, "nope")
    with pytest.raises(_control.NotFound, match="2 containers"):
        _control.resolve(states, "abc")
    twins = [_state("aaa111", "x"), _state("bbb222", "x")]  # two supervisors, one name
    with pytest.raises(_control.NotFound, match="use an id"):
        _control.resolve(twins, "x")


def test_plan_gc() -> None:
    base = "/cg/pids/supervise"
    live = _state("live01", paths=[f"{base}/live01"], supervisor_pid=1)
    dead = _state("dead01", paths=[f"{base}/dead01"], supervisor_pid=2)
    dirs = [
        _gc.CgroupDir(f"{base}/live01", 999, False),     # claimed by a live state
        _gc.CgroupDir(f"{base}/dead01", 999, False),     # claimed by a stale state
        _gc.CgroupDir(f"{base}/old000", 61, False),      # unclaimed, empty, old: goes
        _gc.CgroupDir(f"{base}/young0", 5, None),        # may be a supervisor's new one
        _gc.CgroupDir(f"{base}/busy00", 999, True),      # processes: not ours to judge
        _gc.CgroupDir("/cg/memory/x/supervise/live01", 999, False),  # id claimed elsewhere
    ]
    leaves = [
        _gc.LeafDir("/cg/supervisor-5", 5, pid_alive=False, populated=False),
        _gc.LeafDir("/cg/supervisor-6", 6, pid_alive=True, populated=False),
        _gc.LeafDir("/cg/supervisor-7", 7, pid_alive=False, populated=True),
    ]
    plan = _gc.plan_gc([live, dead], lambda s: s.supervisor_pid == 1, dirs, leaves)
    assert [s.id for s in plan.stale] == ["dead01"]
    assert plan.orphan_dirs == (f"{base}/old000",)
    assert [leaf.pid for leaf in plan.dead_leaves] == [5]
    assert plan
    assert not _gc.plan_gc([live], lambda s: True, dirs[:1] + dirs[3:5])
    relaxed = _gc.plan_gc([], lambda s: True, [dirs[2], dirs[3]], min_age_s=1)
    assert relaxed.orphan_dirs == (f"{base}/old000",)  # young0 was never looked at


def test_destroy_dirs_refuses_foreign_paths() -> None:
    layout = cgroupfs.detect_layout(
        "30 20 0:1 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n", "1:pids:/\n")
    with pytest.raises(_gc.GcError, match="not the cgroup"):
        _gc.destroy_dirs("abc", ["/sys/fs/cgroup/pids/supervise/other"], layout)
    with pytest.raises(_gc.GcError, match="not on a cgroup mount"):
        _gc.destroy_dirs("abc", ["/etc/abc"], layout)


# -- real containers ---------------------------------------------------------------------
needs_root = pytest.mark.usefixtures("root_only")


class Host:
    """`supervise` commands with a private state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = {**os.environ, "SUPERVISE_STATE_DIR": str(state_dir)}
        self.runs: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "supervisor", *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env)

    def ps(self, *args: str) -> list[dict[str, Any]]:
        done = self.cli("ps", "--json", *args)
        assert done.returncode == 0, done.stderr
        entries: list[dict[str, Any]] = json.loads(done.stdout)
        return entries

    def start(self, *command: str, name: str | None = None) -> tuple[subprocess.Popen[bytes],
                                                                     dict[str, Any]]:
        name = name or f"t-{secrets.token_hex(3)}"
        proc = subprocess.Popen([PYTHON, "-m", "supervisor", "run", "--name", name, "--",
                                 *command], env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.runs.append(proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = [e for e in self.ps() if e["name"] == name]
            if found:
                return proc, found[0]
            assert proc.poll() is None, f"supervise run exited with {proc.returncode}"
            time.sleep(0.05)
        raise AssertionError(f"{name} never showed up in ps")

    def close(self) -> None:
        for proc in self.runs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path / "state")
    try:
        yield h
    finally:
        h.close()
    leftovers = list(h.state_dir.glob("*.journal")) if h.state_dir.exists() else []
    assert not leftovers, f"state files left behind: {leftovers}"


@needs_root
def test_ps_lists_a_container(host: Host) -> None:
    assert host.cli("ps").stdout.split() == ["ID", "NAME", "PID", "COMMAND", "CREATED",
                                             "STATUS", "SUPERVISOR", "PID"]
    proc, entry = host.start("sleep", "60", name="napper")
    assert entry["status"] == "running"
    assert entry["command"] == "sleep 60" and entry["argv"] == ["sleep", "60"]
    assert entry["supervisor_pid"] == proc.pid
    assert len(entry["id"]) == 12 and entry["pid"] > 1
    assert entry["cgroup_paths"] and all(os.path.isdir(p) for p in entry["cgroup_paths"])
    assert entry["limits"] == {}
    assert entry["created_ago"].endswith("ago")
    table = host.cli("ps").stdout.splitlines()
    assert len(table) == 2
    row = table[1].split()
    assert row[:4] == [entry["id"], "napper", str(entry["pid"]), "sleep"]
    assert row[-2:] == ["running", str(proc.pid)]
    assert host.cli("ps", "-q").stdout.split() == [entry["id"]]
    proc2, entry2 = host.start("sh", "-c", "sleep 60; echo 'a b'", name="second")
    assert [e["name"] for e in host.ps()] == ["second", "napper"]  # newest first
    assert entry2["command"] == shlex.join(["sh", "-c", "sleep 60; echo 'a b'"])
    done = host.cli("kill", "napper", "second")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [entry["id"], entry2["id"]]
    assert proc.wait(timeout=10) == 137 and proc2.wait(timeout=10) == 137


@needs_root
@pytest.mark.cgroup_v2
def test_kill_sends_the_signal_asked_for(host: Host) -> None:
    proc, entry = host.start("sh", "-c", 'trap "exit 3" TERM; while :; do sleep 0.1; done')
    done = host.cli("kill", "-s", "TERM", entry["name"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == entry["id"]
    assert proc.wait(timeout=10) == 3


@needs_root
def test_kill_by_id_prefix_and_number(host: Host) -> None:
    proc, entry = host.start("sleep", "60")
    done = host.cli("kill", "-s", "9", entry["id"][:6])
    assert (done.returncode, done.stdout.strip()) == (0, entry["id"])
    assert proc.wait(timeout=10) == 137
    assert host.ps() == []


@needs_root
def test_kill_unknown_names_it_and_exits_1(host: Host) -> None:
    done = host.cli("kill", "no-such-thing")
    assert done.returncode == 1
    assert done.stderr == "supervise: no such container: no-such-thing\n"
    proc, entry = host.start("sleep", "60")
    done = host.cli("kill", "ghost", entry["name"])
    assert done.returncode == 1
    assert done.stdout.strip() == entry["id"]  # the others are still killed
    assert done.stderr == "supervise: no such container: ghost\n"
    assert proc.wait(timeout=10) == 137
    bad = host.cli("kill", "-s", "NOPE", "x")
    assert bad.returncode == 125 and bad.stderr.startswith("supervise: invalid signal: NOPE")


@needs_root
def test_stop_kills_a_pid1_that_ignores_term(host: Host) -> None:
    proc, entry = host.start("sleep", "60")
    started = time.monotonic()
    done = host.cli("stop", "-t", "1", entry["name"])
    elapsed = time.monotonic() - started
    assert (done.returncode, done.stdout.strip()) == (0, entry["id"]), done.stderr
    assert elapsed < 2.5  # no TERM handler: SIGKILL at once, not after the grace
    assert proc.wait(timeout=10) == 137


@needs_root
def test_stop_lets_a_term_handler_finish(host: Host) -> None:
    proc, entry = host.start(
        "sh", "-c", 'trap "sleep 0.3; exit 0" TERM; while :; do sleep 0.1; done')
    done = host.cli("stop", "-t", "5", entry["id"])
    assert (done.returncode, done.stdout.strip()) == (0, entry["id"]), done.stderr
    assert proc.wait(timeout=10) == 0


@needs_root
def test_stop_kills_after_the_grace(host: Host) -> None:
    """It catches SIGTERM but does not exit: SIGKILL once the grace has passed."""
    proc, entry = host.start("sh", "-c", 'trap "echo term" TERM; while :; do sleep 0.1; done')
    started = time.monotonic()
    done = host.cli("stop", "-t", "1", entry["name"])
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert 1.0 <= elapsed < 4
    assert proc.wait(timeout=10) == 137


@needs_root
@pytest.mark.cgroup_v2
def test_gc_cleans_up_after_a_killed_supervisor(host: Host) -> None:
    proc, entry = host.start("sleep", "60")
    paths = entry["cgroup_paths"]
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    (orphan,) = host.ps()
    assert orphan["id"] == entry["id"] and orphan["status"] == "orphaned"
    assert "orphaned" in host.cli("ps").stdout
    assert all(os.path.isdir(p) for p in paths)  # nobody cleaned up
    assert host.cli("stop", entry["id"]).returncode == 1  # PID 1 died with the spawner
    done = host.cli("gc")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"removed {entry['id']} ({entry['name']})")
    assert not any(os.path.exists(p) for p in paths)
    assert host.ps("-a") == []
    assert list(host.state_dir.glob("*.journal")) == []
    again = host.cli("gc")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    _wait_for_spawners_to_go()


@needs_root
def test_run_collects_garbage_first(host: Host) -> None:
    proc, entry = host.start("sleep", "60")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    done = host.cli("run", "--", "true")
    assert (done.returncode, done.stderr) == (0, "")
    assert not any(os.path.exists(p) for p in entry["cgroup_paths"])
    assert host.ps("-a") == []
    _wait_for_spawners_to_go()


@needs_root
@pytest.mark.cgroup_v2
def test_gc_kills_what_is_left_in_a_stale_cgroup(host: Host) -> None:
    """A stale state whose cgroup still holds a process (not a PID 1 that died with
    its spawner): gc kills it, then removes the cgroup and the file."""
    from supervisor._state import Journal, process_start_ticks

    name = f"gc{secrets.token_hex(5)}"
    cgroup = cgroupfs.create_cgroup(name)
    stray = subprocess.Popen(["sleep", "60"])
    try:
        cgroup.add_pid(stray.pid)
        dead = subprocess.Popen(["true"])
        dead.wait()
        journal = Journal(str(host.state_dir), f"{dead.pid}-1-test")
        journal.add(ContainerState(
            id=name, name="stray", pid=stray.pid, pid_start_ticks=process_start_ticks(stray.pid),
            supervisor_pid=dead.pid, supervisor_start_ticks=1, cgroup_paths=list(cgroup.paths),
            argv=["sleep", "60"], started_at="2026-01-01T00:00:00.000000Z"))
        journal.close()  # its container is live: the journal stays, for gc
        assert [e["status"] for e in host.ps()] == ["orphaned"]
        done = host.cli("gc", "-q")
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert stray.wait(timeout=10) == -signal.SIGKILL
        assert not any(os.path.exists(p) for p in cgroup.paths)
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
        cgroup.destroy()


@needs_root
@pytest.mark.cgroup_v2
def test_gc_removes_old_empty_unclaimed_cgroups(host: Host) -> None:
    layout = cgroupfs.detect_layout()
    name = f"gc{secrets.token_hex(5)}"
    cgroup = cgroupfs.create_cgroup(name)
    try:
        bases = cgroupfs.supervise_parents(layout)
        mine = [d for d in _gc.scan_dirs(bases) if os.path.basename(d.path) == name]
        assert mine and all(d.age_s < 5 and d.populated is None for d in mine)
        # A real gc leaves it alone: too young.
        assert host.cli("gc").returncode == 0
        assert all(os.path.isdir(p) for p in cgroup.paths)
        # As seen two minutes from now: empty, unclaimed, old.
        later = [d for d in _gc.scan_dirs(bases, now=time.time() + 120)
                 if os.path.basename(d.path) == name]
        assert all(d.populated is False for d in later)
        plan = _gc.plan_gc([], lambda s: True, later)
        assert sorted(plan.orphan_dirs) == sorted(cgroup.paths)
        report = _gc.execute(plan, layout, str(host.state_dir))
        assert not report.errors and len(report.removed) == len(cgroup.paths)
        assert not any(os.path.exists(p) for p in cgroup.paths)
    finally:
        cgroup.destroy()


@needs_root
def test_gc_spares_a_populated_cgroup(host: Host) -> None:
    layout = cgroupfs.detect_layout()
    name = f"gc{secrets.token_hex(5)}"
    cgroup = cgroupfs.create_cgroup(name)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        cgroup.add_pid(sleeper.pid)
        later = [d for d in _gc.scan_dirs(cgroupfs.supervise_parents(layout),
                                          now=time.time() + 120)
                 if os.path.basename(d.path) == name]
        assert later and all(d.populated for d in later)
        assert not _gc.plan_gc([], lambda s: True, later).orphan_dirs
        # Even a plan made earlier re-checks before removing.
        stale_plan = _gc.GcPlan(orphan_dirs=tuple(cgroup.paths))
        report = _gc.execute(stale_plan, layout, str(host.state_dir))
        assert report.removed == [] and all(os.path.isdir(p) for p in cgroup.paths)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
        cgroup.destroy()


def _wait_for_spawners_to_go() -> None:
    """The killed supervisor's spawner dies by PR_SET_PDEATHSIG: asynchronously. (It is in
    this session's cgroups, as is every supervise the tests start.)"""
    deadline = time.monotonic() + 10
    while session_spawners():
        assert time.monotonic() < deadline, "the dead supervisor's spawner is still there"
        time.sleep(0.05)


@needs_root
def test_stats_no_stream_shows_another_supervisors_containers(host: Host) -> None:
    busy, busy_entry = host.start("sh", "-c", "while :; do :; done", name="busy-one")
    _, idle_entry = host.start("sleep", "60", name="idle-one")
    limited, _ = host.start("sleep", "60", name="limited")  # no -m: limit shows as "-"
    done = host.cli("stats", "--no-stream")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "STATE"]
    by_name = {row.split()[1]: row.split() for row in rows}
    assert set(by_name) == {"busy-one", "idle-one", "limited"}
    assert rows[0].split()[1] == "busy-one"  # busiest first
    busy_cpu = float(by_name["busy-one"][3].rstrip("%"))
    assert busy_cpu > 50  # a busy loop, sampled over 0.5 s
    assert float(by_name["idle-one"][3].rstrip("%")) < 5
    assert by_name["idle-one"][0] == idle_entry["id"]
    assert by_name["busy-one"][-2] == "1"  # PIDS
    one = host.cli("stats", "--no-stream", "idle-one", "nope")
    assert one.returncode == 1
    assert [r.split()[1] for r in one.stdout.splitlines()[1:]] == ["idle-one"]
    assert one.stderr == "supervise: no such container: nope\n"
    assert busy_entry["status"] == "running" and limited.poll() is None and busy.poll() is None
