"""A seccomp profile's rules as a small BPF program: ranges of syscall numbers.

libseccomp compiles docker's profile for x86_64 (with i386 beside it) into 865
instructions: a tree with a test for each syscall. Installing a filter costs the
kernel time for each instruction (it checks, converts and JIT-compiles the program,
then runs it once per syscall number to cache what is always allowed): 0.19 ms a
container. The profile allows or refuses runs of consecutive numbers, so a binary
search over those runs does the same in about a third of the instructions.

`compact_program` builds that program from the rules `_seccomp.select_rules` kept,
with libseccomp's syscall tables (`names`: number -> name for an architecture) and
the same meaning `_seccomp_bpf.compile_filter` gives them through libseccomp: the
architecture checked first (others get `bad_arch`; x32's numbers on x86_64 too); per
syscall, the action of its rule, or, for rules with argument comparisons (all of one
action), that action when every comparison of one of them holds, else the default;
past the highest number the rules name, ENOSYS when the default action refuses.
Anything else (a syscall with rules of different actions, an ordering comparison, one
of more than 32 bits on a 32-bit architecture) returns None, and libseccomp's
program is used; only docker's profile (DEFAULT) is compiled this way.
tests/test_seccomp_compact.py runs both programs on every syscall number of every
architecture, with arguments around every value the rules compare, and finds them
equal. Pure: no ctypes, no libseccomp here.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._seccomp import Rule

# AUDIT_ARCH values (seccomp_data.arch), the same numbers as libseccomp's tokens
ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000  # x32's syscall numbers on x86_64 carry this bit
ARCH_64BIT = 0x80000000  # __AUDIT_ARCH_64BIT
ENOSYS = 38

# classic BPF opcodes a seccomp filter uses
_LD_ABS = 0x20   # BPF_LD | BPF_W | BPF_ABS
_AND_K = 0x54    # BPF_ALU | BPF_AND | BPF_K
_JA = 0x05
_JEQ, _JGE = 0x15, 0x35  # BPF_JMP | op | BPF_K
_RET_K = 0x06
_NR, _ARCH = 0, 4
_MAX_JUMP = 255

# libseccomp's comparison operators (seccomp.h) that docker's profile uses; the others
# (LT, LE, GE, GT) leave a profile to libseccomp.
_NE, _EQ, _MASKED_EQ = 1, 4, 7


Comparison = tuple[int, int, int, int]  # (argument index, operator, value, valueTwo)
Verdict = int | tuple[int, tuple[tuple[Comparison, ...], ...]]  # an action, or with its tests
Run = tuple[int, Verdict]  # (first number, what applies from there on)


class _Asm:
    """Instructions with forward conditional jumps to labels, resolved at the end (for
    a syscall's argument tests; the tree's jumps are counted as it is built)."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, object, object]] = []  # (op, k, jt, jf)
        self.labels: dict[object, int] = {}

    def label(self, name: object) -> None:
        self.labels[name] = len(self.code)

    def op(self, code: int, k: int = 0, jt: object = 0, jf: object = 0) -> None:
        self.code.append((code, k & 0xFFFFFFFF, jt, jf))

    def assemble(self) -> bytes | None:
        out = []
        for i, (code, k, jt, jf) in enumerate(self.code):
            offsets = []
            for target in (jt, jf):
                if isinstance(target, int):
                    offsets.append(target)
                else:
                    offsets.append(self.labels[target] - i - 1)
            if not all(0 <= o <= _MAX_JUMP for o in offsets):
                return None
            out.append(struct.pack("=HBBI", code, offsets[0], offsets[1], k))
        return b"".join(out)


def _verdicts(rules: Sequence[Rule], names: dict[int, str]) -> dict[int, Verdict] | None:
    """Syscall number -> its action, or (action, the rules' comparisons) when the
    arguments decide; None if the rules mix actions on one syscall."""
    by_name: dict[str, list[Rule]] = {}
    for rule in rules:
        for name in rule.names:
            by_name.setdefault(name, []).append(rule)
    found: dict[int, Verdict] = {}
    for number, name in names.items():
        matching = by_name.get(name)
        if not matching:
            continue
        actions = {rule.action for rule in matching}
        if len(actions) != 1:
            return None
        action = actions.pop()
        if any(not rule.args for rule in matching):
            found[number] = action  # one rule without comparisons: it always applies
        else:
            found[number] = (action, tuple(alternative for rule in matching
                                           for alternative in condition_sets(rule.args)))
    return found


def condition_sets(args: tuple[Comparison, ...]) -> list[tuple[Comparison, ...]]:
    """libseccomp takes one comparison per argument in a rule: comparisons of the same
    argument become separate rules (either may hold), as runc makes them."""
    indexes = [index for index, _op, _a, _b in args]
    if len(set(indexes)) == len(indexes):
        return [args]
    return [(arg,) for arg in args]


