"""Whether a jobs-file line asks for more than its batch's command line grants (pure).

`supervise batch -u 65534:65534 jobs.txt` runs every job as nobody: a line may change
its own options, but not past what the batch's own flags grant, unless the batch was
started with --allow-privileged-jobs. Both are judged by the specs they make (so
`-u nobody` and `-u 65534:65534` are one user, and a --cap-drop is weighed with the
--cap-add beside it). Past the batch's is:

- --privileged, where the batch's containers are not;
- a capability the batch's containers lack (--cap-add, or a line's own --cap-drop,
  which replaces the batch's, dropping less);
- a seccomp filter other than the batch's, unless the batch runs unconfined (a
  line may not trade the batch's profile for its own, or for none), and dropping the
  batch's no-new-privileges; a --device the batch lacks, unless it is privileged;
- --net host, where the batch's containers have a network of their own;
- --fs host, where the batch's see the host's files read-only; a -v of a host path
  outside the batch's own volumes, or read-write inside one of its read-only ones;
- a user (uid or gid) other than the batch's, unless the batch runs as root able to
  become anyone (uid 0 with SETUID and SETGID, or privileged): a batch as nobody
  forbids -u 0, -u root and -u nobody:0 alike.

The spec's seccomp, no_new_privileges and devices are read by name, where
ContainerSpec has them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nsutil import _caps

from ._fsview import below
from ._options import RunOptions, parse_capabilities
from ._spec import ContainerSpec

__all__ = ["PRIVILEGE_OPTIONS", "Grant", "beyond", "grant_of"]

#: the RunOptions fields that bear on privilege (those RunOptions has are used)
PRIVILEGE_OPTIONS = ("privileged", "cap_add", "cap_drop", "user", "net", "security_opt",
                     "devices", "device", "fs", "volumes")
_EVERY_CAPABILITY = frozenset(range(len(_caps.CAPABILITIES)))
_SWITCH_USER = frozenset({_caps.CAP_NUMBER["SETUID"], _caps.CAP_NUMBER["SETGID"]})


@dataclass(frozen=True)
class Grant:
    """What a container may do, as far as privilege goes."""

    privileged: bool
    capabilities: frozenset[int]  # the numbers it keeps (every one, privileged)
    user: tuple[int, int]  # (0, 0) without -u
    net_host: bool
    seccomp: object  # the filter it runs under (None: unconfined, privileged too)
    no_new_privs: bool
    devices: frozenset[str]
    fs_host: bool = False
    volumes: tuple[tuple[str, str, bool], ...] = ()  # (host, container, read-only)

    @property
    def may_become_anyone(self) -> bool:
        return self.user[0] == 0 and (self.privileged or self.capabilities >= _SWITCH_USER)


def grant_of(spec: ContainerSpec) -> Grant:
    kept = spec.capabilities()
    return Grant(
        privileged=spec.privileged,
        capabilities=_EVERY_CAPABILITY if kept is None else frozenset(kept),
        user=spec.user or (0, 0), net_host=spec.network == "host",
        seccomp=None if spec.privileged else getattr(spec, "seccomp", None),
        no_new_privs=not spec.privileged or bool(getattr(spec, "no_new_privileges", False)),
        devices=frozenset(str(d) for d in getattr(spec, "devices", ())),
        fs_host=getattr(spec, "fs", "view") == "host",
        volumes=tuple((v.host, v.container, v.read_only) for v in getattr(spec, "volumes", ()))
        + _keep_upper(spec))


def _keep_upper(spec: ContainerSpec) -> tuple[tuple[str, str, bool], ...]:
    """--keep-upper writes the host's DIR: a read-write volume, as far as grants go."""
    root = getattr(spec, "root", None)
    upper = None if root is None else root.upper
    return () if upper is None else ((upper, _KEEP_UPPER, False),)


_KEEP_UPPER = "(--keep-upper)"



def _names(numbers: Iterable[int]) -> str:
    shown = [_caps.CAPABILITIES[n] for n in sorted(numbers)]
    if len(shown) <= 4:
        return ",".join(shown)
    return f"{','.join(shown[:3])},+{len(shown) - 3} more"


def _given(options: RunOptions, *fields: str) -> str:
    """A repeatable option's values as given, by field name."""
    for name in fields:
        values = getattr(options, name, None)
        if values:
            return ",".join(str(v) for v in values)
    return "(none)"


def beyond(batch: Grant, line: Grant, options: RunOptions) -> list[str]:
    """What the line (its grant; its options, the batch's with its own over them, for
    the messages) asks for that the batch does not grant, each as the flag that asks
    for it; [] if nothing."""
    found: list[str] = []
    if line.privileged and not batch.privileged:
        found.append("--privileged")
    gained = line.capabilities - batch.capabilities
    if gained and not line.privileged:
        added = parse_capabilities("--cap-add", options.cap_add)
        if _caps.ALL in added:
            found.append(f"--cap-add {_caps.ALL}")
        elif gained <= {_caps.CAP_NUMBER[name] for name in added}:
            found.append(f"--cap-add {_names(gained)}")
        else:
            found.append(f"--cap-drop {_given(options, 'cap_drop')} (it keeps "
                         f"{_names(gained)}, which the batch drops)")
    security = _given(options, "security_opt")
    if batch.seccomp is not None and line.seccomp != batch.seccomp and not line.privileged:
        found.append(f"--security-opt {security}")
    elif batch.no_new_privs and not line.no_new_privs and batch.privileged:
        found.append("--security-opt without the batch's no-new-privileges")
    if not batch.privileged and line.devices - batch.devices:
        found.append(f"--device {','.join(sorted(line.devices - batch.devices))}")
    if line.net_host and not batch.net_host:
        found.append("--net host")
    if line.fs_host and not batch.fs_host:
        found.append("--fs host")
    if not batch.fs_host:
        for host, container, read_only in line.volumes:
            if not any(below(host, top) and (read_only or not top_ro)
                       for top, _inside, top_ro in batch.volumes):
                found.append(f"--keep-upper {host}" if container == _KEEP_UPPER else
                             f"-v {host}:{container}:{'ro' if read_only else 'rw'}")
    if line.user != batch.user and not batch.may_become_anyone:
        found.append(f"-u {options.user or '0:0'}")
    return found
