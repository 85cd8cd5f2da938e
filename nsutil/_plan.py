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

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import signal
import socket
import stat
import struct

from . import _caps, _libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from ._messages import FsView, InitSpec

    Failure = tuple[str, str, int, Any]
    Step = tuple[Callable[..., int], tuple[Any, ...], Failure]
    CgroupMount = tuple[str, str, str]

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
_RLIMIT_NOFILE = 7
_HIDDEN = _libc.MS_NOSUID | _libc.MS_NODEV | _libc.MS_NOEXEC

# A zeroed struct sigaction is SIG_DFL with an empty mask and no flags, whatever the
# field order; a zeroed sigset_t is the empty set. Sized past glibc's (152 and 128 bytes).
_DEFAULT_ACTION = ctypes.create_string_buffer(256)
_EMPTY_SET = ctypes.create_string_buffer(256)


# What supervise exec enters (setns with a pidfd, Linux 5.8): all but the user namespace.
_JOINED = (_libc.NAMESPACE_FLAGS["mnt"] | _libc.NAMESPACE_FLAGS["uts"]
           | _libc.NAMESPACE_FLAGS["ipc"] | _libc.NAMESPACE_FLAGS["net"]
           | _libc.NAMESPACE_FLAGS["pid"] | _libc.NAMESPACE_FLAGS["cgroup"])

# Nothing mounted inside may propagate back to the host.
_PRIVATE_ROOT: Step = (libc.mount, (None, b"/", None, _libc.MS_REC | _libc.MS_PRIVATE, None),
                       ("mount", "making / private", FATAL, None))


class Host:
    """What the spawner learns once, about itself and this kernel, for every plan: its
    bounding and permitted capability sets, which of docker's read-only and masked
    paths exist (the host's /proc and /sys show what a container's fresh ones will),
    and the signals it ignores (exec keeps an ignored signal ignored). Its cache keeps
    the steps every container of a kind shares, the compiled seccomp filter of each
    (profile, capability set) among them."""

    __slots__ = ("_cache", "bounding", "cgroup_mounts", "ignored", "lasting", "masked",
                 "native_chains", "native_keep", "native_memo", "nofile", "permitted",
                 "readonly", "spawner_pidfd", "umask")

    def __init__(self, bounding: int, permitted: int, readonly: tuple[str, ...],
                 masked: tuple[tuple[str, bool], ...], ignored: tuple[int, ...],
                 cgroup_mounts: tuple[CgroupMount, ...] = (),
                 spawner_pidfd: int | None = None, umask: int = 0o022) -> None:
        # the forking process's own pidfd, for its children to check (exit_if_spawner_gone)
        self.spawner_pidfd = spawner_pidfd
        self.bounding = bounding
        self.permitted = permitted
        self.readonly = readonly
        self.masked = masked
        self.ignored = ignored
        self.cgroup_mounts = cgroup_mounts
        self.umask = umask  # the spawner's, which its children inherit
        # (soft, hard) RLIMIT_NOFILE for the containers, when the spawner's own soft
        # limit was raised above what they are to get
        self.nofile: tuple[int, int] | None = None
        self._cache: dict[object, tuple[Step, ...]] = {}
        # the ids of the steps that live as long as this host (its cache's), and their
        # lowering to machine code's data (_native), made once
        self.lasting: set[int] = {id(_PRIVATE_ROOT)}
        self.native_memo: dict[int, tuple[Step, bytes, tuple[Any, ...]]] = {}
        self.native_keep: list[Any] = []
        self.native_chains: dict[tuple[bytes, ...], tuple[bytes, tuple[Any, ...], list[Any]]] = {}

    @classmethod
    def learn(cls) -> Host:
        _effective, permitted, _inheritable = _libc.capget()
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                cgroup_mounts = cgroup_mounts_of(f.read())
            if cgroup_mounts and cgroup_mounts[0][1] == "tmpfs":
                # the host's links beside its hierarchies (cpu -> cpu,cpuacct)
                mounted = {m[0] for m in cgroup_mounts}
                cgroup_mounts += tuple(
                    (e.name, "symlink", target)
                    for e in os.scandir(CGROUP_ROOT)
                    if e.is_symlink() and (target := os.readlink(e.path)) in mounted)
        except OSError:
            cgroup_mounts = ()
        return cls(
            bounding=_libc.bounding_set(),
            permitted=permitted,
            readonly=tuple(p for p in READONLY_PATHS if os.path.lexists(p)),
            masked=tuple((p, os.path.isdir(p)) for p, _ in MASKED_PATHS if os.path.lexists(p)),
            ignored=ignored_signals(),
            umask=_own_umask(),
            cgroup_mounts=cgroup_mounts,
        )

    def cached(self, key: object, build: Callable[[], list[Step]]) -> tuple[Step, ...]:
        """The steps build() makes for key, made once (they are the same for every
        container of a batch)."""
        steps = self._cache.get(key)
        if steps is None:
            steps = self._cache[key] = tuple(build())
            self.lasting.update(id(step) for step in steps)
        return steps