def _compare(asm: _Asm, index: int, op: int, a: int, b: int, wide: bool,
             fail: object, after: object) -> bool:
    """Jump to fail unless argument index compares as op says; else fall to after
    (the next instruction, labelled after). False if it cannot be expressed."""
    lo_at, hi_at = 16 + 8 * index, 20 + 8 * index
    a_lo, a_hi, b_lo, b_hi = a & 0xFFFFFFFF, a >> 32, b & 0xFFFFFFFF, b >> 32
    if not wide:
        if a_hi or b_hi:
            return False  # libseccomp compares 32 bits there: a wider value is its own case
        if op == _MASKED_EQ:
            asm.op(_LD_ABS, lo_at)
            asm.op(_AND_K, a_lo)
            asm.op(_JEQ, b_lo, 0, fail)
            return True
        if op not in (_EQ, _NE):
            return False
        asm.op(_LD_ABS, lo_at)
        asm.op(_JEQ, a_lo, *((0, fail) if op == _EQ else (fail, 0)))
        return True
    if op == _MASKED_EQ:
        if a_hi or b_hi:  # (docker's masks are of the low word: nothing to test above)
            asm.op(_LD_ABS, hi_at)
            asm.op(_AND_K, a_hi)
            asm.op(_JEQ, b_hi, 0, fail)
        asm.op(_LD_ABS, lo_at)
        asm.op(_AND_K, a_lo)
        asm.op(_JEQ, b_lo, 0, fail)
    elif op == _EQ:
        asm.op(_LD_ABS, hi_at)
        asm.op(_JEQ, a_hi, 0, fail)
        asm.op(_LD_ABS, lo_at)
        asm.op(_JEQ, a_lo, 0, fail)
    elif op == _NE:
        asm.op(_LD_ABS, hi_at)
        asm.op(_JEQ, a_hi, 0, after)  # the high words differ: not equal
        asm.op(_LD_ABS, lo_at)
        asm.op(_JEQ, a_lo, fail, 0)
    else:
        return False
    return True


def _conditional(asm: _Asm, action: int, alternatives: Sequence[Sequence[Comparison]],
                 default: int, wide: bool, serial: list[int]) -> bool:
    """action if every comparison of one alternative holds, else default."""
    for comparisons in alternatives:
        serial[0] += 1
        fail = ("fail", serial[0])
        for index, op, a, b in comparisons:
            serial[0] += 1
            after = ("after", serial[0])
            if not _compare(asm, index, op, a, b, wide, fail, after):
                return False
            asm.label(after)
        asm.op(_RET_K, action)
        asm.label(fail)
    asm.op(_RET_K, default)
    return True




def _runs(verdicts: dict[int, Verdict], default: int, above: int, highest: int,
          x32_bad: int | None) -> list[Run]:
    """The numbers 0..2**32-1 as runs of one verdict: each syscall's, the default
    between them, `above` past `highest`, and on x86_64 bad_arch from x32's bit up
    (but for -1)."""
    runs: list[Run] = []

    def add(start: int, what: Verdict) -> None:
        if runs and runs[-1][1] == what and not isinstance(what, tuple):
            return
        runs.append((start, what))

    for number in range(highest + 1):
        add(number, verdicts.get(number, default))
    add(highest + 1, above)
    if x32_bad is not None:
        add(X32_BIT, x32_bad)
        add(0xFFFFFFFF, above)  # -1, which ptrace uses to skip a syscall: as libseccomp
    return runs


Code = list[bytes]  # instructions, each struct sock_filter


def _tree(runs: Sequence[Run], default: int, wide: bool) -> Code | None:
    """A binary search over the runs, the syscall number in A; every path returns.
    None if a comparison cannot be expressed."""
    if len(runs) == 1:
        what = runs[0][1]
        if not isinstance(what, tuple):
            return [_ins(_RET_K, what)]
        asm = _Asm()
        action, alternatives = what
        if not _conditional(asm, action, alternatives, default, wide, [0]):
            return None
        code = asm.assemble()
        return None if code is None else [code[i:i + 8] for i in range(0, len(code), 8)]
    middle = len(runs) // 2
    left = _tree(runs[:middle], default, wide)
    right = _tree(runs[middle:], default, wide)
    if left is None or right is None:
        return None
    first = runs[middle][0]  # >= the middle run's first number: the right half
    if len(left) <= _MAX_JUMP:
        return [_ins(_JGE, first, len(left), 0), *left, *right]
    # A conditional jump reaches 255 ahead at most: beyond, through a ja.
    return [_ins(_JGE, first, 0, 1), _ins(_JA, len(left)), *left, *right]


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def compact_program(rules: Sequence[Rule], default_action: int,
                    arches: Sequence[tuple[int, dict[int, str]]], bad_arch: int,
                    refusing: bool) -> bytes | None:
    """The filter for these rules on these architectures ((token, number -> name),
    the native one first), or None where it would not mean what libseccomp's does."""
    every = {name for rule in rules for name in rule.names}  # (the ENOSYS bound's)
    rules = [rule for rule in rules if rule.action != default_action]  # (no-ops)
    bodies: list[Code] = []
    for token, names in arches:
        verdicts = _verdicts(rules, names)
        if verdicts is None:
            return None
        numbers = [n for n, name in names.items() if name in every]
        highest = max(numbers, default=max(names, default=0))
        above = (0x00050000 | ENOSYS) if refusing and numbers else default_action
        runs = _runs(verdicts, default_action, above, highest,
                     bad_arch if token == ARCH_X86_64 else None)
        body = _tree(runs, default_action, bool(token & ARCH_64BIT))
        if body is None:
            return None
        bodies.append([_ins(_LD_ABS, _NR), *body])
    # ld arch; for each: jeq token -> ja its body; else bad_arch; then the bodies.
    head: Code = [_ins(_LD_ABS, _ARCH)]
    dispatch_size = 1 + 2 * len(arches) + 1
    offset = 0  # of each body from the end of the dispatch
    for i, body in enumerate(bodies):
        head.append(_ins(_JEQ, arches[i][0], 0, 1))
        after_ja = 1 + 2 * i + 2  # index just past this ja
        head.append(_ins(_JA, dispatch_size - after_ja + offset))
        offset += len(body)
    head.append(_ins(_RET_K, bad_arch))
    return b"".join(head + [ins for body in bodies for ins in body])


def names_of(resolve: Callable[[int], str | None], count: int = 1024) -> dict[int, str]:
    """Number -> name for the numbers 0..count-1 that resolve (libseccomp's table)."""
    table = {}
    for number in range(count):
        name = resolve(number)
        if name is not None:
            table[number] = name
    return table
