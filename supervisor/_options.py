"""`run`'s options, as given (strings), and their translation into a ContainerSpec.

Pure: the host facts it needs (CPU count, available CPUs and memory nodes, the
host environment, file contents) are parameters. `supervise run` and each line
of a jobs file go through the same translation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import cgroupfs

from ._env import build_environment, default_environment, parse_env_assignment, parse_env_file
from ._errors import UsageError
from ._spec import ContainerSpec
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


def parse_environment(
    opts: RunOptions, host: HostFacts, hostname: str, read_file: Callable[[str], str],
) -> dict[str, str]:
    assignments: list[tuple[str, str]] = []
    for path in opts.env_files:
        try:
            text = read_file(path)
        except OSError as exc:
            raise UsageError(f"--env-file {path}: {exc.strerror}") from exc
        assignments.extend(parse_env_file(text, path, host.environ))
    for item in opts.env:
        pair = parse_env_assignment(item, host.environ)
        if pair is not None:
            assignments.append(pair)
    return build_environment(default_environment(opts.tty, hostname), assignments)


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
    hostname = opts.hostname if opts.hostname is not None else (opts.name or default_hostname)
    if not hostname or len(hostname.encode()) > 64 or "\0" in hostname:
        raise UsageError(f"--hostname {hostname!r}: 1 to 64 bytes")
    if opts.workdir is not None and not opts.workdir.startswith("/"):
        raise UsageError(f"-w {opts.workdir}: the working directory must be an absolute path")
    timeout = _flagged("--timeout", parse_duration, opts.timeout)
    stop_timeout = _flagged("--stop-timeout", parse_duration, opts.stop_timeout)
    return ContainerSpec(
        argv=list(argv),
        name=opts.name,
        env=parse_environment(opts, host, hostname, read_file),
        workdir=opts.workdir,
        hostname=hostname,
        limits=parse_limits(opts, host),
        network=opts.net,
        tty=opts.tty,
        timeout=timeout,
        stop_timeout=DEFAULT_STOP_TIMEOUT if stop_timeout is None else stop_timeout,
    )


def _valid_name(name: str) -> bool:
    return (bool(name) and len(name) <= 128 and name[0].isascii() and name[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name))
