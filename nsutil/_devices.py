"""Device access on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program, assembled here
from allow rules, loaded once and attached to each container's cgroup.

cgroup v2 has no devices.allow file: the kernel asks the programs attached to a
process's cgroup (and its ancestors) about every open and mknod of a device node. Our
program allows what a rule allows and denies the rest. The spawner loads one program
per rule set (`load`, cached) and attaches it to the container's cgroup (`attach`)
before the container's first process is born there; attached without
BPF_F_ALLOW_OVERRIDE, no cgroup below it can replace it.

A rule is (kind, major, minor, access): kind "a", "b" or "c"; major and minor -1 for
any; access some of "rwm". The context the kernel hands the program is
``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}``, access_type
being ``(access << 16) | type``.
"""

from __future__ import annotations

import ctypes
import os
import struct

from . import _libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    Rule = tuple[str, int, int, str]

_SYS_BPF = {"x86_64": 321, "aarch64": 280}
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6

_DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# Instruction classes and operations (linux/bpf_common.h, linux/bpf.h).
_LDX_MEM_W = 0x61       # BPF_LDX | BPF_MEM | BPF_W
_ALU64_AND_K = 0x57     # BPF_ALU64 | BPF_AND | BPF_K
_ALU64_RSH_K = 0x77     # BPF_ALU64 | BPF_RSH | BPF_K
_ALU64_MOV_K = 0xB7     # BPF_ALU64 | BPF_MOV | BPF_K
_ALU64_MOV_X = 0xBF     # BPF_ALU64 | BPF_MOV | BPF_X
_JMP_JNE_K = 0x55       # BPF_JMP | BPF_JNE | BPF_K
_EXIT = 0x95            # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: Sequence[Rule]) -> bytes:
    """The instructions (8 bytes each) of a program allowing what the rules allow:
    registers r2 type, r3 requested access, r4 major, r5 minor; per rule a run of
    tests, each jumping past the rule's ``return 1`` when it fails; finally
    ``return 0``."""
    code = [
        _insn(_LDX_MEM_W, dst=2, src=1, off=0),    # r2 = ctx->access_type
        _insn(_ALU64_MOV_X, dst=3, src=2),         # r3 = r2
        _insn(_ALU64_AND_K, dst=2, imm=0xFFFF),    # r2 = type
        _insn(_ALU64_RSH_K, dst=3, imm=16),        # r3 = access
        _insn(_LDX_MEM_W, dst=4, src=1, off=4),    # r4 = ctx->major
        _insn(_LDX_MEM_W, dst=5, src=1, off=8),    # r5 = ctx->minor
    ]
    for kind, major, minor, access in rules:
        tests: list[tuple[str, int, int]] = []  # (what, register, value)
        if kind != "a":
            tests.append(("eq", 2, _DEV_TYPE[kind]))
        allowed = sum(_ACCESS[a] for a in access)
        if allowed != 7:
            tests.append(("subset", 3, allowed))
        if major >= 0:
            tests.append(("eq", 4, major))
        if minor >= 0:
            tests.append(("eq", 5, minor))
        # Each "eq" test is one jump; each "subset" test three instructions
        # (r6 = access; r6 &= ~allowed; if r6 != 0 skip). Then r0 = 1; exit.
        block: list[tuple[str, int, int]] = tests
        length = sum(3 if what == "subset" else 1 for what, _r, _v in block) + 2
        done = 0
        for what, register, value in block:
            if what == "subset":
                code.append(_insn(_ALU64_MOV_X, dst=6, src=register))
                code.append(_insn(_ALU64_AND_K, dst=6, imm=~value & 0xFFFF))
                done += 2
            done += 1
            code.append(_insn(_JMP_JNE_K, dst=6 if what == "subset" else register,
                              off=length - done, imm=0 if what == "subset" else value))
        code.append(_insn(_ALU64_MOV_K, dst=0, imm=1))
        code.append(_insn(_EXIT))
    code.append(_insn(_ALU64_MOV_K, dst=0, imm=0))
    code.append(_insn(_EXIT))
    return b"".join(code)


def _bpf(command: int, attr: bytes) -> int:
    machine = os.uname().machine
    number = _SYS_BPF.get(machine)
    if number is None:
        raise OSError(38, f"bpf(): no syscall number known for {machine}")
    buffer = ctypes.create_string_buffer(attr, len(attr))
    result = int(_libc.libc.syscall(number, command, buffer, len(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def load(rules: Sequence[Rule]) -> int:
    """Load the program for these rules; its fd (close-on-exec)."""
    insns = ctypes.create_string_buffer(program(rules))
    license_ = ctypes.create_string_buffer(b"GPL")
    # union bpf_attr, BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level,
    # log_size, log_buf, kern_version, prog_flags (the rest zero).
    attr = struct.pack("<IIQQIIQII", BPF_PROG_TYPE_CGROUP_DEVICE, len(insns.raw) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 0, 0, 0, 0, 0)
    return _bpf(BPF_PROG_LOAD, attr.ljust(128, b"\0"))


def attach(program_fd: int, cgroup_fd: int) -> None:
    """Attach a loaded program to a cgroup (a directory fd of the cgroup v2 tree)."""
    # union bpf_attr, BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags.
    attr = struct.pack("<IIII", cgroup_fd, program_fd, BPF_CGROUP_DEVICE, 0)
    _bpf(BPF_PROG_ATTACH, attr.ljust(128, b"\0"))
