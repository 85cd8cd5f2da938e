"""Resource limits and their pure translation into cgroup v1 / v2 files."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ._errors import CgroupError

DEFAULT_CPU_PERIOD_US = 100_000
_MIN_SHARES = 2
_MAX_SHARES = 262_144


@dataclass(frozen=True)
class DeviceRule:
    """One device access rule, as the v1 devices controller writes it: ``kind`` "c"
    (character), "b" (block) or "a" (both); ``major``/``minor`` None for any;
    ``access`` some of "r" (read), "w" (write) and "m" (mknod)."""

    kind: Literal["a", "b", "c"]
    major: int | None
    minor: int | None
    access: str

    def __post_init__(self) -> None:
        if self.kind not in ("a", "b", "c"):
            raise CgroupError(f"device rule type {self.kind!r}: expected a, b or c")
        for number in (self.major, self.minor):
            if number is not None and not 0 <= number < 1 << 32:
                raise CgroupError(f"device number {number} is out of range")
        if not self.access or set(self.access) - set("rwm") or len(set(self.access)) != len(
                self.access):
            raise CgroupError(f"device access {self.access!r}: expected some of r, w and m")

    @property
    def text(self) -> str:
        """``c 1:3 rwm``, ``b *:* m``: what devices.allow takes."""
        def number(n: int | None) -> str:
            return "*" if n is None else str(n)
        return f"{self.kind} {number(self.major)}:{number(self.minor)} {self.access}"


def parse_device_rule(text: str) -> DeviceRule:
    """``c 1:3 rwm`` (``*`` for any number) to a DeviceRule; CgroupError if malformed."""
    parts = text.split()
    if len(parts) != 3 or parts[1].count(":") != 1:
        raise CgroupError(f"device rule {text!r}: expected TYPE MAJOR:MINOR ACCESS")
    kind, numbers, access = parts
    major_text, minor_text = numbers.split(":")
    try:
        major = None if major_text == "*" else int(major_text)
        minor = None if minor_text == "*" else int(minor_text)
    except ValueError:
        raise CgroupError(f"device rule {text!r}: numbers are digits or *") from None
    if kind not in ("a", "b", "c"):
        raise CgroupError(f"device rule {text!r}: type is a, b or c")
    return DeviceRule(kind, major, minor, access)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Limits:
    """What a container may use. ``None`` leaves the kernel's value alone.

    ``memory_swap_bytes`` follows docker's ``--memory-swap``: memory plus swap in
    total, ``-1`` for unlimited swap. ``cpu_period_us`` defaults to 100000 when a
    quota is set. A negative ``pids_max``, ``memory_bytes`` or ``cpu_quota_us``
    means unlimited. ``devices``: every device denied but these (v1: the devices
    controller's files; v2 has no files for it: the caller attaches a
    BPF_PROG_TYPE_CGROUP_DEVICE program, as nsutil's spawner does); None leaves
    device access alone.
    """

    memory_bytes: int | None = None
    memory_swap_bytes: int | None = None
    cpu_shares: int | None = None
    cpu_quota_us: int | None = None
    cpu_period_us: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_max: int | None = None
    devices: tuple[DeviceRule, ...] | None = None


def with_default_swap(limits: Limits, swap_limit: bool) -> Limits:
    """docker's default for a memory limit without ``memory_swap_bytes``: memory plus
    swap twice the memory (as much swap as memory), where swap can be limited
    (swap_limit: `swap_limit_supported`); elsewhere swap is left alone, as docker
    does (with a warning)."""
    memory = limits.memory_bytes
    if limits.memory_swap_bytes is not None or memory is None or memory < 0 or not swap_limit:
        return limits
    return replace(limits, memory_swap_bytes=2 * memory)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 ``cpu.shares`` [2, 262144] to v2 ``cpu.weight`` [1, 10000], as runc does."""
    shares = min(max(shares, _MIN_SHARES), _MAX_SHARES)
    return 1 + ((shares - 2) * 9999) // 262142


def _check(limits: Limits) -> None:
    swap = limits.memory_swap_bytes
    if swap is not None and swap != -1:
        if limits.memory_bytes is None or limits.memory_bytes < 0:
            raise CgroupError(f"memory_swap_bytes={swap} needs a memory_bytes limit as well")
        if swap < limits.memory_bytes:
            raise CgroupError(
                f"memory_swap_bytes={swap} is below memory_bytes={limits.memory_bytes}"
                " (it is memory plus swap)"
            )
    if limits.cpu_period_us is not None and limits.cpu_period_us <= 0:
        raise CgroupError(f"cpu_period_us={limits.cpu_period_us} must be positive")
    if limits.cpu_shares is not None and limits.cpu_shares <= 0:
        raise CgroupError(f"cpu_shares={limits.cpu_shares} must be positive")


def _v1_number(value: int) -> str:
    return "-1" if value < 0 else str(value)


def _v2_number(value: int) -> str:
    return "max" if value < 0 else str(value)


def limited_controllers(limits: Limits | None) -> frozenset[str]:
    """The controllers these limits set something in (v1 names)."""
    if limits is None:
        return frozenset()
    found = set()
    if limits.memory_bytes is not None or limits.memory_swap_bytes is not None:
        found.add("memory")
    if (limits.cpu_shares is not None or limits.cpu_quota_us is not None
            or limits.cpu_period_us is not None):
        found.add("cpu")
    if limits.cpuset_cpus is not None or limits.cpuset_mems is not None:
        found.add("cpuset")
    if limits.pids_max is not None:
        found.add("pids")
    # devices: no leaf needed; writing devices.allow takes CAP_SYS_ADMIN in the host's
    # user namespace, which the container's root lacks, and a child can never widen
    # its parent's rules.
    return frozenset(found)


def v1_limit_files(limits: Limits) -> list[tuple[str, str, str]]:
    """``(controller, filename, text)`` to write on cgroup v1, in write order.

    ``memory.memsw.limit_in_bytes`` comes after ``memory.limit_in_bytes``: the
    kernel refuses a memsw limit below the memory limit.
    """
    _check(limits)
    files: list[tuple[str, str, str]] = []
    if limits.memory_bytes is not None:
        files.append(("memory", "memory.limit_in_bytes", _v1_number(limits.memory_bytes)))
    if limits.memory_swap_bytes is not None:
        files.append(
            ("memory", "memory.memsw.limit_in_bytes", _v1_number(limits.memory_swap_bytes))
        )
    if limits.cpu_shares is not None:
        files.append(("cpu", "cpu.shares", str(limits.cpu_shares)))
    if limits.cpu_quota_us is not None or limits.cpu_period_us is not None:
        period = limits.cpu_period_us or DEFAULT_CPU_PERIOD_US
        files.append(("cpu", "cpu.cfs_period_us", str(period)))
        if limits.cpu_quota_us is not None:
            files.append(("cpu", "cpu.cfs_quota_us", _v1_number(limits.cpu_quota_us)))
    if limits.cpuset_cpus is not None:
        files.append(("cpuset", "cpuset.cpus", limits.cpuset_cpus))
    if limits.cpuset_mems is not None:
        files.append(("cpuset", "cpuset.mems", limits.cpuset_mems))
    if limits.pids_max is not None:
        files.append(("pids", "pids.max", "max" if limits.pids_max < 0 else str(limits.pids_max)))
    if limits.devices is not None:
        files.append(("devices", "devices.deny", "a"))
        files.extend(("devices", "devices.allow", rule.text) for rule in limits.devices)
    return files


def v2_limit_files(limits: Limits) -> list[tuple[str, str]]:
    """``(filename, text)`` to write on cgroup v2, in write order."""
    _check(limits)
    files: list[tuple[str, str]] = []
    if limits.memory_bytes is not None:
        files.append(("memory.max", _v2_number(limits.memory_bytes)))
    if limits.memory_swap_bytes is not None:
        if limits.memory_swap_bytes == -1:
            files.append(("memory.swap.max", "max"))
        else:
            assert limits.memory_bytes is not None  # checked by _check
            files.append(("memory.swap.max", str(limits.memory_swap_bytes - limits.memory_bytes)))
    if limits.cpu_shares is not None:
        files.append(("cpu.weight", str(shares_to_weight(limits.cpu_shares))))
    if limits.cpu_quota_us is not None or limits.cpu_period_us is not None:
        period = limits.cpu_period_us or DEFAULT_CPU_PERIOD_US
        quota = "max" if limits.cpu_quota_us is None else _v2_number(limits.cpu_quota_us)
        files.append(("cpu.max", f"{quota} {period}"))
    if limits.cpuset_cpus is not None:
        files.append(("cpuset.cpus", limits.cpuset_cpus))
    if limits.cpuset_mems is not None:
        files.append(("cpuset.mems", limits.cpuset_mems))
    if limits.pids_max is not None:
        files.append(("pids.max", _v2_number(limits.pids_max)))
    return files
