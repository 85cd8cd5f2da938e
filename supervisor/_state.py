"""The state directory: one JSON file per live container, for `ps`, `stats`, `kill`, `stop`
and `gc` in other processes.

`/run/supervise/<id>.json` (or $SUPERVISE_STATE_DIR), written atomically when the
container has started and removed when it is gone. A file whose supervisor has
died (its pid is gone, or was reused: the start time differs) is stale.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_STATE_DIR = "/run/supervise"


def state_dir() -> str:
    return os.environ.get("SUPERVISE_STATE_DIR") or DEFAULT_STATE_DIR


def cache_dir() -> str:
    """Where supervise keeps what outlives its runs (the encoded lo-up request):
    $SUPERVISE_CACHE_DIR, else /var/cache/supervise. Not the state directory, which
    holds only what is live."""
    return os.environ.get("SUPERVISE_CACHE_DIR") or "/var/cache/supervise"


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    pid: int
    pid_start_ticks: int | None  # PID 1's start time, to tell a reused pid
    supervisor_pid: int
    supervisor_start_ticks: int | None
    cgroup_paths: list[str]
    argv: list[str]
    started_at: str  # ISO 8601 UTC
    hostname: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    def to_json(self) -> str:
        # A shallow dict: dataclasses.asdict would deep-copy every list, per container.
        return json.dumps({f: getattr(self, f) for f in self.__dataclass_fields__},
                          ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> ContainerState:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("state is not an object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def is_alive(pid: int, start_ticks: int | None) -> bool:
    ticks = process_start_ticks(pid)
    if ticks is None:
        return False
    return start_ticks is None or ticks == start_ticks


def supervisor_alive(state: ContainerState) -> bool:
    return is_alive(state.supervisor_pid, state.supervisor_start_ticks)


def state_path(cid: str, directory: str | None = None) -> str:
    return os.path.join(directory or state_dir(), f"{cid}.json")


def write_state(state: ContainerState, directory: str | None = None) -> None:
    """Atomically: a reader sees the whole file or none."""
    where = directory or state_dir()
    final = state_path(state.id, where)
    temporary = f"{final}.{os.getpid()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, 0o644)
    except FileNotFoundError:  # the first container on this host (or since a reboot)
        os.makedirs(where, mode=0o755, exist_ok=True)
        fd = os.open(temporary, flags, 0o644)
    try:
        os.write(fd, state.to_json().encode("ascii"))
    finally:
        os.close(fd)
    os.rename(temporary, final)


def remove_state(cid: str, directory: str | None = None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_path(cid, directory))


def read_states(directory: str | None = None) -> list[ContainerState]:
    """Every readable state file, oldest first; torn or foreign files are skipped."""
    where = directory or state_dir()
    try:
        names = os.listdir(where)
    except FileNotFoundError:
        return []
    states: list[ContainerState] = []
    for entry in names:
        if not entry.endswith(".json"):
            continue
        try:
            with open(os.path.join(where, entry), encoding="utf-8") as f:
                states.append(ContainerState.from_json(f.read()))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(states, key=lambda s: (s.started_at, s.id))


def find(states: Sequence[ContainerState], ref: str) -> list[ContainerState]:
    """Containers that an ID, an unambiguous ID prefix or a NAME designates."""
    exact = [s for s in states if ref in (s.id, s.name)]
    if exact:
        return exact
    return [s for s in states if s.id.startswith(ref)] if len(ref) >= 3 else []


class NameTaken(Exception):
    def __init__(self, name: str, holder: str) -> None:
        super().__init__(f"the name {name!r} is already in use by container {holder}")
        self.holder = holder


def _name_link(name: str, directory: str | None) -> str:
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"invalid container name {name!r}")
    return os.path.join(directory or state_dir(), "names", name)


def claim_name(name: str, cid: str, supervisor_pid: int, supervisor_ticks: int | None,
               directory: str | None = None) -> None:
    """Make a name unique among live containers on this host, across processes: an
    O_EXCL-like symlink names/NAME -> "ID.SUPERVISOR_PID.START_TICKS". A link whose
    supervisor is dead is stale and taken over."""
    link = _name_link(name, directory)
    target = f"{cid}.{supervisor_pid}.{supervisor_ticks if supervisor_ticks is not None else ''}"
    for _attempt in range(5):
        try:
            os.symlink(target, link)
            return
        except FileExistsError:
            pass
        except FileNotFoundError:  # no names/ yet, or the last release just removed it
            os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
            continue
        try:
            holder = os.readlink(link)
        except FileNotFoundError:
            continue  # released meanwhile: try again
        holder_id, _, rest = holder.partition(".")
        pid_text, _, ticks_text = rest.partition(".")
        try:
            alive = is_alive(int(pid_text), int(ticks_text) if ticks_text else None)
        except ValueError:
            alive = False
        if alive:
            raise NameTaken(name, holder_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)  # stale: its supervisor is gone
    raise NameTaken(name, "(contended)")


def release_name(name: str, cid: str, directory: str | None = None) -> None:
    link = _name_link(name, directory)
    try:
        if os.readlink(link).partition(".")[0] == cid:
            os.unlink(link)
    except (FileNotFoundError, OSError):
        return
    # The last name out removes names/, so nothing outlives the containers; a claim
    # racing this recreates it.
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(link))
