"""Pure parsers and formatters for flag values: sizes, CPUs, cpusets, durations, PIDs.

Each parser takes the flag's text and returns a value, or raises UsageError with a
one-line message that names the value and says what is expected. Semantics follow
docker's where docker has them (``-m 1.5g``, ``--cpus 0.5``, ``--pids-limit -1``).
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from supervisor._errors import UsageError

__all__ = [
    "CPU_PERIOD_US",
    "MAX_CPUSET_ID",
    "MAX_PIDS_LIMIT",
    "format_bytes",
    "format_cpuset",
    "parse_cpu_list_file",
    "parse_cpu_shares",
    "parse_cpus",
    "parse_cpuset",
    "parse_duration",
    "parse_memory_swap",
    "parse_pids_limit",
    "parse_size",
    "quote_value",
]

# docker's --cpus sets cpu.cfs_period_us to 100ms and scales the quota to it.
CPU_PERIOD_US = 100_000
# The kernel refuses a CFS quota below 1ms (cpu.cfs_quota_us / cpu.max).
_MIN_CPU_QUOTA_US = 1_000
_MIN_CPU_SHARES = 2
_MAX_CPU_SHARES = 262_144
# pids.max refuses anything above PID_MAX_LIMIT (4 * 1024 * 1024 on 64-bit kernels).
MAX_PIDS_LIMIT = 4_194_304
# CONFIG_NR_CPUS is at most 8192, so no CPU (or memory node) number is larger than this;
# the bound also keeps "0-4000000000" from building a set of four billion ints.
MAX_CPUSET_ID = 8191
# A sparse list of 8192 CPUs ("0,2,4,...") is about 20000 characters.
_MAX_CPUSET_TEXT = 100_000
_MAX_SIZE = 2**63  # sizes are int64 in the kernel's eyes (and docker's)
# Longer texts are refused before any arithmetic: no valid size or duration needs
# more, and it keeps int()'s digit limit and float overflow out of reach.
_MAX_NUMBER_TEXT = 100

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_SIZE_RE = re.compile(rf"({_NUMBER}) ?([a-zA-Z]*)")
_SIZE_UNITS = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
_SIZE_EXPECTED = "expected a number with an optional unit b, k, m, g, t (e.g. 64m)"
_CPUS_RE = re.compile(rf"[+-]?{_NUMBER}")
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_CPUSET_RE = re.compile(r"[0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*")
_DURATION_PART_RE = re.compile(rf"({_NUMBER})(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": Fraction(1, 10**9),
    "us": Fraction(1, 10**6),
    "\u00b5s": Fraction(1, 10**6),  # MICRO SIGN, as Go accepts
    "\u03bcs": Fraction(1, 10**6),  # GREEK SMALL LETTER MU, as Go accepts
    "ms": Fraction(1, 10**3),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
_DURATION_EXPECTED = (
    "expected a number with a unit h, m, s, ms, us or ns (e.g. 30s, 1m30s, 500ms) "
    "or a bare number of seconds"
)
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def quote_value(text: str) -> str:
    """Quote a user's value for a one-line message: 'text', or its repr if it has odd characters."""
    if len(text) > 60:
        text = text[:57] + "..."
    if text.isprintable() and "'" not in text:
        return f"'{text}'"
    return repr(text)


def _flag_value(text: str) -> str:
    """Show a value after its flag name (``--cpus 3``): bare when plain, quoted otherwise."""
    if text and text.isprintable() and not any(c.isspace() for c in text) and len(text) <= 60:
        return text
    return quote_value(text)


@functools.lru_cache(maxsize=256)  # a batch's lines mostly repeat a few sizes
def parse_size(text: str) -> int:
    """Parse a byte size with docker's RAMInBytes rules: "64m", "1.5g", "64MiB", "1024"."""
    if len(text) > _MAX_NUMBER_TEXT:
        raise UsageError(f"invalid size {quote_value(text)}: too long")
    if text.startswith("-") and _SIZE_RE.fullmatch(text[1:]):
        raise UsageError(f"invalid size {quote_value(text)}: must not be negative")
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise UsageError(f"invalid size {quote_value(text)}: {_SIZE_EXPECTED}")
    number, suffix = match.group(1), match.group(2).lower()
    # Accepted suffixes: "", "b", or a unit k/m/g/t/p followed by nothing, "b" or "ib".
    if suffix in ("", "b"):
        multiplier = 1
    elif suffix[0] in "kmgtp" and suffix[1:] in ("", "b", "ib"):
        multiplier = _SIZE_UNITS[suffix[0]]
    else:
        raise UsageError(f"invalid size {quote_value(text)}: {_SIZE_EXPECTED}")
    size = int(Fraction(number) * multiplier)  # truncated, as docker's int64(float) does
    if size >= _MAX_SIZE:
        raise UsageError(f"invalid size {quote_value(text)}: must be less than 8EiB")
    return size


