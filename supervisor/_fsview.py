"""The file system a container sees: `-v`, `--tmpfs`, `--fs`, `--shm-size`, and what
they become for its PID 1 (nsutil's FsView).

By default the host's tree is visible read-only (every mount, recursively); /tmp,
/var/tmp, /run and /dev/shm are tmpfs mounts of its own (charged to its memory
cgroup, gone when it ends); /dev is docker's minimal set. Writing elsewhere is
explicit: `-v HOST:CONTAINER[:ro|rw]`, `-v .` (the current directory, read-write, at
its own path), `--tmpfs PATH[:OPTIONS]`. `--fs host` is the host's tree as it is,
writable: unsafe for untrusted code.

Pure: what it needs of the host (does a path exist, is it a directory) comes in as
functions.
"""

from __future__ import annotations

import functools
import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nsutil import _libc
from nsutil._messages import FsView

from ._errors import UsageError
from ._units import parse_size

DEFAULT_SHM_SIZE = 64 * 1024 * 1024  # docker's
_SCRATCH = _libc.MS_NOSUID | _libc.MS_NODEV
# The private scratch every container gets: (path, flags, mount data).
PRIVATE_SCRATCH: tuple[tuple[str, int, str], ...] = (
    ("/tmp", _SCRATCH, "mode=1777"),
    ("/var/tmp", _SCRATCH, "mode=1777"),
    ("/run", _SCRATCH, "mode=755"),
)
# Where a volume may not go: the container's own kernel file systems.
_RESERVED = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class Volume:
    """-v: host's path (absolute) at container's, read-only or not."""

    host: str
    container: str
    read_only: bool
    is_dir: bool


@dataclass(frozen=True)
class Tmpfs:
    """--tmpfs: a tmpfs of the container's own at path (MS_* flags, mount data)."""

    path: str
    flags: int
    data: str


def _absolute(path: str, cwd: str) -> str:
    return posixpath.normpath(posixpath.join(cwd, path))


def _check_target(path: str, flag: str, given: str) -> None:
    if not path.startswith("/"):
        raise UsageError(f"{flag} {given}: the path inside must be absolute")
    if path == "/" or any(path == r or path.startswith(r + "/") for r in _RESERVED):
        raise UsageError(f"{flag} {given}: {path} is the container's own "
                         "(/, /proc, /sys and /dev cannot be mounted over)")
    if "\0" in path or ":" in path:
        raise UsageError(f"{flag} {given}: a path with ':' or a NUL byte")


def parse_volume(text: str, cwd: str, isdir: Callable[[str], bool | None]) -> Volume:
    """-v HOST:CONTAINER[:ro|rw], or "." for the current directory (read-write, at its
    own path). HOST may be relative (to cwd) and must exist: isdir(path) is None for a
    path that does not."""
    flag = "-v/--volume"
    if text == ".":
        host, container, mode = cwd, cwd, "rw"
    else:
        parts = text.split(":")
        if len(parts) == 2:
            parts.append("rw")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise UsageError(f"{flag} {text}: expected HOST:CONTAINER[:ro|rw] or .")
        host, container, mode = parts
    if mode not in ("ro", "rw"):
        raise UsageError(f"{flag} {text}: the mode is ro or rw (got {mode!r})")
    host = _absolute(host, cwd)
    container = posixpath.normpath(container) if container.startswith("/") else container
    _check_target(container, flag, text)
    kind = isdir(host)
    if kind is None:
        raise UsageError(f"{flag} {text}: {host} does not exist")
    return Volume(host, container, mode == "ro", kind)


