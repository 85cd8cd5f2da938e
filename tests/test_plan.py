"""The compiled init (nsutil._plan): what the spawner works out before it forks, and
that the child, running only those calls, ends where the spec says, recovering from
the errnos the policies forgive. Real forks as root for the second half."""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from nsutil import _caps, _init, _libc, _plan
from nsutil._messages import (
    Exited,
    Failed,
    InitSpec,
    Record,
    Spawn,
    Started,
    StepReport,
)
from nsutil.spawner import TICK_NS, start_ticks, step_report

from .containers import children_of, init_spec, send_spawn, spawner_message, spawner_process

DOCKER_MASK = _caps.mask(_caps.CAP_NUMBER[c] for c in _caps.DOCKER_DEFAULT)


def _host(**changes: Any) -> _plan.Host:
    fields: dict[str, Any] = {"bounding": (1 << 41) - 1, "permitted": (1 << 41) - 1,
              "readonly": ("/proc/sys",), "masked": (("/proc/kcore", False),),
              "ignored": (13,)}
    fields.update(changes)
    return _plan.Host(**fields)


def _names(plan: _plan.Plan) -> list[str]:
    return [failure[0] for _fn, _args, failure in plan.steps]


def _spec(**changes: Any) -> InitSpec:
    return init_spec(**{"namespaces": ("pid", "mnt", "uts", "ipc", "net", "cgroup"),
                        "stdio": (0, 0, 1), "hostname": "box", **changes})


# -- pure: compiling ---------------------------------------------------------------

def test_the_steps_follow_the_spec_in_order() -> None:
    plan = _plan.compile_plan(_spec(
        cgroup_join=["/sys/fs/cgroup/a/tasks"], loopback_request=b"\0",
        harden_mounts=True, capabilities=(0, 5), user=(1000, 100), no_new_privs=True,
        cwd="/tmp"), [7, 8], _host(), error_fd=9)
    names = _names(plan)
    assert names[:7] == ["prctl", "prctl", "keyring", "cgroup", "unshare", "loopback", "mount"]
    order = [names.index(n) for n in ("mount", "hostname", "stdio", "capabilities", "user",
                                      "chdir", "signals", "fds")]
    assert order == sorted(order), names
    # every namespace but pid (the spawner made it) in one unshare
    unshare = next(args for _fn, args, f in plan.steps if f[0] == "unshare")
    assert unshare == (_libc.CLONE_NEWNS | _libc.CLONE_NEWUTS | _libc.CLONE_NEWIPC
                       | _libc.CLONE_NEWNET | _libc.CLONE_NEWCGROUP,)
    # stdio: index into the fds handed over
    dups = [args for fn, args, _f in plan.steps if fn is _libc.libc.dup2]
    assert dups == [(7, 0), (7, 1), (8, 2)]
    # bounding drops: all 41 known to this host but the 2 kept
    drops = [args[1] for fn, args, _f in plan.steps
             if fn is _libc.libc.prctl and args[0] == _libc.PR_CAPBSET_DROP]
    assert drops == [n for n in range(41) if n not in (0, 5)]
    # a non-root user: capset sets nothing, since leaving uid 0 empties permitted
    capset = next(f for fn, _a, f in plan.steps if fn is _libc.libc.capset)
    assert capset[2] == _plan.CAPSET and capset[3] == 0b100001
    # after the user switch, the parent-death signal is armed again and checked
    assert names[names.index("user") + 3:names.index("user") + 6] == [
        "capabilities", "prctl", "prctl"]


def test_privileged_and_bare_specs_leave_steps_out() -> None:
    plan = _plan.compile_plan(init_spec(), [5], _host(), error_fd=3)
    assert _names(plan) == ["prctl", "prctl", "keyring", "stdio", "stdio", "stdio", "stdio",
                            "signals", "signals", "fds"]
    privileged = _plan.compile_plan(_spec(capabilities=None), [5, 6], _host(), error_fd=3)
    assert "capabilities" not in _names(privileged)
    assert "loopback" not in _names(privileged)  # no request given


