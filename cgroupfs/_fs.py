"""All cgroup file-system I/O goes through here.

Errors become :class:`CgroupError` whose message names the path and, for
writes, the value: ``writing 50 to /sys/fs/cgroup/pids/x/pids.max: Permission denied``.
Tests that mirror /sys/fs/cgroup in a temporary directory monkeypatch these
functions to play the kernel's part (populating a new directory, emptying it on rmdir).
"""

from __future__ import annotations

import errno
import os

from ._errors import CgroupError


def _reason(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or 0)


_READ_SIZE = 65536


def read_text(path: str) -> str:
    """Read a whole cgroup file."""
    # os.open/os.read: three syscalls, where open() would add fstat, ioctl and lseek.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, _READ_SIZE)
            if len(data) == _READ_SIZE:  # a seq_file returns less only at its end
                chunks = [data]
                while chunk := os.read(fd, _READ_SIZE):
                    chunks.append(chunk)
                data = b"".join(chunks)
        finally:
            os.close(fd)
        return data.decode("ascii", errors="replace")
    except OSError as exc:
        raise CgroupError(f"reading {path}: {_reason(exc)}", path=path, errno=exc.errno) from exc


def read_optional(path: str) -> str | None:
    """Read a cgroup file, or None when it (or its cgroup) does not exist."""
    try:
        return read_text(path)
    except CgroupError as exc:
        if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise


def write_text(path: str, text: str) -> None:
    """Write ``text`` to a cgroup file in a single write(2), as the kernel expects."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(
            f"writing {text.strip()} to {path}: {_reason(exc)}", path=path, errno=exc.errno
        ) from exc
    try:
        os.write(fd, text.encode("ascii"))
    except OSError as exc:
        raise CgroupError(
            f"writing {text.strip()} to {path}: {_reason(exc)}", path=path, errno=exc.errno
        ) from exc
    finally:
        os.close(fd)


def exists(path: str) -> bool:
    """Whether a cgroup file or directory exists."""
    return os.path.exists(path)


def mkdir(path: str) -> bool:
    """Create one cgroup directory; False if it already existed."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return False
    except OSError as exc:
        raise CgroupError(f"creating {path}: {_reason(exc)}", path=path, errno=exc.errno) from exc
    return True


def rmdir(path: str) -> bool:
    """Remove one cgroup directory; False if it was already gone."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CgroupError(f"removing {path}: {_reason(exc)}", path=path, errno=exc.errno) from exc
    return True


def subdirs(path: str) -> list[str]:
    """Child cgroup directories of ``path`` (empty if it is gone)."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.path for e in entries if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CgroupError(f"listing {path}: {_reason(exc)}", path=path, errno=exc.errno) from exc
