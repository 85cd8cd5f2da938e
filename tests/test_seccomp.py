"""seccomp: docker's default profile by default, --security-opt, and a profile of
one's own in docker's JSON format.

Pure: profiles parsed and checked, the entries chosen by capabilities, architecture
and kernel as docker chooses them, the flags. Real containers as root: each escape the
issue lists, as root and as -u 65534:65534, fails with the errno docker's profile
gives; ordinary programs still run; unconfined and --privileged reach the kernel.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import pytest

from nsutil import _caps, _plan, _seccomp, _seccomp_bpf
from nsutil._messages import Failed
from nsutil._seccomp_default import PROFILE
from supervisor import ContainerSpec, Supervisor
from supervisor._errors import SuperviseError, UsageError
from supervisor._host import require_seccomp
from supervisor._options import parse_security_opts

from .containers import (
    PYTHON,
    init_spec,
    run_capture,
    send_spawn,
    shown,
    spawner_message,
    spawner_process,
    supervise,
)

SYSTEM_PYTHON = "/usr/bin/python3"  # the venv's lives under /root, closed to nobody
DOCKER_CAPS = [f"CAP_{_caps.CAPABILITIES[n]}" for n in _caps.effective_set()]


def _names(rules: list[_seccomp.Rule]) -> set[str]:
    return {name for rule in rules for name in rule.names}


def _rules_for(name: str, rules: list[_seccomp.Rule]) -> list[_seccomp.Rule]:
    return [rule for rule in rules if name in rule.names]


# -- pure: the profile format ------------------------------------------------------------

def test_the_default_profile_parses_as_a_users_would() -> None:
    """The built-in profile goes through the same parser as a JSON file: its JSON text
    gives the same profile."""
    builtin = _seccomp.load_profile(_seccomp.DEFAULT)
    from_json = _seccomp.load_profile(json.dumps(PROFILE))
    assert builtin.default_action == from_json.default_action == 0x00050000 | errno.EPERM
    assert [(r.names, r.action, r.args) for r in builtin.rules] == [
        (r.names, r.action, r.args) for r in from_json.rules]
    assert builtin.arch_map["x86_64"] == ("x86_64", "x86")  # no x32
    assert builtin.arch_map["aarch64"] == ("aarch64", "arm")


def test_docker_selects_entries_by_capabilities_arch_and_kernel() -> None:
    profile = _seccomp.load_profile(_seccomp.DEFAULT)
    plain = _seccomp.select_rules(profile, DOCKER_CAPS, "amd64", (6, 18))
    names = _names(plain)
    refused = {"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
               "io_uring_setup", "io_uring_enter", "io_uring_register", "mount", "umount2",
               "pivot_root", "kexec_load", "kexec_file_load", "init_module", "finit_module",
               "open_by_handle_at", "clock_settime", "swapon", "reboot", "setns", "unshare"}
    assert not names & (refused - {"unshare"}), names & refused
    assert {"arch_prctl", "ptrace", "chroot"} <= names and "cacheflush" not in names
    # unshare and clone only without namespace flags, clone3 ENOSYS
    (unshare,) = _rules_for("unshare", plain)
    assert unshare.args == ((0, 7, 0x7E020080, 0),)
    (clone,) = _rules_for("clone", plain)
    assert clone.args == ((0, 7, 0x7E020000, 0),)
    (clone3,) = _rules_for("clone3", plain)
    assert clone3.action == 0x00050000 | errno.ENOSYS
    assert {r.args[0][2] for r in _rules_for("personality", plain)} == {
        0, 8, 0x20000, 0x20008, 0xFFFFFFFF}

    # CAP_SYS_ADMIN: mount, unshare, setns... unconditionally; no masked clone, no ENOSYS
    admin = _seccomp.select_rules(profile, [*DOCKER_CAPS, "CAP_SYS_ADMIN"], "amd64", (6, 18))
    assert {"mount", "umount2", "setns", "bpf", "perf_event_open"} <= _names(admin)
    assert [r.args for r in _rules_for("clone", admin)] == [()]
    assert [r.action for r in _rules_for("clone3", admin)] == [0x7FFF0000]
    # capabilities only grant theirs; arches and minKernel select too
    assert "clock_settime" in _names(
        _seccomp.select_rules(profile, [*DOCKER_CAPS, "CAP_SYS_TIME"], "amd64", (6, 18)))
    arm = _names(_seccomp.select_rules(profile, DOCKER_CAPS, "arm64", (6, 18)))
    assert "cacheflush" in arm and "arch_prctl" not in arm
    old = _seccomp.select_rules(profile, DOCKER_CAPS, "amd64", (4, 4))
    assert "ptrace" not in _names(old)


PROFILE_ERRORS = [
    ("[]", "the profile: expected an object, got a list"),
    ("{", "not JSON"),
    ('{"syscalls": []}', "defaultAction is missing"),
    ('{"defaultAction": "SCMP_ACT_NOPE"}', "defaultAction: unknown action 'SCMP_ACT_NOPE'"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}',
     "defaultErrnoRet: expected a whole number from 0 to 4095"),
    ('{"defaultAction": "SCMP_ACT_NOTIFY"}', "needs a notification agent"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}',
     "architectures: unknown architecture 'SCMP_ARCH_Z80'"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], '
     '"archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}', "either architectures or archMap"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}',
     "flags: unknown flag"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "mkdir", '
     '"action": "SCMP_ACT_ERRNO"}]}', "syscalls[0].names: expected a list, got a string"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]}',
     "syscalls[0].action is missing"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], '
     '"action": "SCMP_ACT_LOG"}]}', "syscalls[0]: give either name or names"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
     '"action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
     "syscalls[0].args[0].index: expected a whole number from 0 to 5"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
     '"action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}',
     "syscalls[0].args[0].op: unknown operator 'EQ'"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], '
     '"action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "six"}}]}',
     "syscalls[0].includes.minKernel: expected a version like"),
]


@pytest.mark.parametrize(("text", "message"), PROFILE_ERRORS)
def test_bad_profiles_are_refused_with_the_field_named(text: str, message: str) -> None:
    with pytest.raises(_seccomp.ProfileError, match=re.escape(message)):
        _seccomp.load_profile(text)


def test_a_docker_profile_reads_as_docker_reads_it() -> None:
    profile = _seccomp.load_profile(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "unknownKey": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122,
             "comment": "ignored"},
            {"name": "chmod", "action": "SCMP_ACT_ERRNO"},  # docker's old single name
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 19, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        ]}))
    assert profile.architectures == ("x86_64", "aarch64") and profile.flags == 2
    mkdir, chmod, kill = profile.rules
    assert (mkdir.names, mkdir.action) == (("mkdir", "mkdirat"), 0x00050000 | 122)
    assert (chmod.names, chmod.action) == (("chmod",), 0x00050000 | errno.EPERM)
    # two comparisons of one argument: either holds (two rules, as runc adds them)
    assert _seccomp_bpf.condition_sets(kill.args) == [((1, 4, 9, 0),), ((1, 4, 19, 0),)]


def test_security_opt_values() -> None:
    files = {"p.json": '{"defaultAction": "SCMP_ACT_ALLOW"}', "bad.json": "{"}

    def read(path: str) -> str:
        if path not in files:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return files[path]

    assert parse_security_opts([], read) == parse_security_opts(["seccomp=builtin"], read)
    assert parse_security_opts([], read).seccomp == "default"
    assert parse_security_opts(["seccomp=unconfined"], read).seccomp is None
    assert parse_security_opts(["seccomp:unconfined"], read).seccomp is None  # old spelling
    assert parse_security_opts(["seccomp=p.json"], read).seccomp == files["p.json"]
    nnp = parse_security_opts(["no-new-privileges", "apparmor=unconfined"], read)
    assert nnp.no_new_privileges and nnp.seccomp == "default"
    assert parse_security_opts(["no-new-privileges=true"], read).no_new_privileges
    for value, message in [
        ("seccomp=bad.json", "^--security-opt seccomp=bad.json: not JSON"),
        ("seccomp=nope.json", "^--security-opt seccomp=nope.json: No such file"),
        ("apparmor=docker-default", "not supported"),
        ("no-new-privileges=false", "always sets no_new_privs"),
        ("seccomp", "expected seccomp=unconfined"),
        ("systempaths=unconfined", "expected seccomp=unconfined"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_security_opts([value], read)
    with pytest.raises(ValueError, match="defaultAction is missing"):
        ContainerSpec(["true"], seccomp="{}")


def test_privileged_runs_unconfined_and_init_spec_says_so() -> None:
    common: dict[str, Any] = {"hostname": "h", "cgroup_join": (), "cgroup_fd": None,
                              "cgroup_v2_join": None, "devices": None,
                              "device_cgroup_fd": None,
                              "loopback_request": None, "stdio": (0, 1, 2), "cwd": "/"}
    assert ContainerSpec(["true"]).init_spec(**common).seccomp == "default"
    assert ContainerSpec(["true"], seccomp=None).init_spec(**common).seccomp is None
    privileged = ContainerSpec(["true"], privileged=True).init_spec(**common)
    assert privileged.seccomp is None and not privileged.no_new_privs
    assert ContainerSpec(["true"], privileged=True, no_new_privileges=True).init_spec(
        **common).no_new_privs


def test_a_missing_libseccomp_is_one_line_naming_the_package(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_seccomp, "library_found", lambda: False)
    require_seccomp([ContainerSpec(["true"], seccomp=None),
                     ContainerSpec(["true"], privileged=True)])  # unconfined: fine
    with pytest.raises(SuperviseError, match=r"^seccomp: libseccomp \(libseccomp.so.2\) is "
                                             r"not installed: install libseccomp2 \(Debian"):
        require_seccomp([ContainerSpec(["true"])])
    # and the spawner's own check, should the library go between the two
    monkeypatch.setattr(_seccomp_bpf, "_lib", None)
    monkeypatch.setattr(_seccomp_bpf, "LIBRARY", "libseccomp-none.so.9")
    with pytest.raises(_seccomp.ProfileError, match="install libseccomp2"):
        _seccomp_bpf.prepare(_seccomp.DEFAULT, None)


def test_the_filter_is_the_last_step_compiled_once_per_capability_set() -> None:
    host = _plan.Host(bounding=(1 << 41) - 1, permitted=(1 << 41) - 1, readonly=(),
                      masked=(), ignored=())
    caps = tuple(_caps.effective_set())
    plain = _plan.compile_plan(init_spec(capabilities=caps, no_new_privs=True), [0], host, 9)
    assert all(f[0] != "seccomp" for _fn, _a, f in plain.steps)
    confined = _plan.compile_plan(init_spec(capabilities=caps, no_new_privs=True,
                                            seccomp="default"), [0], host, 9)
    assert confined.steps[-1][2][0] == "seccomp"
    again = _plan.compile_plan(init_spec(capabilities=caps, no_new_privs=True,
                                         seccomp="default"), [0], host, 9)
    assert again.steps[-1] is confined.steps[-1]  # from the cache
    admin = _plan.compile_plan(init_spec(capabilities=(*caps, 21), no_new_privs=True,
                                         seccomp="default"), [0], host, 9)
    assert admin.steps[-1] is not confined.steps[-1]


# -- real containers -----------------------------------------------------------------------

MACHINE = platform.machine()
# Syscalls with no libc wrapper (or whose wrapper checks its arguments), by number.
NUMBERS = {
    "x86_64": {"clone3": 435, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
               "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
               "kexec_load": 246, "init_module": 175, "open_by_handle_at": 304,
               "clock_settime": 227, "swapon": 167, "reboot": 169, "pivot_root": 155,
               "umount2": 166, "mount": 165, "setns": 308, "socket": 41,
               "personality": 135, "unshare": 272, "fchmodat2": 452},
    "aarch64": {"clone3": 435, "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280,
                "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425,
                "kexec_load": 104, "init_module": 105, "open_by_handle_at": 265,
                "clock_settime": 112, "swapon": 224, "reboot": 142, "pivot_root": 41,
                "umount2": 39, "mount": 40, "setns": 268, "socket": 198,
                "personality": 92, "unshare": 97, "fchmodat2": 452},
}

# Every call is harmless should it reach the kernel (NULL pointers, bad magic numbers,
# invalid flags); unshare(CLONE_NEWUSER) comes last, since it succeeds unconfined.
ESCAPES = """
import ctypes, errno, json, platform, sys
nr = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
def call(name, *args):
    if libc.syscall(L(nr[name]), *(L(a) for a in args)) >= 0:
        return 'ok'
    return errno.errorcode.get(ctypes.get_errno(), '?')