def test_an_init_is_non_dumpable_from_after_its_user_switch() -> None:
    """A credential change may make a process dumpable again (suid_dumpable): the step
    comes after the user switch, and before the steps a seccomp filter follows."""
    dumpable = ("prctl", "making the init non-dumpable", _plan.FATAL, None)
    init = _plan.compile_plan(_spec(init=True, user=(1000, 100), capabilities=(0,),
                                    no_new_privs=True), [5, 6], _host(), error_fd=3)
    failures = [f for _fn, _args, f in init.steps]
    assert failures.count(dumpable) == 1
    at = failures.index(dumpable)
    assert _names(init)[at - 1] == "prctl" and _names(init)[at + 1] == "signals"  # re-armed
    assert max(i for i, f in enumerate(failures) if f[0] == "user") < at
    plain = _plan.compile_plan(_spec(), [5, 6], _host(), error_fd=3)
    assert dumpable not in [f for _fn, _args, f in plain.steps]


def test_a_host_without_a_path_gets_no_step_for_it() -> None:
    bare = _plan.compile_plan(_spec(harden_mounts=True), [5, 6], _host(readonly=(), masked=()),
                              error_fd=3)
    full = _plan.compile_plan(_spec(harden_mounts=True), [5, 6], _host(), error_fd=3)
    # /proc/sys read-only is two mounts (bind, remount), /proc/kcore masked is one
    assert _names(full).count("mount") - _names(bare).count("mount") == 3


def test_exec_candidates_follow_the_commands_own_path() -> None:
    plan = _plan.compile_plan(_spec(argv=["tool", "a b", "\udcff"], env={"PATH": "/x::/y"}),
                              [5, 6], _host(), error_fd=3)
    assert plan.candidates == (b"/x/tool", b"./tool", b"/y/tool")
    assert [plan.argv[i] for i in range(3)] == [b"tool", b"a b", b"\xff"]
    assert plan.argv[3] is None
    assert plan.envp[0] == b"PATH=/x::/y" and plan.envp[1] is None
    direct = _plan.compile_plan(_spec(argv=["./run"], env={}), [5, 6], _host(), error_fd=3)
    assert direct.candidates == (b"./run",)
    default = _plan.compile_plan(_spec(env={}), [5, 6], _host(), error_fd=3)
    assert default.candidates[0] == b"/usr/local/sbin/true"


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["a\0b"], {}, "embedded null byte"),
    (["true"], {"A=B": "1"}, "illegal environment variable name"),
    (["true"], {"": "1"}, "illegal environment variable name"),
    (["true"], {"A": "1\0"}, "embedded null byte"),
    ([], {}, "an empty command"),
])
def test_what_exec_cannot_take_is_refused_before_the_fork(
        argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _plan.compile_plan(_spec(argv=argv, env=env), [5, 6], _host(), error_fd=3)


def test_the_static_steps_are_compiled_once_per_host() -> None:
    host = _host()
    one = _plan.compile_plan(_spec(harden_mounts=True), [5, 6], host, error_fd=3)
    two = _plan.compile_plan(_spec(harden_mounts=True, hostname="other"), [7, 8], host,
                             error_fd=4)
    mounts = [s for s in one.steps if s[2][0] == "mount"]
    assert mounts and all(any(s is t for t in two.steps) for s in mounts)


# -- real: a forked child runs the plan ----------------------------------------------

def _run_plan(spec: InitSpec, host: _plan.Host) -> tuple[int, bytes, StepReport | None]:
    """Fork (into a new PID namespace when asked), run the plan in the child, and
    return its exit code, its stdout and its error report (None if it exec'd)."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    fds = [os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC), out_w]
    plan = _plan.compile_plan(_replace(spec, stdio=(0, 1, 1)), fds, host, err_w)
    own_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    new_pid = "pid" in spec.namespaces
    if new_pid:
        _libc.unshare(_libc.CLONE_NEWPID)
    try:
        pid = os.fork()
        if pid == 0:
            _init.child_main(plan, err_w)
    finally:
        if new_pid:
            _libc.setns(own_ns, _libc.CLONE_NEWPID)
        os.close(own_ns)
    for fd in (err_w, *fds):
        os.close(fd)
    _pid, status = os.waitpid(pid, 0)
    with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
        output, report = out.read(), err.read()
    return os.waitstatus_to_exitcode(status), output, step_report(report)


@pytest.mark.usefixtures("root_only")
def test_a_child_whose_spawner_died_before_its_death_signal_was_armed_exits() -> None:
    """The parent-death signal is armed by the child's first step: a spawner that dies
    between the fork and that step never sends it. The next step looks (the spawner's
    own pidfd, readable once it has exited) and the child exits before anything else;
    a live spawner's lets it run."""
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    pidfd = os.pidfd_open(dead)
    os.waitpid(dead, 0)
    alive = os.pidfd_open(os.getpid())
    try:
        spec = init_spec(argv=("sh", "-c", "echo ran"))
        code, output, report = _run_plan(spec, _host(spawner_pidfd=pidfd))
        assert (code, output, report) == (125, b"", None)
        code, output, _report = _run_plan(spec, _host(spawner_pidfd=alive))
        assert (code, output) == (0, b"ran\n")
    finally:
        os.close(pidfd)
        os.close(alive)


def _replace(spec: InitSpec, **changes: Any) -> InitSpec:
    return init_spec(**{**{n: getattr(spec, n) for n in spec._fields}, **changes})


def _status_field(output: bytes, field: str) -> int:
    for line in output.decode().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field} not in {output!r}")