def parse_tmpfs(text: str) -> Tmpfs:
    """--tmpfs PATH[:OPTIONS], docker's: OPTIONS comma-separated among size=SIZE,
    mode=OCTAL, ro, rw, exec, noexec, suid, nosuid, dev, nodev; by default noexec,
    nosuid, nodev and no size but the memory limit (docker's too)."""
    flag = "--tmpfs"
    path, _sep, options = text.partition(":")
    _check_target(path, flag, text)
    flags = _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC
    data: list[str] = []
    bits = {"ro": (_libc.MS_RDONLY, True), "rw": (_libc.MS_RDONLY, False),
            "exec": (_libc.MS_NOEXEC, False), "noexec": (_libc.MS_NOEXEC, True),
            "suid": (_libc.MS_NOSUID, False), "nosuid": (_libc.MS_NOSUID, True),
            "dev": (_libc.MS_NODEV, False), "nodev": (_libc.MS_NODEV, True)}
    for option in filter(None, options.split(",")):
        key, sep, value = option.partition("=")
        if key in bits and not sep:
            bit, on = bits[key]
            flags = flags | bit if on else flags & ~bit
        elif key == "size" and sep:
            try:
                data.append(f"size={parse_size(value)}")
            except UsageError as exc:
                raise UsageError(f"{flag} {text}: {exc}") from None
        elif key == "mode" and sep and value and all(c in "01234567" for c in value) \
                and int(value, 8) <= 0o7777:
            data.append(f"mode={value}")
        else:
            raise UsageError(f"{flag} {text}: unknown option {option!r} (size=, mode=, ro, "
                             "rw, exec, noexec, suid, nosuid, dev, nodev)")
    return Tmpfs(posixpath.normpath(path), flags, ",".join(data))


def parse_shm_size(text: str) -> int:
    try:
        size = parse_size(text)
    except UsageError as exc:
        raise UsageError(f"--shm-size {text}: {exc}") from None
    if size <= 0:
        raise UsageError(f"--shm-size {text}: must be more than 0")
    return size


