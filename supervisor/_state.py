"""The state directory: the live containers, for `ps`, `stats`, `kill`, `stop` and `gc`
in other processes.

`/run/supervise` (or $SUPERVISE_STATE_DIR) holds one journal per supervisor,
`<pid>-<start ticks>-<random>.journal`: a line `+{json}` when a container has
started, `-<id>` when it is gone. Readers replay it; a torn last line (a write
under way) is skipped. Appending costs one write per event, where a file per
container (create, write, rename, unlink on tmpfs) cost ~9% of a batch of short
jobs. A journal grown past COMPACT_BYTES and twice its live entries is rewritten
with only those (atomically, by rename); one with no live entry left is removed.
A container whose supervisor has died (its pid is gone, or was reused: the start
time differs) is stale.

The directory is root's alone (0700, tightened if an older supervise made it 0755):
no other user, and no container running as one, may read what runs or write a line
that gc, kill or stop would act on. (Root in a container may still reach it while
the container sees the host's files: what the lines say is checked before anything
is done, see _control and _gc.)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import SuperviseError
from ._ids import is_container_id
from ._procfs import stat_fields

DEFAULT_STATE_DIR = "/run/supervise"
JOURNAL_SUFFIX = ".journal"
COMPACT_BYTES = 256 * 1024


def state_dir() -> str:
    return os.environ.get("SUPERVISE_STATE_DIR") or DEFAULT_STATE_DIR


def private_dir(path: str) -> None:
    """Make path a directory only its owner may enter (0700), or tighten it to that if
    it is looser (an older supervise made its directories 0755)."""
    os.makedirs(path, mode=0o700, exist_ok=True)  # the mode applies to path alone
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o700)


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
    #: what `supervise exec` gives a process it starts inside (see exec_security)
    security: dict[str, Any] | None = None

    def to_json(self) -> str:
        # A shallow dict: dataclasses.asdict would deep-copy every list, per container.
        return json.dumps({f: getattr(self, f) for f in self.__dataclass_fields__},
                          ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> ContainerState:
        """The record a journal line holds; ValueError unless every field is there with
        its type and the shape supervise gives it (see _shape_error): a line another
        process may have written is input, never trusted."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("state is not an object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        problem = _shape_error(known)
        if problem is not None:
            raise ValueError(problem)
        return cls(**known)


def _is_int(value: object, *, optional: bool = False, positive: bool = False) -> bool:
    if value is None:
        return optional
    return type(value) is int and (value > 0 if positive else value >= 0)


@functools.lru_cache(maxsize=64)  # a batch's containers share one: once, not a container
def exec_security(capabilities: tuple[int, ...] | None, seccomp: str | None,
                  no_new_privs: bool, user: tuple[int, int] | None, workdir: str
                  ) -> dict[str, Any]:
    """ContainerState.security (shared: never changed after)."""
    return {"capabilities": None if capabilities is None else list(capabilities),
            "seccomp": seccomp, "no_new_privs": no_new_privs,
            "user": None if user is None else list(user), "workdir": workdir}


@functools.lru_cache(maxsize=16)
def keep_profile(directory: str, profile: str) -> str:
    """Keep a seccomp profile's text in directory/seccomp/HEX.json (root's alone);
    its reference in the state, "sha256:HEX"."""
    digest = hashlib.sha256(profile.encode()).hexdigest()
    where = os.path.join(directory, "seccomp")
    private_dir(directory)
    private_dir(where)
    path = os.path.join(where, f"{digest}.json")
    if not os.path.exists(path):
        partial = f"{path}.{os.getpid()}"
        with open(partial, "w", encoding="utf-8") as f:
            f.write(profile)
        os.replace(partial, path)
    return f"sha256:{digest}"


def kept_profile(directory: str, ref: str) -> str:
    """The profile text keep_profile kept as ref (OSError if gone, ValueError if it is
    not what the reference says)."""
    digest = ref.removeprefix("sha256:")
    with open(os.path.join(directory, "seccomp", f"{digest}.json"), encoding="utf-8") as f:
        text = f.read()
    if hashlib.sha256(text.encode()).hexdigest() != digest:
        raise ValueError(f"the kept seccomp profile {digest} does not match its name")
    return text


