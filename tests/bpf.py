"""A classic-BPF interpreter for seccomp programs, to compare two filters' verdicts.

Runs a program (struct sock_filter[] bytes) on one seccomp_data (nr, arch, ip, six
64-bit args) the way the kernel does, for the instructions a seccomp filter may
hold; anything else is an error (the kernel's checker would refuse it too).
"""

from __future__ import annotations

import functools
import struct

MASK32 = 0xFFFFFFFF


def seccomp_data(nr: int, arch: int, args: tuple[int, ...] = (0,) * 6, ip: int = 0) -> bytes:
    """struct seccomp_data, little-endian (x86_64, i386, aarch64)."""
    return struct.pack("<iIQ6Q", nr, arch, ip, *args)


@functools.lru_cache(maxsize=64)
def _decode(program: bytes) -> tuple[tuple[int, int, int, int], ...]:
    return tuple(struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8))


def run(program: bytes, data: bytes) -> int:
    """The value the program returns for data."""
    code = _decode(program)
    a = x = 0
    mem = [0] * 16
    pc = 0
    for _ in range(len(code) + 1):  # cBPF only jumps forward: each instruction once at most
        op, jt, jf, k = code[pc]
        pc += 1
        cls = op & 0x07
        if cls == 0x00:  # LD
            mode = op & 0xE0
            if mode == 0x20:  # ABS
                if op & 0x18 != 0x00 or k % 4 or k + 4 > len(data):
                    raise ValueError(f"bad load {op:#x} {k}")
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:  # IMM
                a = k
            elif mode == 0x60:  # MEM
                a = mem[k]
            else:
                raise ValueError(f"unknown load {op:#x}")
        elif cls == 0x01:  # LDX
            x = k if op & 0xE0 == 0x00 else mem[k]
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            operand = x if op & 0x08 else k
            alu = op & 0xF0
            if alu == 0x00:
                a = (a + operand) & MASK32
            elif alu == 0x10:
                a = (a - operand) & MASK32
            elif alu == 0x20:
                a = (a * operand) & MASK32
            elif alu == 0x30:
                a = a // operand
            elif alu == 0x40:
                a |= operand
            elif alu == 0x50:
                a &= operand
            elif alu == 0x60:
                a = (a << operand) & MASK32
            elif alu == 0x70:
                a >>= operand
            elif alu == 0x80:
                a = (-a) & MASK32
            elif alu == 0x90:
                a = a % operand
            elif alu == 0xA0:
                a ^= operand
            else:
                raise ValueError(f"unknown alu {op:#x}")
        elif cls == 0x05:  # JMP
            jmp = op & 0xF0
            if jmp == 0x00:
                pc += k
                continue
            operand = x if op & 0x08 else k
            if jmp == 0x10:
                taken = a == operand
            elif jmp == 0x20:
                taken = a > operand
            elif jmp == 0x30:
                taken = a >= operand
            elif jmp == 0x40:
                taken = bool(a & operand)
            else:
                raise ValueError(f"unknown jump {op:#x}")
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return a if op & 0x18 == 0x10 else k
        elif cls == 0x07:  # MISC
            if op == 0x07:
                x = a
            elif op == 0x87:
                a = x
            else:
                raise ValueError(f"unknown misc {op:#x}")
    raise ValueError("the program ran off its end")
