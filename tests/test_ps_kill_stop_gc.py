"""`supervise ps`, `kill`, `stop` and `gc`: pure parts, then real containers started by
another `supervise run` process (each test with its own state directory)."""

from __future__ import annotations

import contextlib
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
from supervisor import _state as journals
from supervisor._errors import UsageError
from supervisor._ids import new_id
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


MOUNTINFO = """\
30 20 0:26 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
31 20 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
32 20 0:28 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
"""


def test_cgroup_dirs_and_in_cgroups() -> None:
    dirs = _control.cgroup_dirs(
        "4:memory:/a/supervise/0123456789ab\n3:cpu,cpuacct:/a/supervise/0123456789ab\n"
        "0::/user.slice\n", MOUNTINFO)
    assert dirs == {"/sys/fs/cgroup/memory/a/supervise/0123456789ab",
                    "/sys/fs/cgroup/cpu,cpuacct/a/supervise/0123456789ab",
                    "/sys/fs/cgroup/unified/user.slice"}
    memory = "/sys/fs/cgroup/memory/a/supervise/0123456789ab"
    cpu = "/sys/fs/cgroup/cpu,cpuacct/a/supervise/0123456789ab"
    assert _control.in_cgroups(dirs, [memory, cpu])
    assert _control.in_cgroups(dirs, [memory + "/"])
    assert _control.in_cgroups(dirs, ["/sys/fs/cgroup/memory/a/supervise"])  # below it
    assert not _control.in_cgroups(dirs, [memory, "/sys/fs/cgroup/pids/supervise/0123456789ab"])
    assert not _control.in_cgroups(dirs, ["/sys/fs/cgroup/memory/a/supervise/0123456789a"])
    assert not _control.in_cgroups(dirs, [])
    leaf = _control.cgroup_dirs("4:memory:/a/supervise/0123456789ab/leaf\n", MOUNTINFO)
    assert _control.in_cgroups(leaf, [memory])  # a cgroup below the container's
    assert _control.cgroup_dirs("", "") == set()  # no cgroup mounted: nothing matches


def test_a_pid_1_is_told_by_nspid() -> None:
    assert _control.is_namespace_init("Name:\tsleep\nNSpid:\t4242\t1\n")
    assert _control.is_namespace_init("NSpid:\t4242\t17\t1\n")
    assert not _control.is_namespace_init("NSpid:\t4242\n")  # a host process
    assert not _control.is_namespace_init("NSpid:\t4242\t2\n")
    assert not _control.is_namespace_init("Name:\tx\n")


