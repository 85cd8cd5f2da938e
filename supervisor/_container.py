"""A running container: its pid, cgroup, signals, stats, and how it ends."""

from __future__ import annotations

import math
import os
import signal
import time
from typing import TYPE_CHECKING

import anyio

import cgroupfs

from ._result import Result, classify, cpu_times, exit_code_from_wait_status, iso_utc
from ._spawner_client import Exited, SpawnerGone, Started
from ._spec import ContainerSpec

if TYPE_CHECKING:
    from ._supervisor import Supervisor


class Container:
    """Created by `Supervisor.start`; `wait()` returns its `Result` once it has ended
    and its cgroup is gone. The spec's timeout applies inside `wait()`."""

    def __init__(
        self, supervisor: Supervisor, cid: str, name: str, spec: ContainerSpec,
        cgroup: cgroupfs.Cgroup, started: Started, started_at: float,
    ) -> None:
        self.id = cid
        self.name = name
        self.spec = spec
        self.cgroup = cgroup
        self.pid = started.pid
        self.started_at = started_at
        self._started_mono = time.monotonic()
        self._supervisor = supervisor
        self._pidfd: int | None = started.pidfd
        self._exited = anyio.Event()
        self._exit: Exited | None = None
        self._ended_mono: float | None = None
        self._ended_at: float | None = None
        self._done = anyio.Event()
        self._result: Result | None = None
        self._finishing = False
        self.timed_out = False
        self.cancelled = False
        self.attempt = 1
        self.unique_name = True

    # -- signals --------------------------------------------------------------
    def signal(self, sig: int) -> bool:
        """Send sig to the container's PID 1 (by pidfd: never a recycled pid).
        False if it has already ended."""
        if self._pidfd is None or self._exited.is_set():
            return False
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    async def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL once timeout (default: the spec's stop_timeout) passes.

        A PID 1 without a SIGTERM handler never sees the signal (the kernel drops it,
        even from outside the namespace): then the grace is pointless, and it is
        killed at once."""
        grace = self.spec.stop_timeout if timeout is None else timeout
        if catches_signal(self.pid, signal.SIGTERM) is not False and self.signal(signal.SIGTERM):
            with anyio.move_on_after(grace):
                await self._exited.wait()
        self.kill()
        await self._exited.wait()

    # -- observation ----------------------------------------------------------
    @property
    def done(self) -> bool:
        return self._exited.is_set()

    def stats(self) -> cgroupfs.Stats:
        return self.cgroup.stats()

    def _on_exit(self, exited: Exited | None) -> None:
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
        if self._finishing:
            await self._done.wait()
            assert self._result is not None
            return self._result
        self._finishing = True
        try:
            deadline = math.inf if self.spec.timeout is None else (
                self._started_mono + self.spec.timeout)
            with anyio.move_on_after(deadline - time.monotonic()
                                     if deadline != math.inf else math.inf):
                await self._exited.wait()
            if not self._exited.is_set():
                self.timed_out = True
                await self.stop()
        except BaseException:
            self.cancelled = True
            with anyio.CancelScope(shield=True):
                await self.stop()
                self._finish()
            raise
        return self._finish()

    def _finish(self) -> Result:
        if self._result is not None:
            return self._result
        stats: cgroupfs.Stats | None
        try:
            stats = self.cgroup.stats(final=True)
        except cgroupfs.CgroupError:
            stats = None
        error: str | None = None
        try:
            self.cgroup.destroy()
        except cgroupfs.CgroupError as exc:
            error = str(exc)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        # A cgroup that could not be removed keeps its state file: `supervise gc`
        # finds it there (with every hierarchy's path) once we are gone.
        self._supervisor._forget(self, keep_state=error is not None)
        self._result = self._make_result(stats, error)
        self._done.set()
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
            if exited.error:
                error = str(exited.error.get("message"))
        oom_killed = bool(stats and stats.oom_kills)
        if oom_killed and exit_code not in (None, 0):
            exit_code = 137  # docker's convention: what the kernel's SIGKILL would give
        rusage = exited.rusage if exited is not None else {}
        cpu_user, cpu_system = cpu_times(
            stats.cpu_user_ns if stats else None, stats.cpu_system_ns if stats else None,
            _float(rusage.get("utime")), _float(rusage.get("stime")))
        ended_mono = self._ended_mono or time.monotonic()
        ended_at = self._ended_at or time.time()
        status = classify(
            exit_code=exit_code, signal=sig, oom_killed=oom_killed,
            timed_out=self.timed_out, cancelled=self.cancelled, error=_setup_error(exited, error),
        )
        return Result(
            name=self.name, line=self.spec.line, argv=list(self.spec.argv), status=status,
            exit_code=exit_code, signal=sig, oom_killed=oom_killed, timed_out=self.timed_out,
            attempts=self.attempt, started_at=iso_utc(self.started_at), ended_at=iso_utc(ended_at),
            wall_s=round(ended_mono - self._started_mono, 6),
            cpu_user_s=cpu_user, cpu_system_s=cpu_system,
            peak_memory_bytes=stats.memory_peak_bytes if stats else None,
            memory_limit_bytes=self.spec.limits.memory_bytes,
            stdout_path=None, stderr_path=None, error=error,
        )


def catches_signal(pid: int, sig: int) -> bool | None:
    """Whether the process has a handler for sig (SigCgt in /proc/PID/status); None
    if that cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except (OSError, ValueError, IndexError):
        return None
    return None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _setup_error(exited: Exited | None, error: str | None) -> str | None:
    """An error that means supervise failed (not the command): setup steps, not exec."""
    if exited is not None and exited.error and exited.error.get("step") == "exec":
        return None
    return error


__all__ = ["Container", "SpawnerGone"]
