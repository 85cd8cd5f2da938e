"""A seccomp profile (`_seccomp`) compiled to a BPF program with libseccomp, the
system library every distribution ships, reached through ctypes and loaded on first
use (ProfileError, naming the package to install, when it is missing).

The spawner compiles each profile once per capability set (`_plan.Host` caches the
step) and PID 1 installs the program as its last step before exec.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct

from ._caps import CAPABILITIES
from ._seccomp import (
    ACTIONS,
    DEFAULT,
    LIBRARY,
    MISSING,
    Profile,
    ProfileError,
    kernel_version,
    load_profile,
    machine,
    select_rules,
)
from ._seccomp_compact import compact_program, condition_sets, names_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

_NR_SCMP_ERROR = -1
_SCMP_FLTATR_ACT_BADARCH = 2
_SCMP_FLTATR_CTL_OPTIMIZE = 8
_SECCOMP_SET_MODE_FILTER = 1
_SCMP_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # libseccomp's own token: x32 shares x86_64's audit arch
# Default actions that refuse: a syscall newer than the profile gets ENOSYS instead.
_REFUSING = (0x00000000, 0x80000000, 0x00030000, 0x00050000)


# -- compiling, with libseccomp --------------------------------------------------------------
class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class SockFprog(ctypes.Structure):
    """struct sock_fprog: the program seccomp(2) installs (len is in instructions)."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(ctypes.c_uint64))]


_lib: Any = None


def libseccomp() -> Any:
    """libseccomp, loaded on first use; ProfileError (MISSING) if it is not installed."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL(LIBRARY)
        except OSError:
            raise ProfileError(MISSING) from None
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_exist.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_native.argtypes = []
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
        lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p  # malloc'd: freed
        _lib = lib
    return _lib


def compile_filter(profile: Profile, caps: Iterable[str],
                   machine_names: tuple[str, str] | None = None,
                   kernel: tuple[int, int] | None = None) -> bytes:
    """The BPF program (struct sock_filter[]) for a container holding caps, on this
    machine (or the one named) and kernel. Syscall names libseccomp does not know are
    skipped, as docker does; so is an entry whose action is the default one. With a
    refusing default action, syscalls numbered past every one the profile names get
    ENOSYS, as under docker (runc's patchbpf), so that libc falls back from a syscall
    newer than the profile (glibc 2.39's fchmodat2) rather than failing with EPERM."""
    lib = libseccomp()
    native, docker_arch = machine_names or machine()
    rules = select_rules(profile, caps, docker_arch,
                         kernel or kernel_version(os.uname().release) or (0, 0))
    ctx = lib.seccomp_init(profile.default_action)
    if not ctx:
        raise ProfileError("libseccomp refused the default action")
    try:
        # Architectures: the profile's list, or its archMap's entry for this machine;
        # syscalls of any other (x32 with the default profile) get ENOSYS.
        arches = profile.architectures or profile.arch_map.get(native, ())
        tokens = [lib.seccomp_arch_native()]
        for arch in arches:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if token == 0:
                raise ProfileError(f"libseccomp does not know the architecture {arch}")
            if lib.seccomp_arch_exist(ctx, token) == -errno.EEXIST:  # 0: it is there
                _check(lib.seccomp_arch_add(ctx, token), f"adding the architecture {arch}")
                tokens.append(token)
        _check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_ACT_BADARCH,
                                    ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS),
               "setting the action for other architectures")
        # A binary tree of syscall numbers rather than a list: the kernel walks the
        # program once per syscall number when it installs it (to cache what is always
        # allowed), so installing the default profile costs 0.2 ms instead of 0.65.
        # libseccomp before 2.5 has no such option, and makes the list.
        lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)
        for rule in rules:
            if rule.action == profile.default_action:
                continue  # libseccomp refuses those (EACCES): they change nothing
            for name in rule.names:
                number = lib.seccomp_syscall_resolve_name(name.encode())
                if number == _NR_SCMP_ERROR:
                    continue
                for conditions in condition_sets(rule.args):
                    array = (_ArgCmp * len(conditions))(*(
                        _ArgCmp(index, op, a, b) for index, op, a, b in conditions)
                    ) if conditions else None
                    _check(lib.seccomp_rule_add_array(ctx, rule.action, number,
                                                      len(conditions), array),
                           f"adding the rule for {name}")
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            # A filter is at most 4096 instructions of 8 bytes: it fits a pipe's buffer.
            exported = lib.seccomp_export_bpf(ctx, write_end)
            os.close(write_end)
            write_end = -1
            _check(exported, "exporting the filter")
            chunks = []
            while chunk := os.read(read_end, 65536):
                chunks.append(chunk)
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
    finally:
        lib.seccomp_release(ctx)
    program = b"".join(chunks)
    if profile.default_action & 0xFFFF0000 not in _REFUSING:
        return program
    return _newer_syscalls_stub(lib, tokens, {n for rule in rules for n in rule.names}) + program


