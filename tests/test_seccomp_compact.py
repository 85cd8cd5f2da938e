"""The compact seccomp program (nsutil/_seccomp_compact.py) decides every syscall as
libseccomp's program for the same profile does: both run in a BPF interpreter
(tests/bpf.py) on every syscall number of every architecture, for several sets of
capabilities and kernels, and with arguments around every value the rules compare."""

from __future__ import annotations

import random

import pytest

from nsutil import _seccomp, _seccomp_bpf
from nsutil._seccomp_compact import ARCH_X86_64

from . import bpf

pytestmark = pytest.mark.no_leak_check

if not _seccomp.library_found():
    pytest.skip("needs libseccomp", allow_module_level=True)
if _seccomp.machine()[0] not in _seccomp_bpf.COMPACT_MACHINES:
    pytest.skip("the compact program is used (and compared) on x86_64 only",
                allow_module_level=True)

DOCKER_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
               "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
               "AUDIT_WRITE")
PROFILE = _seccomp.load_profile(_seccomp.DEFAULT)
# Every capability the profile's rules look at, each added alone to docker's set.
RULE_CAPS = sorted({cap for rule in PROFILE.rules for cond in (rule.includes, rule.excludes)
                    if cond is not None for cap in cond.caps})
CAP_SETS = [
    tuple(f"CAP_{c}" for c in DOCKER_CAPS),
    (),
    tuple(f"CAP_{c}" for c in _seccomp_bpf.CAPABILITIES),
    *[(*(f"CAP_{c}" for c in DOCKER_CAPS), cap) for cap in RULE_CAPS],
]
ARCHES = (ARCH_X86_64, 0x40000003, 0xC00000B7, 0x40000028, 0x4000003E, 0)
NUMBERS = [*range(0, 1100), 0x3FFFFFFF, 0x40000000, 0x40000001, 0x400000FF, 0x7FFFFFFF,
           -0x80000000, -2, -1]


def _probes() -> list[tuple[int, ...]]:
    """Argument vectors around every value a rule compares, at its argument."""
    probes = {(0,) * 6, (2**64 - 1,) * 6}
    for rule in PROFILE.rules:
        for index, _op, a, b in rule.args:
            for value in {a, b, a - 1, a + 1, b + 1, a | b, a & b, a ^ 0xFFFFFFFF,
                          (1 << 32) | a, (1 << 32) | b, a | (0xFFFFFFFF << 32), ~a & (2**64 - 1),
                          0, 2**32 - 1, 2**32, 2**64 - 1}:
                if 0 <= value < 2**64:
                    args = [0] * 6
                    args[index] = value
                    probes.add(tuple(args))
    return sorted(probes)


PROBES = _probes()


def _native() -> tuple[str, str]:
    return _seccomp.machine()


@pytest.mark.parametrize(("caps", "kernel"), [
    *((caps, None) for caps in CAP_SETS),
    (CAP_SETS[0], (4, 14)),  # rules that need a newer kernel left out
    (CAP_SETS[0], (5, 8)),
], ids=lambda value: "" if value is None else str(value[-1] if value and isinstance(
    value, tuple) and isinstance(value[-1], str) else value)[:20])
def test_the_compact_program_decides_as_libseccomps(caps: tuple[str, ...],
                                                    kernel: tuple[int, int] | None) -> None:
    compact = _seccomp_bpf.compile_compact(PROFILE, caps, kernel=kernel)
    reference = _seccomp_bpf.compile_filter(PROFILE, caps, kernel=kernel)
    assert compact is not None
    assert len(compact) < len(reference) * 2 // 3  # (what it is for: fewer instructions)
    rng = random.Random(len(caps))
    for arch in ARCHES:
        for number in NUMBERS:
            # Every number with no arguments, and a few random ones; every probe where
            # either program looks at the arguments.
            samples = [(0,) * 6, *(tuple(rng.getrandbits(64) for _ in range(6))
                                   for _ in range(2)), PROBES[rng.randrange(len(PROBES))]]
            verdicts = set()
            for args in samples:
                data = bpf.seccomp_data(number, arch, args)
                got, want = bpf.run(compact, data), bpf.run(reference, data)
                assert got == want, (hex(arch), number, args, hex(got), hex(want))
                verdicts.add(want)
            if len(verdicts) > 1 or number in _conditional_numbers(arch):
                for args in PROBES:
                    data = bpf.seccomp_data(number, arch, args)
                    got, want = bpf.run(compact, data), bpf.run(reference, data)
                    assert got == want, (hex(arch), number, args, hex(got), hex(want))


def _conditional_numbers(arch: int) -> set[int]:
    lib = _seccomp_bpf.libseccomp()
    names = {name for rule in PROFILE.rules if rule.args for name in rule.names}
    found = set()
    for name in names:
        number = lib.seccomp_syscall_resolve_name_arch(arch, name.encode()) if arch else -1
        if number >= 0:
            found.add(number)
    return found