CGROUP_ROOT = "/sys/fs/cgroup"
# The v1 hierarchies a container sees: those runtimes size themselves from and tools
# read a container's use in. Each mount costs PID 1 ~30 us and its exit as much again;
# the others (devices, freezer, blkio, name=systemd, a hybrid host's controller-less
# unified tree) are not mounted.
VIEW_CONTROLLERS = frozenset({"memory", "cpu", "cpuacct", "cpuset", "pids"})


def cgroup_mounts_of(mountinfo: str) -> tuple[CgroupMount, ...]:
    """What the host mounts at /sys/fs/cgroup, for a container's own view of the same
    shape: (path relative to /sys/fs/cgroup, "" for itself; file system type; its
    super options but rw/ro), in mount order: a cgroup2 mount there (v2), or the tmpfs
    there and the v1 hierarchies of VIEW_CONTROLLERS in it (Host.learn adds the links
    to them, as type "symlink" with the target as options)."""
    found: list[CgroupMount] = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        point = fields[4].replace("\\040", " ")
        if point == CGROUP_ROOT:
            relative = ""
        elif point.startswith(CGROUP_ROOT + "/") and "/" not in point[len(CGROUP_ROOT) + 1:]:
            relative = point[len(CGROUP_ROOT) + 1:]
        else:
            continue
        fstype = tail[0]
        if fstype not in ("cgroup", "cgroup2", "tmpfs") or (fstype == "tmpfs" and relative):
            continue
        options = ",".join(o for o in tail[2].split(",") if o not in ("rw", "ro"))
        if relative and (fstype == "cgroup2" or not VIEW_CONTROLLERS & set(options.split(","))):
            continue
        if fstype == "cgroup2":
            # nsdelegate and the like belong to the host's mount: a cgroup2 mount in
            # another namespace that asks for them is refused (EBUSY).
            options = ""
        found = [m for m in found if m[0] != relative]  # a later mount hides an earlier one
        found.append((relative, fstype, options))
    if not any(m[0] == "" for m in found):
        return ()  # nothing (or something else) at /sys/fs/cgroup itself
    return tuple(found)


