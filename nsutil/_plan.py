"""A container's init, compiled ahead: the calls its PID 1 makes before exec, with
every argument already converted, so that the forked child only has to make them.

The child is a fork of the spawner's Python image, and each page it writes is copied
on first touch. Reading the spec there (dict lookups, str to bytes, capability
arithmetic, ctypes conversions, caches filled on first use) cost about 340 page copies
and half a millisecond a container, measured; the child of a compiled plan copies
about 190. So the spawner turns each spawn's spec into a `Plan` before it forks (no
syscalls here), and the child runs its steps in order (`_init.run_steps`).

A step is (function, args, failure). The functions are libc's, which return -1 and set
errno, or Python ones that raise OSError. The failure says which step it was, what
it was doing (for the one-line report), and which errnos are not failures: a /proc
entry this kernel lacks, a syscall an older kernel lacks.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import struct

from . import _caps, _libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from ._messages import InitSpec

    Failure = tuple[str, str, int, Any]
    Step = tuple[Callable[..., int], tuple[Any, ...], Failure]

libc = _libc.libc

# What to make of an errno (the failure's third field; its fourth is what the policy needs).
FATAL = 0
SKIP_MISSING = 1  # ENOENT: the path is not there, nothing to protect
MASK = 2          # ENOENT as above; ENOTDIR/EISDIR: the other kind of mask (the step given)
SETATTR = 3       # ENOSYS (before 5.12): remount the tree under the path given one by one
CAPSET = 4        # EPERM: keep what of the mask given the process really holds
CLOSE_RANGE = 5   # any errno (before 5.11): mark the fds close-on-exec one by one
IGNORE = 6

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# docker's (moby's oci defaults) masked and read-only paths, with whether each
# masked path is a directory (an empty read-only tmpfs over it) or a file (/dev/null).
MASKED_PATHS: tuple[tuple[str, bool], ...] = (
    ("/proc/asound", True), ("/proc/acpi", True), ("/proc/kcore", False),
    ("/proc/keys", False), ("/proc/latency_stats", False), ("/proc/timer_list", False),
    ("/proc/timer_stats", False), ("/proc/sched_debug", False), ("/proc/scsi", True),
    ("/sys/firmware", True), ("/sys/devices/virtual/powercap", True),
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_AF_NETLINK = 16
_SOCK_RAW_CLOEXEC = 3 | os.O_CLOEXEC  # SOCK_CLOEXEC is O_CLOEXEC
_NETLINK_ROUTE = 0
_NLMSG_ERROR = 2
_TIOCSCTTY = 0x540E
_SYS_KEYCTL = 250 if os.uname().machine == "x86_64" else 219  # 219: asm-generic's (aarch64)
_KEYCTL_JOIN_SESSION_KEYRING = 1
_PR_SET_DUMPABLE = 4
_HIDDEN = _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC

# A zeroed struct sigaction is SIG_DFL with an empty mask and no flags, whatever the
# field order; a zeroed sigset_t is the empty set. Sized past glibc's (152 and 128 bytes).
_DEFAULT_ACTION = ctypes.create_string_buffer(256)
_EMPTY_SET = ctypes.create_string_buffer(256)


class Host:
    """What the spawner learns once, about itself and this kernel, for every plan: its
    bounding and permitted capability sets, which of docker's read-only and masked
    paths exist (the host's /proc and /sys show what a container's fresh ones will),
    and the signals it ignores (exec keeps an ignored signal ignored)."""

    __slots__ = ("_cache", "bounding", "ignored", "masked", "permitted", "readonly")

    def __init__(self, bounding: int, permitted: int, readonly: tuple[str, ...],
                 masked: tuple[tuple[str, bool], ...], ignored: tuple[int, ...]) -> None:
        self.bounding = bounding
        self.permitted = permitted
        self.readonly = readonly
        self.masked = masked
        self.ignored = ignored
        self._cache: dict[object, tuple[Step, ...]] = {}

    @classmethod
    def learn(cls) -> Host:
        _effective, permitted, _inheritable = _libc.capget()
        return cls(
            bounding=_libc.bounding_set(),
            permitted=permitted,
            readonly=tuple(p for p in READONLY_PATHS if os.path.lexists(p)),
            masked=tuple((p, os.path.isdir(p)) for p, _ in MASKED_PATHS if os.path.lexists(p)),
            ignored=ignored_signals(),
        )

    def cached(self, key: object, build: Callable[[], list[Step]]) -> tuple[Step, ...]:
        """The steps build() makes for key, made once (they are the same for every
        container of a batch)."""
        steps = self._cache.get(key)
        if steps is None:
            steps = self._cache[key] = tuple(build())
        return steps


def ignored_signals() -> tuple[int, ...]:
    """The signals this process ignores (Python ignores SIGPIPE and SIGXFSZ, the
    spawner SIGINT, SIGHUP and SIGTERM)."""
    found = []
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                found.append(int(sig))
        except (OSError, ValueError):
            pass
    return tuple(found)


class Plan:
    """The compiled init of one container: `steps`, then (under `init`) a fork, then
    exec of the first of `candidates` that the kernel takes."""

    __slots__ = ("argv", "argv0", "candidates", "envp", "init", "steps", "tty")

    def __init__(self, steps: tuple[Step, ...], candidates: tuple[bytes, ...], argv: Any,
                 envp: Any, argv0: str, init: bool, tty: bool) -> None:
        self.steps = steps
        self.candidates = candidates
        self.argv = argv
        self.envp = envp
        self.argv0 = argv0
        self.init = init
        self.tty = tty


def compile_plan(spec: InitSpec, fds: list[int], host: Host, error_fd: int, *,
                 joined: bool = False) -> Plan:
    """The plan for one init spec, its stdio among fds; joined: the child is born in
    its cgroup (clone3), so it joins none. ValueError for a command or environment
    exec cannot take (a NUL byte, a name with "="), an unknown namespace or a stdio
    index with no fd."""
    argv, env, namespaces = spec.argv, spec.env, spec.namespaces
    candidates, argv_array, envp_array = _exec_args(argv, env)
    steps: list[Step] = [
        (libc.prctl, (_libc.PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0),
         ("prctl", "set parent-death signal", FATAL, None)),
        # A session keyring of its own before anything else, privileged too (as runc):
        # the keys of the session that started supervise are not the container's.
        (join_new_session_keyring, (), ("keyring", "joining a new session keyring", FATAL,
                                        None)),
    ]
    # Join the cgroups first: every limit holds from here on, for everything this
    # process and the command will ever do. The child has one thread, so a file
    # that moves the writing thread (v1's tasks) moves the whole process.
    for path in () if joined else spec.cgroup_join:
        steps.append((join_cgroup, (os.fsencode(path),),
                      ("cgroup", f"joining {path}", FATAL, None)))
    flags = 0
    for name in namespaces:
        if name not in _libc.NAMESPACE_FLAGS:
            raise ValueError(f"unknown namespace {name!r}")
        if name != "pid":  # the spawner already made the PID namespace
            flags |= _libc.NAMESPACE_FLAGS[name]
    if flags:
        steps.append((libc.unshare, (flags,), ("unshare", "creating namespaces", FATAL, None)))
    lo_request = spec.loopback_request
    if lo_request and "net" in namespaces:
        reply = ctypes.create_string_buffer(4096)
        steps.append((bring_loopback_up, (lo_request, reply),
                      ("loopback", "bringing up lo", FATAL, None)))
    if "mnt" in namespaces:
        proc, harden = "pid" in namespaces, spec.harden_mounts
        steps.extend(host.cached(("mounts", proc, harden),
                                 lambda: _mount_steps(proc, harden, host)))
    hostname = spec.hostname
    if hostname and "uts" in namespaces:
        raw = hostname.encode()
        steps.append((libc.sethostname, (raw, len(raw)),
                      ("hostname", f"setting hostname {hostname!r}", FATAL, None)))
    stdio_failure = ("stdio", "setting up stdio", FATAL, None)
    steps.append((libc.setsid, (), stdio_failure))
    for target, index in enumerate(spec.stdio):
        if not 0 <= index < len(fds):
            raise ValueError(f"stdio {target} is fd #{index}, but {len(fds)} came")
        steps.append((libc.dup2, (fds[index], target), stdio_failure))
    if spec.tty:
        steps.append((libc.ioctl, (0, _TIOCSCTTY, 0), stdio_failure))
    capabilities, user, no_new_privs = spec.capabilities, spec.user, spec.no_new_privs
    steps.extend(host.cached(("privileges", capabilities, user, no_new_privs),
                             lambda: _privilege_steps(capabilities, user, no_new_privs, host)))
    if user is not None:
        steps.append((exit_if_reader_gone, (error_fd,), ("prctl", "", IGNORE, None)))
    # After the user switch, as runc does: the user must be able to enter it.
    cwd = spec.cwd
    if cwd:
        steps.append((libc.chdir, (os.fsencode(cwd),),
                      ("chdir", f"working directory {cwd!r}", FATAL, None)))
    if spec.init:  # the reaper keeps the spawner's image (_init): no command may read it
        steps.append((libc.prctl, (_PR_SET_DUMPABLE, 0, 0, 0, 0),
                      ("prctl", "making the init non-dumpable", FATAL, None)))
    steps.extend(host.cached("final", lambda: _final_steps(host)))
    return Plan(tuple(steps), candidates, argv_array, envp_array, argv[0], spec.init, spec.tty)


def _exec_args(argv: Sequence[str], env: Mapping[str, str]
               ) -> tuple[tuple[bytes, ...], Any, Any]:
    """The paths to try (PATH searched as the command's own environment defines it,
    like execvpe(3)), and argv and envp as C arrays; checked as os.execve checks them."""
    if not argv:
        raise ValueError("an empty command")
    args = [os.fsencode(a) for a in argv]
    entries = []
    for key, value in env.items():
        name = os.fsencode(key)
        if not name or b"=" in name:
            raise ValueError(f"illegal environment variable name {key!r}")
        entries.append(name + b"=" + os.fsencode(value))
    if any(b"\0" in item for item in (*args, *entries)):
        raise ValueError("embedded null byte")
    if b"/" in args[0]:
        candidates: tuple[bytes, ...] = (args[0],)
    else:
        candidates = tuple(os.path.join(os.fsencode(directory) or b".", args[0])
                           for directory in env.get("PATH", DEFAULT_PATH).split(":"))
    return (candidates, (ctypes.c_char_p * (len(args) + 1))(*args, None),
            (ctypes.c_char_p * (len(entries) + 1))(*entries, None))


def _mount_steps(proc: bool, harden: bool, host: Host) -> list[Step]:
    failure = ("mount", "mounting /proc", FATAL, None)
    # Nothing mounted inside may propagate back to the host.
    steps: list[Step] = [(libc.mount, (None, b"/", None, _libc.MS_REC | _libc.MS_PRIVATE, None),
                          failure)]
    if proc:
        steps.append((libc.mount, (b"proc", b"/proc", b"proc", _HIDDEN, None), failure))
    if not harden:
        return steps
    # /sys read-only (every mount below it too), and /proc as docker leaves it: some
    # paths read-only, some masked. In this mount namespace only.
    steps.append((libc.syscall, _libc.mount_setattr_rdonly_args("/sys"),
                  ("mount", "making /sys read-only", SETATTR, "/sys")))
    for path in host.readonly:
        raw = path.encode()
        failure = ("mount", f"making {path} read-only", SKIP_MISSING, None)
        steps.append((libc.mount, (raw, raw, None, _libc.MS_BIND | _libc.MS_REC, None), failure))
        steps.append((libc.mount, (None, raw, None,
                                   _libc.MS_BIND | _libc.MS_REMOUNT | _libc.MS_RDONLY | _HIDDEN,
                                   None), failure))
    for path, is_dir in host.masked:
        steps.append((*_mask(path, is_dir), ("mount", f"masking {path}", MASK,
                                             (*_mask(path, not is_dir),
                                              ("mount", f"masking {path}", SKIP_MISSING, None)))))
    return steps


def _mask(path: str, is_dir: bool) -> tuple[Callable[..., int], tuple[Any, ...]]:
    if is_dir:
        return libc.mount, (b"tmpfs", path.encode(), b"tmpfs", _libc.MS_RDONLY | _HIDDEN,
                            b"size=0,mode=555")
    return libc.mount, (b"/dev/null", path.encode(), None, _libc.MS_BIND, None)


def _privilege_steps(capabilities: tuple[int, ...] | None, user: tuple[int, int] | None,
                     no_new_privs: bool, host: Host) -> list[Step]:
    """Keep only the given capabilities (None: keep all), become the user, set
    no_new_privs.

    The bounding set is what holds across exec for root (execve gives root its
    bounding set), so every capability not kept is dropped from it; inheritable and
    ambient are emptied. The user switch comes before capset, so it works even with
    SETUID/SETGID dropped; leaving uid 0 empties the effective and permitted sets, so a
    non-root user ends with no capabilities. A credential change clears the
    parent-death signal: it is armed again (and `exit_if_reader_gone` follows)."""
    steps: list[Step] = []
    keep = _caps.mask(capabilities) if capabilities is not None else None
    if keep is not None:
        failure = ("capabilities", "dropping capabilities", FATAL, None)
        extra, number = host.bounding & ~keep, 0
        while extra:
            if extra & 1:
                steps.append((libc.prctl, (_libc.PR_CAPBSET_DROP, number, 0, 0, 0), failure))
            extra >>= 1
            number += 1
        steps.append((libc.prctl, (_libc.PR_CAP_AMBIENT, _libc.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
                      failure))
    if user is not None:
        uid, gid = user
        failure = ("user", f"switching to user {uid}:{gid}", FATAL, None)
        steps += [(libc.setgroups, (0, None), failure), (libc.setgid, (gid,), failure),
                  (libc.setuid, (uid,), failure)]
    if keep is not None:
        # Only what this process has: a host (or an outer container) may lack some of
        # what was asked for; leaving uid 0 empties the permitted set.
        permitted = host.permitted if user is None or user[0] == 0 else 0
        kept = keep & permitted
        steps.append((libc.capset, _libc.capset_args(kept, kept, 0),
                      ("capabilities", "setting capabilities", CAPSET, keep)))
    if no_new_privs:
        steps.append((libc.prctl, (_libc.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                      ("prctl", "setting no_new_privs", FATAL, None)))
    if user is not None:
        steps.append((libc.prctl, (_libc.PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0),
                      ("prctl", "set parent-death signal", FATAL, None)))
    return steps


def _final_steps(host: Host) -> list[Step]:
    # exec resets caught signals to their default but keeps ignored ones ignored: a
    # command must start with every disposition at its default and nothing blocked.
    ignore = ("signals", "", IGNORE, None)
    steps: list[Step] = [(libc.sigaction, (sig, _DEFAULT_ACTION, None), ignore)
                         for sig in host.ignored]
    steps.append((libc.sigprocmask, (signal.SIG_SETMASK, _EMPTY_SET, None), ignore))
    # Only fds 0, 1 and 2 cross exec (and the error pipe closes on success).
    steps.append((libc.syscall, _libc.close_range_args(3, _libc.CLOSE_RANGE_CLOEXEC),
                  ("fds", "", CLOSE_RANGE, 3)))
    return steps


def join_cgroup(path: bytes) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
    return 0


def join_new_session_keyring() -> int:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new, empty, anonymous session keyring
    (no libkeyutils). A kernel without keyrings (ENOSYS) has none to share."""
    if libc.syscall(_SYS_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING, None) >= 0:
        return 0
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        return 0
    raise OSError(err, os.strerror(err))


