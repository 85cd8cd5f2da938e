"""Devices, tried from inside as an attacker would: a default container opens only
docker's list (null, zero, full, random, urandom, tty, ptmx, its own pty); every
other device, even one it makes with mknod, is EPERM. --device adds one,
--privileged lifts the rules. On cgroup v1 the devices controller holds the rules,
on v2 a BPF program (nsutil/_devices.py), which a hybrid host runs too. These tries run
with --fs host, so that the host's nodes are there to try: the default view's /dev has
none but docker's (test_containment_fs), and the rules hold beneath it."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import cgroupfs
from nsutil import _devices
from supervisor import ContainerSpec, Supervisor
from supervisor._devices import DEFAULT_RULES, device_rules, parse_device
from supervisor._errors import UsageError

from .containers import run_capture, supervise

ALLOWED = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DENIED = ("/dev/kvm", "/dev/loop0", "/dev/zram0", "/dev/console", "/dev/tty1", "/dev/vcs",
          "/dev/userfaultfd", "/dev/kmsg", "/dev/vda", "/dev/sda", "/dev/mem", "/dev/fuse")
PRESENT = [d for d in DENIED if os.path.exists(d)]

# sh only (no Python: -u 65534 cannot reach this machine's interpreter); each line
# "PATH MODE RESULT", the result an errno name from the shell's message.
OPEN_ALL = r"""
for d in $DEVICES; do
  for mode in r w; do
    if [ $mode = r ]; then out=$( (exec 3<"$d") 2>&1 ); else out=$( (exec 3>"$d") 2>&1 ); fi
    case "$out" in
      "") r=ok ;;
      *"Operation not permitted"*) r=EPERM ;;
      *"Permission denied"*) r=EACCES ;;
      *"No such device or address"*) r=ENXIO ;;
      *"No such device"*) r=ENODEV ;;
      *) r="other:$out" ;;
    esac
    echo "$d $mode $r"
  done
done
"""


def _results(out: str) -> dict[tuple[str, str], str]:
    found = {}
    for line in out.splitlines():
        path, mode, result = line.split(" ", 2)
        found[(path, mode)] = result
    return found


@pytest.mark.trio
@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
async def test_a_default_container_opens_only_dockers_devices() -> None:
    env = {"PATH": "/usr/bin:/bin", "DEVICES": " ".join((*ALLOWED, *PRESENT))}
    async with Supervisor() as sup:
        root, out_root, err = await run_capture(sup, ["sh", "-c", OPEN_ALL], env=env,
                                                fs="host")
        nobody, out_nobody, _ = await run_capture(sup, ["sh", "-c", OPEN_ALL], env=env,
                                                  user=(65534, 65534), fs="host")
        privileged, out_priv, _ = await run_capture(sup, ["sh", "-c", OPEN_ALL], env=env,
                                                    privileged=True, fs="host")
    assert root.exit_code == nobody.exit_code == privileged.exit_code == 0, err
    as_root, as_nobody, as_privileged = (_results(o) for o in (out_root, out_nobody, out_priv))
    for path in ALLOWED:
        assert as_root[(path, "r")] == "ok" and as_nobody[(path, "r")] == "ok"
    for path in PRESENT:
        for mode in "rw":
            assert as_root[(path, mode)] == "EPERM", (path, mode, as_root)
            # nobody: the node's own permissions may refuse first (EACCES), else the
            # device rules do (EPERM); never ok
            assert as_nobody[(path, mode)] in ("EPERM", "EACCES"), (path, as_nobody)
            if _world_can(path, mode):
                assert as_nobody[(path, mode)] == "EPERM"
    # --privileged: the rules are gone; what fails now is the device's own answer
    assert PRESENT and any(as_privileged[(p, "r")] != "EPERM" for p in PRESENT)


def _world_can(path: str, mode: str) -> bool:
    bits = os.stat(path).st_mode
    return bool(bits & (stat.S_IROTH if mode == "r" else stat.S_IWOTH))


MKNOD = """
import errno, json, os, sys
path, kind, major, minor = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mode = (stat_flag := (0o060000 if kind == 'b' else 0o020000)) | 0o600
out = {}
try:
    os.mknod(path, mode, os.makedev(major, minor))
    out['mknod'] = 'ok'