def _own_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    its v2 cgroup (clone3), so it joins only the v1 ones. ValueError for a command or environment
    exec cannot take (a NUL byte, a name with "="), an unknown namespace or a stdio
    index with no fd."""
    argv, env, namespaces = spec.argv, spec.env, spec.namespaces
    candidates, argv_array, envp_array = _exec_args(argv, env)
    # (The steps that are the same for every container are made once, kept by the host:
    # see Host.lasting.) A spawner that died before the death signal was armed never
    # sends it: look. Its own pidfd tells; without one, the error pipe.
    pidfd = host.spawner_pidfd
    if pidfd is not None:
        gone = host.cached(("gone", pidfd), lambda: [_gone_step(pidfd, -1)])[0]
    else:
        gone = _gone_step(-1, error_fd)
    steps: list[Step] = [*host.cached("first", lambda: [
        (libc.prctl, (_libc.PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0),
         ("prctl", "set parent-death signal", FATAL, None))]), gone, *host.cached(
        # A session keyring of its own before anything else, privileged too (as runc):
        # the keys of the session that started supervise are not the container's.
        "keyring", lambda: [(join_new_session_keyring, (),
                             ("keyring", "joining a new session keyring", FATAL, None))])]
    # Join the cgroups first: every limit holds from here on, for everything this
    # process and the command will ever do. The child has one thread, so a file
    # that moves the writing thread (v1's tasks) moves the whole process.
    joins = spec.cgroup_join
    if spec.cgroup_v2_join is not None and not joined:
        # A v2 join moves the whole thread group: it takes the global lock (an RCU
        # grace period), which clone3 into the cgroup avoids; so only without clone3.
        joins = (*joins, spec.cgroup_v2_join)
    for path in joins:
        steps.append((join_cgroup, (os.fsencode(path),),
                      ("cgroup", f"joining {path}", FATAL, None)))
    if spec.join_pidfd is not None:
        if not 0 <= spec.join_pidfd < len(fds):
            raise ValueError(f"the namespaces to join are fd #{spec.join_pidfd}, but "
                             f"{len(fds)} came")
        steps.append((libc.setns, (fds[spec.join_pidfd], _JOINED),
                      ("setns", "entering the container's namespaces", FATAL, None)))
        if spec.join_root_fd is not None:
            if not 0 <= spec.join_root_fd < len(fds):
                raise ValueError(f"the root to enter is fd #{spec.join_root_fd}, but "
                                 f"{len(fds)} came")
            steps.append((enter_directory_root, (fds[spec.join_root_fd],),
                          ("setns", "entering the container's root", FATAL, None)))
    flags = 0
    for name in namespaces:
        if name not in _libc.NAMESPACE_FLAGS:
            raise ValueError(f"unknown namespace {name!r}")
        if name != "pid":  # the spawner already made the PID namespace
            flags |= _libc.NAMESPACE_FLAGS[name]
    if flags:
        steps.extend(host.cached(("unshare", flags), lambda: [
            (libc.unshare, (flags,), ("unshare", "creating namespaces", FATAL, None))]))
    lo_request = spec.loopback_request
    if lo_request and "net" in namespaces:
        reply = ctypes.create_string_buffer(4096)
        steps.append((bring_loopback_up, (lo_request, reply),
                      ("loopback", "bringing up lo", FATAL, None)))
    fs = spec.filesystem if "mnt" in namespaces else None
    if "mnt" in namespaces:
        proc, harden = "pid" in namespaces, spec.harden_mounts
        view = _own_view(host.cgroup_mounts, spec.cgroup_join) if "cgroup" in namespaces else ()
        steps.append(_PRIVATE_ROOT)
        volume_fds: list[int] = []
        file_fds: list[int] = []
        console: list[int] | None = None
        if fs is not None:
            # Each volume is taken from the host's tree as it is, before that is made
            # read-only (a bind mount would copy the read-only flag; clearing it again
            # would also clear it where the host's own mounts have it).
            for host_path, inside, read_only, _is_dir in fs.volumes:
                steps.append((open_volume, (os.fsencode(host_path), read_only, volume_fds),
                              ("volume", f"-v {host_path}:{inside}", FATAL, None)))
            terminal = _terminal_path(spec, fds) if fs.dev else None
            if terminal is not None:  # its own /dev/console, taken before /dev is covered
                console = []
                steps.append((open_volume, (terminal, False, console),
                              ("mount", "making /dev/console its terminal", FATAL, None)))
            if fs.root is not None:
                steps.extend(_root_steps(fs, file_fds))
        shape = None if fs is None else (fs.read_only, fs.dev, fs.tmpfs, fs.root is not None)
        may_unmount = spec.capabilities is None or _caps.CAP_NUMBER["SYS_ADMIN"] in (
            spec.capabilities)
        steps.extend(host.cached(("mounts", proc, harden, view, shape, may_unmount),
                                 lambda: _mount_steps(proc, harden, host, view, shape,
                                                      may_unmount)))
        if fs is not None:
            steps.extend(_per_container_fs_steps(fs, volume_fds, console, file_fds))
    hostname = spec.hostname
    if hostname and "uts" in namespaces:
        raw = hostname.encode()
        steps.append((libc.sethostname, (raw, len(raw)),
                      ("hostname", f"setting hostname {hostname!r}", FATAL, None)))
    stdio_failure = ("stdio", "setting up stdio", FATAL, None)
    steps.extend(host.cached("setsid", lambda: [(libc.setsid, (), stdio_failure)]))
    if host.nofile is not None:
        limits = struct.pack("QQ", *host.nofile)
        steps.extend(host.cached(("nofile", host.nofile), lambda: [(
            libc.prlimit64, (0, _RLIMIT_NOFILE, limits, None),
            ("rlimit", "setting the descriptor limit", FATAL, None))]))
    for target, index in enumerate(spec.stdio):
        if not 0 <= index < len(fds):
            raise ValueError(f"stdio {target} is fd #{index}, but {len(fds)} came")
        steps.append((libc.dup2, (fds[index], target), stdio_failure))
    if spec.console_socket is not None:
        if not spec.tty or not 0 <= spec.console_socket < len(fds):
            raise ValueError(f"the console socket is fd #{spec.console_socket} (with tty), "
                             f"but {len(fds)} came")
        steps.append((open_console, (fds[spec.console_socket],),
                      ("stdio", "making its terminal", FATAL, None)))
    if spec.tty:
        steps.append((libc.ioctl, (0, _TIOCSCTTY, 0), stdio_failure))
    capabilities, user, no_new_privs = spec.capabilities, spec.user, spec.no_new_privs
    steps.extend(host.cached(("privileges", capabilities, user, no_new_privs),
                             lambda: _privilege_steps(capabilities, user, no_new_privs, host)))
    if user is not None:
        steps.append(gone)
    # After the user switch, as runc does: the user must be able to enter it.
    cwd = spec.cwd
    if cwd:
        steps.append((libc.chdir, (os.fsencode(cwd),),
                      ("chdir", f"working directory {cwd!r}", FATAL, None)))
    if spec.init:  # the reaper keeps the spawner's image (_init): no command may read it
        steps.append((libc.prctl, (_PR_SET_DUMPABLE, 0, 0, 0, 0),
                      ("prctl", "making the init non-dumpable", FATAL, None)))
    steps.extend(host.cached("final", lambda: _final_steps(host)))
    profile = spec.seccomp
    if profile is not None:
        steps.extend(host.cached(("seccomp", profile, capabilities),
                                 lambda: _seccomp_steps(profile, capabilities)))
    return Plan(tuple(steps), candidates, argv_array, envp_array, argv[0], spec.init, spec.tty)


# execvpe(3) goes on to the next directory of PATH after these (exit 127 if only these)
NOT_FOUND = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG)


def exec_error(errnos: Sequence[int]) -> int:
    """The errno to report after every candidate path failed to exec with these, as
    execvpe(3) judges: the last that was not "no such file" (of any kind), else EACCES
    if one was refused, else ENOENT."""
    last = 0
    for err in errnos:
        if err not in NOT_FOUND and err != errno.EACCES:
            last = err
    if last:
        return last
    return errno.EACCES if errno.EACCES in errnos else errno.ENOENT


def _gone_step(pidfd: int, error_fd: int) -> Step:
    return (exit_if_spawner_gone, (pidfd, error_fd), ("prctl", "", IGNORE, None))


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


def _own_view(mounts: tuple[CgroupMount, ...], joins: tuple[str, ...]
              ) -> tuple[CgroupMount, ...]:
    """The host's /sys/fs/cgroup mounts a container's view shows: a v2 tree whole; of
    the v1 hierarchies those it has a cgroup of its own in (it joins one there: the
    others are its supervisor's shared cgroup, which shows no limit of its)."""
    if not mounts or mounts[0][1] != "tmpfs":
        return mounts
    own = {m[0] for m in mounts[1:] if m[1] == "cgroup"
           and any(j.startswith(f"{CGROUP_ROOT}/{m[0]}/") for j in joins)}
    if not own:
        return ()
    return (mounts[0], *(m for m in mounts[1:] if m[0] in own
                         or (m[1] == "symlink" and m[2] in own)))


FsShape = tuple[bool, bool, tuple[tuple[str, int, str, bool], ...], bool]


def _mount_steps(proc: bool, harden: bool, host: Host, view: tuple[CgroupMount, ...],
                 fs: FsShape | None, may_unmount: bool) -> list[Step]:
    """The mounts every container of this shape makes, after / is private (and its
    volumes are taken): the host's tree read-only, a fresh /proc, its cgroups, docker's
    masks, a /dev and tmpfs mounts of its own (fs: FsView's read_only, dev, tmpfs)."""
    steps: list[Step] = []
    read_only = fs is not None and fs[0]
    rooted = fs is not None and fs[3]  # in a root of its own already (pivot_root)
    if read_only:
        steps.append((libc.syscall, _libc.mount_setattr_rdonly_args("/"),
                      ("mount", "making the host's tree read-only", SETATTR, "/")))
    failure = ("mount", "mounting /proc", FATAL, None)
    if proc:
        if fs is not None and may_unmount and not rooted:
            # The host's /proc out of the way: unmounting the container's own must not
            # show it (the command may unmount).
            steps.append((libc.umount2, (b"/proc", _libc.MNT_DETACH),
                          ("mount", "unmounting the host's /proc", SKIP_MISSING, None)))
        steps.append((libc.mount, (b"proc", b"/proc", b"proc", _HIDDEN, None), failure))
    if rooted:
        steps.append((libc.mount, (b"sysfs", b"/sys", b"sysfs",
                                   (_libc.MS_RDONLY if harden else 0) | _HIDDEN, None),
                      ("mount", "mounting /sys", FATAL, None)))
    if view:
        steps.extend(_cgroup_view_steps(view, read_only=harden))
    if harden:
        steps.extend(_hardening_steps(host, sys_read_only=not (read_only or rooted)))
    if fs is not None:
        steps.extend(_private_fs_steps(fs[1], fs[2], host.umask))
    return steps


# docker's /dev: these nodes (all 0666), links and directories, on a tmpfs of its own.
DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
             ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
             ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))
