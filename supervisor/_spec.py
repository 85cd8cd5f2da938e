"""What a container is asked to be: a frozen spec, independent of how it was given."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cgroupfs

DEVNULL = subprocess.DEVNULL
NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")


@dataclass(frozen=True)
class ContainerSpec:
    """One container. stdin/stdout/stderr are fds to hand over (None: inherit ours;
    DEVNULL: /dev/null); with tty=True, pass the pty's slave as all three."""

    argv: Sequence[str]
    name: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    hostname: str | None = None
    limits: cgroupfs.Limits = field(default_factory=cgroupfs.Limits)
    network: Literal["none", "host"] = "none"
    tty: bool = False
    stdin: int | None = DEVNULL
    stdout: int | None = None
    stderr: int | None = None
    timeout: float | None = None
    stop_timeout: float = 10.0
    line: int | None = None

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a container needs a command")

    def namespaces(self) -> list[str]:
        return [ns for ns in NAMESPACES if not (ns == "net" and self.network == "host")]

    def init_spec(
        self, *, hostname: str, cgroup_procs: Sequence[str], loopback_request: bytes | None,
        stdio: Sequence[int],
    ) -> dict[str, Any]:
        """The JSON-able dict the container's init (nsutil) consumes."""
        return {
            "argv": list(self.argv),
            "env": dict(self.env),
            "cwd": self.workdir,
            "hostname": hostname,
            "namespaces": self.namespaces(),
            "cgroup_procs": list(cgroup_procs),
            "loopback_request": loopback_request.hex() if loopback_request else None,
            "tty": self.tty,
            "stdio": list(stdio),
        }
