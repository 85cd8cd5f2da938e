"""What crosses the supervisor <-> spawner boundary, as typed records.

Each message is one `Record` subclass: its annotated fields are its whole
definition. mypy checks every construction and every read on both sides (the
records are frozen, keyword-only dataclasses to it, through PEP 681), and the
wire form is derived from the same annotations: `to_wire` turns a record into a
dict that marshal can carry, `from_wire` turns such a dict back into the record,
checking that every field is there, that there is no other, and that each value
has its annotated type. A message that fails raises `WireError`, which names the
field, so a misspelt or missing field is refused, never silently defaulted.

No dataclasses or typing at run time: the spawner imports this module, and every
module it imports lengthens each supervisor's start.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

    from typing_extensions import dataclass_transform

    Check = Callable[[object, str], object]
else:
    def dataclass_transform(**_options: object) -> Callable[[type], type]:
        return lambda cls: cls

__all__ = [
    "Exited",
    "Failed",
    "Place",
    "Placed",
    "InitEnded",
    "InitSpec",
    "Record",
    "Shutdown",
    "Spawn",
    "Started",
    "StepReport",
    "WireError",
    "from_wire",
    "to_wire",
]

KIND = "kind"  # the key naming a record's kind in its wire form


class WireError(ValueError):
    """A wire message that is not a valid record. ``id`` is the container id the
    message was about, when that much could be read (so the refusal can be routed)."""

    def __init__(self, message: str, *, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


_KINDS: dict[str, type[Record]] = {}


@dataclass_transform(kw_only_default=True, frozen_default=True, eq_default=True)
class Record:
    """A frozen record whose annotated fields are all required keywords."""

    _kind: ClassVar[str]
    _fields: ClassVar[tuple[str, ...]]
    _field_set: ClassVar[frozenset[str]]
    _wire_keys: ClassVar[frozenset[str]]
    _checks: ClassVar[tuple[tuple[str, Check], ...]]
    _nested: ClassVar[tuple[str, ...]]

    def __init_subclass__(cls, *, kind: str, **options: Any) -> None:
        super().__init_subclass__(**options)
        # Not inspect.get_annotations: importing inspect would cost the spawner ~5 ms.
        annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        fields = tuple(name for name, hint in annotations.items()
                       if not str(hint).startswith("ClassVar"))
        if kind in _KINDS or KIND in fields:
            raise TypeError(f"record kind {kind!r} defined twice, or a field named {KIND!r}")
        checks = tuple((name, _check_for(str(annotations[name]))) for name in fields)
        cls._kind = kind
        cls._fields = fields
        cls._field_set = frozenset(fields)
        cls._wire_keys = frozenset((*fields, KIND))
        cls._checks = checks
        cls._nested = tuple(name for name, check in checks if getattr(check, "nested", False))
        _KINDS[kind] = cls

    def __init__(self, **values: Any) -> None:
        if values.keys() != self._field_set:
            missing = [n for n in self._fields if n not in values]
            unknown = [n for n in values if n not in self._field_set]
            raise TypeError(f"{type(self).__name__}: missing {missing}, unknown {unknown}")
        self.__dict__.update(values)  # past the frozen __setattr__

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__ = None  # type: ignore[assignment]  # fields may be dicts

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({shown})"


def to_wire(record: Record) -> dict[str, Any]:
    """The record as a dict of marshal-able values (nested records as dicts too)."""
    wire: dict[str, Any] = {KIND: record._kind}
    wire.update(record.__dict__)
    for name in record._nested:
        value = wire[name]
        if value is not None:
            wire[name] = to_wire(value)
    return wire


def from_wire(wire: object, expected: type[Record] | None = None) -> Record:
    """The record a wire dict stands for (of class ``expected``, if given). WireError
    names the first field that is missing, unknown or of the wrong type."""
    if type(wire) is not dict:
        raise WireError(f"a message is a dict, not {type(wire).__name__}")
    kind = wire.get(KIND)
    cls = _KINDS.get(kind) if type(kind) is str else None
    about = wire.get("id")
    about = about if type(about) is str else None
    if cls is None or (expected is not None and cls is not expected):
        wanted = expected._kind if expected is not None else "a known kind"
        raise WireError(f"message kind {kind!r}: expected {wanted}", id=about)
    if wire.keys() != cls._wire_keys:
        missing = [n for n in cls._fields if n not in wire]
        if missing:
            raise WireError(f"{cls._kind} message: missing field {missing[0]!r}", id=about)
        unknown = sorted(str(k) for k in wire if k not in cls._wire_keys)
        raise WireError(f"{cls._kind} message: unknown field {unknown[0]!r}", id=about)
    values = dict(wire)
    del values[KIND]
    try:
        for name, check in cls._checks:
            value = values[name]
            checked = check(value, name)
            if checked is not value:
                values[name] = checked
    except WireError as exc:
        raise WireError(f"{cls._kind} message: {exc}", id=about) from None
    record = object.__new__(cls)
    record.__dict__.update(values)
    return record


# -- checks, derived from annotations ------------------------------------------------
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (float, int), "bool": (bool,), "bytes": (bytes,),
}


def _wrong(where: str, annotation: str, value: object) -> WireError:
    return WireError(f"field {where!r}: expected {annotation}, got {type(value).__name__}")


def _split_top(text: str) -> list[str]:
    """The comma-separated parts of a type's arguments, brackets respected."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _check_for(annotation: str) -> Check:
    """The check (and conversion, for nested records) of a value of this annotation;
    TypeError at class definition for an annotation with no wire form."""
    text = annotation.strip()
    if text.endswith(" | None"):
        inner = _check_for(text[: -len(" | None")])

        def optional(value: object, where: str) -> object:
            return None if value is None else inner(value, where)
        optional.nested = getattr(inner, "nested", False)  # type: ignore[attr-defined]
        return optional
    if text in _SCALARS:
        kinds = _SCALARS[text]

        def scalar(value: object, where: str) -> object:
            if type(value) not in kinds:
                raise _wrong(where, text, value)
            return value
        return scalar
    if text.startswith("tuple[") and text.endswith("]"):
        parts = _split_top(text[len("tuple["):-1])
        if len(parts) == 2 and parts[1] == "..." and parts[0] in _SCALARS:
            kinds = _SCALARS[parts[0]]

            def scalars(value: object, where: str) -> object:
                if type(value) is not tuple:
                    raise _wrong(where, text, value)
                for element in value:
                    if type(element) not in kinds:
                        raise _wrong(where, parts[0], element)
                return value
            return scalars
        if len(parts) == 2 and parts[1] == "...":
            item = _check_for(parts[0])

            def homogeneous(value: object, where: str) -> object:
                if type(value) is not tuple:
                    raise _wrong(where, text, value)
                for element in value:
                    item(element, where)
                return value
            return homogeneous
        items = tuple(_check_for(p) for p in parts)

        def fixed(value: object, where: str) -> object:
            if type(value) is not tuple or len(value) != len(items):
                raise _wrong(where, text, value)
            for check, element in zip(items, value, strict=True):
                check(element, where)
            return value
        return fixed
    if text == "dict[str, str]":
        def str_dict(value: object, where: str) -> object:
            if type(value) is not dict or not all(
                    type(k) is str and type(v) is str for k, v in value.items()):
                raise _wrong(where, text, value)
            return value
        return str_dict
    for cls in _KINDS.values():
        if cls.__name__ == text:
            def nested(value: object, where: str, cls: type[Record] = cls) -> object:
                try:
                    return from_wire(value, cls)
                except WireError as exc:
                    raise WireError(f"field {where!r}: {exc}") from None
            nested.nested = True  # type: ignore[attr-defined]  # to_wire converts it
            return nested
    raise TypeError(f"no wire form for the annotation {annotation!r}")