def test_a_record_without_start_time_or_cgroup_is_unverifiable() -> None:
    good = _state("0123456789ab", pid_start_ticks=5, paths=["/cg/supervise/0123456789ab"])
    assert _control.unverifiable(good) is None
    assert _control.unverifiable(_state("0123456789ab", paths=good.cgroup_paths)) == (
        "its record has no start time to check its PID 1 by: not signalled")
    assert "no start time or cgroup" in (_control.unverifiable(_state("0123456789ab")) or "")
    assert "no cgroup" in (_control.unverifiable(_state("0123456789ab", pid_start_ticks=5))
                           or "")


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
    live_id, dead_id, twice_id, old_id, young_id, busy_id = (
        f"{n:012x}" for n in range(1, 7))
    live = _state(live_id, supervisor_pid=1)
    dead = _state(dead_id, paths=["/cg/pids/anywhere/else/" + dead_id], supervisor_pid=2)
    gone = _state("0000000000ff", supervisor_pid=2)  # no cgroup of ours left
    # one id, two records: a live one wins (a forged copy naming a dead supervisor)
    twice = [_state(twice_id, supervisor_pid=1), _state(twice_id, supervisor_pid=2)]
    dirs = [
        _gc.CgroupDir(f"{base}/{live_id}", 999, False),     # recorded by a live supervisor
        _gc.CgroupDir(f"{base}/{dead_id}", 999, True),      # recorded by a dead one only
        _gc.CgroupDir(f"/cg/memory/supervise/{dead_id}", 5, None),  # its other hierarchy
        _gc.CgroupDir(f"{base}/{twice_id}", 999, True),
        _gc.CgroupDir(f"{base}/{old_id}", 61, False),       # unrecorded, empty, old: goes
        _gc.CgroupDir(f"{base}/{young_id}", 5, None),       # may be a supervisor's new one
        _gc.CgroupDir(f"{base}/{busy_id}", 999, True),      # processes: not ours to judge
        _gc.CgroupDir(f"{base}/user.slice", 999, False),    # not a container's name
    ]
    leaves = [
        _gc.LeafDir("/cg/supervisor-5", 5, pid_alive=False, populated=False),
        _gc.LeafDir("/cg/supervisor-6", 6, pid_alive=True, populated=False),
        _gc.LeafDir("/cg/supervisor-7", 7, pid_alive=False, populated=True),
    ]
    plan = _gc.plan_gc([live, dead, gone, *twice], lambda s: s.supervisor_pid == 1, dirs,
                       leaves)
    # the stale container's cgroups are the ones found here, never its record's paths
    assert [(s.id, s.dirs) for s in plan.stale] == [
        (dead_id, (f"{base}/{dead_id}", f"/cg/memory/supervise/{dead_id}")),
        ("0000000000ff", ())]
    assert plan.orphan_dirs == (f"{base}/{old_id}",)
    assert [leaf.pid for leaf in plan.dead_leaves] == [5]
    assert plan
    assert not _gc.plan_gc([live], lambda s: True, [dirs[0], dirs[5], dirs[6], dirs[7]])
    relaxed = _gc.plan_gc([], lambda s: True, [dirs[4], dirs[5]], min_age_s=1)
    assert relaxed.orphan_dirs == (f"{base}/{old_id}",)  # young0 was never looked at
    # the cgroups supervisors kept their spawners in: a dead one's goes once empty
    shared = [_gc.SharedDir(f"{base}/spawner-8-1-0", 8, alive=False, populated=False),
              _gc.SharedDir(f"{base}/spawner-9-1-0", 9, alive=True, populated=False),
              _gc.SharedDir(f"{base}/spawner-10-1-0", 10, alive=False, populated=True)]
    with_shared = _gc.plan_gc([], lambda s: True, [], [], shared)
    assert [d.pid for d in with_shared.dead_shared] == [8] and with_shared
    assert _gc.shared_name(8, 1, 0) == "spawner-8-1-0"


def test_plan_gc_removes_at_once_what_a_dead_supervisor_reserved() -> None:
    """A supervisor killed between a container's mkdir and its journal record: the
    reservation it wrote first ties the cgroup to it, so gc need not wait a minute;
    a live one's reservation is its to finish."""
    base = "/cg/pids/supervise"
    dead_id, live_id, nobody_id = (f"{n:012x}" for n in range(11, 14))
    dirs = [_gc.CgroupDir(f"{base}/{dead_id}", 2, None),       # young, not even looked at
            _gc.CgroupDir(f"/cg/memory/supervise/{dead_id}", 2, None),
            _gc.CgroupDir(f"{base}/{live_id}", 2, None),
            _gc.CgroupDir(f"{base}/{nobody_id}", 2, None)]
    plan = _gc.plan_gc([], lambda s: True, dirs,
                       reserved={dead_id: (41, False), live_id: (42, True)})
    assert [(a.id, a.supervisor_pid, a.dirs) for a in plan.abandoned] == [
        (dead_id, 41, (f"{base}/{dead_id}", f"/cg/memory/supervise/{dead_id}"))]
    assert not plan.orphan_dirs and not plan.stale  # the others: too young, or live


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

    name = new_id()
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
    name = new_id()
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
@pytest.mark.cgroup_v2
def test_gc_removes_at_once_a_cgroup_a_killed_supervisor_reserved(host: Host) -> None:
    """The window of the issue: a supervisor SIGKILLed after making a container's
    cgroup, before its journal line. Its reservation names it: gc removes the cgroup
    now, young as it is (it used to wait a minute, and dozens piled up)."""
    name = new_id()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid whose process is gone: the killed supervisor
    journal = journals.Journal(str(host.state_dir), journals.journal_key(dead.pid, 1))
    journal.reserve(name)
    journal.close()  # (with a reservation in it, the file stays: as a SIGKILL leaves it)
    cgroup = cgroupfs.create_cgroup(name)
    try:
        assert journals.reserved(str(host.state_dir)) == {name: (dead.pid, 1)}
        done = host.cli("gc")
        assert done.returncode == 0, done.stderr
        assert not any(os.path.exists(p) for p in cgroup.paths), done.stderr
        assert "was killed while starting it" in done.stdout + done.stderr
        assert not list(host.state_dir.glob("*.journal"))  # its last line struck: gone
    finally:
        cgroup.destroy()


