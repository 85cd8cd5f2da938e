"""The native start (nsutil._native, _launchers): a container's plan made by machine
code in a child that shares the spawner's memory, instead of a fork of Python.

Every container test in this suite goes through it where this machine allows (x86_64,
Linux >= 5.12); these check what is particular to it: that the code is what its source
says, what is lowered and what is left to the fork, that its failures read exactly as
the fork's do, and that the two kinds of start mix in one spawner."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from nsutil import _native, _plan

from .containers import init_spec, supervise

ROOT = Path(__file__).resolve().parent.parent

native_only = pytest.mark.skipif(not _native.available(),
                                 reason="no native start on this machine")


def _host() -> _plan.Host:
    host = _plan.Host.learn()
    host.spawner_pidfd = 1000  # any number: the plan only carries it
    return host


def test_the_trampoline_is_what_its_source_assembles_to() -> None:
    if not (shutil.which("as") and shutil.which("objcopy")):
        pytest.skip("needs binutils (as, objcopy)")
    done = subprocess.run([str(ROOT / "scripts" / "assemble-trampoline"), "--check"],
                          env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True)
    assert done.returncode == 0, ("nsutil/_native_code.py is not what "
                                  "trampoline_x86_64.S assembles to: run "
                                  "scripts/assemble-trampoline\n" + done.stderr)


@native_only
def test_a_confined_container_with_volumes_and_devices_is_lowered_whole() -> None:
    """The plan of a default container, with what a batch adds (a volume, a device),
    becomes one program: every step, then the exec of each PATH candidate."""
    from nsutil._messages import FsView

    view = FsView(read_only=True, dev=True,
                  device_nodes=(("/dev/sub/mine", 0o20666, os.makedev(1, 3)),),
                  tmpfs=(("/tmp", 6, "mode=1777", False),),
                  volumes=(("/srv", "/data", True, True),), root=None,
                  root_read_only=False, upper=None, files=())
    spec = init_spec(namespaces=["pid", "mnt", "uts", "ipc", "net", "cgroup"], hostname="h",
                     capabilities=(0, 1), no_new_privs=True, harden_mounts=True,
                     user=(65534, 65534), seccomp=None, filesystem=view, cwd="/",
                     env={"PATH": "/usr/bin:/bin"})
    host = _host()
    plan = _plan.compile_plan(spec, [5], host, error_fd=9)
    program = _native.lower(plan, host)
    assert program is not None
    count = len(program.code) // 128
    whats = [w for segment in program.whats for w in segment]
    assert len(whats) == count
    # two chains of exec: /usr/bin/true, /bin/true; then exit 127; /bin/true, exit 126
    assert [w[0] for w in whats[-5:]] == ["exec"] * 5
    assert {w[1] for w in whats if w[0] == "volume"} == {"-v /srv:/data"}
    assert any(w[1] == "making the device node /dev/sub/mine" for w in whats)
    # the same kind of container again: the shared steps come from the host's memo
    again = _native.lower(_plan.compile_plan(spec, [5], host, error_fd=9), host)
    assert again is not None and len(again.code) == len(program.code)


@native_only
def test_what_cannot_be_lowered_is_left_to_the_fork() -> None:
    host = _host()
    # --init keeps a Python reaper as PID 1
    assert _native.lower(_plan.compile_plan(init_spec(init=True), [5], host, 9), host) is None
    # a step the lowering does not know
    plan = _plan.compile_plan(init_spec(), [5], host, 9)
    plan.steps = (*plan.steps, (_plan.enter_root, (True,), ("rootfs", "x", _plan.FATAL, None)))
    assert _native.lower(plan, host) is None
    # without a pidfd for the spawner, the error pipe tells a child it is gone: Python's
    host.spawner_pidfd = None
    assert _native.lower(_plan.compile_plan(init_spec(), [5], host, 9), host) is None


@native_only
def test_a_failed_start_reads_as_the_forks_report() -> None:
    """What the child writes (index, errno) becomes the fork's StepReport; the paths
    of PATH tried before one that exec'd are no failure."""
    host = _host()
    plan = _plan.compile_plan(init_spec(cwd="/nowhere", env={"PATH": "/a:/b:/c"}), [5], host, 9)
    program = _native.lower(plan, host)
    assert program is not None
    whats = [w for segment in program.whats for w in segment]
    chdir = next(i for i, w in enumerate(whats) if w[0] == "chdir")
    record = struct.Struct("<II").pack
    report = program.report(record(chdir, errno.ENOENT))
    assert report is not None and (report.step, report.errno) == ("chdir", errno.ENOENT)
    assert report.message == "working directory '/nowhere': No such file or directory"
    first = next(i for i, w in enumerate(whats) if w[0] == "exec")
    tried = record(first, errno.ENOENT) + record(first + 1, errno.EACCES)
    assert program.report(tried) is None  # /c took it
    end = next(i for i, w in enumerate(whats) if w[0] == "exec" and i > first + 2)
    report = program.report(tried + record(first + 2, errno.ENOENT) + record(end, 0))
    assert report is not None and report.errno == errno.EACCES  # as execvpe(3) says
    assert report.message == "exec 'true': Permission denied"
    assert program.report(b"") is None


