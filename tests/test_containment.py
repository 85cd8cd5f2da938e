"""Containment: what a container's command may not do, and the flags that change it.

By default the command runs with docker's capability set and no_new_privs, /sys
read-only and /proc masked as docker does; --privileged, --cap-add/--cap-drop,
-u/--user and --init adjust it. Real containers, as root, on trio (pytest-trio): the
backend users get from the CLI.

Issue 11's escapes, each as root, as nobody and --privileged (which restores what
docker's restores): the supervisor's keyrings, an --init PID 1's memory under
`batch -j 2`, the state and cache directories (out of sight: the container's /run is
its own, test_containment_fs). Forged state records are in test_ps_kill_stop_gc,
jobs-file privileges in test_privileges.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from nsutil import _caps
from nsutil._messages import Started
from supervisor import ContainerSpec, Limits, Supervisor
from supervisor._errors import UsageError
from supervisor._options import parse_capabilities, parse_user

from .containers import (
    ATTEMPT,
    PYTHON,
    children_of,
    init_spec,
    run_capture,
    send_spawn,
    shown,
    spawner_message,
    spawner_process,
    supervise,
)

DOCKER_MASK = _caps.mask(_caps.CAP_NUMBER[c] for c in _caps.DOCKER_DEFAULT)


def _status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _own_caps(field: str) -> int:
    return int(_status(Path("/proc/self/status").read_text())[field], 16)


SYSTEM_PYTHON = "/usr/bin/python3"


async def _json_of(sup: Supervisor, script: str, python: str = PYTHON, **spec: Any) -> Any:
    result, out, err = await run_capture(sup, [python, "-c", script], **spec)
    assert result.exit_code == 0, (result, err)
    return json.loads(out)


# -- pure: option parsing and the capability arithmetic ----------------------------

def test_capability_names_and_docker_arithmetic() -> None:
    assert parse_capabilities("--cap-add", ["net_admin", "CAP_SYS_TIME", "NET_ADMIN"]) == (
        "NET_ADMIN", "SYS_TIME")
    assert parse_capabilities("--cap-drop", ["all"]) == ("ALL",)
    assert parse_capabilities("--cap-add", ["chown,kill"]) == ("CHOWN", "KILL")
    with pytest.raises(UsageError, match=r"^--cap-add NET_ADMN: unknown capability "
                                         r"\(did you mean NET_ADMIN\?\)"):
        parse_capabilities("--cap-add", ["NET_ADMN"])
    with pytest.raises(UsageError, match=r"^--cap-drop frob: unknown capability"):
        parse_capabilities("--cap-drop", ["frob"])
    default = _caps.effective_set()
    assert _caps.mask(default) == DOCKER_MASK == 0xA80425FB  # what docker shows as CapEff
    assert _caps.effective_set(cap_drop=["NET_RAW"]) == [
        n for n in default if n != _caps.CAP_NUMBER["NET_RAW"]]
    assert _caps.effective_set(["SYS_ADMIN"]) == sorted([*default, 21])
    assert _caps.effective_set(["NET_RAW"], ["ALL"]) == [13]
    assert _caps.effective_set(["ALL"], ["SYS_ADMIN"]) == [
        n for n in range(len(_caps.CAPABILITIES)) if n != 21]
    with pytest.raises(ValueError, match="unknown capability"):
        ContainerSpec(["true"], cap_add=["NOPE"])


PASSWD = """root:x:0:0:root:/root:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
alice:x:1000:1001:Alice:/home/alice:/bin/sh
"""
GROUP = "root:x:0:\nnogroup:x:65534:\nstaff:x:50:alice\n"


def _files(path: str) -> str:
    if path == "/etc/passwd":
        return PASSWD
    if path == "/etc/group":
        return GROUP
    raise FileNotFoundError(errno.ENOENT, "No such file or directory")


@pytest.mark.parametrize(("text", "uid", "gid", "home"), [
    ("65534:65534", 65534, 65534, "/nonexistent"),
    ("1000", 1000, 1001, "/home/alice"),          # a known uid takes its passwd group
    ("4242", 4242, 0, None),                       # an unknown one group 0, as docker
    ("alice", 1000, 1001, "/home/alice"),
    ("alice:staff", 1000, 50, "/home/alice"),
    ("nobody:7", 65534, 7, "/nonexistent"),
])
def test_parse_user(text: str, uid: int, gid: int, home: str | None) -> None:
    user = parse_user(text, _files)
    assert (user.uid, user.gid, user.home) == (uid, gid, home)


@pytest.mark.parametrize(("text", "message"), [
    ("", "give a user"),
    ("bob", "no user 'bob' in /etc/passwd"),
    ("alice:wheel", "no group 'wheel' in /etc/group"),
    ("1000:", "the group after ':' is empty"),
    ("4294967295", "ids are 0 to 4294967294"),
    ("-1", "no user '-1'"),
])
def test_parse_user_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=f"^-u/--user.*{message}"):
        parse_user(text, _files)


# -- real containers ---------------------------------------------------------------

CAPS_SCRIPT = """
import json
fields = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines())
print(json.dumps({k: fields[k].strip() for k in
      ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs')}))
"""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_default_capabilities_are_dockers_with_no_new_privs() -> None:
    async with Supervisor() as sup:
        got = await _json_of(sup, CAPS_SCRIPT)
    expected = DOCKER_MASK & _own_caps("CapBnd")
    assert int(got["CapEff"], 16) == expected
    assert int(got["CapPrm"], 16) == expected
    assert int(got["CapBnd"], 16) == expected
    assert int(got["CapInh"], 16) == int(got["CapAmb"], 16) == 0
    assert got["NoNewPrivs"] == "1"


ESCAPES_SCRIPT = """
import ctypes, errno, json, os, platform
libc = ctypes.CDLL(None, use_errno=True)
def err(result):
    return errno.errorcode.get(ctypes.get_errno(), '?') if result < 0 else 'ok'
out = {}
out['mount'] = err(libc.mount(b'none', b'/mnt', b'tmpfs', 0, None))
out['sethostname'] = err(libc.sethostname(b'escaped', 7))
out['unshare_net'] = err(libc.unshare(0x40000000))
out['unshare_mnt'] = err(libc.unshare(0x00020000))
x86 = platform.machine() == 'x86_64'
libc.syscall.restype = ctypes.c_long
out['init_module'] = err(libc.syscall(175 if x86 else 105, ctypes.c_char_p(b''),
                                      ctypes.c_ulong(0), ctypes.c_char_p(b'')))
# settimeofday(NULL, NULL) checks CAP_SYS_TIME and, allowed, changes nothing (the raw
# syscall: glibc's wrapper dereferences the NULL).
out['settimeofday'] = err(libc.syscall(164 if x86 else 170, None, None))
print(json.dumps(out))
"""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_escapes_fail_with_eperm() -> None:
    before = socket.gethostname()
    async with Supervisor() as sup:
        got = await _json_of(sup, ESCAPES_SCRIPT)
        _, out, err = await run_capture(
            sup, ["sh", "-c", "mount -t tmpfs none /mnt; echo $?; hostname x; echo $?; "
                  "unshare -n true; echo $?"])
    assert platform.machine() in ("x86_64", "aarch64")
    # init_module: EPERM from the seccomp filter even where the kernel has no modules
    # (ENOSYS there); test_seccomp runs these without the filter too.
    assert got == {k: "EPERM" for k in ("mount", "sethostname", "unshare_net", "unshare_mnt",
                                        "settimeofday", "init_module")}, got
    assert out.split() == ["32", "1", "1"], (out, err)  # mount(8) says 32 for "mount failure"
    assert socket.gethostname() == before


CGROUP_WRITES = """
import errno, json, os
def attempt(path, data=b'0'):
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    try:
        os.write(fd, data)
        return 'ok'
    except OSError as exc:
        return errno.errorcode[exc.errno]
    finally:
        os.close(fd)
own, dirs = {}, []
for top, subdirs, files in os.walk('/sys/fs/cgroup'):
    dirs += [os.path.join(top, d) for d in subdirs]
    for name in files:
        path = os.path.join(top, name)
        own[path] = attempt(path, b'max' if name.endswith('.max') else b'0')
made = {}
for top in ['/sys/fs/cgroup', *dirs]:  # v2: the root itself; v1: each hierarchy too
    try:
        os.mkdir(os.path.join(top, 'escape'))
        made[top] = 'ok'
    except OSError as exc:
        made[top] = errno.errorcode[exc.errno]
with open('/proc/self/cgroup') as f:
    where = sorted({line.split(':', 2)[2].strip() for line in f})
print(json.dumps({'own': own, 'dirs': dirs, 'made': made, 'where': where}))
"""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_cgroup_files_are_read_only_inside() -> None:
    """Inside, /sys/fs/cgroup is the container's own cgroups, each mounted afresh in its
    cgroup namespace: rooted at its own cgroup in every hierarchy (so nothing above,
    no other container's, is there to move to), every file of it refused, no cgroup
    can be made. EROFS, not EPERM: root keeps DAC_OVERRIDE, as in docker, and it is
    the read-only mount that stops it."""
    out_r, out_w = os.pipe()
    async with Supervisor() as sup:
        try:
            container = await sup.start(ContainerSpec(
                [PYTHON, "-c", CGROUP_WRITES], stdout=out_w, limits=Limits(pids_max=50)))
        finally:
            os.close(out_w)
        result = await container.wait()
        with os.fdopen(out_r) as f:
            got = json.loads(f.read())
    assert result.exit_code == 0
    assert got["where"] == ["/"]  # the root of its namespace, in every hierarchy
    assert got["own"] and set(got["own"].values()) == {"EROFS"}, got["own"]
    assert any(p.endswith("/cgroup.procs") for p in got["own"])
    assert got["made"] and set(got["made"].values()) == {"EROFS"}, got["made"]
    # the hierarchies (v1) and nothing below them: no other cgroup is in view
    assert all(os.path.dirname(d) == "/sys/fs/cgroup" for d in got["dirs"]), got["dirs"]


PROC_SCRIPT = """
import errno, json, os
def write(path):
    # Opening for writing is what a read-only mount refuses; never write here, even
    # if it opens (a privileged run shares the host's sysrq-trigger and /sys).
    try:
        os.close(os.open(path, os.O_WRONLY))
        return 'ok'
    except OSError as exc:
        return errno.errorcode[exc.errno]
def read(path):
    try:
        with open(path, 'rb') as f:
            return len(f.read(4096))  # /proc/kcore is as big as the address space
    except OSError as exc:
        return errno.errorcode[exc.errno]
print(json.dumps({
    'hostname': write('/proc/sys/kernel/hostname'),
    'sysrq': write('/proc/sysrq-trigger') if os.path.exists('/proc/sysrq-trigger') else None,
    'sys_kernel': write(next(p for p in ('/sys/kernel/uevent_seqnum', '/sys/kernel/profiling',
                                         '/sys/power/state') if os.path.exists(p))),
    'masked': {p: read(p) for p in ('/proc/kcore', '/proc/keys', '/proc/timer_list',
                                    '/proc/sched_debug', '/proc/latency_stats')
               if os.path.exists(p)},
    'acpi': os.listdir('/proc/acpi') if os.path.isdir('/proc/acpi') else None,
    'firmware': os.listdir('/sys/firmware') if os.path.isdir('/sys/firmware') else None,
}))
"""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_proc_and_sys_are_masked_and_read_only() -> None:
    async with Supervisor() as sup:
        got = await _json_of(sup, PROC_SCRIPT)
        privileged = await _json_of(sup, PROC_SCRIPT, privileged=True)
    assert got["hostname"] == "EROFS"
    assert got["sysrq"] in (None, "EROFS")
    assert got["sys_kernel"] == "EROFS"
    # Masked files read as empty (/dev/null over them); the host's are not all empty.
    assert got["masked"] and set(got["masked"].values()) == {0}, got["masked"]
    assert any(n for n in privileged["masked"].values()), privileged["masked"]
    assert got["acpi"] in (None, []) and got["firmware"] in (None, [])
    if os.listdir("/sys/firmware"):
        assert privileged["firmware"]


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_privileged_keeps_every_capability_and_may_mount(tmp_path: Path) -> None:
    target = tmp_path / "mnt"
    target.mkdir()
    mount = ["sh", "-c", f"mount -t tmpfs none {target} && echo mounted"]
    async with Supervisor() as sup:
        got = await _json_of(sup, CAPS_SCRIPT, privileged=True)
        seen = shown(tmp_path)
        priv, out, err = await run_capture(sup, mount, privileged=True, volumes=seen)
        added, added_out, added_err = await run_capture(sup, mount, cap_add=["CAP_SYS_ADMIN"],
                                                        volumes=seen)
        plain, _, _ = await run_capture(sup, mount, volumes=seen)
    assert int(got["CapEff"], 16) == _own_caps("CapEff")
    assert int(got["CapBnd"], 16) == _own_caps("CapBnd")
    assert got["NoNewPrivs"] == "0"
    assert (priv.exit_code, out) == (0, "mounted\n"), err
    assert (added.exit_code, added_out) == (0, "mounted\n"), added_err
    assert plain.exit_code != 0
    assert str(target) not in Path("/proc/self/mountinfo").read_text()


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_cap_drop_and_cap_add() -> None:
    net_raw = 1 << _caps.CAP_NUMBER["NET_RAW"]
    sys_time = 1 << _caps.CAP_NUMBER["SYS_TIME"]
    async with Supervisor() as sup:
        dropped = await _json_of(sup, CAPS_SCRIPT, cap_drop=["NET_RAW"])
        added = await _json_of(sup, CAPS_SCRIPT, cap_add=["sys_time"])
        only = await _json_of(sup, CAPS_SCRIPT, cap_drop=["ALL"], cap_add=["CHOWN"])
        every = await _json_of(sup, CAPS_SCRIPT, cap_add=["ALL"], cap_drop=["SYS_ADMIN"])
    assert int(dropped["CapEff"], 16) == DOCKER_MASK & ~net_raw
    assert int(dropped["CapBnd"], 16) == DOCKER_MASK & ~net_raw
    assert int(added["CapEff"], 16) == DOCKER_MASK | sys_time
    assert int(only["CapEff"], 16) == int(only["CapBnd"], 16) == 1
    # ALL is every capability this host grants (here, maybe fewer than the kernel knows)
    sys_admin = 1 << _caps.CAP_NUMBER["SYS_ADMIN"]
    assert int(every["CapEff"], 16) == _own_caps("CapEff") & ~sys_admin
    assert every["NoNewPrivs"] == "1"


def test_user_runs_the_command_unprivileged() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    script = ("id -u; id -g; id -G; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; "
              "echo $HOME; mount -t tmpfs none /mnt 2>/dev/null; echo $?")
    done = supervise("run", "-u", "65534:65534", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert lines[:3] == ["65534", "65534", "65534"]  # no supplementary groups
    caps = dict(line.split(":\t") for line in lines[3:6])
    assert int(caps["CapEff"], 16) == int(caps["CapPrm"], 16) == 0
    assert int(caps["CapBnd"], 16) == DOCKER_MASK
    home = next((line.split(":")[5] for line in Path("/etc/passwd").read_text().splitlines()
                 if line.split(":")[2:3] == ["65534"]), "/")
    assert lines[6] == home  # docker's: the passwd entry's home, "/" without one
    assert lines[7] == "32"
    # By name, from the host's /etc/passwd; and with SETUID/SETGID dropped it still switches.
    named = supervise("run", "-u", "nobody", "--cap-drop", "SETUID", "--cap-drop", "SETGID",
                      "--", "sh", "-c", "id -un; id -G")
    nobody = next(line for line in Path("/etc/passwd").read_text().splitlines()
                  if line.startswith("nobody:"))
    assert named.returncode == 0, named.stderr
    assert named.stdout.split() == ["nobody", nobody.split(":")[3]]


def test_bad_containment_flags_are_usage_errors() -> None:
    for args, message in [
        (["--cap-add", "FROB"], "supervise: --cap-add FROB: unknown capability"),
        (["--cap-drop", "net_rwa"], "did you mean NET_RAW?"),
        (["-u", "no-such-user-xyz"], "-u/--user no-such-user-xyz: no user"),
    ]:
        done = supervise("run", *args, "--", "true")
        assert done.returncode == 125 and message in done.stderr, (args, done.stderr)


def test_containment_flags_as_batch_defaults_and_on_jobs_lines(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(
        "--name a -- sh -c 'id -u; grep CapEff /proc/self/status'\n"
        "--name b -u 0 --cap-add SYS_TIME -- sh -c 'id -u; grep CapEff /proc/self/status'\n"
        "--name c --privileged --init -- sh -c 'ps -o comm= -p 1; grep NoNewPrivs "
        "/proc/self/status'\n")
    logs = tmp_path / "logs"
    done = supervise("batch", str(jobs), "--no-live", "--logs", str(logs), "-u", "65534",
                     "--allow-privileged-jobs")  # lines b and c ask for more than -u 65534
    assert done.returncode == 0, done.stderr
    a = (logs / "a.out").read_text().split()
    b = (logs / "b.out").read_text().split()
    c = (logs / "c.out").read_text().split()
    assert a == ["65534", "CapEff:", "0000000000000000"]
    assert b == ["0", "CapEff:", f"{DOCKER_MASK | 1 << 25:016x}"]
    assert c == ["supervise-init", "NoNewPrivs:", "0"]


FD_SCRIPT = """
import json, os
# listdir holds the directory open while it reads: that fd is the lowest free one.
print(json.dumps(sorted(int(fd) for fd in os.listdir('/proc/self/fd'))))
"""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_the_command_holds_only_stdio() -> None:
    async with Supervisor() as sup:
        plain = await _json_of(sup, FD_SCRIPT)
        init = await _json_of(sup, FD_SCRIPT, init=True)
        # (the venv's interpreter lives under /root, which nobody may not enter)
        user = await _json_of(sup, FD_SCRIPT, user=(65534, 65534), python=SYSTEM_PYTHON)
        # Under --init, PID 1 (the reaper) holds nothing of the spawner's either (seen
        # from here: the command may not look, PID 1 being non-dumpable).
        reaper = await sup.start(ContainerSpec(["sleep", "30"], init=True))
        with anyio.fail_after(10):
            while not any(_comm(c) == "sleep" for c in _children(reaper.pid)):
                await anyio.sleep(0.01)
        reaper_fds = sorted(int(fd) for fd in os.listdir(f"/proc/{reaper.pid}/fd"))
        # fd 3: its error pipe, write end (how a signal ended the command: InitEnded)
        fd3 = os.readlink(f"/proc/{reaper.pid}/fd/3")
        pipe_mode = os.stat(f"/proc/{reaper.pid}/fd/3", follow_symlinks=False).st_mode
        reaper.kill()
        await reaper.wait()
    # 0, 1, 2 and, as fd 3, the listing's own directory fd.
    assert plain == user == init == [0, 1, 2, 3]
    assert reaper_fds == [0, 1, 2, 3] and fd3.startswith("pipe:")
    assert pipe_mode & 0o222 and not pipe_mode & 0o444  # opened for writing only


ORPHANS = """
for i in $(seq 50); do (sleep 2 &) ; done
exec %s -c '
import os, sys, time
def states():
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            found.append((stat[stat.find("(") + 1:stat.rfind(")")], stat[stat.rfind(")") + 2]))
    return found
def zombies():
    return sum(st == "Z" for _n, st in states())
# Until every sleeper has ended (none alive, none still a forked shell about to exec
# sleep) and the zombies are as many as expected: 20 s at most, for a slow machine.
expected = int(sys.argv[1])
deadline = time.monotonic() + 20
while time.monotonic() < deadline and (
        any(n in ("sleep", "sh") and st != "Z" for n, st in states()) or zombies() != expected):
    time.sleep(0.05)
print(zombies())' %d
"""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_init_reaps_orphans() -> None:
    """50 orphans exit after the shell exec'd a process that never waits: as PID 1
    that process collects 50 zombies; under --init, PID 1 reaps them all."""
    async with Supervisor() as sup:
        with_init, out_init, err_init = await run_capture(
            sup, ["sh", "-c", ORPHANS % (PYTHON, 0)], init=True)
        without, out_plain, _ = await run_capture(sup, ["sh", "-c", ORPHANS % (PYTHON, 50)])
    assert with_init.exit_code == 0, err_init
    assert out_init.strip() == "0"
    assert without.exit_code == 0
    assert out_plain.strip() == "50"


def _children(pid: int) -> list[int]:
    return children_of(pid)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_init_forwards_sigterm_to_the_command() -> None:
    async with Supervisor() as sup:
        boxed = await sup.start(ContainerSpec(["sleep", "30"], init=True))
        with anyio.fail_after(10):
            while not any(_comm(c) == "sleep" for c in _children(boxed.pid)):
                await anyio.sleep(0.01)
        assert _comm(boxed.pid) == "supervise-init"
        boxed.signal(signal.SIGTERM)
        with anyio.fail_after(10):
            result = await boxed.wait()
        # killed by the signal, as without --init (PID 1 exits 143: InitEnded says why)
        assert (result.exit_code, result.signal, result.status) == (143, 15, "signaled")

        # Without --init, sleep is PID 1, has no handler, and the kernel drops SIGTERM.
        bare = await sup.start(ContainerSpec(["sleep", "30"]))
        with anyio.fail_after(10):
            while _comm(bare.pid) != "sleep":
                await anyio.sleep(0.01)
        bare.signal(signal.SIGTERM)
        await anyio.sleep(0.5)
        assert not bare.done
        bare.kill()
        assert (await bare.wait()).exit_code == 137

        # stop() sees PID 1 catching SIGTERM under --init, so the grace applies: the
        # command ends by SIGTERM, not by the SIGKILL after it.
        graced = await sup.start(ContainerSpec(["sleep", "30"], init=True))
        with anyio.fail_after(10):
            while not any(_comm(c) == "sleep" for c in _children(graced.pid)):
                await anyio.sleep(0.01)
        await graced.stop(timeout=10)
        assert (await graced.wait()).exit_code == 143


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_init_still_reports_exec_failures(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    async with Supervisor() as sup:
        missing, _, _ = await run_capture(sup, ["no-such-command-xyz"], init=True)
        denied, _, _ = await run_capture(sup, [str(script)], init=True,
                                         volumes=shown(tmp_path))
        status, _, _ = await run_capture(sup, ["sh", "-c", "exit 7"], init=True)
    assert missing.exit_code == 127 and "No such file" in (missing.error or ""), missing
    assert denied.exit_code == 126 and "Permission denied" in (denied.error or ""), denied
    assert (status.exit_code, status.status) == (7, "failed")


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("spec", [
    {"user": (65534, 65534)},   # the user switch clears the parent-death signal: re-armed
    {"init": True},
    {"user": (65534, 65534), "init": True},
], ids=["user", "init", "user+init"])
def test_a_container_dies_with_its_spawner(spec: dict[str, Any]) -> None:
    """Straight to nsutil (no supervisor to clean up after it): SIGKILL the spawner,
    and PID 1, after its user switch or as --init's reaper, dies by its
    parent-death signal, taking its namespace with it."""
    pid = None
    try:
        with spawner_process() as (ours, spawner):
            devnull = os.open("/dev/null", os.O_RDWR)
            init = init_spec(argv=["sleep", "60"], namespaces=["pid", "mnt", "uts", "ipc"],
                             capabilities=tuple(_caps.effective_set()), no_new_privs=True,
                             harden_mounts=True, **spec)
            send_spawn(ours, "x", init, [devnull])
            os.close(devnull)
            message, fds = spawner_message(ours)
            for fd in fds:
                os.close(fd)
            assert isinstance(message, Started), message
            pid = message.pid
            deadline = time.monotonic() + 10
            want = "supervise-init" if spec.get("init") else "sleep"
            while _comm(pid) != want or (spec.get("init") and not _children(pid)):
                assert time.monotonic() < deadline, "the container did not start"
                time.sleep(0.01)
            if spec.get("user"):
                command = _children(pid)[0] if spec.get("init") else pid
                assert Path(f"/proc/{command}/status").read_text().count("65534") >= 2
            spawner.kill()
            spawner.wait()
            deadline = time.monotonic() + 5
            while not _dead(pid):
                assert time.monotonic() < deadline, "PID 1 outlived its spawner"
                time.sleep(0.01)
    finally:
        if pid is not None and not _dead(pid):
            os.kill(pid, signal.SIGKILL)


# -- keyrings ---------------------------------------------------------------------------
# keyctl(2) and add_key(2) by number (no keyutils here): x86_64's, else asm-generic's.
_X86 = platform.machine() == "x86_64"
KEYCTL_NR, ADD_KEY_NR = (250, 248) if _X86 else (219, 217)

def _need_keyrings() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(KEYCTL_NR, 0, ctypes.c_long(-3), 0) < 0 and ctypes.get_errno() == errno.ENOSYS:
        pytest.skip("a kernel without keyrings")


KEYRING_HOST = f"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
description, secret = sys.argv[1].encode(), sys.argv[2].encode()
# A fresh session keyring of this process's own (the host's stays untouched), holding
# the secret; it and the key go when the last process holding it (the supervisor) exits.
session = libc.syscall({KEYCTL_NR}, 1, None)  # KEYCTL_JOIN_SESSION_KEYRING, NULL
key = libc.syscall({ADD_KEY_NR}, b"user", description, secret, len(secret), ctypes.c_long(-3))
assert session > 0 and key > 0, ctypes.get_errno()
print(json.dumps({{"session": session, "key": key}}), flush=True)
# the key's serial goes last on the container's command line
os.execv(sys.executable, [sys.executable, "-m", "supervisor", "run", *sys.argv[3:], str(key)])
"""

KEYRING_CONTAINER = f"""
import ctypes, errno, json, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def keyctl(*args):
    result = libc.syscall({KEYCTL_NR}, *args)
    return result if result >= 0 else errno.errorcode[ctypes.get_errno()]
SESSION = ctypes.c_long(-3)  # KEY_SPEC_SESSION_KEYRING
buffer = ctypes.create_string_buffer(256)
print(json.dumps({{
    "session": keyctl(0, SESSION, 0),                                  # GET_KEYRING_ID
    "search": keyctl(10, SESSION, b"user", sys.argv[1].encode(), 0),   # SEARCH
    "read": keyctl(11, ctypes.c_long(int(sys.argv[2])), buffer, 256),  # READ by serial
}}))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("flags", [[], ["-u", "65534:65534"], ["--privileged"]],
                         ids=["root", "nobody", "privileged"])
def test_the_supervisors_session_keyring_is_out_of_reach(flags: list[str]) -> None:
    """The supervisor's session keyring holds a secret; the container has a session
    keyring of its own (an empty one, joined first thing in PID 1), so searching finds
    nothing and reading the key by its serial is refused: as root, as nobody and
    privileged alike. (A seccomp filter that denies keyctl, as docker's default does,
    makes every call EPERM instead; --privileged shows the keyrings apart either way.)"""
    _need_keyrings()
    description = f"supervise-test-{os.urandom(4).hex()}"
    done = subprocess.run(
        [PYTHON, "-c", KEYRING_HOST, description, os.urandom(8).hex(), *flags, "--",
         SYSTEM_PYTHON, "-c", KEYRING_CONTAINER, description],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    host_line, container_line = done.stdout.splitlines()
    host, got = json.loads(host_line), json.loads(container_line)
    if got["session"] == "EPERM" and "--privileged" not in flags:  # keyctl denied whole
        assert got == {"session": "EPERM", "search": "EPERM", "read": "EPERM"}, got
        return
    assert isinstance(got["session"], int) and got["session"] != host["session"], (host, got)
    assert (got["search"], got["read"]) == ("ENOKEY", "EACCES"), got


USER_KEYRING = f"""
import ctypes, errno, json
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
found = libc.syscall({KEYCTL_NR}, 0, ctypes.c_long(-4), 0)  # GET_KEYRING_ID, USER_KEYRING
print(json.dumps(found if found >= 0 else errno.errorcode[ctypes.get_errno()]))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize(("flags", "reaches"), [
    # uid 0's user keyring is shared by every root process of the user namespace:
    # docker keeps root containers off it with seccomp (keyctl EPERM), as we do
    ([], False),
    (["-u", "65534:65534"], False),
    (["--privileged"], True),  # docker's --privileged (no seccomp) reaches it too
], ids=["root", "nobody", "privileged"])
def test_roots_user_keyring(flags: list[str], reaches: bool) -> None:
    """Not the session keyring: the per-uid user keyring, which a session keyring of the
    container's own does not hide (root inside can link it and read its keys)."""
    _need_keyrings()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ours = libc.syscall(KEYCTL_NR, 0, ctypes.c_long(-4), 0)
    assert ours > 0, ctypes.get_errno()
    done = supervise("run", *flags, "--", SYSTEM_PYTHON, "-c", USER_KEYRING)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    assert (theirs == ours) == reaches, (theirs, ours)
    if not reaches and not isinstance(theirs, int):
        assert theirs == "EPERM"


# -- --init: PID 1 is a fork of the spawner --------------------------------------------
# What a command may learn of its PID 1: its environ, its maps, and its memory, scanned
# for a secret given in two halves (so that the whole is never in this process's own
# memory: without --init PID 1 is this very process).
READ_PID1 = r"""
import errno, json, os, sys
halves = [h.encode() for h in sys.argv[1:]]
def contains(data, first, second):
    at = data.find(first)
    while at >= 0:
        if data[at + len(first):at + len(first) + len(second)] == second:
            return True
        at = data.find(first, at + 1)
    return False
def found(data):
    return [contains(data, halves[i], halves[i + 1]) for i in range(0, len(halves), 2)]
def attempt(read):
    try:
        return read()
    except OSError as exc:
        return errno.errorcode[exc.errno]
def environ():
    with open('/proc/1/environ', 'rb') as f:
        return found(f.read())
def maps():
    with open('/proc/1/maps') as f:
        return [line.split() for line in f]
def memory():
    hits = [False] * (len(halves) // 2)
    with open('/proc/1/mem', 'rb', buffering=0) as mem:
        for region in regions:
            if 'r' not in region[1]:
                continue
            start, end = (int(x, 16) for x in region[0].split('-'))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError):
                continue
            hits = [a or b for a, b in zip(hits, found(data))]
    return hits
regions = attempt(maps)
print(json.dumps({'pid': os.getpid(), 'environ': attempt(environ),
                  'maps': regions if isinstance(regions, str) else len(regions),
                  'memory': attempt(memory) if not isinstance(regions, str) else regions}))
"""


def _halves() -> tuple[str, str]:
    return f"S3CRET-{os.urandom(4).hex()}", os.urandom(8).hex()


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("flags", [["--init"], ["--init", "-u", "65534:65534"], []],
                         ids=["init", "init-nobody", "no-init"])
def test_no_job_reads_another_jobs_environment_from_its_pid1(
        tmp_path: Path, flags: list[str]) -> None:
    """`batch -j 2`: one job holds a secret in its environment and sleeps, the other
    looks for it in its own PID 1. Under --init, PID 1 is a fork of the spawner, which
    had both specs (forked together or one after the other): it is non-dumpable, so
    its environ, maps and memory are refused (EACCES), as root and as nobody. Without
    --init, PID 1 is the command itself, an image of its own: readable, and the
    other's secret is not in it."""
    theirs, mine = _halves(), _halves()
    one_line = f"import base64; exec(base64.b64decode({base64.b64encode(READ_PID1.encode())!r}))"
    reader = shlex.join([*flags, "--name", "reader", "-e", f"MINE={''.join(mine)}", "--",
                         SYSTEM_PYTHON, "-c", one_line, *theirs, *mine])
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"--name holder -e SECRET={''.join(theirs)} -- sleep 300\n{reader}\n")
    logs = tmp_path / "logs"
    # The holder is stopped once the reader is done (it sleeps longer than any reader
    # takes, however loaded the machine: with 30 s, a slow VM once let it end first).
    done = supervise("batch", str(jobs), "-j", "2", "--no-live", "--logs", str(logs),
                     "--halt", "now,done=1")
    assert done.returncode == 1, done.stderr  # the holder was cancelled
    got = json.loads((logs / "reader.out").read_text())
    if "--init" in flags:
        assert got["pid"] != 1
        assert (got["environ"], got["maps"], got["memory"]) == ("EACCES",) * 3, got
    else:
        assert got["pid"] == 1
        assert got["environ"] == [False, True]  # its own environment, not the holder's
        assert isinstance(got["maps"], int) and got["memory"] == [False, True], got


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("flags", [["--cap-add", "SYS_PTRACE"], ["--privileged"]],
                         ids=["sys-ptrace", "privileged"])
def test_a_ptrace_capable_command_reads_its_init(flags: list[str]) -> None:
    """What makes the test above pass is PID 1's non-dumpable flag, not the reader:
    given CAP_SYS_PTRACE (as docker's --privileged gives it), the command may read its
    PID 1 again, and finds its own secret there, in the spawner's image."""
    mine = _halves()
    done = supervise("run", "--init", *flags, "-e", f"MINE={''.join(mine)}",
                     "--", SYSTEM_PYTHON, "-c", READ_PID1, *mine)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["environ"] == [False] and isinstance(got["maps"], int), got
    assert got["memory"] == [True], got


# -- the state and cache directories ---------------------------------------------------
STATE_DIRS = ATTEMPT + """
state, cache = sys.argv[1:]
print(json.dumps({
    'list state': attempt(lambda: os.listdir(state)),
    'append a journal': attempt(lambda: open(os.path.join(state, 'forged.journal'), 'ab').close()),
    'list cache': attempt(lambda: os.listdir(cache)),
}))
"""

@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@pytest.mark.parametrize("flags", [
    [],
    ["-u", "65534:65534"],
    ["--privileged"],
], ids=["root", "nobody", "privileged"])
def test_a_container_cannot_reach_the_state_directory(tmp_path: Path, flags: list[str]) -> None:
    """The state directory (made by this very run, 0700) and the cache directory are
    root's alone: refused to a container as nobody (EACCES). (tmp_path is root's alone;
    the directories are below one anyone may enter.)"""
    parent = Path(tempfile.mkdtemp(prefix="supervise-test-"))
    try:
        parent.chmod(0o755)
        state, cache = parent / "state", parent / "cache"
        env = {**os.environ, "SUPERVISE_STATE_DIR": str(state), "SUPERVISE_CACHE_DIR": str(cache)}
        done = supervise("run", "--name", "looker", *flags, "--", SYSTEM_PYTHON, "-c",
                         STATE_DIRS, str(state), str(cache), env=env)
        assert done.returncode == 0, done.stderr
        got = json.loads(done.stdout)
        assert len(got) == 3 and set(got.values()) <= {"EACCES", "ENOENT"}, got  # ENOENT: unseen
    finally:
        shutil.rmtree(parent)