except OSError as exc:
    out['mknod'] = errno.errorcode[exc.errno]
if out['mknod'] == 'ok':
    try:
        os.close(os.open(path, os.O_RDONLY))
        out['open'] = 'ok'
    except OSError as exc:
        out['open'] = errno.errorcode[exc.errno]
    os.unlink(path)
print(json.dumps(out))
"""


@pytest.mark.trio
@pytest.mark.usefixtures("root_only")
async def test_mknod_is_allowed_and_the_node_is_useless(tmp_path: Path) -> None:
    """docker's rule: root inside may create device nodes (m), not use them: a block
    device it makes (the host's disk's numbers) opens with EPERM; /dev/null's
    numbers, on the allow list, open."""
    disk = next((d for d in ("/dev/vda", "/dev/sda", "/dev/loop0") if os.path.exists(d)),
                None)
    if disk is None:
        pytest.skip("no block device to borrow the numbers of")
    rdev = os.stat(disk).st_rdev
    async with Supervisor() as sup:
        block, out, err = await run_capture(sup, [sys.executable, "-c", MKNOD,
                                                  str(tmp_path / "disk"), "b",
                                                  str(os.major(rdev)), str(os.minor(rdev))],
                                            fs="host")
        null, out_null, _ = await run_capture(sup, [sys.executable, "-c", MKNOD,
                                                    str(tmp_path / "null"), "c", "1", "3"],
                                              fs="host")
    assert block.exit_code == null.exit_code == 0, err
    assert json.loads(out) == {"mknod": "ok", "open": "EPERM"}
    assert json.loads(out_null) == {"mknod": "ok", "open": "ok"}


@pytest.mark.usefixtures("root_only")
def test_device_flag_lets_one_device_through() -> None:
    device = next((d for d in ("/dev/kvm", "/dev/fuse", "/dev/loop0") if os.path.exists(d)),
                  None)
    if device is None:
        pytest.skip("no device here to hand over")
    opened = f"exec 3<{device} && echo opened"
    without = supervise("run", "--fs", "host", "--", "sh", "-c", opened)
    given = supervise("run", "--fs", "host", "--device", device, "--", "sh", "-c", opened)
    read_only = supervise("run", "--fs", "host", "--device", f"{device}:r", "--", "sh", "-c",
                          f"exec 3>{device} && echo opened")
    assert "opened" not in without.stdout and "Operation not permitted" in without.stderr
    assert given.stdout.strip() == "opened", given.stderr
    assert "opened" not in read_only.stdout  # r only: writing is refused


@pytest.mark.usefixtures("root_only")
def test_another_terminals_pty_is_out_of_reach() -> None:
    """With -t the container's own pty is allowed; a pty of the host's (here one the
    test opens) is not, though the host's /dev/pts is in view."""
    master, slave = os.openpty()
    try:
        other = os.ttyname(slave)
        done = supervise("run", "--fs", "host", "--", "sh", "-c", f"echo hi > {other}")
        assert done.returncode != 0 and "Operation not permitted" in done.stderr
        os.set_blocking(master, False)
        with pytest.raises(BlockingIOError):
            os.read(master, 100)  # nothing came through
    finally:
        os.close(master)
        os.close(slave)


