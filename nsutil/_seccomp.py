"""seccomp profiles in docker's JSON format, compiled to BPF with libseccomp.

A profile is what docker's `--security-opt seccomp=FILE` takes: `defaultAction`
(with `defaultErrnoRet`), `architectures` or `archMap`, `flags`, and `syscalls`, each
entry with `names`, `action`, `errnoRet`, `args` (index, value, valueTwo, op) and
`includes`/`excludes` by `caps`, `arches` and `minKernel`. `parse_profile` checks one
(ProfileError names the faulty field); `select_rules` keeps the entries that apply to
a container, by its capabilities and this machine's architecture, as docker does;
`_seccomp_bpf` compiles those into a BPF program with libseccomp. No ctypes here:
the supervisor checks a user's profile with this module alone.

The built-in profile (`DEFAULT`, docker's) lives in `_seccomp_default`, in the same
format, and goes through the same parser. Standard library only, and nothing that
the spawner would pay for at start: json is imported for a user's profile only.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

DEFAULT = "default"  # InitSpec.seccomp's name for the built-in profile

LIBRARY = "libseccomp.so.2"
MISSING = (f"libseccomp ({LIBRARY}) is not installed: install libseccomp2 (Debian, "
           "Ubuntu) or libseccomp (Fedora, Arch, Alpine), or run with --security-opt "
           "seccomp=unconfined")

# libseccomp's actions (seccomp.h); ERRNO and TRACE carry a 16-bit value.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_WITH_VALUE = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}
# libseccomp's architecture names, as docker spells them (SCMP_ARCH_ + upper case).
_ARCHES = ("x86", "x86_64", "x32", "arm", "aarch64", "loongarch64", "m68k", "mips",
           "mips64", "mips64n32", "mipsel", "mipsel64", "mipsel64n32", "ppc", "ppc64",
           "ppc64le", "s390", "s390x", "parisc", "parisc64", "riscv64", "sheb", "sh")
# uname's machine -> (libseccomp's name, the name docker's includes/excludes use)
_MACHINES = {
    "x86_64": ("x86_64", "amd64"), "aarch64": ("aarch64", "arm64"),
    "i386": ("x86", "x86"), "i686": ("x86", "x86"), "armv7l": ("arm", "arm"),
    "armv8l": ("arm", "arm"), "ppc64le": ("ppc64le", "ppc64le"), "ppc64": ("ppc64", "ppc64"),
    "s390x": ("s390x", "s390x"), "riscv64": ("riscv64", "riscv64"),
    "mips64": ("mips64", "mips64"), "loongarch64": ("loongarch64", "loong64"),
}
_MAX_ERRNO = 4095


def library_found() -> bool:
    """Whether libseccomp can be loaded, for a check before anything starts: a look in
    the usual library directories, and only if it is not there the real test (ctypes,
    ~5 ms of imports a supervisor otherwise does without)."""
    import sys

    multiarch = getattr(sys.implementation, "_multiarch", "")
    for directory in ("/usr/lib", "/lib", "/usr/lib64", "/lib64", "/usr/local/lib"):
        for sub in (multiarch, "") if multiarch else ("",):
            if os.path.exists(os.path.join(directory, sub, LIBRARY)):
                return True
    import ctypes

    try:
        ctypes.CDLL(LIBRARY)
    except OSError:
        return False
    return True


class ProfileError(ValueError):
    """A profile that is not valid, or one that libseccomp cannot compile (or libseccomp
    itself missing); the message is one line, for "seccomp: " to go before."""


# -- the profile -----------------------------------------------------------------------
class Condition:
    """Which containers a syscalls entry applies to (its `includes` or `excludes`)."""

    __slots__ = ("arches", "caps", "min_kernel")

    def __init__(self, caps: frozenset[str], arches: frozenset[str],
                 min_kernel: tuple[int, int] | None) -> None:
        self.caps = caps
        self.arches = arches
        self.min_kernel = min_kernel


class Rule:
    """A syscalls entry: its names, the action (libseccomp's number, with its errno) and
    the argument comparisons (index, op, value, valueTwo), all of which must hold."""

    __slots__ = ("action", "args", "excludes", "includes", "names")

    def __init__(self, names: tuple[str, ...], action: int,
                 args: tuple[tuple[int, int, int, int], ...],
                 includes: Condition | None, excludes: Condition | None) -> None:
        self.names = names
        self.action = action
        self.args = args
        self.includes = includes
        self.excludes = excludes


class Profile:
    __slots__ = ("arch_map", "architectures", "default_action", "flags", "rules")

    def __init__(self, default_action: int, architectures: tuple[str, ...],
                 arch_map: dict[str, tuple[str, ...]], flags: int,
                 rules: tuple[Rule, ...]) -> None:
        self.default_action = default_action
        self.architectures = architectures  # libseccomp names, every machine
        self.arch_map = arch_map            # native (libseccomp name) -> with its sub-arches
        self.flags = flags
        self.rules = rules


def load_profile(text: str) -> Profile:
    """The profile InitSpec.seccomp names: DEFAULT, or a docker JSON profile's text."""
    if text == DEFAULT:
        from ._seccomp_default import PROFILE

        return parse_profile(PROFILE)
    import json  # only here: ~10 ms the spawner need not pay for the default profile

    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or a lone surrogate
        raise ProfileError(f"not JSON: {exc}") from None
    return parse_profile(data)


def parse_profile(data: object) -> Profile:
    """A docker seccomp profile (as json.loads gives it) checked and read; ProfileError
    names the first faulty field. Unknown keys are ignored, as docker does."""
    top = _object(data, "the profile")
    default_action = _action(top, "defaultAction", "defaultErrnoRet", required=True)
    architectures = tuple(_arch(a, "architectures") for a in _list(top, "architectures"))
    arch_map: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(_list(top, "archMap")):
        where = f"archMap[{i}]"
        item = _object(entry, where)
        native = _arch(item.get("architecture"), f"{where}.architecture")
        subs = tuple(_arch(a, f"{where}.subArchitectures")
                     for a in _list(item, "subArchitectures", where))
        arch_map[native] = (native, *subs)
    if architectures and arch_map:
        raise ProfileError("give either architectures or archMap, not both")
    flags = 0
    for flag in _list(top, "flags"):
        if flag not in _FLAGS:
            raise ProfileError(f"flags: unknown flag {flag!r} (known: {', '.join(_FLAGS)})")
        flags |= _FLAGS[flag]
    if top.get("listenerPath"):
        raise ProfileError("listenerPath: supervise has no seccomp notification agent")
    rules = tuple(_rule(entry, f"syscalls[{i}]")
                  for i, entry in enumerate(_list(top, "syscalls")))
    return Profile(default_action, architectures, arch_map, flags, rules)


def _object(value: object, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise ProfileError(f"{where}: expected an object, got {_kind(value)}")
    return value


def _list(obj: dict[str, Any], key: str, where: str = "") -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if type(value) is not list:
        raise ProfileError(f"{where + '.' if where else ''}{key}: expected a list, "
                           f"got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            int: "a number", float: "a number"}.get(type(value), "null")


def _number(value: object, where: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ProfileError(f"{where}: expected a whole number from {low} to {high}, "
                           f"got {value!r}")
    return value


def _action(obj: dict[str, Any], key: str, errno_key: str, *, required: bool = False,
            where: str = "") -> int:
    name = obj.get(key)
    shown = f"{where}.{key}" if where else key
    if name is None and required:
        raise ProfileError(f"{shown} is missing")
    if name == "SCMP_ACT_NOTIFY":
        raise ProfileError(f"{shown}: SCMP_ACT_NOTIFY needs a notification agent, which "
                           "supervise does not have")
    if name not in ACTIONS:
        raise ProfileError(f"{shown}: unknown action {name!r} (known: {', '.join(ACTIONS)})")
    action = ACTIONS[name]
    value = obj.get(errno_key)
    if name in _WITH_VALUE:
        # docker's (runc's) default for an errno not given: EPERM
        number = errno.EPERM if value is None else _number(
            value, f"{where}.{errno_key}" if where else errno_key, 0, _MAX_ERRNO)
        action |= number
    return action


def _arch(value: object, where: str) -> str:
    name = value.removeprefix("SCMP_ARCH_").lower() if type(value) is str else None
    if name not in _ARCHES:
        raise ProfileError(f"{where}: unknown architecture {value!r}")
    return name


def _rule(entry: object, where: str) -> Rule:
    item = _object(entry, where)
    name, names = item.get("name"), item.get("names")
    if name is not None and names is not None:
        raise ProfileError(f"{where}: give either name or names, not both")
    listed = [name] if name is not None else _list(item, "names", where)
    if not listed or not all(type(n) is str and n for n in listed):
        raise ProfileError(f"{where}.names: expected a list of syscall names")
    action = _action(item, "action", "errnoRet", required=True, where=where)
    args = []
    for i, arg in enumerate(_list(item, "args", where)):
        at = f"{where}.args[{i}]"
        cmp = _object(arg, at)
        op = cmp.get("op")
        if op not in _OPS:
            raise ProfileError(f"{at}.op: unknown operator {op!r} (known: {', '.join(_OPS)})")
        args.append((_number(cmp.get("index"), f"{at}.index", 0, 5), _OPS[op],
                     _number(cmp.get("value"), f"{at}.value", 0, 2**64 - 1),
                     _number(cmp.get("valueTwo", 0), f"{at}.valueTwo", 0, 2**64 - 1)))
    return Rule(tuple(listed), action, tuple(args), _condition(item, "includes", where),
                _condition(item, "excludes", where))


def _condition(item: dict[str, Any], key: str, where: str) -> Condition | None:
    value = item.get(key)
    if value is None:
        return None
    at = f"{where}.{key}"
    cond = _object(value, at)
    caps = _list(cond, "caps", at)
    arches = _list(cond, "arches", at)
    if not all(type(c) is str for c in (*caps, *arches)):
        raise ProfileError(f"{at}: caps and arches are lists of names")
    min_kernel = cond.get("minKernel")
    if min_kernel is None or min_kernel == "":
        version = None
    else:
        version = kernel_version(min_kernel) if type(min_kernel) is str else None
        if version is None:
            raise ProfileError(f"{at}.minKernel: expected a version like \"4.8\", "
                               f"got {min_kernel!r}")
    if not (caps or arches or version):
        return None
    return Condition(frozenset(caps), frozenset(arches), version)


def kernel_version(release: str) -> tuple[int, int] | None:
    """'6.18.0-1-amd64' -> (6, 18); None if it does not start MAJOR.MINOR."""
    parts = release.split(".")
    if len(parts) < 2:
        return None
    minor = parts[1]
    digits = len(minor) - len(minor.lstrip("0123456789"))
    if not parts[0].isdigit() or digits == 0:
        return None
    return int(parts[0]), int(minor[:digits])


# -- selection: which entries apply to this container --------------------------------------
def machine() -> tuple[str, str]:
    """This machine's architecture: (libseccomp's name, the name docker's includes use)."""
    name = os.uname().machine
    return _MACHINES.get(name, (name, name))


def select_rules(profile: Profile, caps: Iterable[str], arch: str,
                 kernel: tuple[int, int]) -> list[Rule]:
    """The entries that apply, as docker decides: excluded if the architecture (docker's
    name) is among `excludes.arches`, any of `excludes.caps` is held, or the kernel is
    at least `excludes.minKernel`; included only if the architecture is among
    `includes.arches`, every one of `includes.caps` is held, and the kernel is at least
    `includes.minKernel`. caps: the names ("CAP_SYS_ADMIN") of the container's bounding set."""
    held = frozenset(caps)
    chosen = []
    for rule in profile.rules:
        out, needed = rule.excludes, rule.includes
        if out is not None and (arch in out.arches or out.caps & held or (
                out.min_kernel is not None and kernel >= out.min_kernel)):
            continue
        if needed is not None and ((needed.arches and arch not in needed.arches)
                                   or not needed.caps <= held or (
                needed.min_kernel is not None and kernel < needed.min_kernel)):
            continue
        chosen.append(rule)
    return chosen
