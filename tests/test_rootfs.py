"""--rootfs (issue 12): a root of its own, entered with pivot_root under a copy-on-write
layer; --read-only, --keep-upper, volumes inside it, a tar of one unpacked once.

The root is scripts/make-rootfs's busybox tree, made once for the module (busybox is
static: it runs in the cgroup-v2 VM, which sees this machine's files, too).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor._errors import UsageError
from supervisor._rootfs import resolve_rootfs

from .containers import supervise

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("root_only")


def _tree(path: Path) -> dict[str, tuple[int, int, float]]:
    """Every entry below path: (mode, size, mtime), to tell it unchanged."""
    found = {}
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(directory, name))
            found[os.path.relpath(os.path.join(directory, name), path)] = (
                st.st_mode, st.st_size, st.st_mtime)
    return found


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rootfs") / "tree"
    done = subprocess.run([ROOT / "scripts" / "make-rootfs", str(path)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "SUPERVISE_CACHE_DIR": str(tmp_path / "cache")}
    yield env


@pytest.mark.cgroup_v2
def test_it_sees_the_rootfs_and_nothing_of_the_host(rootfs: Path) -> None:
    done = supervise("run", "--rootfs", str(rootfs), "--", "sh", "-c",
                     "ls /; echo --; cd /../../..; ls; echo --; cat /proc/self/mountinfo; "
                     "echo --; cat /etc/hostname; pwd")
    assert done.returncode == 0, done.stderr
    listing, escaped, mountinfo, rest = done.stdout.split("--\n")
    assert listing.split() == sorted(os.listdir(rootfs)) == escaped.split()
    points = [line.split()[4] for line in mountinfo.splitlines()]
    assert points[0] == "/" and " - overlay " in mountinfo.splitlines()[0]
    # the old root is detached: none of the host's mounts is there, only its own
    own = {"/", "/proc", "/sys", "/dev", "/dev/shm", "/dev/pts", "/dev/mqueue",
           "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}
    unexpected = [p for p in points if p not in own and not p.startswith(
        ("/proc/", "/sys/fs/cgroup", "/sys/firmware", "/sys/devices/virtual/powercap"))]
    assert unexpected == [], mountinfo
    hostname, cwd = rest.split()
    assert cwd == "/" and len(hostname) == 12


@pytest.mark.cgroup_v2
def test_two_containers_on_one_rootfs_do_not_see_each_others_writes(
        rootfs: Path, tmp_path: Path) -> None:
    before = _tree(rootfs)
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("".join(
        f"--rootfs {rootfs} -- sh -c 'echo {n} > /etc/mine; echo {n} >> /bin/busybox; "
        f"sleep 0.5; cat /etc/mine'\n" for n in ("one", "two")))
    logs = tmp_path / "logs"
    done = supervise("batch", str(jobs), "-j", "2", "--no-live", "--logs", str(logs))
    assert done.returncode == 0, done.stderr
    assert sorted(p.read_text() for p in logs.glob("*.out")) == ["one\n", "two\n"]
    assert _tree(rootfs) == before


@pytest.mark.cgroup_v2
@pytest.mark.parametrize("flags", [[], ["-u", "65534:65534"]], ids=["root", "nobody"])
def test_read_only_rootfs(rootfs: Path, flags: list[str]) -> None:
    done = supervise("run", *flags, "--rootfs", str(rootfs), "--read-only", "--", "sh", "-c",
                     "touch /x /tmp/x /etc/x; echo y > /dev/shm/y && cat /dev/shm/y")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Read-only file system") == 3, done.stderr
    assert done.stdout == "y\n"


@pytest.mark.cgroup_v2
def test_volumes_inside_a_rootfs(rootfs: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in").write_text("data")
    done = supervise("run", "--rootfs", str(rootfs), "-v", f"{data}:/srv/rw",
                     "-v", f"{data}:/srv/ro:ro", "--", "sh", "-c",
                     "cat /srv/ro/in; echo w > /srv/rw/out; touch /srv/ro/no; "
                     "mount -o remount,rw /srv/ro && echo remounted")
    assert done.stdout == "data", (done.stdout, done.stderr)
    assert "Read-only file system" in done.stderr
    assert (data / "out").read_text() == "w\n" and not (data / "no").exists()


def test_keep_upper_keeps_the_layer(rootfs: Path, tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    done = supervise("run", "--rootfs", str(rootfs), "--keep-upper", str(keep), "--",
                     "sh", "-c", "echo kept > /etc/kept")
    assert done.returncode == 0, done.stderr
    assert (keep / "upper" / "etc" / "kept").read_text() == "kept\n"
    assert not (rootfs / "etc" / "kept").exists()


def test_privileged_in_a_rootfs_cannot_reach_the_hosts_proc(rootfs: Path) -> None:
    done = supervise("run", "--privileged", "--rootfs", str(rootfs), "--", "sh", "-c",
                     "umount /proc && ls /proc | wc -l")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_a_tar_is_unpacked_once(rootfs: Path, tmp_path: Path, cache: dict[str, str]) -> None:
    tar = tmp_path / "root.tar.gz"
    subprocess.run(["tar", "-C", str(rootfs), "-czf", str(tar), "."], check=True)
    runs = [supervise("run", "--rootfs", str(tar), "--", "sh", "-c",
                      "ls -ld /tmp /bin/busybox", env=cache) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout.split()[0] == "-rwxr-xr-x" and "drwxrwxrwt" in runs[0].stdout
    unpacked = list((Path(cache["SUPERVISE_CACHE_DIR"]) / "rootfs").iterdir())
    assert len(unpacked) == 1 and unpacked[0].is_dir()
    assert oct(Path(cache["SUPERVISE_CACHE_DIR"]).stat().st_mode & 0o777) == "0o700"


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o4755
    return info


@pytest.mark.parametrize("members", [
    [(_member("../escaped"), b"x")],
    [(_member("/abs/../../escaped"), b"x")],
    [(_member("d", tarfile.SYMTYPE, "/tmp"), None), (_member("d/escaped"), b"x")],
    [(_member("x", tarfile.LNKTYPE, "../../../../etc/passwd"), None)],
], ids=["dotdot", "absolute", "through-a-symlink", "hard-link-outside"])
def test_a_tar_cannot_write_outside_its_tree(members: list[tuple[tarfile.TarInfo, bytes | None]],
                                             tmp_path: Path, cache: dict[str, str]) -> None:
    tar = tmp_path / "evil.tar"
    tar.write_bytes(_tar(members))
    done = supervise("run", "--rootfs", str(tar), "--", "true", env=cache)
    assert done.returncode == 125 and "unpacking it" in done.stderr, done.stderr
    assert not Path("/tmp/escaped").exists() and not (tmp_path / "escaped").exists()
    assert not any((Path(cache["SUPERVISE_CACHE_DIR"]) / "rootfs").iterdir())


def test_a_tar_keeps_setuid_bits(tmp_path: Path, cache: dict[str, str]) -> None:
    tar = tmp_path / "suid.tar"
    tar.write_bytes(_tar([(_member("su"), b"#!/bin/sh\n")]))
    old = os.environ.get("SUPERVISE_CACHE_DIR")
    os.environ["SUPERVISE_CACHE_DIR"] = cache["SUPERVISE_CACHE_DIR"]
    try:
        unpacked = Path(resolve_rootfs(str(tar)))
    finally:
        if old is None:
            del os.environ["SUPERVISE_CACHE_DIR"]
        else:
            os.environ["SUPERVISE_CACHE_DIR"] = old
    assert oct((unpacked / "su").stat().st_mode & 0o7777) == "0o4755"


@pytest.mark.parametrize(("flags", "message"), [
    (["--read-only"], "go with --rootfs"),
    (["--keep-upper", "/tmp/k"], "go with --rootfs"),
    (["--rootfs", "/no/such"], "no such file"),
    (["--rootfs", "/etc/passwd"], "a directory or a tar"),
    (["--rootfs", "/"], "the default view"),
    (["--rootfs", "ROOTFS", "--fs", "host"], "not with --fs host"),
    (["--rootfs", "ROOTFS", "--read-only", "--keep-upper", "/tmp/k"], "does without"),
    (["--rootfs", "ROOTFS", "--keep-upper", "ROOTFS/x"], "apart from the rootfs"),
    (["--rootfs", "ROOTFS", "--read-only", "-v", "/tmp:/nowhere"], "read-only rootfs"),
])
def test_rootfs_flags_are_checked(rootfs: Path, flags: list[str], message: str) -> None:
    done = supervise("run", *(f.replace("ROOTFS", str(rootfs)) for f in flags), "--", "true")
    assert done.returncode == 125 and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1


def test_resolve_rootfs_refuses_option_breaking_paths(tmp_path: Path) -> None:
    odd = tmp_path / "a,b"
    odd.mkdir()
    with pytest.raises(UsageError, match="cannot be a layer"):
        resolve_rootfs(str(odd))


def test_a_jobs_file_line_may_not_keep_its_layer_on_the_host(
        rootfs: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text(f"--rootfs {rootfs} --keep-upper {tmp_path}/k -- true\n"
                    f"--rootfs {rootfs} -- true\n")
    done = supervise("batch", str(jobs), "--no-live")
    assert done.returncode == 2, done.stderr
    assert f"jobs.txt:1: --keep-upper {tmp_path}/k needs --allow-privileged-jobs" in done.stderr
    assert "jobs.txt:2" not in done.stderr
