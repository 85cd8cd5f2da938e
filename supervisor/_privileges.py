"""Whether a jobs-file line asks for more than its batch's command line grants (pure).

`supervise batch -u 65534:65534 jobs.txt` runs every job as nobody: a line may change
its own options, but not past what the batch's own flags grant, unless the batch was
started with --allow-privileged-jobs. Past them is:

- --privileged, where the batch's containers are not;
- a capability the batch's containers lack (--cap-add, or a --cap-drop of its own that
  drops less than the batch's);
- --security-opt values other than the batch's (they may loosen as well as tighten),
  and a --device the batch lacks, unless the batch is privileged;
- --net host, where the batch's containers have a network of their own;
- a user (uid or gid) other than the batch's, unless the batch runs as root able to
  become anyone (uid 0 with SETUID and SETGID, or privileged): a batch as nobody
  forbids -u 0, -u root and -u nobody:0 alike.

--security-opt and --device are read by option name, when RunOptions has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from nsutil import _caps

from ._options import RunOptions, parse_capabilities

__all__ = ["Grant", "beyond", "grant_of"]

_EVERY_CAPABILITY = frozenset(_caps.CAPABILITIES)
_SWITCH_USER = frozenset({"SETUID", "SETGID"})


@dataclass(frozen=True)
class Grant:
    """What a container may do, as far as privilege goes."""

    privileged: bool
    capabilities: frozenset[str]  # the names it keeps (every one, privileged)
    user: tuple[int, int]  # (0, 0) without -u
    net_host: bool
    security_opt: frozenset[str]
    devices: frozenset[str]

    @property
    def may_become_anyone(self) -> bool:
        return self.user[0] == 0 and (self.privileged or self.capabilities >= _SWITCH_USER)


def _values(options: RunOptions, *fields: str) -> frozenset[str]:
    """A repeatable option's values, by field name (those RunOptions may not have yet)."""
    for name in fields:
        values = getattr(options, name, None)
        if values is not None:
            return frozenset(str(v) for v in values)
    return frozenset()


def grant_of(options: RunOptions, user: tuple[int, int] | None) -> Grant:
    """The Grant of a container with these options, running as user (resolved from
    options.user by the caller: None is root). UsageError for an unknown capability."""
    if options.privileged:
        capabilities = _EVERY_CAPABILITY
    else:
        kept = _caps.effective_set(parse_capabilities("--cap-add", options.cap_add),
                                   parse_capabilities("--cap-drop", options.cap_drop))
        capabilities = frozenset(_caps.CAPABILITIES[n] for n in kept)
    return Grant(privileged=options.privileged, capabilities=capabilities,
                 user=(0, 0) if user is None else user, net_host=options.net == "host",
                 security_opt=_values(options, "security_opt", "security_opts"),
                 devices=_values(options, "devices", "device"))


def _names(names: frozenset[str]) -> str:
    shown = sorted(names, key=_caps.CAPABILITIES.index)
    if len(shown) <= 4:
        return ",".join(shown)
    return f"{','.join(shown[:3])},+{len(shown) - 3} more"


def beyond(batch: Grant, line: Grant, options: RunOptions) -> list[str]:
    """What the line (with these options, the batch's merged with its own) asks for
    that the batch does not grant, each as the flag that asks for it; [] if nothing."""
    found: list[str] = []
    if line.privileged and not batch.privileged:
        found.append("--privileged")
    gained = line.capabilities - batch.capabilities
    if gained and not line.privileged:
        added = frozenset(parse_capabilities("--cap-add", options.cap_add))
        if _caps.ALL in added:
            found.append(f"--cap-add {_caps.ALL}")
        elif gained <= added:
            found.append(f"--cap-add {_names(gained)}")
        else:
            found.append(f"--cap-drop {','.join(options.cap_drop) or '(none)'} (it keeps "
                         f"{_names(gained)}, which the batch drops)")
    if not batch.privileged:
        if line.security_opt != batch.security_opt:
            found.append(f"--security-opt {','.join(sorted(line.security_opt)) or '(none)'}")
        if line.devices - batch.devices:
            found.append(f"--device {','.join(sorted(line.devices - batch.devices))}")
    if line.net_host and not batch.net_host:
        found.append("--net host")
    if line.user != batch.user and not batch.may_become_anyone:
        found.append(f"-u {options.user or '0:0'}")
    return found