DEV_DIRS = ("pts", "shm", "mqueue")
_TTY_GID = 5  # the tty group's id in Debian's, Fedora's, Alpine's... /etc/group


def _private_fs_steps(dev: bool, tmpfs: tuple[tuple[str, int, str, bool], ...], umask: int
                      ) -> list[Step]:
    steps: list[Step] = []
    if dev:
        failure = ("mount", "making the container's /dev", FATAL, None)
        steps.append((libc.mount, (b"tmpfs", b"/dev", b"tmpfs",
                                   _libc.MS_NOSUID | _libc.MS_NOEXEC, b"mode=755,size=65536k"),
                      failure))
        # docker's nodes, links and directories: one call each (a Python function
        # making them costs twice as much in a freshly forked child), under umask 0
        steps.append((libc.umask, (0,), failure))
        for name, major, minor in DEV_NODES:
            node, mode = f"/dev/{name}".encode(), 0o666 | stat.S_IFCHR
            args = _libc.mknod_args(node, mode, major, minor)
            steps.append((libc.syscall, args, failure) if args is not None else
                         (make_node, (node, mode, os.makedev(major, minor)), failure))
        steps += [(libc.symlink, (target.encode(), f"/dev/{name}".encode()), failure)
                  for name, target in DEV_LINKS]
        steps += [(libc.mkdir, (f"/dev/{name}".encode(), 0o755), failure) for name in DEV_DIRS]
        steps.append((libc.umask, (umask,), failure))
        steps += [
            (libc.mount, (b"devpts", b"/dev/pts", b"devpts", _libc.MS_NOSUID | _libc.MS_NOEXEC,
                          f"newinstance,ptmxmode=0666,mode=0620,gid={_TTY_GID}".encode()),
             ("mount", "mounting the container's /dev/pts", FATAL, None)),
            (libc.mount, (b"mqueue", b"/dev/mqueue", b"mqueue", _HIDDEN, None),
             ("mount", "mounting the container's /dev/mqueue", FATAL, None)),
        ]
    for path, flags, data, required in tmpfs:
        steps.append((libc.mount, (b"tmpfs", path.encode(), b"tmpfs", flags, data.encode()),
                      ("mount", f"mounting a tmpfs on {path}", FATAL if required else
                       SKIP_MISSING, None)))
    return steps