ALL_NS = ["pid", "mnt", "uts", "ipc", "net", "cgroup"]


@pytest.mark.usefixtures("root_only")
def test_the_child_runs_the_plan_and_execs() -> None:
    code, out, report = _run_plan(_spec(
        argv=["sh", "-c", "echo $$ $(hostname); grep -E '^(CapEff|CapBnd|NoNewPrivs)' "
                          "/proc/self/status; cat /proc/sys/kernel/ostype; "
                          "grep ' /proc/sys ' /proc/self/mountinfo | cut -d' ' -f6"],
        namespaces=ALL_NS, hostname="planned", harden_mounts=True,
        capabilities=tuple(_caps.effective_set()), no_new_privs=True), _plan.Host.learn())
    assert (code, report) == (0, None), out
    lines = out.decode().splitlines()
    assert lines[0] == "1 planned"
    assert _status_field(out, "CapEff") == DOCKER_MASK
    assert _status_field(out, "CapBnd") == DOCKER_MASK
    assert _status_field(out, "NoNewPrivs") == 1
    assert lines[-2] == "Linux"
    assert lines[-1].split(",")[0] == "ro"


@pytest.mark.usefixtures("root_only")
def test_a_wrong_guess_of_the_permitted_set_is_mended_in_the_child() -> None:
    """The plan predicts what capset may set; when the process holds less (here the
    host is told it holds all 64), EPERM sends the child to ask the kernel."""
    host = _plan.Host.learn()
    liar = _plan.Host(host.bounding, (1 << 64) - 1, host.readonly, host.masked, host.ignored)
    code, out, report = _run_plan(_spec(
        argv=["grep", "CapEff", "/proc/self/status"], namespaces=[],
        capabilities=tuple(range(41))), liar)
    assert (code, report) == (0, None)
    _effective, permitted, _inheritable = _libc.capget()
    assert _status_field(out, "CapEff") == permitted


@pytest.mark.usefixtures("root_only")
def test_missing_and_mistyped_mask_targets_are_taken_as_docker_takes_them() -> None:
    """A path this kernel lacks is skipped; a file taken for a directory (or the
    other way round) gets the other kind of mask."""
    host = _plan.Host.learn()
    odd = _plan.Host(host.bounding, host.permitted, ("/proc/no-such-entry",),
                     (("/proc/no-such-dir", True), ("/proc/version", True),
                      ("/proc/driver", False)), host.ignored)
    code, out, report = _run_plan(_spec(
        argv=["sh", "-c", "wc -c < /proc/version; ls /proc/driver | wc -l"],
        namespaces=["pid", "mnt"], harden_mounts=True), odd)
    assert (code, report) == (0, None), out
    assert out.split() == [b"0", b"0"]  # /dev/null over the file, an empty tmpfs over the dir


@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize(("spec", "code", "step", "message"), [
    ({"argv": ["no-such-command"]}, 127, "exec",
     "exec 'no-such-command': No such file or directory"),
    ({"argv": ["/proc/self/status"]}, 126, "exec",
     "exec '/proc/self/status': Permission denied"),
    ({"cwd": "/no/such/dir"}, 125, "chdir",
     "working directory '/no/such/dir': No such file or directory"),
    ({"cgroup_join": ["/no/such/tasks"]}, 125, "cgroup",
     "joining /no/such/tasks: No such file or directory"),
])
def test_a_failing_step_is_reported_with_its_exit_code(
        spec: dict[str, Any], code: int, step: str, message: str) -> None:
    got, _out, report = _run_plan(_spec(**{"namespaces": (), **spec}), _plan.Host.learn())
    assert got == code
    assert report is not None
    assert (report.step, report.message) == (step, message)


