"""A running container: its pid, cgroup, signals, stats, and how it ends."""

from __future__ import annotations

import functools
import math
import os
import shlex
import signal
import time
from collections.abc import Callable

import anyio
import anyio.to_thread

import cgroupfs
from nsutil._messages import Exited

from ._control import send
from ._procfs import catches_signal
from ._result import (
    HOST,
    Result,
    classify,
    cpu_times,
    exit_code_from_wait_status,
    iso_utc,
)
from ._spawner_client import Spawned
from ._spec import ContainerSpec

_NOT_EMPTY = "not empty"


def remove_empty_cgroup(cgroup: cgroupfs.Cgroup) -> str | None:
    """remove_cgroup's quick path, on the loop: the error, None once removed, or
    _NOT_EMPTY (then remove_cgroup must wait for it)."""
    try:
        return None if cgroup.remove_if_empty() else _NOT_EMPTY
    except cgroupfs.CgroupError as exc:
        return str(exc)


async def remove_cgroup(cgroup: cgroupfs.Cgroup) -> str | None:
    """Remove a container's cgroup without blocking the event loop: one rmdir per
    directory when it is empty (the usual end: PID 1's namespace died with it), else
    kill, wait and remove in a worker thread (a process that lingers in the cgroup may
    take seconds). The error, if it could not be removed."""
    error = remove_empty_cgroup(cgroup)
    return await _destroy_cgroup(cgroup) if error is _NOT_EMPTY else error


async def _destroy_cgroup(cgroup: cgroupfs.Cgroup) -> str | None:
    """remove_cgroup's slow path, in a worker thread."""
    try:
        await anyio.to_thread.run_sync(cgroup.destroy)
    except cgroupfs.CgroupError as exc:
        return str(exc)
    return None