def _terminal_path(spec: InitSpec, fds: list[int]) -> bytes | None:
    """The host path of the terminal a -t container gets (None: none, or unnamed)."""
    if not spec.tty or not 0 <= spec.stdio[0] < len(fds):
        return None
    try:
        return os.fsencode(os.ttyname(fds[spec.stdio[0]]))
    except OSError:
        return None


_STAGE = b"/proc"  # the host's /proc, covered for the new root's making, then detached


def _root_steps(fs: FsView, file_fds: list[int]) -> list[Step]:
    """A root of its own: its layers made on a tmpfs over the old root's /proc, its
    files staged there, then pivot_root into it, the old root detached."""
    assert fs.root is not None
    failure = ("rootfs", f"mounting --rootfs {fs.root}", FATAL, None)
    steps: list[Step] = [
        (libc.mount, (b"tmpfs", _STAGE, b"tmpfs", _HIDDEN, b"mode=700"), failure),
        (mount_root, (os.fsencode(fs.root), fs.root_read_only,
                      None if fs.upper is None else os.fsencode(fs.upper)), failure)]
    for path, content in fs.files:
        steps.append((stage_file, (content.encode(), file_fds),
                      ("rootfs", f"writing its {path}", FATAL, None)))
    steps.append((enter_root, (not fs.root_read_only,),
                  ("rootfs", f"entering --rootfs {fs.root} (pivot_root)", FATAL, None)))
    return steps