def test_device_flags_are_checked_and_turned_into_rules(tmp_path: Path) -> None:
    null = parse_device("/dev/null:rw")
    assert null.rule == cgroupfs.DeviceRule("c", 1, 3, "rw")
    assert parse_device("/dev/null").rule.access == "rwm"
    for text, message in [("/no/such", "No such file"), (str(tmp_path), "not a device"),
                          ("dev/null", "absolute"), ("/dev/null:/dev/null:x", "permissions"),
                          ("/dev/null:/tmp/null", "below /dev")]:
        with pytest.raises(UsageError, match=message):
            parse_device(text)
    assert device_rules((null,), privileged=True, tty=None) is None
    rules = device_rules((null,), privileged=False, tty=os.makedev(136, 4))
    assert rules is not None and rules[:len(DEFAULT_RULES)] == DEFAULT_RULES
    assert cgroupfs.DeviceRule("c", 136, 4, "rwm") in rules and rules[-1] == null.rule
    assert cgroupfs.v1_limit_files(cgroupfs.Limits(devices=rules[:3]))[:2] == [
        ("devices", "devices.deny", "a"), ("devices", "devices.allow", "c *:* m")]
    assert cgroupfs.parse_device_rule("b 8:* rw") == cgroupfs.DeviceRule("b", 8, None, "rw")
    with pytest.raises(cgroupfs.CgroupError):
        cgroupfs.parse_device_rule("x 1:3 rwm")


def test_the_device_program_is_bpf_for_the_rules() -> None:
    """Seven-instruction prologue and epilogue, a block per rule: a jump per test
    (three for an access subset), then `return 1`."""
    empty = _devices.program([])
    assert len(empty) == 8 * 8  # prologue (6) and `return 0; exit`
    one = _devices.program([("c", 1, 3, "rwm")])
    # type, major, minor: 3 jumps, then r0 = 1 and exit
    assert len(one) == len(empty) + 8 * 5
    partial = _devices.program([("a", -1, -1, "m")])
    assert len(partial) == len(empty) + 8 * (3 + 2)


@pytest.mark.usefixtures("root_only")
def test_the_bpf_filter_holds_on_a_cgroup2_tree(tmp_path: Path) -> None:
    """The program the spawner attaches on v2, tried directly on this host's cgroup v2
    tree (a hybrid host's unified one works too): allowed, refused, mknod only."""
    layout = cgroupfs.detect_layout()
    if layout.v2_mount is None:
        pytest.skip("no cgroup v2 tree")
    program = _devices.load([("c", 1, 3, "rwm"), ("c", 1, 5, "r"), ("b", -1, -1, "m")])
    directory = os.path.join(layout.v2_own_dir(), f"devtest-{os.getpid()}")
    os.mkdir(directory)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _devices.attach(program, fd)
        script = ("import errno, os\n"
                  "def t(p, f):\n"
                  "    try:\n"
                  "        os.close(os.open(p, f)); return 'ok'\n"
                  "    except OSError as e: return errno.errorcode[e.errno]\n"
                  f"node = {str(tmp_path / 'b')!r}\n"
                  "os.mknod(node, 0o600 | 0o060000, os.makedev(7, 0))\n"
                  "print(t('/dev/null', os.O_RDWR), t('/dev/zero', os.O_RDONLY),\n"
                  "      t('/dev/zero', os.O_WRONLY), t('/dev/full', os.O_RDONLY),\n"
                  "      t(node, os.O_RDONLY))\n")

        def join() -> None:
            Path(directory, "cgroup.procs").write_text("0")

        done = subprocess.run([sys.executable, "-c", script], preexec_fn=join,
                              capture_output=True, text=True, timeout=30)
        assert done.stdout.split() == ["ok", "ok", "EPERM", "EPERM", "EPERM"], done.stderr
    finally:
        os.close(fd)
        os.close(program)
        os.rmdir(directory)


def test_an_unknown_architecture_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Uname:
        machine = "pdp11"

    monkeypatch.setattr(os, "uname", Uname)
    with pytest.raises(OSError) as raised:
        _devices.load([])
    assert raised.value.errno == errno.ENOSYS and "pdp11" in str(raised.value)


@pytest.mark.trio
@pytest.mark.usefixtures("root_only")
async def test_privileged_spec_has_no_rules_and_default_has_dockers() -> None:
    assert ContainerSpec(["true"], privileged=True).device_rules(None) is None
    assert ContainerSpec(["true"]).device_rules(None) == DEFAULT_RULES