def parse_memory_swap(text: str) -> int:
    """Parse --memory-swap: a size as for parse_size, or "-1" for unlimited (returned as -1)."""
    if text == "-1":
        return -1
    if text.startswith("-") and _SIZE_RE.fullmatch(text[1:]):
        raise UsageError(
            f"invalid size {quote_value(text)}: must not be negative (-1 means unlimited swap)"
        )
    return parse_size(text)


def parse_cpus(text: str, available: int) -> tuple[int, int]:
    """Parse --cpus into a CFS (quota_us, period_us) pair, as docker does: 0.5 -> (50000, 100000).

    `available` is the number of CPUs the host has; asking for more is refused.
    """
    if len(text) > _MAX_NUMBER_TEXT or _CPUS_RE.fullmatch(text) is None:
        raise UsageError(f"--cpus {_flag_value(text)}: expected a number of CPUs such as 0.5 or 2")
    cpus = Fraction(text)
    quota_us = math.floor(cpus * CPU_PERIOD_US + Fraction(1, 2))  # round half up
    if quota_us < _MIN_CPU_QUOTA_US or cpus > available:
        there = "is only 1 CPU" if available == 1 else f"are only {available} CPUs"
        raise UsageError(
            f"--cpus {_flag_value(text)}: range of CPUs is from 0.01 to {available}.00, "
            f"as there {there} available"
        )
    return quota_us, CPU_PERIOD_US


def parse_cpu_shares(text: str) -> int:
    """Parse -c/--cpu-shares: an integer relative weight from 2 to 262144 (cgroup v1's range)."""
    expected = f"expected an integer from {_MIN_CPU_SHARES} to {_MAX_CPU_SHARES}"
    if len(text) > 20 or _INTEGER_RE.fullmatch(text) is None:
        raise UsageError(f"invalid CPU shares {quote_value(text)}: {expected}")
    shares = int(text)
    if not _MIN_CPU_SHARES <= shares <= _MAX_CPU_SHARES:
        raise UsageError(f"invalid CPU shares {quote_value(text)}: {expected}")
    return shares


def _cpuset_noun(flag: str) -> str:
    return "memory node" if flag.endswith("mems") else "CPU"


def format_cpuset(ids: frozenset[int]) -> str:
    """Format CPU or node numbers in the kernel's list syntax: {0, 1, 3} -> "0-1,3"."""
    if any(i < 0 for i in ids):
        raise ValueError(f"negative CPU number in {sorted(ids)}")
    parts: list[str] = []
    ordered = sorted(ids)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        low, high = ordered[start], ordered[end]
        parts.append(str(low) if low == high else f"{low}-{high}")
        start = end + 1
    return ",".join(parts)


def _cpuset_ranges(text: str) -> list[tuple[int, int]] | None:
    """Split "0-1,3" into [(0, 1), (3, 3)], or None if it is not list syntax."""
    if len(text) > _MAX_CPUSET_TEXT or _CPUSET_RE.fullmatch(text) is None:
        return None
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        low_text, _, high_text = part.partition("-")
        # Keeps int() far from its digit limit; such numbers are out of range anyway.
        if len(low_text) > 100 or len(high_text) > 100:
            return None
        low = int(low_text)
        ranges.append((low, int(high_text) if high_text else low))
    return ranges


