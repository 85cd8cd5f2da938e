"""A container's start without forking Python: the compiled plan (`_plan`) lowered to
a list of raw syscalls that a few hundred bytes of machine code make in a child that
shares the spawner's memory (CLONE_VM | CLONE_VFORK, as posix_spawn starts a process).

Why: forking the spawner costs every container a copy of its page tables and, in the
child, a copy-on-write fault for each page Python touches (reference counts on the
long-lived objects the plan's steps are, ~150 pages), and the exec that follows tears
that copy down again. Measured on 2 cores at -j 8, that was a fifth of all the CPU a
batch of short jobs used. A child that shares the address space copies nothing and
its exec drops one reference. It must not run Python (it would write the spawner's
heap and stack under it), so the plan's steps become data: for each, the syscall
number, its six arguments as machine words (pointers into buffers the spawner keeps
alive: the parent is suspended until the child has exec'd or exited), what to do with
each errno (go on, skip, take another branch, fail), and where the result goes when a
later step needs it (an fd). `trampoline_x86_64.S` is the interpreter, built into
`_native_code` by scripts/assemble-trampoline.

A failing step writes its index and errno to the error pipe (two u32) and the child
exits (125, or 126/127 for exec); `Program.report` turns that into the same
`StepReport` the Python path writes. What this module cannot lower (a root of its own,
a console, `supervise exec`'s joins, `--init`'s reaper, an older kernel's fallbacks,
another architecture) returns None from `lower`, and the spawner forks as before.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import types

from . import _libc, _plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ._messages import StepReport
    from ._plan import Failure, Host, Plan, Step

    Insn = tuple[bytes, Any]  # one packed instruction, and what its failure reports

# one instruction, as trampoline_x86_64.S reads it (128 bytes)
_INSN = struct.Struct("<q6QQQQQQqqq8x")
_RECORD = struct.Struct("<II")
_CONTEXT = struct.Struct("<6QQQQQ")  # clone nr, its 5 args, program, error fd, masks
_CONTEXT_SIZE = 80 + 16 * 8
_REGISTERS = struct.Struct("<QQ")  # registers 14 and 15
_ARGV_OFFSET = 80 + 14 * 8
NO_REGISTER = 255
EXIT_IF_POSITIVE = 1
RECORD_ERRORS = 2
ALL = (1 << 64) - 1  # bit 0 stands for every errno >= 64
_LOAD32 = -1  # not a syscall: the int32 at args[0] is the result
_EXIT = -2  # not a syscall: record (index, 0) and exit with args[0]


def _bit(*errnos: int) -> int:
    mask = 0
    for e in errnos:
        mask |= 1 << e
    return mask


_NOT_FOUND = _bit(*_plan.NOT_FOUND)

_SYS = {  # x86_64's numbers
    "read": 0, "write": 1, "close": 3, "poll": 7, "ioctl": 16, "rt_sigaction": 13,
    "rt_sigprocmask": 14, "dup2": 33, "socket": 41, "sendto": 44, "recvfrom": 45,
    "execve": 59, "chdir": 80, "mkdir": 83, "unlink": 87, "symlink": 88, "umask": 95,
    "setuid": 105, "setgid": 106, "setsid": 112, "setgroups": 116, "capset": 126,
    "prctl": 157, "mount": 165, "umount2": 166, "sethostname": 170, "keyctl": 250,
    "openat": 257, "mknodat": 259, "unshare": 272, "prlimit64": 302, "setns": 308,
    "clone3": 435,
    "close_range": 436, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
}

libc = _libc.libc
# libc functions the plan calls that are one syscall with the same arguments (ctypes'
# function pointers are not hashable: by name, and checked to be libc's own)
_SAME = frozenset({
    "prctl", "unshare", "setns", "mount", "umount2", "sethostname", "setsid", "dup2",
    "ioctl", "setgroups", "setgid", "setuid", "capset", "chdir", "umask", "symlink",
    "mkdir", "close", "write", "prlimit64"})
_RT = {"sigaction": "rt_sigaction", "sigprocmask": "rt_sigprocmask"}  # + sigsetsize


class Unsupported(Exception):
    """A step this module cannot lower: the spawner forks for this container."""


def _bytes_offset() -> int | None:
    """Where CPython keeps a bytes object's (NUL-terminated) contents, from the object's
    address (its id): the same for every bytes object. Asked of ctypes, and checked on
    two; None if they disagree (another implementation: no native start)."""
    offsets = set()
    for probe in (b"supervise", bytes(range(40))):
        address = ctypes.cast(ctypes.c_char_p(probe), ctypes.c_void_p).value
        offsets.add(None if address is None else address - id(probe))
    return offsets.pop() if len(offsets) == 1 else None


_KNOWN_OFFSET = _bytes_offset()
_BYTES_OFFSET = _KNOWN_OFFSET or 0


def _word(value: Any, keep: list[Any]) -> int:
    """A syscall argument as the machine word the kernel gets."""
    kind = type(value)
    if kind is int:
        return value & ALL  # type: ignore[no-any-return]
    if kind is bytes:
        keep.append(value)
        return id(value) + _BYTES_OFFSET
    if value is None:
        return 0
    if isinstance(value, int):  # bool, IntEnum
        return int(value) & ALL
    if isinstance(value, ctypes._SimpleCData):
        return int(value.value) & ALL
    if isinstance(value, (ctypes.Array, ctypes.Structure)):
        keep.append(value)
        return ctypes.addressof(value)
    obj = getattr(value, "_obj", None)  # ctypes.byref(obj), at offset 0 as _libc makes them
    if obj is not None and type(value).__name__ == "CArgObject":
        keep.append(obj)
        return ctypes.addressof(obj)
    raise Unsupported(f"an argument of type {type(value).__name__}")


def _insn(nr: int, words: Sequence[int], what: Any, *, skip: int = 0, alt: int = 0,
          on_ok: int = 1, on_alt: int = 1, dest: int = NO_REGISTER, regs: int = 0,
          flags: int = 0, fail_code: int = 125) -> Insn:
    """An instruction: the syscall nr with words (up to six), what its failure reports
    (a `Failure`, or ("exec", None)), its errno policy and its branches."""
    return (_INSN.pack(nr, *words, *_ZEROS[len(words):], regs, dest, flags, skip, alt,
                       on_ok, on_alt, fail_code), what)


_ZEROS = (0,) * 6


class Program:
    """One container's lowered start: the packed instructions and everything their
    pointers point into, kept alive together."""

    __slots__ = ("argv", "argv0", "code", "envp", "keep", "whats")

    def __init__(self, code: bytes, whats: list[tuple[Any, ...]], keep: list[Any],
                 argv0: str, argv: int, envp: int) -> None:
        self.code = code
        self.whats = whats
        self.keep = keep
        self.argv0 = argv0
        self.argv = argv  # addresses, for the registers the exec chain reads
        self.envp = envp

    def report(self, raw: bytes) -> StepReport | None:
        """What the child wrote on its error pipe, as the Python path's report."""
        from ._messages import StepReport

        whats = [what for segment in self.whats for what in segment]
        records = [_RECORD.unpack_from(raw, i) for i in range(0, len(raw) - 7, 8)]
        if not records:
            return None
        index, err = records[-1]
        if index >= len(whats):
            return StepReport(step="init", errno=err,
                              message=f"step {index}: {os.strerror(err)}")
        step, what = whats[index][:2]
        if step == "exec":
            if err:  # the records of paths tried before one that exec'd
                return None
            # the end of the exec chain: every path failed
            err = _plan.exec_error([e for i, e in records if e and i < len(whats)
                                    and whats[i][0] == "exec"])
            return StepReport(step="exec", errno=err,
                              message=f"exec {self.argv0!r}: {os.strerror(err)}")
        return StepReport(step=step, errno=err, message=f"{what}: {os.strerror(err)}")


