"""Running many jobs, each in its own container: admission, retries, halting, results.

`run_batch` is the Python API behind `supervise batch`; a program calls it with
a Supervisor, jobs and a policy, and hears about each job through callbacks.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc

from ._batch_job import BatchJob, BatchPolicy
from ._container import Container
from ._errors import SuperviseError
from ._result import HOST, Result, Status, classify, iso_utc
from ._schedule import HaltPolicy, retry_memory, should_retry
from ._spec import DEVNULL, ContainerSpec
from ._supervisor import Supervisor


@dataclass(frozen=True)
class JobOutput:
    """Where one attempt's output goes: fds to hand to the container (closed by the batch
    once it has started) and the paths to record (None when not kept)."""

    stdout: int | None = DEVNULL
    stderr: int | None = DEVNULL
    stdout_path: str | None = None
    stderr_path: str | None = None


@dataclass
class BatchOutcome:
    results: list[Result] = field(default_factory=list)
    halted: HaltPolicy | None = None
    not_started: int = 0


def _discard(job: BatchJob, attempt: int) -> JobOutput:
    return JobOutput()


_NO_DESCRIPTOR = frozenset({errno.EMFILE, errno.ENFILE})
_STOP, _KILL = 1, 2  # how the running jobs are being ended


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None and fd >= 0:
            os.close(fd)


class Batch:
    """One run of many jobs. `running` and `queued` are there for live views."""

    def __init__(
        self, supervisor: Supervisor, jobs: Sequence[BatchJob], policy: BatchPolicy, *,
        output: Callable[[BatchJob, int], JobOutput] = _discard,
        on_start: Callable[[BatchJob, Container, int], None] | None = None,
        on_result: Callable[[BatchJob, Result], None] | None = None,
        on_shortage: Callable[[int, SuperviseError], None] | None = None,
        keep_results: bool = True,
    ) -> None:
        self.supervisor = supervisor
        self.jobs = list(jobs)
        self.policy = policy
        self.output = output
        self.on_start = on_start
        self.on_result = on_result
        self.on_shortage = on_shortage
        # the outcome's list of results; without it (on_result takes each one) a batch
        # of a million jobs holds none of them
        self.keep_results = keep_results
        self.done = 0  # results recorded
        # At most this many at once, once a start found the machine short of something
        # (descriptors, memory, processes) while others ran: what they held then;
        # probing one more with each start that works at the limit. None: as the
        # admission allows.
        self.room: int | None = None
        self.queue: deque[tuple[BatchJob, int, int | None]] = deque(
            (job, 1, job.spec.limits.memory_bytes) for job in self.jobs)
        self.reserved: dict[str, int] = {}
        self.running: dict[str, Container] = {}
        self.outcome = BatchOutcome()
        self.counts: Counter[str] = Counter()
        self._wake = anyio.Event()
        self._stopping = False
        self._ending = 0  # _STOP or _KILL once the running jobs are being ended
        self._tg: anyio.abc.TaskGroup | None = None

    def _notify(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Start no more jobs (the running ones go on)."""
        self._stopping = True
        self._notify()

    def cancel_running(self) -> None:
        """Stop the running jobs (SIGTERM, their stop timeout, SIGKILL); they end
        as `cancelled`. So are those still starting, once they have."""
        self._ending = max(self._ending, _STOP)
        for container in list(self.running.values()):
            self._end(container)

    def kill_running(self) -> None:
        """SIGKILL the running jobs (and those still starting, once they have)."""
        self._ending = _KILL
        for container in list(self.running.values()):
            self._end(container)

    def _end(self, container: Container) -> None:
        if self._ending == _KILL:
            container.kill(cancel=True)
        elif self._ending == _STOP and self._tg is not None:
            self._tg.start_soon(functools.partial(container.stop, cancel=True))

    async def run(self) -> BatchOutcome:
        admission = self.policy.admission
        async with anyio.create_task_group() as tg:
            self._tg = tg
            while True:
                while self.queue and not self._stopping:
                    job, attempt, memory = self.queue[0]
                    reserve = admission.memory_of(memory)
                    if not admission.can_start(reserve, self.reserved.values()) or (
                            self.room is not None and len(self.reserved) >= self.room):
                        break
                    self.queue.popleft()
                    self.reserved[job.name] = reserve
                    tg.start_soon(self._run_one, job, attempt, memory)
                if not self.reserved and (not self.queue or self._stopping):
                    break
                await self._wake.wait()
                self._wake = anyio.Event()
            self._tg = None
        self.outcome.not_started = len(self.queue)
        return self.outcome

    async def _run_one(self, job: BatchJob, attempt: int, memory: int | None) -> None:
        spec = _with_memory(job.spec, memory)
        output = JobOutput(None, None)
        started_at = time.time()
        result: Result | None = None
        container: Container | None = None
        try:
            output = self.output(job, attempt)
            try:
                container = await self.supervisor.start(
                    dataclasses.replace(spec, stdout=output.stdout, stderr=output.stderr),
                    unique_name=job.unique_name)
            finally:
                _close(output.stdout, output.stderr)
            self.running[job.name] = container
            if self._ending:  # it was starting when the running ones were stopped
                self._end(container)
            if self.room is not None and len(self.running) >= self.room:
                self.room += 1  # (room may have come: try one more, until short again)
            if self.on_start is not None:
                self.on_start(job, container, attempt)
            result = await container.wait()
            if container.setup_errno in _NO_DESCRIPTOR and result.error:
                # its PID 1 could not open what it needed: the spawner is at its limit
                # (a child starts with a copy of its descriptors)
                raise SuperviseError(result.error, errno=container.setup_errno)
        except SuperviseError as exc:
            if exc.shortage and self._hold_back(job, attempt, memory, exc):
                return
            result = _error_result(job, spec, attempt, started_at, str(exc))
        except anyio.get_cancelled_exc_class():
            if container is not None:
                with anyio.CancelScope(shield=True):
                    result = await container.wait()
                    self._record(job, dataclasses.replace(
                        result, attempts=attempt, stdout_path=output.stdout_path,
                        stderr_path=output.stderr_path))
            raise
        finally:
            self.running.pop(job.name, None)
            self.reserved.pop(job.name, None)
            self._notify()
        result = dataclasses.replace(result, attempts=attempt, stdout_path=output.stdout_path,
                                     stderr_path=output.stderr_path)
        if (not self._stopping and result.status != Status.CANCELLED
                and should_retry(result.status, attempt, self.policy.retries,
                                 self.policy.retry_on)):
            next_memory = memory
            if result.status == Status.OOM:
                next_memory = retry_memory(memory, self.policy.retry_memory_factor,
                                           self.policy.admission.memory_budget)
            self.queue.appendleft((job, attempt + 1, next_memory))
            return
        self._record(job, result)

    def _hold_back(self, job: BatchJob, attempt: int, memory: int | None,
                   exc: SuperviseError) -> bool:
        """A start the machine had no room for: back to the queue's head, and no more
        at once than run now, if any do (their end makes room); else False."""
        running = len(self.running)
        if not running or self._stopping:
            return False
        self.room = running if self.room is None else min(self.room, running)
        self.queue.appendleft((job, attempt, memory))
        if self.on_shortage is not None:
            self.on_shortage(self.room, exc)
        return True

    def _record(self, job: BatchJob, result: Result) -> None:
        self.done += 1
        if self.keep_results:
            self.outcome.results.append(result)
        self.counts[result.status] += 1
        if self.on_result is not None:
            self.on_result(job, result)
        halt = self.policy.halt
        if (halt is not None and self.outcome.halted is None
                and halt.triggered(self.counts, len(self.jobs))):
            self.outcome.halted = halt
            self.stop()
            if halt.when == "now":
                self.cancel_running()


