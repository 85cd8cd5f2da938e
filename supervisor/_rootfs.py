"""--rootfs: a directory, or a tar of one (.tar, .tar.gz, .tar.zst, such as `docker
export` writes) unpacked once into the cache directory, keyed by its content.

The unpacking keeps what a root file system needs (owners by number, modes with
setuid and sticky bits, device nodes, links) and refuses what would write outside
the target: absolute or `..` names, names that pass through a symlink it made, and
hard links to outside it. A half-unpacked tree is never used: it is unpacked beside
its place and renamed there when whole.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tarfile
from typing import IO

from ._errors import UsageError
from ._state import cache_dir, private_dir

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd")
# overlay's mount options are comma-separated, its lower layers colon-separated
_UNSAFE_IN_OPTIONS = (",", ":", "\\", "\n")


def check_option_path(path: str, flag: str) -> None:
    """A path that goes into overlay's mount options as it is."""
    if any(c in path for c in _UNSAFE_IN_OPTIONS):
        raise UsageError(f"{flag} {path}: a path with ',', ':' or '\\\\' cannot be a layer")


def resolve_rootfs(path: str) -> str:
    """The directory --rootfs path names: itself, or its tar's unpacked tree (made
    now if the cache lacks it). UsageError for anything else."""
    flag = "--rootfs"
    if os.path.isdir(path):
        real = os.path.realpath(path)
        check_option_path(real, flag)
        if real == "/":
            raise UsageError(f"{flag} /: the host's root is the default view (--fs)")
        return real
    if not os.path.exists(path):
        raise UsageError(f"{flag} {path}: no such file or directory")
    if not path.endswith(TAR_SUFFIXES):
        raise UsageError(f"{flag} {path}: a directory or a tar (" + ", ".join(TAR_SUFFIXES)
                         + ")")
    stat = os.stat(path)
    return _unpacked(os.path.realpath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)  # a batch's lines name a few: hashed once a run
def _unpacked(path: str, _size: int, _mtime_ns: int) -> str:
    digest = _digest(path)
    top = os.path.join(cache_dir(), "rootfs")
    private_dir(cache_dir())
    private_dir(top)
    target = os.path.join(top, digest)
    check_option_path(target, "--rootfs")
    if os.path.isdir(target):
        return target
    partial = f"{target}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.mkdir(partial, 0o755)
    try:
        with _tar_stream(path) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            tar.extractall(partial, numeric_owner=True, filter=_rootfs_filter)
        os.chmod(partial, 0o755)
        try:
            os.rename(partial, target)
        except OSError:
            if not os.path.isdir(target):  # not another supervise's, just made
                raise
            shutil.rmtree(partial, ignore_errors=True)
    except (OSError, tarfile.TarError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise UsageError(f"--rootfs {path}: unpacking it: {exc}") from None
    return target


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
    except OSError as exc:
        raise UsageError(f"--rootfs {path}: {exc.strerror}") from None
    return sha.hexdigest()


class _tar_stream:
    """The tar's bytes, decompressed (zstd by the zstd program: Python 3.11 lacks it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None
        self.file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        if self.path.endswith((".zst", ".zstd")):
            if shutil.which("zstd") is None:
                raise UsageError(f"--rootfs {self.path}: needs the zstd program "
                                 "(apt-get install zstd)")
            self.proc = subprocess.Popen(["zstd", "-dc", "--", self.path],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert self.proc.stdout is not None
            return self.proc.stdout
        self.file = open(self.path, "rb")
        return self.file

    def __exit__(self, *_exc: object) -> None:
        if self.file is not None:
            self.file.close()
        if self.proc is not None:
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            if self.proc.wait() != 0:
                raise UsageError(f"--rootfs {self.path}: zstd could not decompress it")


def _rootfs_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's "tar" filter (nothing written outside dest), keeping the modes a root
    file system needs (setuid, sticky, group and other write), and refusing a hard
    link to outside dest, which that filter lets through."""
    kept = tarfile.tar_filter(member, dest)
    if member.islnk():
        real_dest = os.path.realpath(dest)
        target = os.path.realpath(os.path.join(real_dest, member.linkname))
        if os.path.commonpath([target, real_dest]) != real_dest:
            raise tarfile.LinkOutsideDestinationError(member, target)
    if member.mode is not None and kept.mode != member.mode:
        kept = kept.replace(mode=member.mode, deep=False)
    return kept