out = {
    'clone3': call('clone3', 0, 0),
    'keyctl': call('keyctl', 0, -3, 0),             # KEYCTL_GET_KEYRING_ID, session
    'add_key': call('add_key', 0, 0, 0, 0, 0),
    'request_key': call('request_key', 0, 0, 0, 0),
    'bpf': call('bpf', 0x7fffff, 0, 0),
    'perf_event_open': call('perf_event_open', 0, 0, -1, -1, 0),
    'userfaultfd': call('userfaultfd', 0x7fffffff),
    'io_uring_setup': call('io_uring_setup', 0, 0),
    'kexec_load': call('kexec_load', 0, 0, 0, 0xdead0000),
    'init_module': call('init_module', 0, 0, 0),
    'open_by_handle_at': call('open_by_handle_at', -1, 0, 0),
    'clock_settime': call('clock_settime', 0, 0),
    'swapon': call('swapon', 0, 0),
    'reboot': call('reboot', 0, 0, 0, 0),
    'pivot_root': call('pivot_root', 0, 0),
    'umount2': call('umount2', 0, 0),
    'mount': call('mount', 0, 0, 0, 0, 0),
    'setns': call('setns', -1, 0),
    'socket_vsock': call('socket', 40, 1, 0),
    'personality_query': call('personality', 0xffffffff),
    'personality_no_aslr': call('personality', 0x0040000),
    # newer than any syscall the profile names (Linux 6.6): ENOSYS, so libc falls back
    'fchmodat2': call('fchmodat2', -100, 0, 0, 0),
}
if platform.machine() == 'x86_64':  # getpid in the x32 ABI
    x32 = libc.syscall(L(0x40000000 | 39))
    out['x32_getpid'] = 'ok' if x32 >= 0 else errno.errorcode.get(ctypes.get_errno(), '?')