class Container:
    """Created by `Supervisor.start`; `wait()` returns its `Result` once it has ended
    and its cgroup is gone. The spec's timeout applies inside `wait()`.

    The supervisor tells it of its PID 1's exit (`notify_exit`) and hears of its end
    through ``on_end(container, cgroup_left)``, called once its cgroup is removed (or
    could not be: then cgroup_left is True)."""

    def __init__(
        self, cid: str, name: str, spec: ContainerSpec, cgroup: cgroupfs.Cgroup,
        spawned: Spawned, started_at: float, *,
        on_end: Callable[[Container, bool], None] | None = None,
    ) -> None:
        self.id = cid
        self.name = name
        self.spec = spec
        self.cgroup = cgroup
        self.pid = spawned.pid
        self.pid_start_ticks = spawned.start_ticks  # tells its PID 1 from a reused pid
        self.started_at = started_at
        self._started_mono = time.monotonic()
        self._on_end = on_end
        self._pidfd: int | None = spawned.pidfd
        self._exited = anyio.Event()
        self._exit: Exited | None = None
        self._ended_mono: float | None = None
        self._ended_at: float | None = None
        self._done = anyio.Event()
        self._result: Result | None = None
        self._waiting = False
        self._finishing = False
        self._timed_out = False
        self._cancelled = False

    # -- signals --------------------------------------------------------------
    def signal(self, sig: int) -> bool:
        """Send sig to the container's PID 1 (by pidfd: never a recycled pid).
        False if it has already ended."""
        if self._pidfd is None or self._exited.is_set():
            return False
        return send(self._pidfd, sig)

    def kill(self, *, cancel: bool = False) -> None:
        """SIGKILL its PID 1 (and with it the whole PID namespace); cancel=True records
        it as `cancelled` (stopped by the user, not by its own doing)."""
        if cancel:
            self._cancelled = True
        self.signal(signal.SIGKILL)

    async def stop(self, timeout: float | None = None, *, cancel: bool = False) -> None:
        """SIGTERM, then SIGKILL once timeout (default: the spec's stop_timeout) passes;
        cancel=True records it as `cancelled`.

        A PID 1 without a SIGTERM handler never sees the signal (the kernel drops it,
        even from outside the namespace): then the grace is pointless, and it is
        killed at once."""
        if cancel:
            self._cancelled = True
        grace = self.spec.stop_timeout if timeout is None else timeout
        if catches_signal(self.pid, signal.SIGTERM) is not False and self.signal(signal.SIGTERM):
            with anyio.move_on_after(grace):
                await self._exited.wait()
        self.kill()
        await self._exited.wait()

    # -- observation ----------------------------------------------------------
    @functools.cached_property
    def command(self) -> str:
        """Its command line, shell-quoted (as the views show it; made once)."""
        return shlex.join(self.spec.argv)

    @property
    def setup_errno(self) -> int | None:
        """The errno of the start step its PID 1 failed at, before its command ran
        (None: it ran, or is running)."""
        error = self._exit.error if self._exit is not None else None
        return error.errno if error is not None and error.step != "exec" else None

    @property
    def done(self) -> bool:
        """Whether its PID 1 has exited (its Result may still be in the making)."""
        return self._exited.is_set()

    async def exited(self) -> None:
        """Return once its PID 1 has exited (without reading figures or removing)."""
        await self._exited.wait()

    def stats(self) -> cgroupfs.Stats:
        return self.cgroup.stats()

    def notify_exit(self, exited: Exited | None) -> None:
        """Its PID 1 was reaped (None: the spawner died, so it died too, status unknown)."""
        if self._exited.is_set():
            return
        self._exit = exited
        self._ended_mono = time.monotonic()
        self._ended_at = time.time()
        self._exited.set()

    # -- the end --------------------------------------------------------------
    async def wait(self) -> Result:
        """Wait for the end (killing it at the spec's timeout), then read the final
        figures from the cgroup and remove it. Cancelled, it stops the container first."""
        if self._result is not None:
            return self._result
        if self._waiting:
            await self._done.wait()
            assert self._result is not None
            return self._result
        self._waiting = True
        try:
            deadline = math.inf if self.spec.timeout is None else (
                self._started_mono + self.spec.timeout)
            if deadline == math.inf:
                await self._exited.wait()
            else:
                with anyio.move_on_after(deadline - time.monotonic()):
                    await self._exited.wait()
            if not self._exited.is_set():
                self._timed_out = True
                await self.stop()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.stop(cancel=True)
                await self._finish()
            raise
        return await self._finish()

    async def abandon(self) -> Result:
        """End it now whatever the spawner says (it may be hung or dead): what was not
        reported exited is recorded as dead with the spawner; then the cgroup goes."""
        self.notify_exit(None)
        with anyio.CancelScope(shield=True):
            result = await self._finish()
        return result

    async def _finish(self) -> Result:
        """Read the final figures, remove the cgroup, close the pidfd, tell the
        supervisor: once, however many tasks ask (the others wait for it)."""
        if self._finishing:
            await self._done.wait()
            assert self._result is not None
            return self._result
        self._finishing = True
        try:
            stats: cgroupfs.Stats | None
            try:
                stats = self.cgroup.stats("final")
            except cgroupfs.CgroupError:
                stats = None
            error = remove_empty_cgroup(self.cgroup)
            if error is _NOT_EMPTY:  # only then is there anything to wait for
                with anyio.CancelScope(shield=True):
                    error = await _destroy_cgroup(self.cgroup)
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            self._result = self._make_result(stats, error)
            # A cgroup that could not be removed keeps its journal entry: `supervise
            # gc` finds it there (with every hierarchy's path) once we are gone.
            if self._on_end is not None:
                self._on_end(self, error is not None)
        finally:
            self._done.set()
        assert self._result is not None
        return self._result

    def _make_result(self, stats: cgroupfs.Stats | None, error: str | None) -> Result:
        exited = self._exit
        exit_code: int | None
        sig: int | None
        if exited is None:
            exit_code, sig = None, None
            error = error or "the spawner died; the container's status is unknown"
        else:
            exit_code, sig = exit_code_from_wait_status(exited.status)
            if exited.error is not None:
                error = exited.error.message
        oom_killed = bool(stats and stats.oom_kills)
        if oom_killed and exit_code not in (None, 0):
            exit_code = 137  # docker's convention: what the kernel's SIGKILL would give
        cpu_user, cpu_system = cpu_times(
            stats.cpu_user_ns if stats else None, stats.cpu_system_ns if stats else None,
            exited.user_s if exited is not None else None,
            exited.system_s if exited is not None else None)
        ended_mono = self._ended_mono or time.monotonic()
        ended_at = self._ended_at or time.time()
        status = classify(
            exit_code=exit_code, signal=sig, oom_killed=oom_killed,
            timed_out=self._timed_out, cancelled=self._cancelled,
            error=_setup_error(exited, error),
        )
        return Result(
            name=self.name, line=self.spec.line, argv=list(self.spec.argv), status=status,
            exit_code=exit_code, signal=sig, oom_killed=oom_killed, timed_out=self._timed_out,
            attempts=1, started_at=iso_utc(self.started_at), ended_at=iso_utc(ended_at),
            wall_s=round(ended_mono - self._started_mono, 6),
            cpu_user_s=cpu_user, cpu_system_s=cpu_system,
            peak_memory_bytes=stats.memory_peak_bytes if stats else None,
            memory_limit_bytes=self.spec.limits.memory_bytes,
            stdout_path=None, stderr_path=None, error=error,
            writable=self.spec.writable_paths(), host=HOST,
        )


def _setup_error(exited: Exited | None, error: str | None) -> str | None:
    """An error that means supervise failed (not the command): setup steps, not exec."""
    if exited is not None and exited.error is not None and exited.error.step == "exec":
        return None
    return error