def _per_container_fs_steps(fs: FsView, volume_fds: list[int], console: list[int] | None,
                            file_fds: list[int]) -> list[Step]:
    """Its device nodes and terminal in its /dev, its files, and its volumes attached."""
    steps: list[Step] = []
    for index, (path, _content) in enumerate(fs.files):
        # a root without /etc/hosts (say) that cannot have one made goes without
        steps.append((attach_volume, (file_fds, index, os.fsencode(path), False),
                      ("rootfs", f"binding its {path}", IGNORE, None)))
    if fs.dev:
        for path, mode, rdev in fs.device_nodes:
            steps.append((make_node, (os.fsencode(path), mode, rdev),
                          ("devices", f"making the device node {path}", FATAL, None)))
    if console is not None:
        steps.append((attach_volume, (console, 0, b"/dev/console", False),
                      ("mount", "making /dev/console its terminal", FATAL, None)))
    for index, (host_path, target, _read_only, is_dir) in enumerate(fs.volumes):
        steps.append((attach_volume, (volume_fds, index, os.fsencode(target), is_dir),
                      ("volume", f"-v {host_path}:{target}", FATAL, None)))
    return steps


def _hardening_steps(host: Host, *, sys_read_only: bool) -> list[Step]:
    """/sys read-only (every mount below it too), and /proc as docker leaves it: some
    paths read-only, some masked. In this mount namespace only."""
    steps: list[Step] = []
    if sys_read_only:
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
        if not is_dir:
            steps.append((*_mask(path, False), ("mount", f"masking {path}", MASK,
                                                (*_mask(path, True),
                                                 ("mount", f"masking {path}", SKIP_MISSING,
                                                  None)))))
    directories = tuple(path.encode() for path, is_dir in host.masked if is_dir)
    if directories:
        steps.append((mask_directories, (directories,),
                      ("mount", f"masking {', '.join(p.decode() for p in directories)}",
                       FATAL, None)))
    return steps