def _is_security(value: object) -> bool:
    """The shape of ContainerState.security: capabilities (numbers, or None: all),
    seccomp ("default", None, or "sha256:HEX" of a profile kept in the cache
    directory), no_new_privs, user ([uid, gid] or None), workdir (absolute)."""
    if type(value) is not dict or set(value) != {
            "capabilities", "seccomp", "no_new_privs", "user", "workdir"}:
        return False
    caps, seccomp, user = value["capabilities"], value["seccomp"], value["user"]
    return ((caps is None or (type(caps) is list and all(
                type(c) is int and 0 <= c < 64 for c in caps)))
            and (seccomp in (None, "default") or (
                type(seccomp) is str and seccomp.startswith("sha256:")
                and len(seccomp) == 71 and all(c in "0123456789abcdef" for c in seccomp[7:])))
            and type(value["no_new_privs"]) is bool
            and (user is None or (type(user) is list and len(user) == 2 and all(
                type(i) is int and 0 <= i < 0xFFFFFFFF for i in user)))
            and type(value["workdir"]) is str and value["workdir"].startswith("/")
            and "\0" not in value["workdir"])


def _is_strs(value: object) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def is_container_cgroup(path: str, cid: str) -> bool:
    """Whether path is shaped like a container's cgroup directory as recorded: absolute,
    normalized, and through a directory named the container's id (``.../<id>``, or a
    cgroup below it)."""
    return (path.startswith("/") and os.path.normpath(path) == path
            and f"/{cid}/" in f"{path}/")


def _shape_error(data: dict[str, Any]) -> str | None:
    """What is wrong with a record's fields, or None."""
    cid = data.get("id")
    if not is_container_id(cid):
        return "no container id"
    assert isinstance(cid, str)
    name = data.get("name")
    checks = {
        "name": isinstance(name, str) and bool(name) and "\0" not in name,
        "pid": _is_int(data.get("pid"), positive=True),
        "pid_start_ticks": _is_int(data.get("pid_start_ticks"), optional=True),
        "supervisor_pid": _is_int(data.get("supervisor_pid"), positive=True),
        "supervisor_start_ticks": _is_int(data.get("supervisor_start_ticks"), optional=True),
        "cgroup_paths": _is_strs(data.get("cgroup_paths")) and all(
            is_container_cgroup(p, cid) for p in data["cgroup_paths"]),
        "argv": _is_strs(data.get("argv")),
        "started_at": type(data.get("started_at")) is str,
        "hostname": data.get("hostname") is None or type(data.get("hostname")) is str,
        "limits": type(data.get("limits", {})) is dict,
        "line": _is_int(data.get("line"), optional=True, positive=True),
        "security": data.get("security") is None or _is_security(data["security"]),
    }
    wrong = [field for field, good in checks.items() if not good]
    return f"bad {', '.join(wrong)}" if wrong else None


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot); None if gone,
    or a zombie: a dead PID 1 whose new parent has not reaped it yet must not count as
    running (and it still shows its v2 cgroup, so the cgroup check would pass)."""
    rest = stat_fields(pid)
    if rest is None or rest[:1] in ([b"Z"], [b"X"]):
        return None
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


class Journal:
    """One supervisor's live containers (see the module's docstring). Not safe for
    concurrent use by several threads; one Journal per Supervisor."""

    def __init__(self, directory: str | None, key: str) -> None:
        self.directory = directory or state_dir()
        self.path = os.path.join(self.directory, key + JOURNAL_SUFFIX)
        self._fd: int | None = None
        self._private = False  # the directory made (or checked) 0700
        self._live: dict[str, bytes] = {}  # id -> its "+" line
        self._size = 0
        self._live_size = 0  # bytes of the live entries' lines

    def _open(self) -> int:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            if not self._private:  # once per supervisor: a mkdir, a stat
                private_dir(self.directory)
                self._private = True
            try:
                self._fd = os.open(self.path, flags, 0o600)
            except FileNotFoundError:  # removed meanwhile (by hand)
                private_dir(self.directory)
                self._fd = os.open(self.path, flags, 0o600)
        return self._fd

    def _append(self, line: bytes) -> None:
        os.write(self._open(), line)  # one write per line: whole, or torn at the end
        self._size += len(line)

    def reserve(self, cid: str) -> None:
        """Say, before its cgroup is made, that container cid is this supervisor's: a
        supervisor killed between that mkdir and `add` leaves a cgroup gc can
        attribute at once (`pending`), not one it must leave for a minute."""
        line = f"?{cid}\n".encode("ascii")
        self._append(line)
        self._live[cid] = line
        self._live_size += len(line)

    def add(self, state: ContainerState) -> None:
        line = b"+" + state.to_json().encode("ascii") + b"\n"
        self._append(line)
        reserved = self._live.get(state.id)
        if reserved is not None:
            self._live_size -= len(reserved)
        self._live[state.id] = line
        self._live_size += len(line)

    def remove(self, cid: str) -> None:
        line = self._live.pop(cid, None)
        if line is None:
            return
        self._live_size -= len(line)
        if not self._live:
            self.close()  # nothing live: no journal (the next add starts a new one)
            return
        self._append(f"-{cid}\n".encode("ascii"))
        # Rewritten once mostly dead: at most as much again as what is live, so the
        # cost per container stays constant however many run at once.
        if self._size > max(COMPACT_BYTES, 2 * self._live_size):
            self._compact()

    def _compact(self) -> None:
        body = b"".join(self._live.values())
        temporary = f"{self.path}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.rename(temporary, self.path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._size = len(body)

    def close(self) -> None:
        """Leave the journal if containers in it are still live (gc needs them), else
        remove it."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not self._live:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self._size = 0