out['unshare_user'] = call('unshare', 0x10000000)
print(json.dumps(out))
"""

DOCKERS_ERRNOS = {name: "EPERM" for name in (
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "kexec_load", "init_module", "open_by_handle_at", "clock_settime",
    "swapon", "reboot", "pivot_root", "umount2", "mount", "setns", "socket_vsock",
    "personality_no_aslr", "unshare_user")} | {
    "clone3": "ENOSYS", "fchmodat2": "ENOSYS", "personality_query": "ok"} | (
    {"x32_getpid": "ENOSYS"} if MACHINE == "x86_64" else {})


def _status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


async def _escapes(sup: Supervisor, python: str = PYTHON, **spec: Any) -> dict[str, str]:
    result, out, err = await run_capture(
        sup, [python, "-c", ESCAPES, json.dumps(NUMBERS[MACHINE])], **spec)
    assert result.exit_code == 0, (result, err)
    got: dict[str, str] = json.loads(out)
    return got


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_each_escape_gets_dockers_errno_as_root_and_as_nobody() -> None:
    if MACHINE not in NUMBERS:
        pytest.skip(f"no syscall numbers for {MACHINE}")
    async with Supervisor() as sup:
        root = await _escapes(sup)
        nobody = await _escapes(sup, SYSTEM_PYTHON, user=(65534, 65534))
        _, out, _ = await run_capture(sup, ["cat", "/proc/self/status"])
        _, user_out, _ = await run_capture(sup, ["cat", "/proc/self/status"],
                                                     user=(65534, 65534))
    assert root == DOCKERS_ERRNOS, root
    assert nobody == DOCKERS_ERRNOS, nobody
    for text in (out, user_out):
        fields = _status(text)
        assert (fields["Seccomp"], fields["NoNewPrivs"]) == ("2", "1"), fields


@pytest.mark.trio
@pytest.mark.usefixtures("root_only")
async def test_unconfined_and_privileged_reach_the_kernel_again() -> None:
    if MACHINE not in NUMBERS:
        pytest.skip(f"no syscall numbers for {MACHINE}")
    async with Supervisor() as sup:
        unconfined = await _escapes(sup, seccomp=None)
        privileged = await _escapes(sup, privileged=True)
        _, out, _ = await run_capture(sup, ["cat", "/proc/self/status"], seccomp=None)
        _, priv_out, _ = await run_capture(sup, ["cat", "/proc/self/status"],
                                           privileged=True)
        userns, userns_out, userns_err = await run_capture(
            sup, ["unshare", "-U", "-r", "-m", "sh", "-c", "id -u"], privileged=True)
    assert _status(out)["Seccomp"] == _status(priv_out)["Seccomp"] == "0"
    for got in (unconfined, privileged):
        # the kernel's own answers: clone3 reads its (absent) arguments, keyctl works,
        # and a user namespace is made (what the default profile exists to stop)
        assert got["clone3"] in ("EINVAL", "EFAULT"), got
        assert got["keyctl"] == "ok" and got["unshare_user"] == "ok", got
        assert got["personality_no_aslr"] == "ok", got
        assert got["fchmodat2"] in ("EFAULT", "ENOSYS"), got  # ENOSYS: a kernel before 6.6
    assert privileged["mount"] == "EFAULT"  # past the capability check, to the NULL
    assert (userns.exit_code, userns_out) == (0, "0\n"), userns_err


WORKLOAD = r"""
import mmap, os, socket, subprocess, threading
hits = []
threads = [threading.Thread(target=hits.append, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
area = mmap.mmap(-1, 1 << 20)
area[:5] = b'hello'
server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()
client = socket.create_connection(server.getsockname())
conn, _ = server.accept(); client.sendall(b'ping'); got = conn.recv(4)
child = os.fork()
if child == 0:
    os._exit(7)
_, status = os.waitpid(child, 0)
sub = subprocess.run(['sh', '-c', 'echo a | tr a b; exit 3'], capture_output=True)
print(len(hits), area[:5].decode(), got.decode(), os.waitstatus_to_exitcode(status),
      sub.stdout.decode().strip(), sub.returncode)
"""


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_ordinary_programs_still_run() -> None:
    async with Supervisor() as sup:
        root, out, err = await run_capture(sup, [PYTHON, "-c", WORKLOAD])
        nobody, user_out, user_err = await run_capture(
            sup, [SYSTEM_PYTHON, "-c", WORKLOAD], user=(65534, 65534), init=True)
        shell, shell_out, _ = await run_capture(
            sup, ["sh", "-c", "ls / | wc -l >/dev/null && seq 3 | sort -r | head -1"])
    assert (root.exit_code, out) == (0, "8 hello ping 7 b 3\n"), err
    assert (nobody.exit_code, user_out) == (0, "8 hello ping 7 b 3\n"), user_err
    assert (shell.exit_code, shell_out) == (0, "3\n")


@pytest.mark.usefixtures("root_only")
def test_a_profile_of_ones_own_and_a_bad_one(tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno.EDQUOT}]}))
    target = tmp_path / "made"
    script = f"mkdir {target}; echo $?; grep Seccomp: /proc/self/status"
    done = supervise("run", "--security-opt", f"seccomp={profile}", "--", "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "Seccomp:", "2"]
    assert "Disk quota exceeded" in done.stderr and not target.exists()

    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}')
    done = supervise("run", "--security-opt", f"seccomp={bad}", "--", "true")
    assert done.returncode == 125
    assert done.stderr == (f"supervise: --security-opt seccomp={bad}: syscalls[0].action "
                           "is missing\n")


@pytest.mark.usefixtures("root_only")
def test_the_spawner_refuses_a_profile_it_cannot_compile() -> None:
    """What the supervisor did not catch (its check skipped, libseccomp's refusal, the
    library gone): the spawner says so in one line, and starts nothing."""
    with spawner_process() as (ours, _spawner):
        devnull = os.open("/dev/null", os.O_RDWR)
        send_spawn(ours, "x", init_spec(seccomp="{"), [devnull])
        os.close(devnull)
        message, _fds = spawner_message(ours)
    assert isinstance(message, Failed), message
    assert (message.error.step, message.error.message.split(":")[:2]) == (
        "seccomp", ["seccomp", " not JSON"])


@pytest.mark.trio
@pytest.mark.usefixtures("root_only")
async def test_cap_add_sys_admin_allows_what_docker_allows_with_it(tmp_path: Path) -> None:
    """docker's profile with CAP_SYS_ADMIN: mount, unshare and setns reach the kernel
    (the mount works), clone3 too."""
    script = ("import ctypes, json, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
              "nr = json.loads(sys.argv[1]); libc.syscall.restype = ctypes.c_long; "
              "r = libc.syscall(ctypes.c_long(nr['clone3']), ctypes.c_long(0), "
              "ctypes.c_long(0)); print(os.strerror(ctypes.get_errno()))")
    async with Supervisor() as sup:
        mounted, out, err = await run_capture(
            sup, ["sh", "-c", f"mount -t tmpfs none {tmp_path} && unshare -m true && echo ok"],
            cap_add=["SYS_ADMIN"], volumes=shown(tmp_path))
        _, clone3_out, _ = await run_capture(
            sup, [PYTHON, "-c", script, json.dumps(NUMBERS.get(MACHINE, {"clone3": 435}))],
            cap_add=["SYS_ADMIN"])
    assert (mounted.exit_code, out) == (0, "ok\n"), err
    assert clone3_out.strip() != os.strerror(errno.ENOSYS)


@pytest.mark.usefixtures("root_only")
def test_security_opt_as_batch_default_and_per_line(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(
        "--name a -- grep Seccomp: /proc/self/status\n"
        "--name b --security-opt seccomp=builtin -- grep Seccomp: /proc/self/status\n")
    logs = tmp_path / "logs"
    done = supervise("batch", str(jobs), "--no-live", "--logs", str(logs),
                     "--security-opt", "seccomp=unconfined")
    assert done.returncode == 0, done.stderr
    assert (logs / "a.out").read_text().split() == ["Seccomp:", "0"]
    assert (logs / "b.out").read_text().split() == ["Seccomp:", "2"]
    jobs.write_text("--name c --security-opt seccomp=/no/such.json -- true\n")
    done = supervise("batch", str(jobs), "--no-live")
    assert done.returncode == 2
    assert f"{jobs}:1: --security-opt seccomp=/no/such.json: No such file" in done.stderr