# -- the records ---------------------------------------------------------------------
class FsView(Record, kind="fsview"):
    """The file system a container sees instead of the host's as it is (mounted by its
    PID 1, in its own mount namespace, in this order)."""

    #: every mount it inherits made read-only (recursively: each one below too)
    read_only: bool
    #: a /dev of its own (docker's minimal set, a new devpts, mqueue), not the host's
    dev: bool
    #: device nodes made in that /dev: (path, st_mode with the type bits, st_rdev)
    device_nodes: tuple[tuple[str, int, int], ...]
    #: private tmpfs mounts: (path, MS_* flags, mount data, whether the path must exist;
    #: a default one on a path the host lacks is skipped)
    tmpfs: tuple[tuple[str, int, str, bool], ...]
    #: bind mounts: (host path, container path, read-only, host path is a directory),
    #: each taken from the host's tree before it is made read-only
    volumes: tuple[tuple[str, str, bool, bool], ...]
    #: a root of its own (--rootfs): the directory, entered with pivot_root, under a
    #: copy-on-write overlay (None: the host's tree)
    root: str | None
    #: that root without the overlay, read-only (--read-only)
    root_read_only: bool
    #: where the overlay's upper layer (and its workdir) go, kept (--keep-upper);
    #: None: a tmpfs of its own, gone when it ends
    upper: str | None
    #: files bound into its root: (path, content); /etc/hostname, /etc/hosts...
    files: tuple[tuple[str, str], ...]