@pytest.mark.usefixtures("root_only")
def test_the_spawner_refuses_what_cannot_be_compiled() -> None:
    """A spec exec could never take fails at once, as a "failed" event: nothing forks."""
    with spawner_process() as (ours, spawner):
        devnull = os.open("/dev/null", os.O_RDWR)
        send_spawn(ours, "x", init_spec(env={"A=B": "1"}), [devnull])
        os.close(devnull)
        message, fds = spawner_message(ours)
        assert fds == []
        assert isinstance(message, Failed) and message.id == "x"
        assert message.error.message == "exec 'true': illegal environment variable name 'A=B'"
        assert children_of(spawner.pid) == []


@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("count", [6, 40])  # 40: more than one group (GROUP_MAX)
def test_spawns_sent_together_are_forked_together_and_each_reported(count: int) -> None:
    """The spawner takes the spawns waiting on its socket before it forks any; each
    still gets its own started and exited events, with its own status."""
    with spawner_process() as (ours, _spawner):
        devnull = os.open("/dev/null", os.O_RDWR)
        for i in range(count):
            send_spawn(ours, f"c{i}", init_spec(argv=["sh", "-c", f"exit {i}"],
                                                namespaces=["pid", "mnt"]), [devnull])
        os.close(devnull)
        started: dict[str, int] = {}
        exited: dict[str, int] = {}
        while len(exited) < count:
            message, fds = spawner_message(ours)
            for fd in fds:
                os.close(fd)
            if isinstance(message, Started):
                started[message.id] = message.pid
            else:
                assert isinstance(message, Exited), message
                assert message.pid == started[message.id]
                exited[message.id] = os.waitstatus_to_exitcode(message.status)
        assert exited == {f"c{i}": i for i in range(count)}
        assert len(set(started.values())) == count


def _stat_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat, a zombie's too."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2:].split()[19])


def test_start_ticks_from_the_clock_around_the_fork_or_from_proc() -> None:
    ticks = _stat_ticks(os.getpid())
    assert start_ticks(os.getpid(), ticks * TICK_NS, ticks * TICK_NS + TICK_NS - 1) == ticks
    # across a tick's edge, /proc says (here: this very process's start, long ago)
    assert start_ticks(os.getpid(), 5 * TICK_NS - 1, 5 * TICK_NS) == ticks
    assert start_ticks(2**22 + 1, 5 * TICK_NS - 1, 5 * TICK_NS) is None  # no such pid


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
def test_the_spawner_reports_each_pid_1s_start_time() -> None:
    """As /proc/PID/stat gives it, for forks within a tick and across one alike (60
    forks of a millisecond or so cross a few); on v2, for clone3 into a cgroup too."""
    import cgroupfs

    count = 60
    layout = cgroupfs.detect_layout()
    cgroup = cgroupfs.create_cgroup(f"ticks{os.getpid()}") if layout.kind == "v2" else None
    try:
        with spawner_process() as (ours, _spawner):
            devnull = os.open("/dev/null", os.O_RDWR)
            for i in range(count):
                if cgroup is None:
                    send_spawn(ours, f"c{i}", init_spec(argv=["sleep", "30"],
                                                        namespaces=["pid"]), [devnull])
                    continue
                directory = cgroup.open_for_clone()
                assert directory is not None
                send_spawn(ours, f"c{i}", init_spec(argv=["sleep", "30"], namespaces=["pid"],
                                                    cgroup_fd=1), [devnull, directory])
                os.close(directory)
            os.close(devnull)
            reported: dict[int, int | None] = {}
            while len(reported) < count:
                message, fds = spawner_message(ours)
                for fd in fds:
                    os.close(fd)
                assert isinstance(message, Started), message
                reported[message.pid] = message.start_ticks
            assert reported == {pid: _stat_ticks(pid) for pid in reported}
            if cgroup is not None:
                assert sorted(cgroup.pids()) == sorted(reported)  # born there: clone3
    finally:
        if cgroup is not None:
            cgroup.destroy()


def test_a_report_is_read_while_a_sibling_still_holds_the_pipe() -> None:
    """Containers forked in one group inherit each other's error pipes until they
    exec: reading a dead child's report must not wait for EOF."""
    from nsutil.spawner import read_report

    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    sibling = os.dup(w)
    try:
        os.write(w, marshal.dumps({"step": "exec", "errno": 2, "message": "m"}))
        os.close(w)
        assert marshal.loads(read_report(r)) == {"step": "exec", "errno": 2, "message": "m"}
        r2, w2 = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        held = os.dup(w2)
        os.close(w2)
        assert read_report(r2) == b""  # nothing written, a write end still open
        os.close(held)
    finally:
        os.close(sibling)