def _cgroup_view_steps(mounts: tuple[CgroupMount, ...], *, read_only: bool) -> list[Step]:
    """/sys/fs/cgroup as the host has it, but each cgroup file system mounted afresh in
    the container's cgroup namespace: rooted at its own cgroup, so it shows its own
    limits (memory.max, pids.max...) and nothing above them; read-only unless
    privileged. A tmpfs holds the v1 hierarchies, as on the host."""
    ro = _libc.MS_RDONLY if read_only else 0
    steps: list[Step] = []
    for relative, fstype, options in mounts:
        path = CGROUP_ROOT + ("/" + relative if relative else "")
        raw = path.encode()
        failure = ("mount", f"mounting the container's {path}", FATAL, None)
        if fstype == "symlink":
            steps.append((_make_link, (options.encode(), raw), failure))
            continue
        if relative:
            steps.append((_make_dir, (raw,), failure))
        elif fstype == "cgroup2":
            # The kernel will not mount a file system on a mount of itself (EBUSY): the
            # host's cgroup2 is mounted right here, so cover it with an empty tmpfs.
            steps.append((libc.mount, (b"tmpfs", raw, b"tmpfs", _HIDDEN | ro, b"size=0"),
                          failure))
        # cgroup2 refuses a read-only mount of its (read-write) superblock (EBUSY):
        # mount it, then make this mount read-only. A v1 hierarchy takes MS_RDONLY.
        direct_ro = ro if fstype == "cgroup" else 0
        steps.append((libc.mount, (fstype.encode(), raw, fstype.encode(), _HIDDEN | direct_ro,
                                   options.encode() or None), failure))
        if fstype == "cgroup2" and ro:
            steps.append((libc.mount, (None, raw, None,
                                       _libc.MS_REMOUNT | _libc.MS_BIND | _HIDDEN | ro, None),
                          failure))
    if read_only and mounts and mounts[0][1] == "tmpfs":
        root, data = CGROUP_ROOT.encode(), mounts[0][2].encode() or None
        steps.append((libc.mount, (None, root, None, _libc.MS_REMOUNT | _HIDDEN | ro, data),
                      ("mount", f"making the container's {CGROUP_ROOT} read-only", FATAL, None)))
    return steps


def mount_root(root: bytes, read_only: bool, upper: bytes | None) -> int:
    """The new root at _STAGE/root: root under an overlay whose upper layer is upper
    (None: on the stage's tmpfs), or root itself, read-only."""
    target = _STAGE + b"/root"
    os.mkdir(target, 0o755)
    if read_only:
        fd = _libc.open_tree_clone(root, True)
        try:
            _libc.move_mount(fd, target)
        finally:
            os.close(fd)
        return 0
    base = _STAGE if upper is None else upper
    layer, work = base + b"/upper", base + b"/work"
    for directory in (layer, work):
        os.makedirs(directory, 0o755, exist_ok=True)
    data = b"lowerdir=" + root + b",upperdir=" + layer + b",workdir=" + work
    if libc.mount(b"overlay", target, b"overlay", 0, data) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0


def stage_file(content: bytes, fds: list[int]) -> int:
    """A file for the new root (its /etc/hosts...), taken as a bind mount to attach."""
    path = _STAGE + b"/file-%d" % len(fds)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    fds.append(_libc.open_tree_clone(path, False))
    return 0


def enter_root(writable: bool) -> int:
    """pivot_root into _STAGE/root; the old root detached (gone from mountinfo). A
    writable root gets the directories the mounts that follow need."""
    os.chdir(_STAGE + b"/root")
    _libc.pivot_root(b".", b".")
    if libc.umount2(b".", _libc.MNT_DETACH) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    os.chdir(b"/")
    if writable:
        for directory in (b"/proc", b"/sys", b"/dev"):
            os.makedirs(directory, 0o755, exist_ok=True)
    return 0


_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441


