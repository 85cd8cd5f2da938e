"""ctypes bindings for the namespace and mount syscalls the stdlib lacks."""

from __future__ import annotations

import ctypes
import errno
import os
import signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "cgroup": CLONE_NEWCGROUP,
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x00000001
_SYS_MOUNT_SETATTR = 442  # one number on every architecture (added in 5.12)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

CLOSE_RANGE_CLOEXEC = 1 << 2
_SYS_CLONE3 = 435  # one number on every architecture (added in 5.3)
CLONE_INTO_CGROUP = 0x200000000  # 5.7
_SYS_CLOSE_RANGE = 436  # x86_64 and aarch64 share this number

# The C library this interpreter already uses (dlopen(NULL)). Not ctypes.util's
# find_library: that imports subprocess, tempfile, random and threading, whose
# at-fork hooks (random reseeds itself) would then run in every container's child.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [
    ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
]
_libc.syscall.restype = ctypes.c_long
# What a container's compiled init (`_plan`) calls directly: each returns -1 and sets
# errno on failure, like the C functions they are.
_libc.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
_libc.send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
_libc.send.restype = ctypes.c_ssize_t
_libc.recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.recv.restype = ctypes.c_ssize_t
_libc.open.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
_libc.write.restype = ctypes.c_ssize_t
_libc.close.argtypes = [ctypes.c_int]
_libc.dup2.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_long]
_libc.setsid.argtypes = []
_libc.setgroups.argtypes = [ctypes.c_size_t, ctypes.c_void_p]
_libc.umask.argtypes = [ctypes.c_uint]
_libc.symlink.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
_libc.mkdir.argtypes = [ctypes.c_char_p, ctypes.c_uint]
_libc.setgid.argtypes = [ctypes.c_uint]
_libc.setuid.argtypes = [ctypes.c_uint]
_libc.chdir.argtypes = [ctypes.c_char_p]
_libc.sigaction.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_libc.sigprocmask.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_libc.execve.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
libc = _libc


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


_libc.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_libc.capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]


def _check(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        _libc.mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            flags,
            data.encode() if data is not None else None,
        ),
        f"mount {target}",
    )


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    result: int = _libc.prctl(option, arg2, arg3, arg4, arg5)
    _check(result, "prctl")
    return result


def close_range_cloexec(first: int) -> bool:
    """Mark every fd >= first close-on-exec in one syscall; False if the kernel lacks it."""
    return close_range(first, CLOSE_RANGE_CLOEXEC)


def close_range(first: int, flags: int = 0) -> bool:
    """close_range(first, ~0, flags): close (or with CLOSE_RANGE_CLOEXEC mark) every fd
    >= first in one syscall; False if the kernel lacks it."""
    return int(_libc.syscall(*close_range_args(first, flags))) == 0


def capset_args(effective: int, permitted: int, inheritable: int) -> tuple[Any, Any]:
    """capset(2)'s two arguments for these sets (64-bit masks, bit N = capability N)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    return ctypes.byref(header), data


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (64-bit masks, bit N = capability N)."""
    _check(_libc.capset(*capset_args(effective, permitted, inheritable)), "capset")


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) capability masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    lo, hi = data[0], data[1]
    return (lo.effective | hi.effective << 32, lo.permitted | hi.permitted << 32,
            lo.inheritable | hi.inheritable << 32)


_bounding: int | None = None


def bounding_set() -> int:
    """This process's capability bounding set as a mask, read once per process image
    (a forked child inherits the answer with the set itself)."""
    global _bounding
    if _bounding is None:
        mask, number = 0, 0
        while True:
            result = _libc.prctl(PR_CAPBSET_READ, number, 0, 0, 0)
            if result < 0:  # EINVAL: past the last capability this kernel knows
                break
            mask |= result << number
            number += 1
        _bounding = mask
    return _bounding


def drop_bounding(keep: int) -> None:
    """Drop every capability not in keep from the bounding set (one prctl each)."""
    global _bounding
    current = bounding_set()
    prctl_ = _libc.prctl
    number, extra = 0, current & ~keep
    while extra:
        if extra & 1 and prctl_(PR_CAPBSET_DROP, number, 0, 0, 0) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"dropping capability {number}: {os.strerror(err)}")
        extra >>= 1
        number += 1
    _bounding = current & keep


class CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


def clone3(flags: int, cgroup_fd: int | None = None) -> int:
    """clone3(flags): a child (fork-like: 0 in it, its pid here); with cgroup_fd,
    CLONE_INTO_CGROUP too, so the child is born in the v2 cgroup that cgroup_fd opens
    and never migrates (a migration takes a global lock, and after a quiet spell waits
    an RCU grace period). Only for a single-threaded caller with no Python signal
    handlers: the raw syscall skips glibc's and Python's at-fork work, which such a
    process does not need (and each child would pay for). OSError as fork would raise
    it (ENOSYS, E2BIG or EINVAL: the kernel lacks clone3 or CLONE_INTO_CGROUP)."""
    if cgroup_fd is None:
        args = CloneArgs(flags=flags, exit_signal=signal.SIGCHLD)
    else:
        args = CloneArgs(flags=flags | CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD,
                          cgroup=cgroup_fd)
    pid = int(_libc.syscall(_SYS_CLONE3, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args))))
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid


def mount_setattr_rdonly_args(path: str, recursive: bool = True) -> tuple[Any, ...]:
    """syscall(2)'s arguments for mount_setattr(path) making it read-only."""
    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    return (_SYS_MOUNT_SETATTR, ctypes.c_int(AT_FDCWD), path.encode(),
            ctypes.c_uint(AT_RECURSIVE if recursive else 0), ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)))


# mknodat by number: glibc before 2.33 has no mknod symbol (an inline __xmknod).
_SYS_MKNODAT = {"x86_64": 259, "aarch64": 33}.get(os.uname().machine)


def kernel_dev(major: int, minor: int) -> int:
    """A device number as mknodat(2) takes it (the kernel's new_encode_dev)."""
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


def mknod_args(path: bytes, mode: int, major: int, minor: int) -> tuple[Any, ...] | None:
    """syscall(2)'s arguments for mknodat(AT_FDCWD, path, mode, dev) (None where this
    machine's number is not known here). dev in the kernel's encoding."""
    if _SYS_MKNODAT is None:
        return None
    dev = kernel_dev(major, minor)
    return (_SYS_MKNODAT, ctypes.c_int(AT_FDCWD), path, ctypes.c_uint(mode), ctypes.c_uint(dev))


_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)


def pivot_root(new_root: bytes, put_old: bytes) -> None:
    if _SYS_PIVOT_ROOT is None:
        raise OSError(errno.ENOSYS, "pivot_root's number is not known on this machine")
    if _libc.syscall(_SYS_PIVOT_ROOT, new_root, put_old) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_SYS_OPEN_TREE = 428  # one number on every architecture (added in 5.2)
_SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MNT_DETACH = 2


def open_tree_clone(path: bytes, read_only: bool) -> int:
    """A detached copy of the mount tree at path (open_tree OPEN_TREE_CLONE, recursive,
    close-on-exec), every mount in it made read-only if asked; its fd."""
    fd = int(_libc.syscall(_SYS_OPEN_TREE, ctypes.c_int(AT_FDCWD), path,
                           ctypes.c_uint(OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    if read_only:
        attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        if _libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(fd), b"",
                         ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE), ctypes.byref(attr),
                         ctypes.c_size_t(ctypes.sizeof(attr))) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, os.strerror(err))
    return fd


def move_mount(fd: int, target: bytes) -> None:
    """Attach the detached mount tree fd at target."""
    if _libc.syscall(_SYS_MOVE_MOUNT, ctypes.c_int(fd), b"", ctypes.c_int(AT_FDCWD), target,
                     ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def close_range_args(first: int, flags: int = 0) -> tuple[Any, ...]:
    """syscall(2)'s arguments for close_range(first, ~0, flags)."""
    return (_SYS_CLOSE_RANGE, ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF),
            ctypes.c_uint(flags))


def mount_setattr_rdonly(path: str, recursive: bool = True) -> None:
    """Make the mount at path (and, recursively, every mount below it) read-only."""
    _check(int(_libc.syscall(*mount_setattr_rdonly_args(path, recursive))),
           f"mount_setattr {path}")


def set_name(name: str) -> None:
    """This thread's name (comm, at most 15 bytes): what ps and top show."""
    buffer = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(PR_SET_NAME, ctypes.addressof(buffer), 0, 0, 0), "prctl")
