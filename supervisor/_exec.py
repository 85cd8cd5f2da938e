"""`supervise exec`: a new process inside a running container of any supervise on the
host.

The container is found as `kill` finds it (its journal record, its PID 1 checked by
the kernel's word before use, through a pidfd). The process gets what the container's
own command got: every namespace of its PID 1 (setns through that pidfd: its root
and working directory come with its mount namespace), its cgroups (those the kernel
shows PID 1 in, so its limits and device rules hold), and its capabilities,
seccomp filter, no_new_privs and user, as the record says. A spawner of our own
forks it: the forked child joins, enters, drops what it must, and stays as a small
reaper outside the PID namespace while the command, forked into it, runs; the exit
status comes back as `run`'s does.
"""

from __future__ import annotations

import os
import select
import signal
import time
from dataclasses import dataclass

import anyio

import cgroupfs
from nsutil._messages import Exited, InitSpec

from . import _control, _state
from ._errors import SuperviseError
from ._ids import new_id
from ._result import Result, classify, cpu_times, exit_code_from_wait_status, iso_utc
from ._spawner_client import Spawned, SpawnerClient
from ._state import ContainerState


@dataclass(frozen=True)
class Target:
    """A running container, checked: its record, a pidfd for its PID 1, and the
    cgroup files its processes join (v1 tasks files; the v2 cgroup.procs)."""

    state: ContainerState
    pidfd: int
    root_fd: int  # its PID 1's root directory (O_PATH)
    join_files: tuple[str, ...]
    v2_join: str | None

    def close(self) -> None:
        os.close(self.root_fd)
        os.close(self.pidfd)


def join_files(proc_cgroup: str, mountinfo: str) -> tuple[tuple[str, ...], str | None]:
    """The files a process writes to join the cgroups a /proc/PID/cgroup text shows,
    in every hierarchy this host mounts: each v1 one's tasks, the v2 cgroup.procs."""
    try:
        layout = cgroupfs.detect_layout(mountinfo, proc_cgroup)
    except cgroupfs.CgroupError as exc:
        raise SuperviseError(f"reading the container's cgroups: {exc}") from exc
    files: list[str] = []
    for controller in layout.v1_mounts:
        path = os.path.join(layout.v1_own_dir(controller), "tasks")
        if path not in files:
            files.append(path)
    v2 = None if layout.v2_mount is None else os.path.join(layout.v2_own_dir(),
                                                           "cgroup.procs")
    return tuple(files), v2


