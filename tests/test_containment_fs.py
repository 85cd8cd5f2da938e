"""Containment II: the file system a container sees (issue 12).

By default the host's files are visible read-only (every mount), /tmp, /var/tmp, /run
and /dev/shm are tmpfs mounts of the container's own, /dev is docker's minimal set;
-v, --tmpfs and --fs host change that. Each escape is tried as root and as nobody
in a real container, through the CLI as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsutil import _libc
from supervisor._errors import UsageError
from supervisor._fsview import (
    Tmpfs,
    Volume,
    fs_view,
    parse_tmpfs,
    parse_volume,
    working_directory,
)
from supervisor._options import HostFacts, RunOptions, build_spec

from .containers import ATTEMPT, supervise

SYSTEM_PYTHON = "/usr/bin/python3"
AS = pytest.mark.parametrize("flags", [[], ["-u", "65534:65534"]], ids=["root", "nobody"])

def _run(*args: str, cwd: str | Path | None = None) -> dict[str, str]:
    done = supervise("run", *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    got: dict[str, str] = json.loads(done.stdout)
    return got


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A root-owned directory of the host's outside /tmp (which containers do not see)."""
    path = Path(tempfile.mkdtemp(prefix="supervise-test-", dir="/var/lib"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path)


# -- the pure parts ------------------------------------------------------------------

def test_parse_volume() -> None:
    isdir = {"/data": True, "/data/f": False, "/here": True, "/here/out": True}.get
    assert parse_volume("/data:/mnt", "/here", isdir) == Volume("/data", "/mnt", False, True)
    assert parse_volume("/data/f:/etc/f:ro", "/", isdir) == Volume("/data/f", "/etc/f", True,
                                                                  False)
    assert parse_volume("out:/out/", "/here", isdir) == Volume("/here/out", "/out", False, True)
    assert parse_volume(".", "/here", isdir) == Volume("/here", "/here", False, True)
    for text, message in [("/data", "expected HOST:CONTAINER"), ("/data:/mnt:rx", "ro or rw"),
                          ("/data:mnt", "must be absolute"), ("/data:/", "own"),
                          ("/data:/proc/x", "own"), ("/data:/dev", "own"),
                          ("/nope:/mnt", "/nope does not exist"), ("/data:/a:b:ro", "expected")]:
        with pytest.raises(UsageError, match=message):
            parse_volume(text, "/", isdir)


def test_parse_tmpfs() -> None:
    hidden = _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC
    assert parse_tmpfs("/scratch") == Tmpfs("/scratch", hidden, "")
    assert parse_tmpfs("/scratch:size=16m,mode=700,exec") == Tmpfs(
        "/scratch", hidden & ~_libc.MS_NOEXEC, f"size={16 << 20},mode=700")
    assert parse_tmpfs("/s:ro").flags == hidden | _libc.MS_RDONLY
    for text, message in [("scratch", "absolute"), ("/s:size=lots", "size"),
                          ("/s:mode=999", "unknown option"), ("/s:uid=0", "unknown option"),
                          ("/proc", "own")]:
        with pytest.raises(UsageError, match=message):
            parse_tmpfs(text)


def test_working_directory_shows_a_hidden_caller_directory_read_only() -> None:
    assert working_directory(None, "/work", (), ()) == ("/work", None)
    assert working_directory("/w", "/tmp/x", (), ()) == ("/w", None)
    assert working_directory(None, "/tmp/x", (), ()) == ("/tmp/x",
                                                       Volume("/tmp/x", "/tmp/x", True, True))
    assert working_directory(None, "/tmp", (), ()) == ("/tmp", None)  # its own /tmp
    shown = Volume("/tmp", "/tmp", False, True)
    assert working_directory(None, "/tmp/x", (shown,), ()) == ("/tmp/x", None)
    assert working_directory(None, "/s/x", (), (Tmpfs("/s", 0, ""),))[1] is not None


def test_fs_view_orders_the_mounts() -> None:
    view = fs_view(volumes=(Volume("/a", "/tmp/a/b", False, True),
                            Volume("/b", "/tmp/a", True, True)),
                   tmpfs=(Tmpfs("/tmp", 2, "size=1"),), shm_size=1 << 20, dev=True,
                   device_nodes=())
    # the given /tmp replaces the default one; /dev/shm sized; outer volume first
    assert [m[0] for m in view.tmpfs] == ["/var/tmp", "/run", "/dev/shm", "/tmp"]
    assert ("size=1048576" in view.tmpfs[2][2]) and view.tmpfs[3] == ("/tmp", 2, "size=1", True)
    assert [v[1] for v in view.volumes] == ["/tmp/a", "/tmp/a/b"]


def test_volume_and_fs_flags_are_checked() -> None:
    host = HostFacts(cpu_count=2, cpus=frozenset({0, 1}), mems=frozenset({0}), environ={},
                     cwd="/here", isdir={"/here": True, "/data": True, "/mnt": True}.get)

    def spec(**opts: object) -> object:
        return build_spec(["true"], RunOptions(**opts), host,  # type: ignore[arg-type]
                          default_hostname="h", read_file=lambda p: "")

    with pytest.raises(UsageError, match="--fs host"):
        spec(fs="host", volumes=("/data:/mnt",))
    with pytest.raises(UsageError, match="/nowhere does not exist"):
        spec(volumes=("/data:/nowhere",))
    with pytest.raises(UsageError, match="mounts there already"):
        spec(volumes=("/data:/mnt", "/here:/mnt"))
    assert spec(volumes=("/data:/run/x",))  # below a tmpfs of its own: made there


# -- in real containers --------------------------------------------------------------

WRITE_HOST = ATTEMPT + """
path = sys.argv[1]
print(json.dumps({
    'append': attempt(lambda: open(path, 'ab').close()),
    'create': attempt(lambda: open(path + '.new', 'wb').close()),
    'unlink': attempt(lambda: os.unlink(path)),
    'etc': attempt(lambda: open('/etc/supervise-was-here', 'wb').close()),
    'install': attempt(lambda: open(os.path.join(sys.argv[2], 'x'), 'wb').close()),
}))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@AS
def test_host_files_are_read_only(host_dir: Path, flags: list[str]) -> None:
    secret = host_dir / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0o600)
    installed = str(Path(__file__).resolve().parents[1] / "supervisor")
    got = _run(*flags, "--", SYSTEM_PYTHON, "-c", WRITE_HOST, str(secret), installed)
    if flags:  # nobody: refused by the file's mode before the mount's flag
        assert set(got.values()) <= {"EROFS", "EACCES"}, got
    else:
        assert set(got.values()) == {"EROFS"}, got
    assert secret.read_bytes() == b"x" and not Path(f"{secret}.new").exists()
    assert not Path("/etc/supervise-was-here").exists()


SCRATCH = ATTEMPT + """
import subprocess
paths = ['/tmp', '/var/tmp', '/run', '/dev/shm']
before = {p: sorted(os.listdir(p)) for p in paths}
wrote = {p: attempt(lambda p=p: open(os.path.join(p, 'left-here'), 'w').close()) for p in paths}
sizes = {p: os.statvfs(p).f_blocks * os.statvfs(p).f_frsize for p in paths}
print(json.dumps({'before': before, 'wrote': wrote, 'shm': sizes['/dev/shm'],
                  'fs': {p: subprocess.run(['stat', '-f', '-c', '%T', p], capture_output=True,
                                           text=True).stdout.strip() for p in paths}}))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@AS
def test_scratch_is_private_sized_and_fresh(flags: list[str]) -> None:
    host_tmp = set(os.listdir("/tmp"))
    marker = Path("/run/supervise-test-marker")
    marker.write_text("host's")
    try:
        first = _run(*flags, "--", SYSTEM_PYTHON, "-c", SCRATCH)
        second = _run(*flags, "--shm-size", "16m", "--", SYSTEM_PYTHON, "-c", SCRATCH)
    finally:
        marker.unlink()
    for got in (first, second):
        assert got["before"] == {"/tmp": [], "/var/tmp": [], "/run": [], "/dev/shm": []}, got
        assert set(got["fs"].values()) == {"tmpfs"}, got
        expected = {"/tmp": "ok", "/var/tmp": "ok", "/run": "EACCES" if flags else "ok",
                    "/dev/shm": "ok"}
        assert got["wrote"] == expected, got
    assert first["shm"] == 64 << 20 and second["shm"] == 16 << 20
    assert "left-here" not in set(os.listdir("/tmp")) - host_tmp
    assert not Path("/run/left-here").exists() and not Path("/dev/shm/left-here").exists()


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@AS
def test_filling_dev_shm_is_an_oom_kill_that_leaves_nothing(flags: list[str]) -> None:
    """...and no charge either: a file left in the host's /dev/shm would keep its
    pages charged to the container's parent once its cgroup is gone (ours is an
    ancestor: usage counts what is below)."""
    before, charged = set(os.listdir("/dev/shm")), _own_memory_usage()
    done = supervise("run", *flags, "-m", "64m", "--shm-size", "512m", "--", "sh", "-c",
                     "head -c 200m /dev/zero > /dev/shm/fill")
    assert done.returncode == 137, done.stderr
    assert "out of memory" in done.stderr
    assert set(os.listdir("/dev/shm")) == before
    assert _own_memory_usage() - charged < 32 << 20


def _own_memory_usage() -> int:
    """The memory usage of this process's memory cgroup (v1 or v2)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes").read_text())
        if controllers == "" and Path(f"/sys/fs/cgroup{path}/memory.current").exists():
            return int(Path(f"/sys/fs/cgroup{path}/memory.current").read_text())
    pytest.skip("no memory cgroup to read")


SOCKETS = ATTEMPT + """
def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
print(json.dumps({p: attempt(lambda p=p: connect(p)) for p in sys.argv[1:]}))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@AS
def test_host_unix_sockets_under_run_and_tmp_are_out_of_reach(flags: list[str]) -> None:
    listening, paths = [], []
    try:
        for top in ("/run", "/tmp"):
            directory = tempfile.mkdtemp(prefix="supervise-test-", dir=top)
            os.chmod(directory, 0o755)
            path = os.path.join(directory, "sock")
            server = socket.socket(socket.AF_UNIX)
            server.bind(path)
            os.chmod(path, 0o777)
            server.listen()
            listening.append(server)
            paths.append(path)
        got = _run(*flags, "--", SYSTEM_PYTHON, "-c", SOCKETS, *paths)
        assert set(got.values()) == {"ENOENT"}, got
    finally:
        for server in listening:
            server.close()
        for path in paths:
            shutil.rmtree(os.path.dirname(path))


DEV = ATTEMPT + """
import stat
found = {}
for name in sorted(os.listdir('/dev')):
    st = os.lstat('/dev/' + name)
    found[name] = ('link:' + os.readlink('/dev/' + name) if stat.S_ISLNK(st.st_mode)
                   else 'dir' if stat.S_ISDIR(st.st_mode)
                   else f'c{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}'
                   if stat.S_ISCHR(st.st_mode) else 'other')
print(json.dumps({'dev': found, 'pty': attempt(lambda: os.close(os.open(sys.argv[1], os.O_RDWR))),
                  'null': attempt(lambda: open('/dev/null', 'w').write('x')),
                  'ptmx': attempt(lambda: os.close(os.open('/dev/ptmx', os.O_RDWR)))}))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@AS
def test_dev_is_dockers_minimal_set_and_another_terminal_is_out_of_reach(
        flags: list[str]) -> None:
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        got = _run(*flags, "--", SYSTEM_PYTHON, "-c", DEV, name)
    finally:
        os.close(master)
        os.close(slave)
    assert got["dev"] == {
        "core": "link:/proc/kcore", "fd": "link:/proc/self/fd", "full": "c1:7",
        "mqueue": "dir", "null": "c1:3", "ptmx": "link:pts/ptmx", "pts": "dir",
        "random": "c1:8", "shm": "dir", "stderr": "link:/proc/self/fd/2",
        "stdin": "link:/proc/self/fd/0", "stdout": "link:/proc/self/fd/1", "tty": "c5:0",
        "urandom": "c1:9", "zero": "c1:5"}, got
    assert got["pty"] == "ENOENT" and got["null"] == "ok" and got["ptmx"] == "ok", got


@pytest.mark.usefixtures("root_only")
def test_a_device_given_is_made_in_the_containers_dev() -> None:
    got = _run("--device", "/dev/loop-control:/dev/lc", "--", SYSTEM_PYTHON, "-c",
               ATTEMPT + "import stat\nst = os.stat('/dev/lc')\n"
               "print(json.dumps({'chr': stat.S_ISCHR(st.st_mode), "
               "'rdev': [os.major(st.st_rdev), os.minor(st.st_rdev)]}))")
    host = os.stat("/dev/loop-control")
    assert got == {"chr": True, "rdev": [os.major(host.st_rdev), os.minor(host.st_rdev)]}


WRITE_HERE = ATTEMPT + """
print(json.dumps({'here': attempt(lambda: open('written', 'w').write('x')),
                  'cwd': os.getcwd()}))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
def test_volume_dot_writes_where_the_caller_stands(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    assert _run("--", SYSTEM_PYTHON, "-c", WRITE_HERE, cwd=tmp_path) == {
        "here": "EROFS", "cwd": str(tmp_path)}  # seen, read-only
    assert _run("-v", ".", "--", SYSTEM_PYTHON, "-c", WRITE_HERE, cwd=tmp_path) == {
        "here": "ok", "cwd": str(tmp_path)}
    assert (tmp_path / "written").read_text() == "x"


@pytest.mark.usefixtures("root_only")
def test_fs_host_gives_back_the_writable_host_view(host_dir: Path) -> None:
    target = host_dir / "from-inside"
    done = supervise("run", "--fs", "host", "--", "sh", "-c", f"echo x > {target}")
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "x\n"


RO_VOLUME = ATTEMPT + """
import subprocess
remount = subprocess.run(['mount', '-o', 'remount,rw', '/mnt'], capture_output=True)
print(json.dumps({'write': attempt(lambda: open('/mnt/x', 'w').close()),
                  'remount': remount.returncode,
                  'after': attempt(lambda: open('/mnt/x', 'w').close()),
                  'read': open('/mnt/in').read()}))
"""


@pytest.mark.cgroup_v2
@pytest.mark.usefixtures("root_only")
@AS
def test_a_read_only_volume_holds_against_a_remount(host_dir: Path, flags: list[str]) -> None:
    (host_dir / "in").write_text("data")
    got = _run(*flags, "-v", f"{host_dir}:/mnt:ro", "--", SYSTEM_PYTHON, "-c", RO_VOLUME)
    assert got["read"] == "data" and got["remount"] != 0, got
    assert got["write"] == got["after"] == ("EROFS" if not flags else got["write"]), got
    assert got["write"] in ("EROFS", "EACCES") and not (host_dir / "x").exists()


@pytest.mark.usefixtures("root_only")
def test_a_read_write_volume_is_written_through(host_dir: Path) -> None:
    done = supervise("run", "-v", f"{host_dir}:/run/out", "--", "sh", "-c",
                     "echo x > /run/out/result")
    assert done.returncode == 0, done.stderr
    assert (host_dir / "result").read_text() == "x\n"


@pytest.mark.usefixtures("root_only")
def test_privileged_keeps_the_view_and_unmounting_proc_shows_nothing(host_dir: Path) -> None:
    done = supervise("run", "--privileged", "--", "sh", "-c",
                     f"umount /proc && ls /proc | wc -l; echo x > {host_dir}/p")
    assert done.stdout.split()[0] == "0", (done.stdout, done.stderr)
    assert "Read-only file system" in done.stderr
    assert not (host_dir / "p").exists()


@pytest.mark.usefixtures("root_only")
def test_a_line_may_not_widen_the_batchs_volumes(tmp_path: Path, host_dir: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"-v {host_dir}:/mnt -- true\n--fs host -- true\n")
    done = supervise("batch", str(jobs), "--no-live")
    assert done.returncode == 2, done.stderr
    assert f"jobs.txt:1: -v {host_dir}:/mnt:rw needs --allow-privileged-jobs" in done.stderr
    assert "jobs.txt:2: --fs host needs --allow-privileged-jobs" in done.stderr
    jobs.write_text(f"-v {host_dir}/sub:/mnt:ro -- ls /mnt\n")
    (host_dir / "sub").mkdir()
    done = supervise("batch", str(jobs), "--no-live", "-v", f"{host_dir}:/srv:ro")
    assert done.returncode == 0, done.stderr
    assert not stat.S_ISLNK(os.lstat(host_dir).st_mode)


def test_mknod_args_encode_the_device_as_the_kernel_decodes_it() -> None:
    for major, minor in [(1, 3), (5, 0), (136, 300), (4095, 0xFFFFF)]:
        args = _libc.mknod_args(b"/x", 0o20666, major, minor)
        if args is None:
            pytest.skip("mknodat's number is not known on this machine")
        dev = args[-1].value
        # the kernel's new_decode_dev
        assert ((dev & 0xFFF00) >> 8, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)) == (major, minor)


@pytest.mark.usefixtures("root_only")
def test_a_failed_batch_says_where_its_jobs_could_write(tmp_path: Path) -> None:
    """A job that fails writing the host's files: the end of the batch and its result
    say where it could have written."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("sh -c 'echo x > out.txt'\n--tmpfs /srv:size=1m -- true\n")
    results = tmp_path / "results.jsonl"
    done = supervise("batch", str(jobs), "--no-live", "--results", str(results), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert ("jobs see the host's files read-only (EROFS); the failed ones could write to "
            "/tmp /var/tmp /run /dev /dev/shm (-v HOST:PATH for more)") in done.stderr
    got = sorted((json.loads(line) for line in results.read_text().splitlines()),
                 key=lambda r: r["line"])
    assert [r["writable"] for r in got] == [
        ["/tmp", "/var/tmp", "/run", "/dev", "/dev/shm"],
        ["/tmp", "/var/tmp", "/run", "/dev", "/dev/shm", "/srv"]]
    done = supervise("batch", str(jobs), "--no-live", "-v", ".", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.txt").read_text() == "x\n"
    done = supervise("batch", str(jobs), "--no-live", "--fs", "host", "--allow-privileged-jobs",
                     cwd=tmp_path)
    assert "EROFS" not in done.stderr
