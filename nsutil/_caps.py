"""Linux capabilities by name, docker's default set, and how --cap-add/--cap-drop combine."""

from __future__ import annotations

from collections.abc import Iterable

# linux/capability.h, in kernel order (the index is the capability's number)
CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
CAP_NUMBER = {name: number for number, name in enumerate(CAPABILITIES)}

# docker's (moby's) default set for a container's process
DOCKER_DEFAULT: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
)

ALL = "ALL"


def normalize(name: str) -> str:
    """'net_admin', 'CAP_NET_ADMIN' -> 'NET_ADMIN' ('all' -> 'ALL'); ValueError if unknown."""
    upper = name.strip().upper()
    if upper.startswith("CAP_"):
        upper = upper[4:]
    if upper != ALL and upper not in CAP_NUMBER:
        raise ValueError(f"unknown capability {name!r}")
    return upper


def effective_set(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = ()) -> list[int]:
    """The capability numbers a container keeps, combining add/drop as docker does:
    add ALL keeps everything not dropped; drop ALL keeps only what is added; else
    docker's default set, minus the drops, plus the adds."""
    adds = [normalize(n) for n in cap_add]
    drops = [normalize(n) for n in cap_drop]
    if ALL in adds:
        kept = {c for c in CAPABILITIES if c not in drops}
    elif ALL in drops:
        kept = set(adds)
    else:
        kept = {c for c in DOCKER_DEFAULT if c not in drops} | set(adds)
    return sorted(CAP_NUMBER[c] for c in kept)


def mask(numbers: Iterable[int]) -> int:
    """Capability numbers -> the bit mask /proc/PID/status shows (CapEff etc.)."""
    bits = 0
    for number in numbers:
        bits |= 1 << number
    return bits