def _newer_syscalls_stub(lib: Any, tokens: list[int], names: set[str]) -> bytes:
    """BPF put before libseccomp's program: for each architecture, a syscall numbered
    past the highest the profile names returns ENOSYS; anything else goes on to the
    program (jumps are relative, so it is unchanged)."""
    if _SCMP_ARCH_X32 in tokens:  # its numbers are x86_64's plus a bit: no bound for either
        tokens = [t for t in tokens if t not in (_SCMP_ARCH_X32, _SCMP_ARCH_X86_64)]
    bounds = []
    for token in tokens:
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, name.encode())
                   for name in sorted(names)]
        if any(n >= 0 for n in numbers):
            bounds.append((token, max(numbers)))
    if not bounds:
        return b""

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("=HBBI", code, jt, jf, k)

    ld_nr, ld_arch = op(0x20, 0), op(0x20, 4)  # BPF_LD|W|ABS of seccomp_data.nr, .arch
    count = len(bounds)
    stub = [ld_arch]
    for j, (token, highest) in enumerate(bounds):
        # jeq arch (else to the next arch's check); ld nr; jgt highest: ENOSYS, else
        # the program. The ENOSYS return and the program follow the last check.
        stub += [op(0x15, token, 0, 2), ld_nr, op(0x25, highest, 3 * (count - j) - 2,
                                                  3 * (count - j) - 1)]
    stub += [op(0x05, 1), op(0x06, ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS)]  # ja; ret
    return b"".join(stub)


def _check(result: int, what: str) -> None:
    if result < 0:
        reason = ("a rule with another action is already there"
                  if result == -errno.EEXIST and what.startswith("adding the rule")
                  else os.strerror(-result))
        raise ProfileError(f"{what}: {reason}")


class Program:
    """A compiled filter, kept where seccomp(2) can read it: `args` are syscall(2)'s
    (the struct they point to holds the instructions' buffer alive)."""

    __slots__ = ("args", "size")

    def __init__(self, code: bytes, flags: int = 0) -> None:
        if not code or len(code) % 8:
            raise ProfileError("libseccomp exported no program")
        self.size = len(code) // 8
        buffer = ctypes.create_string_buffer(code, len(code))
        fprog = SockFprog(self.size, ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint64)))
        number = libseccomp().seccomp_syscall_resolve_name(b"seccomp")
        self.args = (number, ctypes.c_uint(_SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags),
                     ctypes.byref(fprog))


def prepare(text: str, capabilities: Iterable[int] | None) -> Program:
    """The filter a container gets: profile DEFAULT or a JSON profile's text, for the
    capability numbers it keeps (None: all). ProfileError if it cannot be had. Docker's
    profile (DEFAULT) becomes the compact program (`_seccomp_compact`) when it can,
    the same filter in a third of the instructions; any other profile, libseccomp's."""
    numbers = range(len(CAPABILITIES)) if capabilities is None else capabilities
    caps = [f"CAP_{CAPABILITIES[n]}" for n in numbers if n < len(CAPABILITIES)]
    profile = load_profile(text)
    code = compile_compact(profile, caps) if text == DEFAULT else None
    return Program(code or compile_filter(profile, caps), profile.flags)


# Where the compact program has been compared with libseccomp's, verdict by verdict
# (tests/test_seccomp_compact.py, run on such a machine): elsewhere, libseccomp's.
COMPACT_MACHINES = ("x86_64",)


def compile_compact(profile: Profile, caps: Iterable[str],
                    machine_names: tuple[str, str] | None = None,
                    kernel: tuple[int, int] | None = None) -> bytes | None:
    """compile_filter's filter as `_seccomp_compact` builds it, with libseccomp's
    syscall tables; None where that cannot be (then compile_filter's is the one)."""
    lib = libseccomp()
    native, docker_arch = machine_names or machine()
    if native not in COMPACT_MACHINES:
        return None
    rules = select_rules(profile, caps, docker_arch,
                         kernel or kernel_version(os.uname().release) or (0, 0))
    tokens = [lib.seccomp_arch_native() if machine_names is None
              else lib.seccomp_arch_resolve_name(native.encode())]
    for arch in profile.architectures or profile.arch_map.get(native, ()):
        token = lib.seccomp_arch_resolve_name(arch.encode())
        if token in (0, _SCMP_ARCH_X32):
            return None  # x32 shares x86_64's numbers: libseccomp's way only
        if token not in tokens:
            tokens.append(token)
    arches = [(token, names_of(functools.partial(_syscall_name, lib, token)))
              for token in tokens]
    refusing = profile.default_action & 0xFFFF0000 in _REFUSING
    return compact_program(rules, profile.default_action, arches,
                           ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS, refusing)


_free = ctypes.CDLL(None).free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None


def _syscall_name(lib: Any, token: int, number: int) -> str | None:
    pointer = lib.seccomp_syscall_resolve_num_arch(token, number)
    if not pointer:
        return None
    try:
        return ctypes.string_at(pointer).decode()
    finally:
        _free(pointer)