def test_exec_error_is_execvpes_judgement() -> None:
    assert _plan.exec_error([errno.ENOENT, errno.ENOTDIR]) == errno.ENOENT
    assert _plan.exec_error([errno.ENOENT, errno.EACCES, errno.ENOENT]) == errno.EACCES
    assert _plan.exec_error([errno.ENOEXEC, errno.EACCES]) == errno.ENOEXEC
    assert _plan.exec_error([errno.E2BIG, errno.ENOENT, errno.ETXTBSY]) == errno.ETXTBSY


def test_bytes_are_passed_by_their_contents_address() -> None:
    keep: list[object] = []
    value = b"/some/path"
    address = _native._word(value, keep)
    assert ctypes.string_at(address) == value and keep == [value]
    assert _native._word(-100, keep) == (1 << 64) - 100
    assert _native._word(None, keep) == 0
    assert _native._word(ctypes.c_uint(7), keep) == 7
    with pytest.raises(_native.Unsupported):
        _native._word(object(), keep)


@native_only
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("case", [
    ["--", "nosuchcommand"],
    ["--", "/etc/passwd"],
    ["--", "/"],
    ["-w", "/nowhere", "--", "true"],
    ["-u", "65534:65534", "-w", "/root", "--", "true"],
    ["-m", "6m", "--", "sh", "-c", "echo small; exit 3"],
    ["-v", "/etc:/usr/newdir", "--", "true"],
    ["-v", "/etc:/tmp/a/b:ro", "--", "sh", "-c", "ls /tmp/a/b >/dev/null; touch /tmp/a/b/x"],
    ["--device", "/dev/null:/dev/sub/mine", "--", "sh", "-c",
     "stat -c '%n %F %t:%T %a' /dev/sub/mine; exit 4"],
    ["--", "sh", "-c", "head -c4 /proc/1/cmdline; grep -c . /proc/1/maps >/dev/null; exit 5"],
], ids=["not-found", "not-executable", "directory", "cwd", "user-cwd", "small-memory",
        "volume-target", "volume-ro", "device", "exec'd"])
def test_native_and_fork_starts_say_the_same(case: list[str]) -> None:
    """The same container started both ways: the same exit status, output and error."""
    native = supervise("run", *case)
    forked = supervise("run", *case, env={**os.environ, "SUPERVISE_SPAWN": "fork"})
    assert (native.returncode, native.stdout, native.stderr) == (
        forked.returncode, forked.stdout, forked.stderr)
    assert native.returncode != 0 and "Traceback" not in native.stderr


@pytest.mark.usefixtures("root_only")
def test_native_and_forked_starts_mix_in_one_batch(tmp_path: Path) -> None:
    """--init jobs fork (their PID 1 is Python's reaper), the others start natively,
    from the same spawner at once; each runs as asked."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(f"{'--init ' if n % 3 == 0 else ''}-- sh -c 'exit {n % 5}'\n"
                            for n in range(30)))
    results = tmp_path / "results.jsonl"
    done = supervise("batch", "-j", "6", "--no-live", "--results", str(results), str(jobs))
    import json

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted((r["line"], r["exit_code"]) for r in rows) == [
        (n + 1, n % 5) for n in range(30)], done.stderr
