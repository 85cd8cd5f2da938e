"""`supervise exec` (issue 12): a process inside a running container of another
supervise process: its PID 1 and hostname in view, its cgroups, root and containment,
its exit status back."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from supervisor import _state

from .containers import PYTHON, supervise

pytestmark = pytest.mark.usefixtures("root_only")
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def running(name: str, *flags: str) -> Iterator[None]:
    """A container named name, `sleep 60` under another supervise process, until the
    block ends (then it is killed and its supervise reaped)."""
    proc = subprocess.Popen([PYTHON, "-m", "supervisor", "run", "--name", name, *flags, "--",
                             "sleep", "60"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not any(s.name == name for s in _state.read_states()):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.05)
        yield
    finally:
        supervise("kill", name)
        proc.wait(timeout=20)
        if proc.stderr is not None:
            proc.stderr.close()


LOOK = ("id -u; hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; "
        "grep -E '^(Seccomp|NoNewPrivs|CapBnd):' /proc/self/status | tr -d '\\t'; "
        "cmp -s /proc/1/cgroup /proc/self/cgroup && echo same-cgroups; "
        "grep -E '^CapBnd:' /proc/1/status | tr -d '\\t'; exit 7")


@pytest.mark.cgroup_v2
@pytest.mark.parametrize("flags", [[], ["-u", "65534:65534"]], ids=["root", "nobody"])
def test_exec_enters_the_container_and_returns_its_status(flags: list[str]) -> None:
    with running("exec-target", "--hostname", "inside", *flags):
        done = supervise("exec", "exec-target", "--", "sh", "-c", LOOK)
    assert done.returncode == 7, done.stderr
    uid, hostname, pid1, capbnd, nnp, seccomp, same, pid1_capbnd = done.stdout.splitlines()
    assert uid == ("65534" if flags else "0") and hostname == "inside"
    assert pid1.split() == ["sleep", "60"]
    assert (seccomp, nnp, same) == ("Seccomp:2", "NoNewPrivs:1", "same-cgroups")
    assert capbnd == pid1_capbnd  # the container's bounding set, not the host's


def test_exec_user_workdir_and_environment() -> None:
    with running("exec-opts", "-u", "65534:65534"):
        done = supervise("exec", "-u", "0", "-w", "/proc", "-e", "GREETING=hi",
                         "exec-opts", "--", "sh", "-c", 'id -u; pwd; echo "$GREETING"; '
                         "touch /etc/exec-was-here")
    assert done.stdout.splitlines() == ["0", "/proc", "hi"], done.stderr
    assert "Read-only file system" in done.stderr  # the container's view holds
    assert not Path("/etc/exec-was-here").exists()


def test_exec_into_a_rootfs_container(tmp_path: Path) -> None:
    root = tmp_path / "root"
    made = subprocess.run([ROOT / "scripts" / "make-rootfs", str(root)], capture_output=True,
                          text=True)
    assert made.returncode == 0, made.stderr
    with running("exec-root", "--rootfs", str(root)):
        done = supervise("exec", "exec-root", "--", "sh", "-c", "ls /; pwd")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [*sorted(os.listdir(root)), "/"]


def test_exec_names_what_it_cannot_enter() -> None:
    done = supervise("exec", "no-such-container", "--", "true")
    assert (done.returncode, done.stderr) == (1, "supervise: no such container: "
                                                 "no-such-container\n")
    done = supervise("exec", "-w", "relative", "x", "--", "true")
    assert done.returncode == 125 and "absolute" in done.stderr


def test_a_kept_seccomp_profile_is_checked(tmp_path: Path) -> None:
    ref = _state.keep_profile(str(tmp_path), '{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert _state.kept_profile(str(tmp_path), ref) == '{"defaultAction": "SCMP_ACT_ALLOW"}'
    (tmp_path / "seccomp" / f"{ref[7:]}.json").write_text('{"defaultAction": "x"}')
    with pytest.raises(ValueError, match="does not match"):
        _state.kept_profile(str(tmp_path), ref)
    assert oct((tmp_path / "seccomp").stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("security", [
    {"capabilities": None, "seccomp": "../../etc/shadow", "no_new_privs": True, "user": None,
     "workdir": "/"},
    {"capabilities": [99], "seccomp": None, "no_new_privs": True, "user": None, "workdir": "/"},
    {"capabilities": [], "seccomp": None, "no_new_privs": "yes", "user": None, "workdir": "/"},
    {"capabilities": [], "seccomp": None, "no_new_privs": True, "user": [0], "workdir": "/"},
    {"capabilities": [], "seccomp": None, "no_new_privs": True, "user": None, "workdir": "x"},
    {"capabilities": [], "seccomp": None, "no_new_privs": True, "user": None},
])
def test_a_record_with_odd_security_is_refused(security: dict[str, object]) -> None:
    record = {"id": "0123456789ab", "name": "n", "pid": 5, "pid_start_ticks": 1,
              "supervisor_pid": 6, "supervisor_start_ticks": 2,
              "cgroup_paths": ["/sys/fs/cgroup/memory/supervise/0123456789ab"],
              "argv": ["true"], "started_at": "2026-11-29T00:00:00Z", "security": security}
    with pytest.raises(ValueError, match="bad security"):
        _state.ContainerState.from_json(json.dumps(record))
    record["security"] = {"capabilities": [0, 1], "seccomp": "sha256:" + "a" * 64,
                          "no_new_privs": True, "user": [5, 6], "workdir": "/w"}
    assert _state.ContainerState.from_json(json.dumps(record)).security is not None


def test_exec_runs_under_the_containers_own_seccomp_profile(tmp_path: Path) -> None:
    """A profile of the container's own (kept in the cache by its hash) holds for what
    exec starts: mkdir refused as the profile says, where docker's default allows it."""
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}]}))
    with running("exec-profile", "--security-opt", f"seccomp={profile}"):
        refused = supervise("exec", "exec-profile", "--", "mkdir", "/tmp/made")
    with running("exec-default"):
        allowed = supervise("exec", "exec-default", "--", "mkdir", "/tmp/made")
    assert refused.returncode == 1 and "Operation not permitted" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr


def test_what_exec_starts_is_contained_like_the_container() -> None:
    """As nobody: the host's state directory is not in view, the host's files are
    read-only, and exec's own reaper (a fork of the spawner, outside the PID
    namespace) is nowhere in the container's /proc."""
    with running("exec-nobody", "-u", "65534:65534"):
        done = supervise("exec", "exec-nobody", "--", "sh", "-c",
                         "ls /run/supervise; touch /etc/x; cat /proc/[0-9]*/comm")
    assert "/run/supervise': No such file" in done.stderr, done.stderr
    assert "Read-only file system" in done.stderr
    assert "supervise-init" not in done.stdout and "sleep" in done.stdout


def test_exec_with_a_terminal_made_in_the_containers_own_devpts() -> None:
    """-t: the terminal is the container's (its devpts), so `tty` names it inside;
    the status comes back through it."""
    master, slave = os.openpty()
    try:
        with running("exec-tty"):
            proc = subprocess.Popen([PYTHON, "-m", "supervisor", "exec", "-t", "exec-tty",
                                     "--", "sh", "-c", "tty; exit 5"],
                                    stdin=slave, stdout=slave, stderr=slave)
            os.close(slave)
            slave = -1
            output = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every end of the terminal is closed
                    break
                if not chunk:
                    break
                output += chunk
            code = proc.wait(timeout=30)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert code == 5, output
    assert output.split() == [b"/dev/pts/0"], output