def open_target(ref: str) -> Target:
    """The running container ref names (an id, a prefix of one, or a name)."""
    state = _control.resolve(_state.read_states(), ref)
    problem = _control.unverifiable(state)
    if problem is not None:
        raise SuperviseError(f"{state.id}: {problem.replace('signalled', 'entered')}")
    if state.security is None:
        raise SuperviseError(f"{state.id} was started by a supervise that records no "
                             "security settings for exec: run it again")
    pidfd = _control.open_pid1(state)
    if pidfd is None:
        raise _control.NotFound(f"{state.id} is not running")
    root_fd = None
    try:
        try:
            with open(f"/proc/{state.pid}/cgroup", encoding="utf-8") as f:
                proc_cgroup = f.read()
            with open("/proc/self/mountinfo", encoding="utf-8") as f:
                mountinfo = f.read()
            root_fd = os.open(f"/proc/{state.pid}/root",
                              os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _control.NotFound(f"{state.id} is not running ({exc.strerror})") from exc
        if _exited(pidfd):  # read after its end, the pid's cgroups may be another's
            raise _control.NotFound(f"{state.id} is not running")
        files, v2 = join_files(proc_cgroup, mountinfo)
    except BaseException:
        if root_fd is not None:
            os.close(root_fd)
        os.close(pidfd)
        raise
    return Target(state, pidfd, root_fd, files, v2)


def _exited(pidfd: int) -> bool:
    """Whether the process a pidfd opens has exited (its pidfd is readable)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


def exec_spec(target: Target, argv: list[str], env: dict[str, str], *, tty: bool,
              stdio: tuple[int, int, int], pidfd_index: int, root_index: int,
              user: tuple[int, int] | None, workdir: str | None,
              console_index: int | None = None) -> InitSpec:
    """What the spawner's child is to do: stdio, pidfd_index, root_index and
    console_index index the fds sent with it (the target's pidfd and root among them;
    with tty, the socket its terminal's master end comes back on)."""
    security = target.state.security
    assert security is not None
    seccomp = security["seccomp"]
    if seccomp is not None and seccomp != "default":
        try:
            seccomp = _state.kept_profile(_state.cache_dir(), seccomp)
        except (OSError, ValueError) as exc:
            raise SuperviseError(f"{target.state.id}'s seccomp profile: {exc}") from exc
    kept_user = security["user"]
    caps = security["capabilities"]
    return InitSpec(
        argv=tuple(argv), env=env, cwd=workdir or security["workdir"], hostname=None,
        namespaces=(), cgroup_join=target.join_files, cgroup_fd=None,
        cgroup_v2_join=target.v2_join, loopback_request=None, tty=tty, stdio=stdio,
        capabilities=None if caps is None else tuple(caps),
        no_new_privs=security["no_new_privs"], harden_mounts=False,
        user=user if user is not None else (None if kept_user is None else tuple(kept_user)),
        init=True, seccomp=seccomp, devices=None, device_cgroup_fd=None, filesystem=None,
        join_pidfd=pidfd_index, join_root_fd=root_index, console_socket=console_index,
    )


class Execution:
    """The process exec started: signals reach it (through its reaper, which forwards
    them), and its end comes back as a Result (of the command; no cgroup of its own,
    so the figures are the reaper's rusage)."""

    def __init__(self, cid: str, argv: list[str], spawned: Spawned, client: SpawnerClient,
                 stop_timeout: float = 10.0) -> None:
        self.id = cid
        self.argv = argv
        self.stop_timeout = stop_timeout
        self._pidfd = spawned.pidfd
        self._started = time.time()
        self._started_mono = time.monotonic()
        self._exit: Exited | None = None
        self._done = anyio.Event()
        client.watch(cid, self._ended)

    def _ended(self, exited: Exited | None) -> None:
        self._exit = exited
        self._done.set()

    def signal(self, sig: int) -> bool:
        """Send sig to its reaper (which forwards it); False once it has ended."""
        if self._pidfd is None or self._done.is_set():
            return False
        return _control.send(self._pidfd, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    async def wait(self) -> Result:
        await self._done.wait()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        exited = self._exit
        error = None
        if exited is None:
            exit_code, sig, error = None, None, "the spawner died; the exit is unknown"
        else:
            exit_code, sig = exit_code_from_wait_status(exited.status)
            if exited.error is not None:
                error = exited.error.message
        cpu_user, cpu_system = cpu_times(
            None, None, exited.user_s if exited else None, exited.system_s if exited else None)
        now = time.time()
        setup = error if exited is None or (exited.error is not None
                                            and exited.error.step != "exec") else None
        return Result(
            name=self.id, line=None, argv=self.argv,
            status=classify(exit_code=exit_code, signal=sig, oom_killed=False,
                            timed_out=False, cancelled=False, error=setup),
            exit_code=exit_code, signal=sig, oom_killed=False, timed_out=False, attempts=1,
            started_at=iso_utc(self._started), ended_at=iso_utc(now),
            wall_s=round(time.monotonic() - self._started_mono, 6),
            cpu_user_s=cpu_user, cpu_system_s=cpu_system,
            peak_memory_bytes=exited.maxrss_kib * 1024 if exited else None,
            memory_limit_bytes=None, stdout_path=None, stderr_path=None, error=error)


async def start(client: SpawnerClient, spec: InitSpec, fds: list[int]) -> Execution:
    """Have the spawner start it (fds: those spec's indexes name)."""
    cid = new_id()
    spawned = await client.spawn(cid, spec, fds)
    return Execution(cid, list(spec.argv), spawned, client)
