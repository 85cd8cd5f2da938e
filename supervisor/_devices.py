"""Which devices a container may use: docker's default list, plus `--device`.

Every other device is denied: opening it (read or write) fails with EPERM, even
for root inside; creating a node (mknod) is allowed, its use is not. On cgroup v1
the devices controller holds the rules, on v2 a BPF program the spawner attaches
(nsutil/_devices.py). --privileged uses no rules at all, as docker.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Literal

from cgroupfs import DeviceRule

from ._errors import UsageError

# docker's default allow list (moby's oci defaults): mknod of any node, then the few
# devices every program expects. A terminal's own pty is added with -t.
DEFAULT_RULES: tuple[DeviceRule, ...] = (
    DeviceRule("c", None, None, "m"),
    DeviceRule("b", None, None, "m"),
    DeviceRule("c", 1, 3, "rwm"),    # /dev/null
    DeviceRule("c", 1, 5, "rwm"),    # /dev/zero
    DeviceRule("c", 1, 7, "rwm"),    # /dev/full
    DeviceRule("c", 1, 8, "rwm"),    # /dev/random
    DeviceRule("c", 1, 9, "rwm"),    # /dev/urandom
    DeviceRule("c", 5, 0, "rwm"),    # /dev/tty
    DeviceRule("c", 5, 2, "rwm"),    # /dev/ptmx
)


@dataclass(frozen=True)
class Device:
    """A host device a container may use (--device HOST[:CONTAINER][:PERMISSIONS])."""

    host_path: str
    container_path: str
    rule: DeviceRule
    mode: int = 0o20666  # st_mode of the host's node (type and permission bits)
    rdev: int = 0


def parse_device(text: str) -> Device:
    """``/dev/kvm``, ``/dev/fuse:/dev/fuse:rw``: the device node is looked up now (its
    type and numbers go into the rule). UsageError for a path that is no device."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise UsageError(f"--device {text}: expected HOST[:CONTAINER][:PERMISSIONS]")
    access = "rwm"
    if len(parts) >= 2 and parts[-1] and not parts[-1].startswith("/"):
        access = parts.pop()
    host = parts[0]
    inside = parts[1] if len(parts) > 1 and parts[1] else host
    if not access or set(access) - set("rwm"):
        raise UsageError(f"--device {text}: permissions are some of r, w and m")
    if not host.startswith("/") or not inside.startswith("/"):
        raise UsageError(f"--device {text}: paths must be absolute")
    try:
        st = os.stat(host)
    except OSError as exc:
        raise UsageError(f"--device {host}: {exc.strerror}") from exc
    kind: Literal["b", "c"]
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise UsageError(f"--device {host}: not a device node")
    if inside == "/dev" or not inside.startswith("/dev/"):
        raise UsageError(f"--device {text}: the path inside is below /dev")
    rule = DeviceRule(kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                      "".join(a for a in "rwm" if a in access))
    return Device(host, inside, rule, st.st_mode, st.st_rdev)


def device_rules(devices: tuple[Device, ...], *, privileged: bool, tty: int | None
                 ) -> tuple[DeviceRule, ...] | None:
    """The container's rules: None (every device) when privileged; else docker's
    defaults, the terminal's own pty (its device number, with -t) and the --device
    ones."""
    if privileged:
        return None
    if tty is None and not devices:
        return DEFAULT_RULES  # the very tuple: the supervisor compares it per container
    rules = list(DEFAULT_RULES)
    if tty is not None:
        rules.append(DeviceRule("c", os.major(tty), os.minor(tty), "rwm"))
    rules.extend(d.rule for d in devices)
    return tuple(rules)