def journal_key(supervisor_pid: int, start_ticks: int | None) -> str:
    return f"{supervisor_pid}-{start_ticks if start_ticks is not None else 0}-{os.urandom(3).hex()}"


def replay(text: bytes) -> tuple[dict[str, ContainerState], int]:
    """The live containers a journal's text records, and how many lines were ignored:
    those that are not a record of the right shape (see ContainerState.from_json) or the
    end of one. The part after the last newline is a write under way: skipped, not
    counted."""
    live, ignored, _reserved = _replay(text)
    return live, ignored


def _replay(text: bytes) -> tuple[dict[str, ContainerState], int, set[str]]:
    """replay's, and the ids reserved ("?", see Journal.reserve) and not recorded since."""
    live: dict[str, ContainerState] = {}
    reserved: set[str] = set()
    ignored = 0
    for line in text.split(b"\n")[:-1]:
        kind = line[:1]
        if kind == b"+":
            try:
                state = ContainerState.from_json(line[1:].decode("utf-8"))
            except (ValueError, TypeError):
                ignored += 1
                continue
            live[state.id] = state
            reserved.discard(state.id)
        elif kind in (b"-", b"?") and is_container_id(
                cid := line[1:].decode("ascii", "replace")):
            if kind == b"?":
                reserved.add(cid)
            else:
                live.pop(cid, None)
                reserved.discard(cid)
        else:
            ignored += 1
    return live, ignored, reserved


def reserved(directory: str | None = None) -> dict[str, tuple[int, int | None]]:
    """The containers reserved and not recorded since (their supervisor died between
    the two, or is there now), each with its supervisor's pid and start time: from
    the journal's name (journal_key), not from anything in it."""
    found: dict[str, tuple[int, int | None]] = {}
    for path in _journals(directory or state_dir()):
        parts = os.path.basename(path)[: -len(JOURNAL_SUFFIX)].split("-")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        try:
            with open(path, "rb") as f:
                _live, _ignored, ids = _replay(f.read())
        except OSError:
            continue
        owner = (int(parts[0]), int(parts[1]) or None)
        found.update(dict.fromkeys(ids, owner))
    return found


def _journals(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except PermissionError as exc:
        raise SuperviseError(f"reading {directory}: {exc.strerror} (it is root's)") from exc
    return [os.path.join(directory, n) for n in names if n.endswith(JOURNAL_SUFFIX)]


def read_states(directory: str | None = None, *, warn: Callable[[str], None] | None = None
                ) -> list[ContainerState]:
    """Every live container recorded in the state directory, oldest first. Lines that
    are not records of the right shape are left out, and warn (if given) hears of them
    once, however many there are."""
    directory = directory or state_dir()
    states: list[ContainerState] = []
    ignored = 0
    for path in _journals(directory):
        try:
            with open(path, "rb") as f:
                live, bad = replay(f.read())
        except OSError:
            continue
        states.extend(live.values())
        ignored += bad
    if ignored and warn is not None:
        warn(f"ignored {ignored} malformed line{'s' if ignored != 1 else ''} in {directory}")
    return sorted(states, key=lambda s: (s.started_at, s.id))


def remove_states(cids: Sequence[str], directory: str | None = None) -> None:
    """Strike containers from the journals that record them (gc, once a dead
    supervisor's containers are cleaned up); a journal left with none is removed."""
    wanted = set(cids)
    for path in _journals(directory or state_dir()):
        try:
            with open(path, "rb") as f:
                text = f.read()
        except OSError:
            continue
        live, _ignored, pending = _replay(text)
        known = live.keys() | pending
        gone = wanted & known
        if not gone:
            continue
        if gone == known:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        # After a line its dead writer left torn, a new line of its own.
        start = b"\n" if text and not text.endswith(b"\n") else b""
        with open(path, "ab") as f:
            f.write(start + b"".join(f"-{cid}\n".encode("ascii") for cid in sorted(gone)))


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
            private_dir(os.path.dirname(os.path.dirname(link)))  # the state directory
            private_dir(os.path.dirname(link))
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
