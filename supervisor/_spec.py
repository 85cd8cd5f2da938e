"""What a container is asked to be: a frozen spec, independent of how it was given."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cgroupfs
from cgroupfs import DeviceRule
from nsutil import _caps, _seccomp
from nsutil._messages import InitSpec

from ._devices import Device, device_rules
from ._fsview import (
    DEFAULT_SHM_SIZE,
    Root,
    Tmpfs,
    Volume,
    container_view,
    etc_files,
    fs_host_conflict,
    with_files,
    writable_paths,
)

DEVNULL = subprocess.DEVNULL
NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")


def _one_of(field_name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field_name}={value!r}: one of {', '.join(map(repr, allowed))}")


@dataclass(frozen=True)
class ContainerSpec:
    """One container. stdin/stdout/stderr are fds to hand over (None: inherit ours;
    DEVNULL: /dev/null); with tty=True, pass the pty's slave as all three.

    Containment, as docker: docker's default capabilities, adjusted by cap_add and
    cap_drop (names like "NET_ADMIN" or "CAP_NET_ADMIN", or "ALL"), no_new_privs, /sys
    read-only and /proc partly masked; privileged=True keeps every capability and
    leaves /sys and /proc alone. user=(uid, gid) runs the command as that user with
    no supplementary groups. init=True keeps a minimal PID 1 that reaps orphans and
    forwards signals to the command (docker's --init).

    seccomp: the filter the command runs under: "default" (docker's default profile,
    built in), None (unconfined), or the text of a profile in docker's JSON format;
    privileged=True runs unconfined whatever it says. no_new_privileges=True sets
    no_new_privs even when privileged."""

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
    privileged: bool = False
    cap_add: Sequence[str] = ()
    cap_drop: Sequence[str] = ()
    user: tuple[int, int] | None = None
    init: bool = False
    seccomp: str | None = _seccomp.DEFAULT
    no_new_privileges: bool = False
    devices: Sequence[Device] = ()
    #: "view": the host's tree read-only, scratch and /dev of its own, volumes; "host":
    #: the host's tree as it is, writable
    fs: Literal["view", "host"] = "view"
    volumes: Sequence[Volume] = ()
    tmpfs: Sequence[Tmpfs] = ()
    shm_size: int = DEFAULT_SHM_SIZE
    #: a root of its own (--rootfs, --read-only, --keep-upper); None: the host's tree
    root: Root | None = None

    def __post_init__(self) -> None:
        # A string is a sequence of one-character strings: "echo hi" would run "e".
        if isinstance(self.argv, (str, bytes)) or not all(
                isinstance(a, str) for a in self.argv):
            raise TypeError(f"argv must be a list of strings, such as {['sh', '-c', '...']!r}"
                            f", not {self.argv!r}")
        if not self.argv:
            raise ValueError("a container needs a command")
        _one_of("network", self.network, ("none", "host"))
        _one_of("fs", self.fs, ("view", "host"))
        for stream in ("stdin", "stdout", "stderr"):
            fd = getattr(self, stream)
            if fd is not None and (not isinstance(fd, int) or isinstance(fd, bool)):
                raise TypeError(f"{stream} must be an fd (int), DEVNULL or None, not {fd!r}")
        if not isinstance(self.env, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()):
            raise TypeError(f"env must map names to values, all strings, not {self.env!r}")
        if not isinstance(self.limits, cgroupfs.Limits):
            raise TypeError(f"limits must be a cgroupfs.Limits, not {self.limits!r}")
        for name in (*self.cap_add, *self.cap_drop):
            _caps.normalize(name)  # ValueError for an unknown capability
        if self.user is not None and not all(0 <= i < 0xFFFFFFFF for i in self.user):
            raise ValueError(f"user {self.user!r}: uid and gid are 0 to 4294967294")
        if self.seccomp not in (None, _seccomp.DEFAULT):
            check_seccomp_profile(self.seccomp)  # ValueError (ProfileError) if it is not one
        if self.fs == "host" and self.root is not None:
            raise ValueError("--rootfs gives it a root of its own: not with --fs host")
        if self.fs == "host":
            conflict = fs_host_conflict(
                self.volumes, self.tmpfs, self.shm_size != DEFAULT_SHM_SIZE,
                [f"{d.host_path}:{d.container_path}" for d in self.devices
                 if d.container_path != d.host_path])
            if conflict is not None:
                raise ValueError(conflict)

    def seccomp_profile(self) -> str | None:
        """The profile PID 1 installs (InitSpec.seccomp); None: unconfined."""
        return None if self.privileged else self.seccomp

    def capabilities(self) -> tuple[int, ...] | None:
        """The capability numbers the command keeps; None: all (privileged)."""
        if self.privileged:
            return None
        return _kept_capabilities(tuple(self.cap_add), tuple(self.cap_drop))

    def can_mount(self) -> bool:
        """Whether it may mount file systems (privileged, or CAP_SYS_ADMIN, which docker's
        seccomp profile then lets mount): a cgroup mount inside would show the root of
        its cgroup namespace, so that must be a cgroup of its own in every hierarchy."""
        caps = self.capabilities()
        return caps is None or _caps.CAP_NUMBER["SYS_ADMIN"] in caps

    def device_rules(self, tty_device: int | None) -> tuple[DeviceRule, ...] | None:
        """The devices it may use (None: all, privileged); tty_device: its terminal's
        device number, with tty=True."""
        return device_rules(tuple(self.devices), privileged=self.privileged, tty=tty_device)

    def writable_paths(self) -> tuple[str, ...]:
        """Where it can write (see _fsview.writable_paths): for its result."""
        return writable_paths(self.fs, tuple(self.volumes), tuple(self.tmpfs),
                              not self.privileged, self.root)

    def namespaces(self) -> tuple[str, ...]:
        return tuple(ns for ns in NAMESPACES if not (ns == "net" and self.network == "host"))

    def init_spec(
        self, *, hostname: str, cgroup_join: Sequence[str], cgroup_fd: int | None,
        cgroup_v2_join: str | None, loopback_request: bytes | None,
        stdio: tuple[int, int, int], devices: tuple[DeviceRule, ...] | None,
        device_cgroup_fd: int | None, cwd: str,
    ) -> InitSpec:
        """What the container's init (nsutil's spawner) is sent: stdio, cgroup_fd and
        device_cgroup_fd are indexes into the fds that travel with it; devices, the
        rules the spawner's filter holds (v2; None on v1, whose cgroup files do); cwd,
        the caller's directory (where the command starts without -w)."""
        workdir, filesystem = self.workdir, None
        if self.fs == "view":
            workdir, filesystem = container_view(
                self.workdir, cwd, tuple(self.volumes), tuple(self.tmpfs), self.shm_size,
                not self.privileged,
                tuple((d.container_path, d.mode, d.rdev) for d in self.devices), self.root)
            if self.root is not None:  # its own /etc/hostname...: one a container
                filesystem = with_files(filesystem, etc_files(hostname, resolv_conf()))
        return InitSpec(
            argv=tuple(self.argv), env=dict(self.env), cwd=workdir, hostname=hostname,
            namespaces=self.namespaces(), cgroup_join=tuple(cgroup_join), cgroup_fd=cgroup_fd,
            cgroup_v2_join=cgroup_v2_join,
            loopback_request=loopback_request, tty=self.tty, stdio=stdio,
            capabilities=self.capabilities(),
            no_new_privs=not self.privileged or self.no_new_privileges,
            harden_mounts=not self.privileged,
            user=None if self.user is None else (self.user[0], self.user[1]), init=self.init,
            seccomp=self.seccomp_profile(),
            devices=None if devices is None else tuple(
                (r.kind, -1 if r.major is None else r.major, -1 if r.minor is None else r.minor,
                 r.access) for r in devices),
            device_cgroup_fd=device_cgroup_fd,
            filesystem=filesystem,
            join_pidfd=None,
            join_root_fd=None,
            console_socket=None,
        )


@functools.lru_cache(maxsize=1)
def resolv_conf() -> str:
    """The host's /etc/resolv.conf, for a root of its own (read once)."""
    try:
        with open("/etc/resolv.conf", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@functools.lru_cache(maxsize=64)  # a batch's jobs share a few: asked 3 times a container
def _kept_capabilities(cap_add: tuple[str, ...], cap_drop: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(_caps.effective_set(cap_add, cap_drop))


@functools.lru_cache(maxsize=16)
def check_seccomp_profile(text: str) -> None:
    """ProfileError (a ValueError) if text is not a valid profile in docker's JSON
    format. Checked once per text: a batch's jobs share theirs."""
    _seccomp.load_profile(text)