def test_a_child_born_in_its_v2_cgroup_joins_only_the_v1_ones() -> None:
    spec = _spec(cgroup_v2_join="/sys/fs/cgroup/unified/x/leaf/cgroup.procs",
                 cgroup_join=("/sys/fs/cgroup/memory/x/leaf/tasks",))
    joins = [args[0] for fn, args, f in _plan.compile_plan(spec, [5, 6], _host(),
                                                          error_fd=3).steps if f[0] == "cgroup"]
    assert joins == [b"/sys/fs/cgroup/memory/x/leaf/tasks",
                     b"/sys/fs/cgroup/unified/x/leaf/cgroup.procs"]
    born = _plan.compile_plan(spec, [5, 6], _host(), error_fd=3, joined=True)
    assert [args[0] for fn, args, f in born.steps if f[0] == "cgroup"] == [
        b"/sys/fs/cgroup/memory/x/leaf/tasks"]


@pytest.mark.usefixtures("root_only")
def test_without_clone3_into_cgroup_the_spawner_forks_and_the_child_joins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel before 5.7 (ENOSYS, E2BIG or EINVAL from clone3): the spawner falls
    back to fork, with a plan that joins, and stops trying clone3."""
    from nsutil.spawner import Spawner

    def no_clone3(flags: int, cgroup_fd: int | None = None) -> int:
        raise OSError(errno.ENOSYS, "clone3: Function not implemented")

    monkeypatch.setattr(_libc, "clone3", no_clone3)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        spawner = Spawner(theirs)
        spawner.native = False  # a kernel without clone3 has no native start (_native)
        fds = [os.open("/dev/null", os.O_RDWR), os.open("/", os.O_RDONLY | os.O_DIRECTORY)]
        # A join that fails shows the child tried to join (clone3 would have made it
        # unnecessary).
        entry = spawner._prepare(Spawn(id="x", spec=init_spec(
            cgroup_fd=1, namespaces=["pid"], cgroup_v2_join="/no/such/cgroup/tasks")), fds)
        assert entry is not None and entry.cgroup_fd == fds[1]
        assert "cgroup" not in _names(entry.plan)
        pid = spawner._fork(entry)
        assert pid > 0 and not spawner.clone3
        assert "cgroup" in _names(entry.plan)
        spawner._started(entry, pid)
        message, got = spawner_message(ours)
        for fd in got:
            os.close(fd)
        assert isinstance(message, Started) and (message.id, message.pid) == ("x", pid)
        assert message.start_ticks == _stat_ticks(pid)  # (it may be a zombie already)
        _pid, status = os.waitpid(pid, 0)
        report = read_report_of(entry)
        assert os.waitstatus_to_exitcode(status) == 125
        assert report is not None
        assert report.message == "joining /no/such/cgroup/tasks: No such file or directory"
        for pidfd in list(spawner.by_pidfd):
            os.close(pidfd)
        assert spawner.host.spawner_pidfd is not None
        os.close(spawner.host.spawner_pidfd)
        os.close(spawner.own_pid_ns)
        spawner.epoll.close()


def read_report_of(entry: Any) -> StepReport | None:
    from nsutil.spawner import read_report

    return step_report(read_report(entry.err_r))


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
def test_on_v2_pid_1_is_born_in_its_cgroup() -> None:
    """clone3(CLONE_INTO_CGROUP): with the cgroup's directory and no file to join
    through, the child is in its cgroup from its first instruction."""

    import cgroupfs

    layout = cgroupfs.detect_layout()
    if layout.v2_mount is None:
        pytest.skip("needs a cgroup v2 tree (v2, or a hybrid host's unified one)")
    cgroup = cgroupfs.create_cgroup(f"born{os.getpid()}", layout=layout)
    assert cgroup.v2_join_file is not None
    leaf = os.path.dirname(cgroup.v2_join_file)
    out_r, out_w = os.pipe()
    try:
        with spawner_process() as (ours, _spawner):
            directory = cgroup.open_for_clone()
            assert directory is not None
            assert os.path.samestat(os.fstat(directory), os.stat(leaf))
            devnull = os.open("/dev/null", os.O_RDWR)
            send_spawn(ours, "b", init_spec(argv=["cat", "/proc/self/cgroup"],
                                            namespaces=["pid"], stdio=(0, 1, 1), cgroup_fd=2),
                       [devnull, out_w, directory])
            for fd in (devnull, out_w, directory):
                os.close(fd)
            events: list[Record] = []
            while not events or not isinstance(events[-1], Exited):
                message, fds = spawner_message(ours)
                for fd in fds:
                    os.close(fd)
                events.append(message)
            last = events[-1]
            assert isinstance(last, Exited)
            assert os.waitstatus_to_exitcode(last.status) == 0, events
            with os.fdopen(out_r, "rb") as out:
                lines = out.read().decode().splitlines()
            assert "0::" + leaf.removeprefix(layout.v2_mount.rstrip("/")) in lines
    finally:
        with contextlib.suppress(OSError):
            os.close(out_r)
        cgroup.destroy()


FIXTURES = Path(__file__).parent / "cgroupfs" / "fixtures"


def test_the_cgroup_view_is_the_hosts_shape_with_the_sizing_hierarchies() -> None:
    """A container's /sys/fs/cgroup: what runtimes read their limits from (memory,
    cpu, cpuacct, cpuset, pids), mounted afresh in its cgroup namespace, in the host's
    layout; nothing else of the host's there."""
    v1 = _plan.cgroup_mounts_of((FIXTURES / "mountinfo.v1").read_text())
    assert v1 == (("", "tmpfs", "mode=755"), ("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                  ("memory", "cgroup", "memory"), ("pids", "cgroup", "pids"),
                  ("cpuset", "cgroup", "cpuset"))
    hybrid = _plan.cgroup_mounts_of((FIXTURES / "mountinfo.hybrid").read_text())
    assert [m[0] for m in hybrid] == ["", "cpu", "cpuacct", "cpuset", "memory", "pids"]
    v2 = _plan.cgroup_mounts_of((FIXTURES / "mountinfo.v2").read_text())
    assert v2 == (("", "cgroup2", ""),)  # the host's options are the host's
    assert _plan.cgroup_mounts_of("") == ()


def test_the_cgroup_view_is_mounted_read_only_unless_privileged() -> None:
    mounts = (("", "tmpfs", "mode=755"), ("memory", "cgroup", "memory"),
              ("cpu,cpuacct", "cgroup", "cpu,cpuacct"), ("pids", "cgroup", "pids"),
              ("cpu", "symlink", "cpu,cpuacct"))
    host = _host(cgroup_mounts=mounts)
    joins = ("/sys/fs/cgroup/memory/supervise/c1/leaf/tasks",
             "/sys/fs/cgroup/cpu,cpuacct/supervise/c1/tasks")
    hardened = _plan.compile_plan(_spec(harden_mounts=True, cgroup_join=joins), [5, 6], host,
                                  error_fd=3)
    calls = [(fn, args) for fn, args, f in hardened.steps if "/sys/fs/cgroup" in f[1]]
    mount_args = [args for fn, args in calls if fn is _libc.libc.mount]
    assert mount_args[0][:3] == (b"tmpfs", b"/sys/fs/cgroup", b"tmpfs")
    assert mount_args[1][:3] == (b"cgroup", b"/sys/fs/cgroup/memory", b"cgroup")
    assert mount_args[1][3] & _libc.MS_RDONLY and mount_args[1][4] == b"memory"
    assert mount_args[-1][3] & _libc.MS_REMOUNT and mount_args[-1][3] & _libc.MS_RDONLY
    assert (_plan._make_link, (b"cpu,cpuacct", b"/sys/fs/cgroup/cpu")) in calls
    # pids: no cgroup of its own there (the spawner's shared one): not mounted
    assert not any(args[1] == b"/sys/fs/cgroup/pids" for args in mount_args)
    privileged = _plan.compile_plan(_spec(harden_mounts=False, cgroup_join=joins), [5, 6], host,
                                    error_fd=3)
    rw = [args for fn, args, f in privileged.steps
          if fn is _libc.libc.mount and b"/sys/fs/cgroup" in (args[1] or b"")]
    assert rw and not any(args[3] & _libc.MS_RDONLY for args in rw)
    no_cgroupns = _plan.compile_plan(_spec(namespaces=["pid", "mnt"], cgroup_join=joins), [5, 6],
                                     host, error_fd=3)
    assert not any("container's /sys/fs/cgroup" in f[1] for _fn, _a, f in no_cgroupns.steps)
    # a hierarchy where it has no cgroup of its own (the spawner's shared one) is not
    # mounted: no view at all here
    shared_only = _plan.compile_plan(_spec(harden_mounts=True), [5, 6], host, error_fd=3)
    assert not any("container's /sys/fs/cgroup" in f[1] for _fn, _a, f in shared_only.steps)