def open_console(sock: int) -> int:
    """A terminal of its own devpts (through its /dev/ptmx): the other end becomes
    stdin, stdout and stderr, the master end goes over the unix socket sock."""
    master = os.open(b"/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        peer = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        channel = socket.socket(fileno=sock)
        try:
            socket.send_fds(channel, [b"t"], [master])
        finally:
            channel.detach()
    finally:
        os.close(master)
    for target in (0, 1, 2):
        os.dup2(peer, target)
    os.close(peer)
    return 0


def enter_directory_root(fd: int) -> int:
    """Make the directory fd opens this process's root (and working directory)."""
    os.fchdir(fd)
    os.chroot(".")
    return 0


def open_volume(path: bytes, read_only: bool, fds: list[int]) -> int:
    fds.append(_libc.open_tree_clone(path, read_only))
    return 0


def attach_volume(fds: list[int], index: int, target: bytes, is_dir: bool) -> int:
    """Attach the volume taken as fds[index] at target, made there first if missing
    (in a tmpfs of the container's: the host's tree is read-only)."""
    fd = fds[index]
    try:
        if not os.path.lexists(target):
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            if is_dir:
                os.mkdir(target, 0o755)
            else:
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        _libc.move_mount(fd, target)
    finally:
        os.close(fd)
    return 0


def make_node(path: bytes, mode: int, rdev: int) -> int:
    """A device node the container was given (--device), its directories made."""
    old = os.umask(0)
    try:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # one of DEV_NODES, given again
        os.mknod(path, mode, rdev)
    finally:
        os.umask(old)
    return 0


def _make_dir(path: bytes) -> int:
    os.mkdir(path, 0o555)
    return 0


def _make_link(target: bytes, path: bytes) -> int:
    os.symlink(target, path)
    return 0


def mask_directories(paths: tuple[bytes, ...]) -> int:
    """Hide each directory under an empty read-only tmpfs, as docker does, all sharing
    the first one made (a file system apiece costs a superblock made and torn down per
    container); a path this kernel lacks is skipped, a file gets /dev/null."""
    source = None
    for path in paths:
        if source is not None and libc.mount(source, path, None, _libc.MS_BIND, None) == 0:
            continue
        if libc.mount(b"tmpfs", path, b"tmpfs", _libc.MS_RDONLY | _HIDDEN,
                      b"size=0,mode=555") == 0:
            source = source or path
            continue
        err = ctypes.get_errno()
        if err == errno.ENOTDIR:  # a file where a directory was
            if libc.mount(b"/dev/null", path, None, _libc.MS_BIND, None) == 0:
                continue
            err = ctypes.get_errno()
        if err != errno.ENOENT:
            raise OSError(err, os.strerror(err))
    return 0


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
    parent-death signal: it is armed again (and `exit_if_spawner_gone` follows)."""
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


def warm_up(host: Host) -> None:
    """Compile, ahead of the first spawn that needs it, docker's seccomp filter for
    docker's default capabilities (a container of any user, as `compile_plan` keys
    it). If it cannot be had, the spawn that needs it will say why."""
    from . import _seccomp

    capabilities = tuple(_caps.effective_set())
    with contextlib.suppress(ValueError):
        host.cached(("seccomp", _seccomp.DEFAULT, capabilities),
                    lambda: _seccomp_steps(_seccomp.DEFAULT, capabilities))


def _seccomp_steps(profile: str, capabilities: tuple[int, ...] | None) -> list[Step]:
    """The filter, installed last: after no_new_privs (without CAP_SYS_ADMIN the kernel
    wants it) and everything else a container's start needs that the filter may
    refuse. What follows is allowed by any profile that lets a command start: exec,
    and under --init fork (clone without namespace flags), signals, waits.
    ProfileError (a ValueError) if libseccomp is missing or refuses the profile."""
    from . import _seccomp_bpf  # only for a confined container: ctypes structures, libseccomp

    program = _seccomp_bpf.prepare(profile, capabilities)
    return [(libc.syscall, program.args, ("seccomp", "installing the seccomp filter",
                                          FATAL, None))]


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


def exit_if_spawner_gone(pidfd: int, error_fd: int) -> int:
    """After arming the parent-death signal (first, and again after a user switch,
    which clears it): a spawner that died before it was armed never sends it. Its own
    pidfd (inherited, -1 without one) is readable once it has exited; without one, the
    error pipe: the spawner holds its read end (so, until they exec, may siblings of a
    group forked together), with it gone poll reports POLLERR on our write end."""
    poller = select.poll()
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
        if poller.poll(0):
            os._exit(125)
        return 0
    poller.register(error_fd, 0)
    if any(ev & select.POLLERR for _fd, ev in poller.poll(0)):
        os._exit(125)
    return 0