class InitSpec(Record, kind="init"):
    """What a container's PID 1 is to become; the spawner compiles it into a plan
    (`_plan.compile_plan`) before it forks. Indexes (``stdio``, ``cgroup_fd``) are
    into the fds that travel with the spawn message."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None
    hostname: str | None
    #: among pid mnt uts ipc net cgroup (the spawner makes the PID namespace)
    namespaces: tuple[str, ...]
    #: files PID 1 writes "0" into to join its v1 cgroups (each hierarchy's tasks)
    cgroup_join: tuple[str, ...]
    #: a v2 cgroup directory to be born in (clone3 CLONE_INTO_CGROUP)
    cgroup_fd: int | None
    #: the v2 cgroup.procs PID 1 joins through when it could not be born there
    cgroup_v2_join: str | None
    #: a netlink request that brings lo up, encoded once by the supervisor
    loopback_request: bytes | None
    tty: bool
    #: the fds (indexes) that become 0, 1 and 2
    stdio: tuple[int, int, int]
    #: the capability numbers kept; None keeps all (privileged)
    capabilities: tuple[int, ...] | None
    no_new_privs: bool
    #: /sys read-only, /proc masked as docker does
    harden_mounts: bool
    #: (uid, gid) to run as, with no supplementary groups; None stays root
    user: tuple[int, int] | None
    #: stay PID 1 as a minimal init (reap orphans, forward signals)
    init: bool
    #: the seccomp filter PID 1 installs last: "default" (docker's, built in), a docker
    #: JSON profile's text, or None (unconfined); compiled once per profile and
    #: capability set by the spawner
    seccomp: str | None
    #: the devices it may use, every other denied: (kind "a"/"b"/"c", major, minor, -1
    #: for any, access from "rwm"); None: all. On v2, a BPF program the spawner attaches
    #: to the cgroup whose directory is fd #device_cgroup_fd (v1: the devices files)
    devices: tuple[tuple[str, int, int, str], ...] | None
    device_cgroup_fd: int | None
    #: a file system view of its own (None: the host's, as it is: --fs host)
    filesystem: FsView | None
    #: enter the namespaces of the process this pidfd (an index into the fds) opens,
    #: after joining cgroup_join, instead of making any (supervise exec); with init,
    #: the command is forked into its PID namespace
    join_pidfd: int | None
    #: with join_pidfd, its root directory (/proc/PID/root, an index into the fds): a
    #: mount namespace's own root is not always its processes' (a host that
    #: switch_root'ed from an initramfs keeps that as its namespace's root)
    join_root_fd: int | None
    #: with tty: make the terminal in its own devpts (its /dev/ptmx), and send the
    #: master end over this unix socket (an index into the fds), as runc's
    #: --console-socket; stdio is then that terminal's other end
    console_socket: int | None


class Spawn(Record, kind="spawn"):
    """supervisor -> spawner: start a container (its fds ride along)."""

    id: str
    spec: InitSpec


class Shutdown(Record, kind="shutdown"):
    """supervisor -> spawner: kill what you run and exit."""


class Kill(Record, kind="kill"):
    """supervisor -> spawner: SIGKILL this container's PID 1 (by the spawner's pidfd),
    for one the supervisor holds no pidfd of (it lost it for want of descriptors)."""

    id: str


class InitEnded(Record, kind="init-ended"):
    """--init's PID 1 -> spawner, on the error pipe: the command it ran was killed by
    this signal (PID 1 itself can only exit, with 128 + signal: the spawner reports the
    container as killed by the signal, as it is without --init)."""

    signal: int


class StepReport(Record, kind="step"):
    """A step of a container's start that failed: which, its errno, one line for the user."""

    step: str
    errno: int
    message: str


class Place(Record, kind="place"):
    """supervisor -> spawner: join these cgroups (files to write "0" into: v1 tasks,
    which move only the spawner's one thread, so no global lock) before any spawn.
    Its children are born there: the hierarchies where a container needs no cgroup
    of its own (no limit, no figures) root its cgroup namespace at the supervisor's
    shared cgroup, not the host's root, at no cost per container."""

    join: tuple[str, ...]


class Placed(Record, kind="placed"):
    """spawner -> supervisor: the answer to Place; error None if every join worked."""

    error: StepReport | None


class Started(Record, kind="started"):
    """spawner -> supervisor: PID 1 exists (a pidfd for it rides along)."""

    id: str
    pid: int
    #: its start time as /proc/PID/stat's field 22 gives it (clock ticks since boot),
    #: which tells it from a later process with the same pid; None if unknown
    start_ticks: int | None


class Exited(Record, kind="exited"):
    """spawner -> supervisor: PID 1 was reaped; its wait status and rusage, and the
    report of the step that failed if it never got to run the command."""

    id: str
    pid: int
    status: int
    user_s: float
    system_s: float
    maxrss_kib: int
    error: StepReport | None


class Failed(Record, kind="failed"):
    """spawner -> supervisor: the container was never started."""

    id: str
    error: StepReport