def test_the_default_profile_is_installed_compact_and_others_through_libseccomp() -> None:
    caps = range(len(_seccomp_bpf.CAPABILITIES))
    default = _seccomp_bpf.prepare(_seccomp.DEFAULT, caps)
    reference = _seccomp_bpf.compile_filter(PROFILE, [f"CAP_{c}" for c in
                                                      _seccomp_bpf.CAPABILITIES])
    assert default.size < len(reference) // 8 * 2 // 3
    # A profile of the user's own goes through libseccomp whole.
    text = ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "write"],'
            ' "action": "SCMP_ACT_ALLOW"}]}')
    own = _seccomp_bpf.prepare(text, caps)
    assert own.size * 8 == len(_seccomp_bpf.compile_filter(_seccomp.load_profile(text),
                                                           []))
    # On a machine where the two were never compared, libseccomp's too.
    assert _seccomp_bpf.compile_compact(PROFILE, [], ("aarch64", "arm64")) is None


# Rules docker's profile does not have, each path of the compiler: comparisons of the
# high word, several alternatives, a default that allows (x32's numbers then matter).
SYNTHETIC = [
    '{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": ['
    '{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 9,'
    ' "op": "SCMP_CMP_EQ"}]},'
    '{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0,'
    ' "value": 4294967296, "op": "SCMP_CMP_EQ"}]},'
    '{"names": ["mmap"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "args": [{"index": 2,'
    ' "value": 12884901892, "valueTwo": 4294967300, "op": "SCMP_CMP_MASKED_EQ"}]},'
    '{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 2,'
    ' "op": "SCMP_CMP_NE"}, {"index": 1, "value": 4294967297, "op": "SCMP_CMP_NE"}]},'
    '{"names": ["getpid", "getppid", "reboot"], "action": "SCMP_ACT_KILL_PROCESS"}]}',
    '{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": ['
    '{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},'
    '{"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 21505,'
    ' "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 21506, "op": "SCMP_CMP_EQ"}]},'
    '{"names": ["fcntl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 1,'
    ' "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 4294967295, "valueTwo": 1,'
    ' "op": "SCMP_CMP_MASKED_EQ"}]}]}',
    '{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64",'
    ' "subArchitectures": ["SCMP_ARCH_X86"]}], "syscalls": ['
    '{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 9,'
    ' "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 1, "op": "SCMP_CMP_NE"}]},'
    '{"names": ["fcntl", "fcntl64"], "action": "SCMP_ACT_TRAP", "args": [{"index": 1,'
    ' "value": 65280, "valueTwo": 1024, "op": "SCMP_CMP_MASKED_EQ"}]},'
    '{"names": ["getpid", "reboot"], "action": "SCMP_ACT_KILL_PROCESS"}]}',
]


@pytest.mark.skipif(_seccomp.machine()[0] != "x86_64", reason="profiles written for x86_64")
@pytest.mark.parametrize("text", SYNTHETIC, ids=["wide", "refusing", "with-i386"])
def test_other_rules_compile_alike_or_are_left_to_libseccomp(text: str) -> None:
    profile = _seccomp.load_profile(text)
    compact = _seccomp_bpf.compile_compact(profile, [])
    reference = _seccomp_bpf.compile_filter(profile, [])
    assert compact is not None
    probes = sorted({(0,) * 6, (2**64 - 1,) * 6, *(
        tuple(value if i == index else 0 for i in range(6))
        for rule in profile.rules for index, _op, a, b in rule.args
        for value in (a, b, a + 1, a - 1 if a else 0, a & 0xFFFFFFFF, a >> 32 << 32, b | 1)),
        (2, 4294967297, 0, 0, 0, 0), (2, 1, 0, 0, 0, 0), (3, 4294967297, 0, 0, 0, 0)})
    for arch in ARCHES:
        for number in NUMBERS:
            for args in probes:
                data = bpf.seccomp_data(number, arch, args)
                got, want = bpf.run(compact, data), bpf.run(reference, data)
                assert got == want, (hex(arch), number, args, hex(got), hex(want))
    # An ordering comparison, or a 64-bit value on a 32-bit architecture: libseccomp's.
    ordering = text.replace('"SCMP_CMP_EQ"', '"SCMP_CMP_GT"')
    assert _seccomp_bpf.compile_compact(_seccomp.load_profile(ordering), []) is None
    with_i386 = SYNTHETIC[0].replace('"architectures": ["SCMP_ARCH_X86_64"]',
                                     '"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]')
    assert _seccomp_bpf.compile_compact(_seccomp.load_profile(with_i386), []) is None