@needs_root
def test_gc_spares_a_populated_cgroup(host: Host) -> None:
    layout = cgroupfs.detect_layout()
    name = new_id()
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


# -- the confused deputy: records a container may have forged ---------------------------
@contextlib.contextmanager
def host_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A harmless `sleep` standing for a host process, in a cgroup of its own below the
    session's (not below any supervise/), named like a container (the worst case):
    what a forged record points gc, kill and stop at."""
    layout = cgroupfs.detect_layout()
    own = layout.v2_own_dir() if layout.kind == "v2" else layout.v1_own_dir("memory")
    victim_cgroup = f"{own}/{new_id()}"
    os.mkdir(victim_cgroup)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        Path(victim_cgroup, "cgroup.procs").write_text(str(sleeper.pid))
        yield sleeper, victim_cgroup
    finally:
        sleeper.kill()
        sleeper.wait()
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(victim_cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.02)


def _forge(state_dir: Path, records: list[dict[str, Any]], extra: bytes = b"") -> Path:
    """A journal of a supervisor that never was (a dead pid), as a container could write."""
    state_dir.mkdir(mode=0o700, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = state_dir / f"{dead.pid}-1-forged.journal"
    base = {"supervisor_pid": dead.pid, "supervisor_start_ticks": 1, "argv": ["x"],
            "started_at": "2026-01-01T00:00:00.000000Z"}
    path.write_bytes(b"".join(b"+" + json.dumps({**base, **r}).encode() + b"\n"
                              for r in records) + extra)
    return path


@needs_root
@pytest.mark.cgroup_v2
def test_forged_records_make_gc_kill_and_stop_touch_no_host_process(host: Host) -> None:
    """Records of every shape a container could append: gc (explicit, and run's own)
    leaves the host process and its cgroup alone, and kill and stop refuse each record,
    each with its reason; malformed lines are ignored with one warning per command."""
    from supervisor._state import process_start_ticks

    with host_process() as (sleeper, victim_cgroup):
        ticks = process_start_ticks(sleeper.pid)
        victim_id = os.path.basename(victim_cgroup)
        ours = cgroupfs.create_cgroup(new_id())  # empty: the host process is not in it
        try:
            forged = _forge(host.state_dir, [
                # the wrong shape: no container's id, a path of no container's
                {"id": "user.slice", "name": "bad-id", "pid": sleeper.pid,
                 "pid_start_ticks": ticks, "cgroup_paths": [victim_cgroup]},
                # the right shape, naming the host process and its own cgroup
                {"id": victim_id, "name": "outside", "pid": sleeper.pid,
                 "pid_start_ticks": ticks, "cgroup_paths": [victim_cgroup]},
                # no start time, no cgroup: nothing to check the pid by
                {"id": (no_cgroup := new_id()), "name": "no-cgroup", "pid": sleeper.pid,
                 "pid_start_ticks": ticks, "cgroup_paths": []},
                # a cgroup of ours, which the host process is not in
                {"id": ours.name, "name": "ours", "pid": sleeper.pid,
                 "pid_start_ticks": ticks, "cgroup_paths": list(ours.paths)},
            ], extra=b"not a record\n-../../x\n")
            also = _forge(host.state_dir, [{"id": victim_id, "name": "no-ticks", "pid": sleeper.pid,
                                             "pid_start_ticks": None,
                                             "cgroup_paths": [victim_cgroup]}])
            warning = f"supervise: ignored 3 malformed lines in {host.state_dir}\n"
            ps = host.cli("ps")
            assert (ps.returncode, ps.stderr) == (0, warning)
            assert "bad-id" not in ps.stdout and "outside" in ps.stdout
            for command in (["kill"], ["stop", "-t", "1"]):
                done = host.cli(*command, "outside", "no-ticks", "no-cgroup", "ours")
                assert done.returncode == 1 and done.stdout == "", done
                assert done.stderr == warning + (
                    "supervise: outside is not running\n"
                    "supervise: no-ticks: its record has no start time to check its PID 1 by:"
                    " not signalled\n"
                    "supervise: no-cgroup: its record has no cgroup to check its PID 1 by:"
                    " not signalled\n"
                    "supervise: ours is not running\n"), done.stderr
            done = host.cli("gc")
            assert done.returncode == 0, done.stderr
            # the one cgroup of ours (empty) goes, and the record naming no cgroup; the
            # host's cgroup stays, and gc says why
            gone = f"its supervisor (pid {forged.name.split('-')[0]}) is gone"
            assert sorted(done.stdout.splitlines()) == sorted([
                f"removed {ours.name} (ours): {gone}", f"removed {no_cgroup} (no-cgroup): {gone}"])
            assert done.stderr.startswith(warning + f"supervise: gc: {victim_id} (")
            assert also.exists()  # what it names is still there: the record stays
            assert done.stderr.endswith(f"not removed ({victim_cgroup})\n")
            assert not any(os.path.exists(p) for p in ours.paths)
            assert host.cli("run", "--", "true").returncode == 0  # its gc, quietly, again
            assert sleeper.poll() is None and os.path.isdir(victim_cgroup)
            assert Path(victim_cgroup, "cgroup.procs").read_text().split() == [str(sleeper.pid)]
        finally:
            ours.destroy()
            for journal in host.state_dir.glob("*.journal"):
                journal.unlink()


@needs_root
@pytest.mark.cgroup_v2
def test_a_forged_end_and_a_dead_supervisors_copy_leave_a_live_container_alone(
        host: Host) -> None:
    """A container's record struck from its live supervisor's journal, and a copy that
    says its supervisor is dead: gc still sees a live spawner's child in the cgroup."""
    proc, entry = host.start("sleep", "60", name="living")
    (journal,) = host.state_dir.glob("*.journal")
    with open(journal, "ab") as f:
        f.write(f"-{entry['id']}\n".encode())
    assert host.ps() == []
    copy = {k: entry[k] for k in ("id", "name", "pid", "cgroup_paths", "argv", "limits")}
    from supervisor._state import process_start_ticks
    forged = _forge(host.state_dir, [{**copy, "pid_start_ticks": process_start_ticks(
        entry["pid"])}])
    done = host.cli("gc")
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert done.stderr == (f"supervise: gc: {entry['id']}: its records say its supervisor is"
                           " gone, but a live spawner runs it: left alone\n")
    assert all(os.path.isdir(p) for p in entry["cgroup_paths"]) and proc.poll() is None
    forged.unlink()
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=20) in (130, 137)


@needs_root
def test_gc_strikes_a_dead_batchs_records_in_one_pass(host: Host,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of thousands whose supervisor died: its records go from the journal in
    one read and write, not one replay of the whole journal per container (10,000
    records took gc minutes: n x n)."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    journal = journals.Journal(str(host.state_dir), journals.journal_key(dead.pid, 1))
    ids = [new_id() for _ in range(200)]
    for cid in ids:
        journal.add(_state(cid, supervisor_pid=dead.pid, supervisor_start_ticks=1,
                           paths=[f"/nonexistent/supervise/{cid}"]))
    journal.close()
    calls: list[int] = []
    strike = journals.remove_states
    monkeypatch.setattr(journals, "remove_states",
                        lambda cids, directory=None: (calls.append(len(cids)),
                                                      strike(cids, directory))[1])
    state_dir = str(host.state_dir)
    plan = _gc.plan_gc(journals.read_states(state_dir), journals.supervisor_alive)
    assert len(plan.stale) == 200
    report = _gc.execute(plan, cgroupfs.detect_layout(), state_dir)
    assert len(report.removed) == 200 and calls == [200]
    assert journals.read_states(state_dir) == []
    assert not list(host.state_dir.glob("*.journal"))
