"""`run`'s options, as given (strings), and their translation into a ContainerSpec.

Pure: the host facts it needs (CPU count, available CPUs and memory nodes, the
host environment, file contents) are parameters. `supervise run` and each line
of a jobs file go through the same translation.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import cgroupfs
from nsutil import _caps, _seccomp

from ._devices import parse_device
from ._env import (
    DEFAULT_ENV,
    Assignment,
    build_environment,
    default_environment,
    parse_env_assignment,
    parse_env_file,
)
from ._errors import UsageError
from ._fsview import (
    DEFAULT_SHM_SIZE,
    Root,
    Tmpfs,
    Volume,
    below,
    fs_host_conflict,
    host_isdir,
    parse_shm_size,
    parse_tmpfs,
    parse_volume,
    private_mounts,
)
from ._rootfs import check_option_path, resolve_rootfs
from ._spec import ContainerSpec, check_seccomp_profile
from ._units import (
    parse_cpu_shares,
    parse_cpus,
    parse_cpuset,
    parse_duration,
    parse_memory_swap,
    parse_pids_limit,
    parse_size,
)

DEFAULT_STOP_TIMEOUT = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class HostFacts:
    cpu_count: int
    cpus: frozenset[int]
    mems: frozenset[int]
    environ: Mapping[str, str]
    cwd: str = "/"
    #: for -v: whether a host path is a directory (None: it does not exist)
    isdir: Callable[[str], bool | None] = host_isdir
    #: for --rootfs: the directory it names (a tar's unpacked; UsageError if none)
    rootfs: Callable[[str], str] = resolve_rootfs


@dataclass(frozen=True)
class RunOptions:
    tty: bool = False
    interactive: bool = False
    memory: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    cpu_shares: str | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: str | None = None
    name: str | None = None
    hostname: str | None = None
    env: Sequence[str] = field(default_factory=tuple)
    env_files: Sequence[str] = field(default_factory=tuple)
    workdir: str | None = None
    net: Literal["none", "host"] = "none"
    timeout: str | None = None
    stop_timeout: str | None = None
    privileged: bool = False
    cap_add: Sequence[str] = field(default_factory=tuple)
    cap_drop: Sequence[str] = field(default_factory=tuple)
    user: str | None = None
    init: bool = False
    security_opt: Sequence[str] = field(default_factory=tuple)
    device: Sequence[str] = field(default_factory=tuple)
    volumes: Sequence[str] = field(default_factory=tuple)
    tmpfs: Sequence[str] = field(default_factory=tuple)
    shm_size: str | None = None
    fs: Literal["view", "host"] = "view"
    rootfs: str | None = None
    read_only: bool = False
    keep_upper: str | None = None


def _flagged(flag: str, parse: Callable[[str], T], text: str | None) -> T | None:
    """parse(text), with the flag in front of any error that does not name it already."""
    if text is None:
        return None
    try:
        return parse(text)
    except UsageError as exc:
        if str(exc).startswith(flag):
            raise
        raise UsageError(f"{flag}: {exc}") from exc


def parse_limits(opts: RunOptions, host: HostFacts) -> cgroupfs.Limits:
    memory = _flagged("-m/--memory", parse_size, opts.memory)
    if memory is not None and memory < 6 * 1024 * 1024:
        raise UsageError(f"-m {opts.memory}: the minimum memory limit is 6MiB")
    swap = _flagged("--memory-swap", parse_memory_swap, opts.memory_swap)
    if swap == 0:
        swap = None  # docker: 0 is unset (with -m, twice the memory: see with_default_swap)
    if swap is not None:
        if memory is None:
            raise UsageError("--memory-swap needs -m/--memory as well")
        if swap != -1 and swap < memory:
            raise UsageError(
                f"--memory-swap {opts.memory_swap}: must be at least the memory limit "
                "(it is memory plus swap)")
    quota = period = None
    if opts.cpus is not None:
        quota, period = parse_cpus(opts.cpus, host.cpu_count)
    return cgroupfs.Limits(
        memory_bytes=memory,
        memory_swap_bytes=swap,
        cpu_shares=_flagged("-c/--cpu-shares", parse_cpu_shares, opts.cpu_shares),
        cpu_quota_us=quota,
        cpu_period_us=period,
        cpuset_cpus=(parse_cpuset(opts.cpuset_cpus, host.cpus, "--cpuset-cpus")
                     if opts.cpuset_cpus is not None else None),
        cpuset_mems=(parse_cpuset(opts.cpuset_mems, host.mems, "--cpuset-mems")
                     if opts.cpuset_mems is not None else None),
        pids_max=_flagged("--pids-limit", parse_pids_limit, opts.pids_limit),
    )


def parse_capabilities(flag: str, names: Sequence[str]) -> tuple[str, ...]:
    """--cap-add/--cap-drop values -> canonical names (NET_ADMIN, ALL); a comma-separated
    list in one value is accepted too."""
    found: list[str] = []
    for value in names:
        for name in value.split(","):
            try:
                canonical = _caps.normalize(name)
            except ValueError:
                # Lazy: difflib is for this error message only.
                import difflib

                bare = name.strip().upper().removeprefix("CAP_")
                close = difflib.get_close_matches(bare, [*_caps.CAPABILITIES, _caps.ALL], 1)
                hint = f" (did you mean {close[0]}?)" if close else " (see capabilities(7))"
                raise UsageError(f"{flag} {name}: unknown capability{hint}") from None
            if canonical not in found:
                found.append(canonical)
    return tuple(found)


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    home: str | None  # from the host's /etc/passwd, if the user is there


def parse_user(text: str, read_file: Callable[[str], str]) -> User:
    """-u/--user: UID, UID:GID, NAME or NAME:GROUP (names from the host's /etc/passwd and
    /etc/group: the container sees the host's files). A UID alone takes its passwd
    entry's group, else group 0, as docker does."""
    flag = "-u/--user"
    if not text:
        raise UsageError(f"{flag}: give a user: UID[:GID] or NAME[:GROUP]")
    user_part, sep, group_part = text.partition(":")
    if sep and not group_part:
        raise UsageError(f"{flag} {text}: the group after ':' is empty")
    passwd = _table(read_file, "/etc/passwd", flag, needed=not _is_id(user_part))
    entry = None
    if _is_id(user_part):
        uid = _id(user_part, flag, text)
        entry = next((e for e in passwd if e[2] == user_part), None)
    else:
        entry = next((e for e in passwd if e[0] == user_part), None)
        if entry is None:
            raise UsageError(f"{flag} {text}: no user {user_part!r} in /etc/passwd")
        uid = _id(entry[2], flag, text)
    if group_part:
        if _is_id(group_part):
            gid = _id(group_part, flag, text)
        else:
            groups = _table(read_file, "/etc/group", flag, needed=True)
            group = next((g for g in groups if g[0] == group_part), None)
            if group is None:
                raise UsageError(f"{flag} {text}: no group {group_part!r} in /etc/group")
            gid = _id(group[2], flag, text)
    else:
        gid = _id(entry[3], flag, text) if entry is not None else 0
    home = entry[5] if entry is not None else None
    return User(uid, gid, home or None)


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _id(text: str, flag: str, given: str) -> int:
    if not _is_id(text) or int(text) >= 0xFFFFFFFF:
        raise UsageError(f"{flag} {given}: ids are 0 to 4294967294")
    return int(text)


def _table(read_file: Callable[[str], str], path: str, flag: str, *, needed: bool
           ) -> list[list[str]]:
    """The colon-separated lines of /etc/passwd or /etc/group ([] if absent and not needed)."""
    try:
        text = read_file(path)
    except OSError as exc:
        if not needed:
            return []
        raise UsageError(f"{flag}: reading {path}: {exc.strerror}") from exc
    rows = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= (7 if path.endswith("passwd") else 3) and not line.startswith("#"):
            rows.append(fields)
    return rows


def parse_environment(
    opts: RunOptions, host: HostFacts, hostname: str, read_file: Callable[[str], str],
    home: str | None = None,
) -> dict[str, str]:
    assignments: list[Assignment] = []
    for path in opts.env_files:
        try:
            text = read_file(path)
        except OSError as exc:
            raise UsageError(f"--env-file {path}: {exc.strerror}") from exc
        assignments.extend(parse_env_file(text, path, host.environ))
    assignments.extend(parse_env_assignment(item, host.environ) for item in opts.env)
    home = home or DEFAULT_ENV["HOME"]
    base = {**default_environment(opts.tty, hostname), "HOME": home}
    return build_environment(base, assignments, home)


def build_spec(
    argv: Sequence[str], opts: RunOptions, host: HostFacts, *, default_hostname: str,
    read_file: Callable[[str], str],
) -> ContainerSpec:
    """Everything about the container except its stdio; raises UsageError for bad values."""
    if not argv:
        raise UsageError("a command is needed: supervise run [OPTIONS] COMMAND [ARG...]")
    if opts.name is not None and not _valid_name(opts.name):
        raise UsageError(
            f"--name {opts.name!r}: use letters, digits and _ . - "
            "(starting with a letter or digit)")
    if opts.hostname is not None:
        hostname = opts.hostname
    else:  # the name, as much of it as a hostname holds (the kernel's 64 bytes)
        hostname = (opts.name or default_hostname)[:64].rstrip(".-_") or default_hostname
    if not _valid_hostname(hostname):
        raise UsageError(f"--hostname {hostname!r}: 1 to 64 letters, digits, '-' and '.'")
    if opts.workdir is not None and not opts.workdir.startswith("/"):
        raise UsageError(f"-w {opts.workdir}: the working directory must be an absolute path")
    timeout = _flagged("--timeout", parse_duration, opts.timeout)
    stop_timeout = _flagged("--stop-timeout", parse_duration, opts.stop_timeout)
    cap_add = parse_capabilities("--cap-add", opts.cap_add)
    cap_drop = parse_capabilities("--cap-drop", opts.cap_drop)
    user = parse_user(opts.user, read_file) if opts.user is not None else None
    security = parse_security_opts(opts.security_opt, read_file)
    # docker: HOME is the user's home from passwd, "/" for a user not in it
    home = None if user is None else (user.home or "/")
    devices = tuple(parse_device(text) for text in opts.device)
    volumes = tuple(parse_volume(text, host.cwd, host.isdir) for text in opts.volumes)
    tmpfs = tuple(parse_tmpfs(text) for text in opts.tmpfs)
    shm_size = DEFAULT_SHM_SIZE if opts.shm_size is None else parse_shm_size(opts.shm_size)
    if opts.fs == "host":
        conflict = fs_host_conflict(
            volumes, tmpfs, opts.shm_size is not None,
            [text for text, d in zip(opts.device, devices, strict=True)
             if d.container_path != d.host_path])
        if conflict is not None:
            raise UsageError(conflict)
    _check_overlaps(volumes, tmpfs)
    root = _root(opts, host)
    # (in a writable root of its own, a missing mount point is made in its layer)
    if opts.fs == "view" and (root is None or root.read_only):
        _check_mount_points(volumes, tmpfs, host.isdir,
                            "" if root is None else root.path.rstrip("/"))
    return ContainerSpec(
        argv=list(argv),
        name=opts.name,
        env=parse_environment(opts, host, hostname, read_file, home),
        workdir=opts.workdir,
        hostname=hostname,
        limits=parse_limits(opts, host),
        network=opts.net,
        tty=opts.tty,
        timeout=timeout,
        stop_timeout=DEFAULT_STOP_TIMEOUT if stop_timeout is None else stop_timeout,
        privileged=opts.privileged,
        cap_add=cap_add,
        cap_drop=cap_drop,
        user=(user.uid, user.gid) if user is not None else None,
        init=opts.init,
        seccomp=security.seccomp,
        no_new_privileges=security.no_new_privileges,
        devices=devices,
        fs=opts.fs,
        volumes=volumes,
        tmpfs=tmpfs,
        shm_size=shm_size,
        root=root,
    )


def _root(opts: RunOptions, host: HostFacts) -> Root | None:
    """--rootfs, --read-only, --keep-upper, checked."""
    if opts.rootfs is None:
        if opts.read_only or opts.keep_upper is not None:
            raise UsageError("--read-only and --keep-upper go with --rootfs")
        return None
    if opts.fs == "host":
        raise UsageError("--rootfs gives the container a root of its own: not with --fs host")
    path = host.rootfs(posixpath.normpath(posixpath.join(host.cwd, opts.rootfs)))
    upper = None
    if opts.keep_upper is not None:
        if opts.read_only:
            raise UsageError("--keep-upper keeps the copy-on-write layer, which --read-only "
                             "does without")
        upper = posixpath.normpath(posixpath.join(host.cwd, opts.keep_upper))
        check_option_path(upper, "--keep-upper")
        if below(upper, path) or below(path, upper) or below(upper, "/proc"):
            raise UsageError(f"--keep-upper {opts.keep_upper}: a directory apart from the "
                             "rootfs (and from /proc)")
    return Root(path, opts.read_only, upper)


def _check_mount_points(volumes: Sequence[Volume], tmpfs: Sequence[Tmpfs],
                        isdir: Callable[[str], bool | None], root: str = "") -> None:
    """A volume's path must exist in the host's tree (or the read-only root, its path
    root), which the container sees read-only, unless it is below a tmpfs of the
    container's own (made there)."""
    private = private_mounts(tmpfs) if not root else ("/dev", *(t.path for t in tmpfs))
    for volume in volumes:
        where = volume.container
        if isdir(root + where) is None and not any(
                below(where, p) and where != p for p in private):
            if root:
                raise UsageError(f"-v {volume.host}:{where}: {where} does not exist in the "
                                 "read-only rootfs: mount on an existing path, or below a "
                                 "--tmpfs")
            raise UsageError(
                f"-v {volume.host}:{where}: {where} does not exist, and the container sees "
                "the host's files read-only: mount on an existing path, or below /tmp, "
                "/var/tmp, /run or a --tmpfs")
    for mount in tmpfs:
        if isdir(root + mount.path) is None and not any(
                below(mount.path, p) and mount.path != p for p in private):
            where = ("the read-only rootfs" if root else
                     "the host's files (which the container sees read-only)")
            raise UsageError(f"--tmpfs {mount.path}: no such directory in {where}")


def _check_overlaps(volumes: Sequence[Volume], tmpfs: Sequence[Tmpfs]) -> None:
    seen: dict[str, str] = {}
    given = [(v.container, "-v") for v in volumes] + [(t.path, "--tmpfs") for t in tmpfs]
    for path, flag in given:
        if path in seen:
            raise UsageError(f"{flag} {path}: {seen[path]} mounts there already")
        seen[path] = flag


@dataclass(frozen=True)
class SecurityOptions:
    seccomp: str | None = _seccomp.DEFAULT  # ContainerSpec.seccomp's meaning
    no_new_privileges: bool = False


def parse_security_opts(values: Sequence[str], read_file: Callable[[str], str]
                        ) -> SecurityOptions:
    """--security-opt, as docker takes it: seccomp=unconfined, seccomp=builtin (the
    default), seccomp=PROFILE.json (docker's format, checked here), no-new-privileges[=true]
    (even with --privileged); apparmor=unconfined and label=disable change nothing (no
    AppArmor or SELinux profile is applied). "KEY:VALUE" is docker's old spelling."""
    seccomp: str | None = _seccomp.DEFAULT
    no_new_privileges = False
    for value in values:
        key, sep, arg = value.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, arg = value.partition(":")
        shown = f"--security-opt {value}"
        if key == "seccomp" and arg:
            seccomp = _seccomp_profile(arg, shown, read_file)
        elif key == "no-new-privileges" and arg in ("", "true"):
            no_new_privileges = True
        elif key == "no-new-privileges" and arg == "false":
            raise UsageError(f"{shown}: supervise always sets no_new_privs (only "
                             "--privileged runs without it)")
        elif (key, arg) in (("apparmor", "unconfined"), ("label", "disable")):
            pass
        elif key in ("apparmor", "label"):
            raise UsageError(f"{shown}: not supported (supervise applies no AppArmor or "
                             "SELinux profile)")
        else:
            raise UsageError(f"{shown}: expected seccomp=unconfined, seccomp=PROFILE.json "
                             "or no-new-privileges")
    return SecurityOptions(seccomp, no_new_privileges)


def _seccomp_profile(arg: str, shown: str, read_file: Callable[[str], str]) -> str | None:
    if arg == "unconfined":
        return None
    if arg == "builtin":
        return _seccomp.DEFAULT
    try:
        text = read_file(arg)
    except OSError as exc:
        raise UsageError(f"{shown}: {exc.strerror}") from exc
    try:
        check_seccomp_profile(text)
    except ValueError as exc:
        raise UsageError(f"{shown}: {exc}") from exc
    return text


def _valid_hostname(hostname: str) -> bool:
    """RFC 1123 characters (and '_', which real hosts use), at most 64 (the kernel's)."""
    return (0 < len(hostname) <= 64
            and all(c.isascii() and (c.isalnum() or c in "-._") for c in hostname))


def _valid_name(name: str) -> bool:
    return (bool(name) and len(name) <= 128 and name[0].isascii() and name[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name))