def _policy(failure: Failure) -> tuple[int, int]:
    """(errnos that count as success, errnos that take the step's other branch)."""
    policy = failure[2]
    if policy == _plan.IGNORE:
        return ALL, 0
    if policy == _plan.SKIP_MISSING:
        return _bit(errno.ENOENT), 0
    if policy == _plan.MASK:
        return _bit(errno.ENOENT), _bit(errno.ENOTDIR, errno.EISDIR)
    # FATAL; SETATTR and CLOSE_RANGE: `available` checked that this kernel has the
    # syscall; CAPSET: the plan keeps only what the spawner holds, so EPERM is fatal.
    return 0, 0


class _Lowering:
    def __init__(self, host: Host, keep: list[Any] | None = None) -> None:
        self.host = host
        self.keep: list[Any] = [] if keep is None else keep
        # (id of a plan's list of fds, index in it) -> the register holding that fd
        self.registers: dict[tuple[int, int], int] = {}
        self.next_register = 1  # 0 is for a step's own passing use

    def word(self, value: Any) -> int:
        return _word(value, self.keep)

    def call(self, name: str, args: Sequence[Any], what: Any, **options: Any) -> Insn:
        """The syscall name with these arguments (converted to words)."""
        keep = self.keep
        return _insn(_SYS[name], [_word(a, keep) for a in args], what, **options)

    def step(self, step: Step) -> list[Insn]:
        fn, args, failure = step
        skip, alt = _policy(failure)
        if failure[2] == _plan.MASK:
            other = self.step(failure[3])
            main = self._simple(fn, args, failure, skip=skip, alt=alt,
                                on_ok=1 + len(other), on_alt=1)
            return [main, *other]
        if isinstance(fn, types.FunctionType):
            special = _SPECIAL.get(fn)
            if special is None:
                raise Unsupported(fn.__name__)
            return special(self, args, failure)
        return [self._simple(fn, args, failure, skip=skip)]

    def _simple(self, fn: Callable[..., int], args: Sequence[Any], failure: Failure,
                **options: Any) -> Insn:
        name = getattr(fn, "__name__", "")
        if fn is not getattr(libc, name, None):
            raise Unsupported(name or repr(fn))
        if name in _SAME:
            return self.call(name, args, failure, **options)
        if name == "syscall":
            return _insn(int(args[0]), [self.word(a) for a in args[1:]], failure, **options)
        if name in _RT:
            return self.call(_RT[name], (*args, 8), failure, **options)
        raise Unsupported(name)

    def take(self, fds: list[int]) -> int:
        """A register for the next fd a step appends to fds (a plan's list of volumes,
        or of its console): the fd at that index from then on."""
        index = sum(1 for key in self.registers if key[0] == id(fds))
        register = self.next_register
        if register >= _ARGV:
            raise Unsupported("more volumes than registers")
        self.next_register += 1
        self.registers[(id(fds), index)] = register
        self.keep.append(fds)  # its id stays its own while this lowering lasts
        return register

    def register_for(self, fds: list[int], index: int) -> int:
        register = self.registers.get((id(fds), index))
        if register is None:
            raise Unsupported("an fd no step took")
        return register

    def mkdirs(self, path: bytes, what: Any, skip: int = 0) -> list[Insn]:
        """mkdir of every ancestor of path, each there already fine (os.makedirs)."""
        parts = path.rstrip(b"/").split(b"/")[1:-1]
        out = []
        for n in range(1, len(parts) + 1):
            ancestor = b"/" + b"/".join(parts[:n])
            out.append(self.call("mkdir", (ancestor, 0o755), what,
                                 skip=skip | _bit(errno.EEXIST)))
        return out