def bring_loopback_up(request: bytes, reply: Any) -> int:
    """Send a pre-encoded RTM_NEWLINK (lo up) on a netlink socket and check the ACK.

    The request is encoded once by the supervisor (with pyroute2); here it is only
    bytes, so the child needs neither pyroute2 nor its import time.
    """
    fd = libc.socket(_AF_NETLINK, _SOCK_RAW_CLOEXEC, _NETLINK_ROUTE)
    if fd < 0:
        return -1
    try:
        if libc.send(fd, request, len(request), 0) < 0:
            return -1
        size = libc.recv(fd, reply, len(reply), 0)
        if size < 0:
            return -1
    finally:
        libc.close(fd)
    if size >= 20:
        _length, kind, _flags, _seq, _pid, code = struct.unpack_from("=LHHLLi", reply)
        if kind == _NLMSG_ERROR:
            if code != 0:
                raise OSError(-code, os.strerror(-code))
            return 0
    raise OSError(errno.EPROTO, "unexpected netlink reply")


def exit_if_reader_gone(fd: int) -> int:
    """After a user switch: the parent-death signal, armed again, would not come if
    the spawner died in between. It holds the error pipe's only read end; with it
    gone, poll reports POLLERR on our write end."""
    poller = select.poll()
    poller.register(fd, 0)
    if any(ev & select.POLLERR for _fd, ev in poller.poll(0)):
        os._exit(125)
    return 0