def below(path: str, top: str) -> bool:
    """Whether path is top or inside it."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def fs_host_conflict(volumes: Sequence[Volume], tmpfs: Sequence[Tmpfs], shm_size: bool,
                     moved_devices: Sequence[str]) -> str | None:
    """Why these cannot go with --fs host (which shows the host's files, /dev too, as
    they are), or None; moved_devices: --device values seen at another path inside."""
    if volumes or tmpfs or shm_size:
        return ("--fs host shows the host's files as they are: -v, --tmpfs and "
                "--shm-size need the default --fs view")
    if moved_devices:
        return (f"--device {moved_devices[0]}: with --fs host the container shares the "
                "host's /dev; a device is seen at its host path")
    return None


def private_mounts(tmpfs: Sequence[Tmpfs]) -> tuple[str, ...]:
    """The paths a container sees a tmpfs of its own at (its scratch and --tmpfs)."""
    return (*(p for p, _f, _d in PRIVATE_SCRATCH), "/dev", *(t.path for t in tmpfs))


def working_directory(workdir: str | None, cwd: str, volumes: Sequence[Volume],
                      tmpfs: Sequence[Tmpfs]) -> tuple[str, Volume | None]:
    """Where the command starts (-w, else the caller's directory), and, when that is
    the caller's directory below a private mount (/tmp/x...) and no volume shows it,
    the read-only volume that does: the host's tree is visible read-only everywhere
    else, and so is where the caller stands. At a private mount's own path (/tmp) it
    starts in the container's own."""
    if workdir is not None:
        return workdir, None
    private = private_mounts(tmpfs)
    hidden = any(below(cwd, p) for p in private)
    if not hidden or cwd in private or any(below(cwd, v.container) for v in volumes):
        return cwd, None  # at /tmp itself, say, it starts in its own /tmp
    return cwd, Volume(cwd, cwd, True, True)


@dataclass(frozen=True)
class Root:
    """--rootfs (the directory, a tar's unpacked), --read-only, --keep-upper."""

    path: str
    read_only: bool = False
    upper: str | None = None


@functools.lru_cache(maxsize=64)  # a batch's jobs share a few: once a shape, not a container
def container_view(workdir: str | None, cwd: str, volumes: tuple[Volume, ...],
                   tmpfs: tuple[Tmpfs, ...], shm_size: int, dev: bool,
                   device_nodes: tuple[tuple[str, int, int], ...], root: Root | None = None
                   ) -> tuple[str, FsView]:
    """Where the command starts and what it sees (working_directory, then fs_view). In
    a root of its own it starts at / (as docker's), unless -w says."""
    if root is not None:
        return workdir or "/", fs_view(volumes=volumes, tmpfs=tmpfs, shm_size=shm_size,
                                       dev=True, device_nodes=device_nodes, root=root)
    start, shown = working_directory(workdir, cwd, volumes, tmpfs)
    return start, fs_view(volumes=(*volumes, shown) if shown is not None else volumes,
                          tmpfs=tmpfs, shm_size=shm_size, dev=dev, device_nodes=device_nodes)


def etc_files(hostname: str, resolv_conf: str) -> tuple[tuple[str, str], ...]:
    """What a root of its own gets at /etc/hostname, /etc/hosts, /etc/resolv.conf."""
    return (("/etc/hostname", f"{hostname}\n"),
            ("/etc/hosts", f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                           f"ip6-loopback\n127.0.1.1\t{hostname}\n"),
            ("/etc/resolv.conf", resolv_conf))


def with_files(view: FsView, files: tuple[tuple[str, str], ...]) -> FsView:
    return FsView(read_only=view.read_only, dev=view.dev, device_nodes=view.device_nodes,
                  tmpfs=view.tmpfs, volumes=view.volumes, root=view.root,
                  root_read_only=view.root_read_only, upper=view.upper, files=files)


@functools.lru_cache(maxsize=64)
def writable_paths(fs: str, volumes: tuple[Volume, ...], tmpfs: tuple[Tmpfs, ...], dev: bool,
                   root: Root | None = None) -> tuple[str, ...]:
    """Where a container can write (modes and users aside): its scratch, its /dev (dev:
    its own), its read-write --tmpfs and -v paths; everything with --fs host or in a
    root of its own (its copy-on-write layer)."""
    if fs == "host" or (root is not None and not root.read_only):
        return ("/",)
    given = {t.path for t in tmpfs}
    paths = [] if root is not None else [
        p for p, _flags, _data in PRIVATE_SCRATCH if p not in given]
    dev = dev or root is not None
    if dev:
        paths.append("/dev")
    if "/dev/shm" not in given:
        paths.append("/dev/shm")
    paths += [t.path for t in tmpfs if not t.flags & _libc.MS_RDONLY]
    paths += [v.container for v in volumes if not v.read_only]
    return tuple(paths)


def fs_view(*, volumes: Sequence[Volume], tmpfs: Sequence[Tmpfs], shm_size: int,
            dev: bool, device_nodes: Sequence[tuple[str, int, int]],
            root: Root | None = None) -> FsView:
    """What PID 1 mounts: the host's tree read-only, the scratch, a /dev of its own
    (dev: not when privileged, which sees the host's devices as docker's does), its
    --tmpfs mounts (a later one on a path replaces the default there), then its
    volumes (outermost first, so a volume inside another lands on it)."""
    given = {t.path for t in tmpfs}
    mounts: list[tuple[str, int, str, bool]] = [] if root is not None else [
        (path, flags, data, False) for path, flags, data in PRIVATE_SCRATCH
        if path not in given]
    if "/dev/shm" not in given:
        mounts.append(("/dev/shm", _SCRATCH | _libc.MS_NOEXEC, f"mode=1777,size={shm_size}",
                       dev))
    mounts.extend((t.path, t.flags, t.data, True) for t in tmpfs)
    ordered = sorted(volumes, key=lambda v: v.container.count("/"))
    return FsView(
        read_only=root is None, dev=dev, device_nodes=tuple(device_nodes),
        tmpfs=tuple(mounts),
        volumes=tuple((v.host, v.container, v.read_only, v.is_dir) for v in ordered),
        root=None if root is None else root.path,
        root_read_only=root is not None and root.read_only,
        upper=None if root is None else root.upper, files=())


def host_isdir(path: str) -> bool | None:
    """isdir for parse_volume: None if path does not exist."""
    try:
        return os.path.isdir(path) if os.path.lexists(path) else None
    except OSError:
        return None