def _exit_if_spawner_gone(low: _Lowering, args: tuple[Any, ...], failure: Failure
                          ) -> list[Insn]:
    pidfd = args[0]
    if pidfd < 0:
        raise Unsupported("no pidfd for the spawner")
    pollfd = struct.pack("<ihh", pidfd, 1, 0)  # POLLIN
    return [low.call("poll", (pollfd, 1, 0), failure, skip=ALL, flags=EXIT_IF_POSITIVE,
                     fail_code=125)]


def _keyring(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    return [low.call("keyctl", (_plan._KEYCTL_JOIN_SESSION_KEYRING, 0), failure,
                     skip=_bit(errno.ENOSYS))]


def _join_cgroup(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    (path,) = args
    return [low.call("openat", (_libc.AT_FDCWD, path, os.O_WRONLY | os.O_CLOEXEC, 0),
                     failure, dest=0),
            low.call("write", (0, b"0", 1), failure, regs=1),
            low.call("close", (0,), failure, regs=1)]


def _loopback(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    request, reply = args
    code = ctypes.addressof(reply) + 16  # the NLMSG_ERROR's code: 0, or -errno
    low.keep.append(reply)
    return [low.call("socket", (_plan._AF_NETLINK, _plan._SOCK_RAW_CLOEXEC,
                                _plan._NETLINK_ROUTE), failure, dest=0),
            low.call("sendto", (0, request, len(request), 0, 0, 0), failure, regs=1),
            low.call("recvfrom", (0, reply, len(reply), 0, 0, 0), failure, regs=1),
            low.call("close", (0,), failure, regs=1),
            _insn(_LOAD32, (code,), failure)]


def _mask_directories(low: _Lowering, args: tuple[Any, ...], failure: Failure
                      ) -> list[Insn]:
    """As _plan.mask_directories: the first an empty read-only tmpfs, the others bound
    to it; where that fails, a tmpfs of its own; a file gets /dev/null; missing: skip."""
    (paths,) = args
    out: list[Insn] = []
    flags = _libc.MS_RDONLY | _plan._HIDDEN
    for n, path in enumerate(paths):
        if n:  # bind the first; any failure: a tmpfs of its own
            out.append(low.call("mount", (paths[0], path, None, _libc.MS_BIND, None), failure,
                                on_ok=3, alt=ALL, on_alt=1))
        out.append(low.call("mount", (b"tmpfs", path, b"tmpfs", flags, b"size=0,mode=555"),
                            failure, skip=_bit(errno.ENOENT), on_ok=2,
                            alt=_bit(errno.ENOTDIR), on_alt=1))
        out.append(low.call("mount", (b"/dev/null", path, None, _libc.MS_BIND, None),
                            failure, skip=_bit(errno.ENOENT)))
    return out


def _make_dir(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    return [low.call("mkdir", (args[0], 0o555), failure)]


def _make_link(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    return [low.call("symlink", args, failure)]


def _make_node(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    path, mode, rdev = args
    dev = _libc.kernel_dev(os.major(rdev), os.minor(rdev))
    return [low.call("umask", (0,), failure), *low.mkdirs(path, failure),
            low.call("unlink", (path,), failure, skip=_bit(errno.ENOENT)),
            low.call("mknodat", (_libc.AT_FDCWD, path, mode, dev), failure),
            low.call("umask", (low.host.umask,), failure)]


_READ_ONLY = _libc.MountAttr(_libc.MOUNT_ATTR_RDONLY, 0, 0, 0)


def _open_volume(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    """open_tree(path, OPEN_TREE_CLONE | AT_RECURSIVE) into the volume's register, made
    read-only (recursively) if asked; as _libc.open_tree_clone."""
    path, read_only, fds = args
    register = low.take(fds)
    out = [low.call("open_tree", (_libc.AT_FDCWD, path,
                                  _libc.OPEN_TREE_CLONE | _libc.AT_RECURSIVE | os.O_CLOEXEC),
                    failure, dest=register)]
    if read_only:
        out.append(low.call("mount_setattr", (register, b"",
                                              _libc.AT_EMPTY_PATH | _libc.AT_RECURSIVE,
                                              _READ_ONLY, ctypes.sizeof(_READ_ONLY)),
                            failure, regs=1))
    return out


def _attach_volume(low: _Lowering, args: tuple[Any, ...], failure: Failure) -> list[Insn]:
    """As _plan.attach_volume: the target (and its directories) made if missing, the
    volume moved there, its fd closed."""
    fds, index, target, is_dir = args
    register = low.register_for(fds, index)
    skip, _alt = _policy(failure)
    exists = skip | _bit(errno.EEXIST)
    make = (low.call("mkdir", (target, 0o755), failure, skip=exists) if is_dir else
            low.call("mknodat", (_libc.AT_FDCWD, target, 0o100644, 0), failure, skip=exists))
    return [*low.mkdirs(target, failure, skip), make,
            low.call("move_mount", (register, b"", _libc.AT_FDCWD, target,
                                    _libc.MOVE_MOUNT_F_EMPTY_PATH), failure, skip=skip, regs=1),
            low.call("close", (register,), failure, skip=ALL, regs=1)]


_SPECIAL: dict[Any, Callable[[_Lowering, tuple[Any, ...], Failure], list[Insn]]] = {
    _plan.exit_if_spawner_gone: _exit_if_spawner_gone,
    _plan.join_new_session_keyring: _keyring,
    _plan.join_cgroup: _join_cgroup,
    _plan.bring_loopback_up: _loopback,
    _plan.mask_directories: _mask_directories,
    _plan._make_dir: _make_dir,
    _plan._make_link: _make_link,
    _plan.make_node: _make_node,
    _plan.open_volume: _open_volume,
    _plan.attach_volume: _attach_volume,
}


_ARGV, _ENVP = 14, 15  # the registers holding the command's argv and envp
_EXEC_MEMO_MAX = 256


def _exec_chain(low: _Lowering, candidates: tuple[bytes, ...]) -> list[Insn]:
    """execve each candidate path in turn (argv and envp in their registers). Two
    chains: the first while every failure was "not found" (it ends in exit 127), the
    second once one was not (exit 126): A_0..A_n-1, exit 127, B_1..B_n-1, exit 126."""
    what = ("exec", None)
    n = len(candidates)
    out = []
    regs = 0b110  # args 1 and 2 name registers
    for path in candidates:
        out.append(_insn(_SYS["execve"], (low.word(path), _ARGV, _ENVP), what, regs=regs,
                         alt=_NOT_FOUND, on_alt=1, skip=ALL & ~_NOT_FOUND,
                         on_ok=n + 1, flags=RECORD_ERRORS, fail_code=126))
    out.append(_insn(_EXIT, (127,), what))
    for path in candidates[1:]:
        out.append(_insn(_SYS["execve"], (low.word(path), _ARGV, _ENVP), what, regs=regs,
                         skip=ALL, flags=RECORD_ERRORS, fail_code=126))
    out.append(_insn(_EXIT, (126,), what))
    return out


def lower(plan: Plan, host: Host) -> Program | None:
    """The plan as a native program, or None if something in it cannot be lowered.
    The steps every container of a kind shares (`Host.cached`) are lowered once."""
    if plan.init or not available():
        return None
    low = _Lowering(host)
    chunks: list[bytes] = []
    whats: list[tuple[Any, ...]] = []  # for each chunk, what each instruction reports
    memo: dict[int, tuple[Step, bytes, tuple[Any, ...]]] = host.native_memo
    lasting = host.lasting
    try:
        for step in plan.steps:
            key = id(step)
            known = memo.get(key)
            if known is None:
                mine, low.keep = low.keep, []  # what this step's words point into
                insns = low.step(step)
                code, what = b"".join(i[0] for i in insns), tuple(i[1] for i in insns)
                if key in lasting:  # kept alive by the host's cache: its id stays its own
                    memo[key] = (step, code, what)
                    host.native_keep.extend(low.keep)
                else:
                    mine.extend(low.keep)
                low.keep = mine
            else:
                code, what = known[1], known[2]
            chunks.append(code)
            whats.append(what)
    except Unsupported:
        return None
    # the same command (PATH and argv[0]) in every container of a batch: lowered once
    chains = host.native_chains
    chain = chains.get(plan.candidates)
    if chain is None:
        if len(chains) >= _EXEC_MEMO_MAX:
            chains.clear()
        keep: list[Any] = [plan.candidates]
        insns = _exec_chain(_Lowering(host, keep), plan.candidates)
        chain = chains[plan.candidates] = (b"".join(i[0] for i in insns),
                                           tuple(i[1] for i in insns), keep)
    chunks.append(chain[0])
    whats.append(chain[1])
    low.keep += (plan.argv, plan.envp, chain)
    return Program(b"".join(chunks), whats, low.keep, plan.argv0,
                   ctypes.addressof(plan.argv), ctypes.addressof(plan.envp))


# ---- running it ---------------------------------------------------------------------

_CLONE_VM = 0x100
_CLONE_VFORK = 0x4000
_CLONE_PIDFD = 0x1000
_STACK_SIZE = 64 * 1024
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_MAP_PRIVATE, _MAP_ANONYMOUS = 0x02, 0x20


def _map(size: int, prot: int) -> int:
    mmap = libc.mmap
    address = mmap(None, size, prot, _MAP_PRIVATE | _MAP_ANONYMOUS, -1, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    return int(address)


def _map_code() -> Callable[[int], int]:
    """The trampoline, mapped read-only and executable (written while writable)."""
    from ._native_code import X86_64

    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    size = (len(X86_64) + 4095) & ~4095
    code = _map(size, _PROT_READ | _PROT_WRITE)
    ctypes.memmove(code, X86_64, len(X86_64))
    if libc.mprotect(code, size, _PROT_READ | _PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")
    # CFUNCTYPE: the GIL is released while the call (the child's whole start) lasts
    return ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p)(code)


class Launcher:
    """What one thread needs to start programs, one at a time: a stack for the child
    (it is done with it when the call returns: CLONE_VFORK), the context, the clone's
    arguments and the pidfd it writes."""

    def __init__(self) -> None:
        if _start is None:
            raise OSError(errno.ENOSYS, "no native start on this machine")
        self.stack = _map(_STACK_SIZE, _PROT_READ | _PROT_WRITE)
        self.context = ctypes.create_string_buffer(_CONTEXT_SIZE)
        self.args = _libc.CloneArgs()
        self.pidfd = ctypes.c_int(-1)

    def spawn(self, program: Program, error_fd: int, flags: int, cgroup_fd: int | None
              ) -> tuple[int, int]:
        """Start the program in a new child, and return once it has exec'd or died:
        (pid, pidfd). OSError if the clone failed."""
        assert _start is not None
        args = self.args
        args.flags = flags | _CLONE_VM | _CLONE_VFORK | _CLONE_PIDFD | (
            _libc.CLONE_INTO_CGROUP if cgroup_fd is not None else 0)
        args.pidfd = ctypes.addressof(self.pidfd)
        args.exit_signal = signal.SIGCHLD
        args.stack = self.stack
        args.stack_size = _STACK_SIZE
        args.cgroup = cgroup_fd or 0
        code = program.code
        _CONTEXT.pack_into(self.context, 0, _SYS["clone3"], ctypes.addressof(args),
                           ctypes.sizeof(args), 0, 0, 0, id(code) + _BYTES_OFFSET,
                           error_fd, ALL, 0)
        _REGISTERS.pack_into(self.context, _ARGV_OFFSET, program.argv, program.envp)
        pid = int(_start(ctypes.addressof(self.context)))
        if pid < 0:
            raise OSError(-pid, os.strerror(-pid))
        return pid, self.pidfd.value


_start: Callable[[int], int] | None = None
_available: bool | None = None


def available() -> bool:
    """Whether this process can start containers natively: x86_64, CPython, and a
    kernel with clone3 and pidfds (5.3), mount_setattr (5.12) and close_range (5.11),
    so that no step needs the Python path's fallbacks; the code mapped. Decided once.
    SUPERVISE_SPAWN=fork in the environment says no (to compare the two)."""
    global _available, _start
    if _available is None:
        _available = False
        if (os.uname().machine == "x86_64" and os.environ.get("SUPERVISE_SPAWN") != "fork"
                and _KNOWN_OFFSET is not None and _kernel_has("mount_setattr")
                and _kernel_has("close_range")):
            try:
                _start = _map_code()
                _available = True
            except (OSError, ImportError):
                pass
    return _available


def _kernel_has(name: str) -> bool:
    """A call with a bad fd: EBADF/EINVAL if the kernel has the syscall, ENOSYS if not."""
    result = libc.syscall(_SYS[name], -1, 0, 0, 0, 0)
    return not (result < 0 and ctypes.get_errno() == errno.ENOSYS)
