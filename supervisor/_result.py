"""The result record of one finished job (a line of --results JSON Lines) and pure helpers."""

from __future__ import annotations

import datetime
import enum
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

__all__ = [
    "STATUSES",
    "Result",
    "Status",
    "classify",
    "exit_code_from_wait_status",
    "iso_utc",
    "parse_iso_utc",
]


class Status(enum.StrEnum):
    """How a job ended (see classify). A str: it compares equal to its value ("ok"),
    and JSON, f-strings and joins write the value."""

    OK = "ok"
    FAILED = "failed"
    OOM = "oom"
    TIMEOUT = "timeout"
    SIGNALED = "signaled"
    CANCELLED = "cancelled"
    ERROR = "error"


STATUSES: Final[tuple[Status, ...]] = tuple(Status)


HOST = os.uname().nodename  # what results say in "host"


@dataclass(frozen=True)
class Result:
    """What happened to one job; fields are written in this order by to_json()."""

    name: str
    line: int | None  # the job's line in the jobs file, None for `supervise run`
    argv: list[str]
    status: Status
    exit_code: int | None  # 128+N when killed by signal N; None if it never ran
    signal: int | None  # the signal number that killed the command
    oom_killed: bool
    timed_out: bool
    attempts: int
    started_at: str  # ISO 8601 UTC, see iso_utc()
    ended_at: str
    wall_s: float
    cpu_user_s: float | None  # None when unknown, never a made-up 0
    cpu_system_s: float | None
    peak_memory_bytes: int | None
    memory_limit_bytes: int | None
    stdout_path: str | None
    stderr_path: str | None
    error: str | None = None  # supervise's own error message, if any
    #: where it could write (its scratch, read-write volumes...; "/" with --fs host)
    writable: Sequence[str] | None = None
    host: str | None = None  # the machine it ran on (a shard's, under --shard)

    def to_json(self) -> str:
        """One line of JSON, keys in field order; NaN or infinity is a bug and raises ValueError."""
        return json.dumps(
            {field.name: getattr(self, field.name) for field in fields(self)}, allow_nan=False
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Rebuild a Result from a parsed JSON object (e.g. for --resume).

        Unknown keys are ignored and a missing nullable field is None, so files written by
        other versions still load. A missing required field or a wrong type raises
        ValueError naming the field; the caller adds the file and line.
        """
        values: dict[str, Any] = {}
        for name, (kinds, nullable) in _FIELD_TYPES.items():
            if name not in data:
                if not nullable:
                    raise ValueError(f"result has no {name!r}")
                values[name] = None
                continue
            value = data[name]
            if value is None and nullable:
                values[name] = None
            elif not _is_instance(value, kinds):
                expected = " or ".join(kind.__name__ for kind in kinds)
                if nullable:
                    expected += " or null"
                raise ValueError(f"result field {name!r} is {value!r}, expected {expected}")
            else:
                values[name] = float(value) if float in kinds else value
        for name in ("argv", "writable"):
            if not all(isinstance(item, str) for item in values[name] or ()):
                raise ValueError(f"result field {name!r} is {values[name]!r}, expected strings")
        if values["status"] not in STATUSES:
            raise ValueError(
                f"result field 'status' is {values['status']!r}, expected one of "
                + ", ".join(STATUSES)
            )
        values["status"] = Status(values["status"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> Result:
        """Parse one line written by to_json(); raises ValueError if it is not a result."""
        data = json.loads(text)  # json.JSONDecodeError is a ValueError
        if not isinstance(data, dict):
            raise ValueError(f"result is not a JSON object: {text[:60]!r}")
        return cls.from_dict(data)


# field -> (accepted JSON types, may be null). bool is checked apart from int below,
# since JSON true must not pass for an exit code.
_FIELD_TYPES: Final[dict[str, tuple[tuple[type, ...], bool]]] = {
    "name": ((str,), False),
    "line": ((int,), True),
    "argv": ((list,), False),
    "status": ((str,), False),
    "exit_code": ((int,), True),
    "signal": ((int,), True),
    "oom_killed": ((bool,), False),
    "timed_out": ((bool,), False),
    "attempts": ((int,), False),
    "started_at": ((str,), False),
    "ended_at": ((str,), False),
    "wall_s": ((float,), False),
    "cpu_user_s": ((float,), True),
    "cpu_system_s": ((float,), True),
    "peak_memory_bytes": ((int,), True),
    "memory_limit_bytes": ((int,), True),
    "stdout_path": ((str,), True),
    "stderr_path": ((str,), True),
    "error": ((str,), True),
    "writable": ((list,), True),
    "host": ((str,), True),
}


def _is_instance(value: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if float in kinds and isinstance(value, int):
        return True  # JSON has one number type: 3 is a fine wall_s
    return isinstance(value, kinds)


def exit_code_from_wait_status(status: int) -> tuple[int, int | None]:
    """Turn a waitpid() status into (exit code, killing signal or None): SIGKILL -> (137, 9).

    A stopped-process status raises ValueError, as os.waitstatus_to_exitcode does.
    """
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return 128 - code, -code
    return code, None


def classify(
    exit_code: int | None,
    signal: int | None,
    oom_killed: bool,
    timed_out: bool,
    cancelled: bool,
    error: str | None,
) -> Status:
    """Pick a job's status; precedence error > cancelled > timeout > oom > signaled > failed > ok.

    oom wins over the exit code: an OOM-killed command may exit nonzero for its own reasons
    (a shell reporting its killed child) rather than die by SIGKILL itself. With no exit
    code and no signal the command never produced a status, which is an error.
    """
    if error:
        return Status.ERROR
    if cancelled:
        return Status.CANCELLED
    if timed_out:
        return Status.TIMEOUT
    if oom_killed:
        return Status.OOM
    if signal is not None:
        return Status.SIGNALED
    if exit_code is None:
        return Status.ERROR
    if exit_code != 0:
        return Status.FAILED
    return Status.OK


def cpu_times(
    cgroup_user_ns: int | None, cgroup_system_ns: int | None,
    rusage_user_s: float | None, rusage_system_s: float | None,
) -> tuple[float | None, float | None]:
    """A finished container's user and system CPU seconds, as exact as the kernel
    gives them.

    The spawner's wait4 rusage of PID 1 is exact, and covers every process of the
    PID namespace that was waited for (PID 1, as it dies, waits for those left).
    Cgroup v1's counters are charged a scheduler tick at a time (4 ms at HZ=250: a
    short job reads 0 or a whole tick), but also count what nobody waited for (the
    children of a parent that ignores SIGCHLD). So the rusage, unless the cgroup
    saw clearly more."""
    if rusage_user_s is None or rusage_system_s is None:
        if cgroup_user_ns is None or cgroup_system_ns is None:
            return None, None
        return round(cgroup_user_ns / 1e9, 6), round(cgroup_system_ns / 1e9, 6)
    if cgroup_user_ns is not None and cgroup_system_ns is not None:
        cgroup_s = (cgroup_user_ns + cgroup_system_ns) / 1e9
        rusage_s = rusage_user_s + rusage_system_s
        if cgroup_s > rusage_s + max(0.02, 0.05 * rusage_s):
            return round(cgroup_user_ns / 1e9, 6), round(cgroup_system_ns / 1e9, 6)
    return round(rusage_user_s, 6), round(rusage_system_s, 6)


def iso_utc(epoch_seconds: float) -> str:
    """Format a Unix time as ISO 8601 UTC with microseconds: "2026-11-29T05:17:51.123456Z"."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")



def parse_iso_utc(text: str) -> float:
    """The Unix time of an ISO 8601 time: iso_utc's inverse; an offset other than Z is
    honoured and a time without one is taken as UTC. Raises ValueError for other text."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