def parse_cpuset(text: str, available: frozenset[int] | None, flag: str) -> str:
    """Parse --cpuset-cpus/--cpuset-mems list syntax ("0-1,3") and return it normalized.

    If `available` is given, every CPU (or memory node) must be in it.
    """
    noun = _cpuset_noun(flag)
    shown = f"{flag} {_flag_value(text)}"
    ranges = _cpuset_ranges(text)
    if ranges is None:
        raise UsageError(f"{shown}: expected a list of {noun}s such as 0-1,3")
    ids: set[int] = set()
    for low, high in ranges:
        if high < low:
            raise UsageError(f"{shown}: range {low}-{high} is descending (write {high}-{low})")
        if available is not None:
            # Stops at the first missing id, so this is bounded by len(available).
            for cpu in range(low, high + 1):
                if cpu not in available:
                    have = format_cpuset(available) or "none"
                    raise UsageError(
                        f"{shown}: {noun} {cpu} is not available (this host has {have})"
                    )
        elif high > MAX_CPUSET_ID:
            raise UsageError(
                f"{shown}: {noun} {high} is out of range (the largest is {MAX_CPUSET_ID})"
            )
        ids.update(range(low, high + 1))
    return format_cpuset(frozenset(ids))


def parse_cpu_list_file(text: str) -> frozenset[int]:
    """Parse a kernel CPU list file (/sys/devices/system/cpu/online, cpuset.cpus): "0-1\\n".

    An empty file is an empty set. Malformed text raises plain ValueError: it is the
    kernel's text, not the user's, so the caller adds the path.
    """
    stripped = text.strip()
    if not stripped:
        return frozenset()
    ranges = _cpuset_ranges(stripped)
    if ranges is None or any(high < low or high > MAX_CPUSET_ID for low, high in ranges):
        raise ValueError(f"malformed CPU list {quote_value(stripped)}")
    ids: set[int] = set()
    for low, high in ranges:
        ids.update(range(low, high + 1))
    return frozenset(ids)


def parse_duration(text: str) -> float:
    """Parse a duration in seconds: "30s", "1m30s", "500ms", "2h", or a bare number "1.5".

    Units are Go's (h, m, s, ms, us/µs, ns); every number in a compound needs a unit.
    """
    if len(text) > _MAX_NUMBER_TEXT:
        raise UsageError(f"invalid duration {quote_value(text)}: too long")
    body = text[1:] if text[:1] in ("-", "+") else text
    total = _duration_seconds(body)
    if total is None:
        raise UsageError(f"invalid duration {quote_value(text)}: {_DURATION_EXPECTED}")
    if text.startswith("-") or total == 0:
        raise UsageError(f"invalid duration {quote_value(text)}: must be greater than zero")
    return float(total)


def _duration_seconds(text: str) -> Fraction | None:
    if re.fullmatch(_NUMBER, text):
        return Fraction(text)
    total = Fraction(0)
    position = 0
    while position < len(text):
        match = _DURATION_PART_RE.match(text, position)
        if match is None:
            return None
        total += Fraction(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    return total if text else None


def parse_pids_limit(text: str) -> int | None:
    """Parse --pids-limit: a positive integer, or "0"/"-1" for unlimited (None), as docker does."""
    expected = f"expected an integer from 1 to {MAX_PIDS_LIMIT}, or 0 or -1 for unlimited"
    if len(text) > 20 or _INTEGER_RE.fullmatch(text) is None:
        raise UsageError(f"invalid PIDs limit {quote_value(text)}: {expected}")
    limit = int(text)
    if limit in (0, -1):
        return None
    if not 1 <= limit <= MAX_PIDS_LIMIT:
        raise UsageError(f"invalid PIDs limit {quote_value(text)}: {expected}")
    return limit


def format_bytes(n: int) -> str:
    """Format a byte count in binary units as docker shows it: 512B, 64MiB, 1.5GiB, 1.25GiB."""
    if n < 0:
        raise ValueError(f"negative byte count {n}")
    exponent = 0
    while exponent + 1 < len(_BYTE_UNITS) and n >= 1024 ** (exponent + 1):
        exponent += 1
    scaled = f"{n / 1024**exponent:.2f}"
    # 1023.999KiB rounds to "1024.00": show it as 1MiB instead.
    if scaled == "1024.00" and exponent + 1 < len(_BYTE_UNITS):
        exponent += 1
        scaled = "1.00"
    return scaled.rstrip("0").rstrip(".") + _BYTE_UNITS[exponent]


MIN_INTERVAL_S = 0.1


def parse_interval(text: str) -> float:
    """A sampling interval (--interval): a duration of at least 0.1 s, so that a
    typo like 1ns cannot make the sampler spin."""
    try:
        seconds = parse_duration(text)
    except UsageError as exc:
        raise UsageError(f"--interval: {exc}") from exc
    if seconds < MIN_INTERVAL_S:
        raise UsageError(f"--interval {text}: at least {MIN_INTERVAL_S:g}s")
    return seconds
