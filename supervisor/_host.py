"""This host as the CLI meets it: the facts option translation needs (read once), its
files as build_spec reads them, and whether we may use namespaces and cgroups."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from nsutil import _seccomp

from ._errors import SuperviseError
from ._options import HostFacts
from ._spec import ContainerSpec
from ._units import parse_cpu_list_file


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def host_facts() -> HostFacts:
    cpus = frozenset(os.sched_getaffinity(0))
    online = _read("/sys/devices/system/cpu/online")
    if online:
        cpus = cpus & parse_cpu_list_file(online) or cpus
    nodes = _read("/sys/devices/system/node/online")
    mems = parse_cpu_list_file(nodes) if nodes else frozenset({0})
    return HostFacts(cpu_count=len(cpus), cpus=cpus, mems=mems, environ=dict(os.environ),
                     cwd=os.getcwd())


def available_memory() -> int:
    """psutil.virtual_memory().available, from MemAvailable without importing psutil
    (~7 ms) in the usual case; psutil's own estimate when the kernel's figure is
    missing, 0 or above MemTotal (old kernels, some containers)."""
    meminfo = _read("/proc/meminfo") or ""
    fields = dict(line.split(":", 1) for line in meminfo.splitlines() if ":" in line)
    try:
        total = int(fields["MemTotal"].split()[0]) * 1024
        available = int(fields["MemAvailable"].split()[0]) * 1024
    except (KeyError, IndexError, ValueError):
        available = total = 0
    if 0 < available <= total:
        return available
    # Lazy: psutil is needed only for its fallback estimate.
    import psutil

    return int(psutil.virtual_memory().available)


def read_host_file(path: str) -> str:
    """A file's text, as build_spec's read_file (--env-file, /etc/passwd, /etc/group):
    bytes that are not UTF-8 are kept, as surrogates, for the parsers to report."""
    return Path(path).read_text(encoding="utf-8", errors="surrogateescape")


def readable_by(path: str, uid: int, gid: int) -> bool:
    """Whether uid:gid, with no supplementary groups (as a container's user), may open
    path for reading: judged by the kernel, in a child that becomes that user and
    tries (permissions, ACLs, every directory on the way, read-only mounts alike)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
            code = 0
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def require_root() -> None:
    """Namespaces and cgroups need root: say so before anything is set up."""
    if os.geteuid() != 0:
        raise SuperviseError("needs root (namespaces and cgroups); try sudo")


def require_seccomp(specs: Iterable[ContainerSpec]) -> None:
    """A confined container needs libseccomp: say which package to install before
    anything starts (unless every container runs unconfined)."""
    if any(spec.seccomp_profile() is not None for spec in specs) and not (
            _seccomp.library_found()):
        raise SuperviseError(f"seccomp: {_seccomp.MISSING}")