def _with_memory(spec: ContainerSpec, memory: int | None) -> ContainerSpec:
    limits = spec.limits
    if memory == limits.memory_bytes:
        return spec
    swap = limits.memory_swap_bytes
    if swap is not None and swap != -1 and limits.memory_bytes is not None and memory:
        swap = memory + (swap - limits.memory_bytes)  # keep the same room for swap
    return dataclasses.replace(
        spec, limits=dataclasses.replace(limits, memory_bytes=memory, memory_swap_bytes=swap))


def _error_result(job: BatchJob, spec: ContainerSpec, attempt: int, started_at: float,
                  message: str) -> Result:
    now = time.time()
    return Result(
        name=job.name, line=spec.line, argv=list(spec.argv),
        status=classify(exit_code=None, signal=None, oom_killed=False, timed_out=False,
                        cancelled=False, error=message),
        exit_code=None, signal=None, oom_killed=False, timed_out=False, attempts=attempt,
        started_at=iso_utc(started_at), ended_at=iso_utc(now), wall_s=round(now - started_at, 6),
        cpu_user_s=None, cpu_system_s=None, peak_memory_bytes=None,
        memory_limit_bytes=spec.limits.memory_bytes, stdout_path=None, stderr_path=None,
        error=message, writable=spec.writable_paths(), host=HOST,
    )


async def run_batch(
    supervisor: Supervisor, jobs: Sequence[BatchJob], policy: BatchPolicy, *,
    output: Callable[[BatchJob, int], JobOutput] = _discard,
    on_start: Callable[[BatchJob, Container, int], None] | None = None,
    on_result: Callable[[BatchJob, Result], None] | None = None,
) -> BatchOutcome:
    """Run every job in its own container within the policy; results in end order."""
    batch = Batch(supervisor, jobs, policy, output=output, on_start=on_start,
                  on_result=on_result)
    return await batch.run()
