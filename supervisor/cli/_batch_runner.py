"""The CLI around a Batch: results, joblog and logs files, --tag's relay, progress,
signals and the summary."""

from __future__ import annotations

import errno
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from .._batch import Batch, BatchOutcome, JobOutput
from .._batch_job import BatchJob
from .._container import Container
from .._errors import SuperviseError
from .._result import Result, Status
from .._results_file import LineWriter, repair_torn_tail
from .._sampling import BatchProgress, FinishedJob
from .._spec import DEVNULL
from .._summary import (
    JOBLOG_HEADER,
    SameErrors,
    Tally,
    end_message,
    format_summary,
    joblog_line,
)
from .._supervisor import Supervisor
from .._units import format_bytes
from ._batch_monitor import Monitor
from ._batch_options import BatchOptions, BatchUsageError
from ._output import EXIT_SUPERVISE_FAILED, say
from ._signals import STOP_SIGNALS, batch_signals, receive

if TYPE_CHECKING:
    from .._sampler import Target

EXIT_OK, EXIT_NOT_ALL_OK = 0, 1
PROGRESS_EVERY_S = 5.0


class BatchRunner:
    """One `supervise batch` run of checked jobs; `main` returns its exit status."""

    def __init__(self, jobs: list[BatchJob], options: BatchOptions, *, skipped: int = 0
                 ) -> None:
        self.jobs = jobs
        self.options = options
        self.skipped = skipped  # already ok in --results (--resume)
        self.monitor = Monitor(options.live, options.interval_s, options.stats_json,
                               warn=self.warn_once)
        self.finished: deque[FinishedJob] = deque(maxlen=50)
        self.results: LineWriter | None = None
        self.joblog: LineWriter | None = None
        self.batch: Batch | None = None
        self.interrupted_by: int | None = None
        self.started_mono = time.monotonic()
        self._relays: anyio.abc.TaskGroup | None = None
        self._seq = 0
        self._warned: set[str] = set()
        self.errors = SameErrors()  # (a thousand alike are not a thousand lines)
        self.tally = Tally()  # the summary, kept as the results come

    # -- output -----------------------------------------------------------------
    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            say(message)

    def output(self, job: BatchJob, attempt: int) -> JobOutput:
        logs = self.options.logs
        if logs is not None:
            out_path = os.path.join(logs, f"{job.name}.out")
            err_path = os.path.join(logs, f"{job.name}.err")
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            out: int | None = None
            try:
                out = os.open(out_path, flags, 0o644)
                err = os.open(err_path, flags, 0o644)
            except OSError as exc:
                if out is not None:
                    os.close(out)
                if exc.errno in (errno.EMFILE, errno.ENFILE):  # the batch waits for room
                    raise SuperviseError(f"--logs {logs}: {exc.strerror}",
                                         errno=exc.errno) from exc
                # A full or broken logs directory must not stop the batch: the job
                # runs, its output is discarded, and the user hears it once.
                self.warn_once("logs", f"--logs {logs}: {exc.strerror}: output of "
                               "jobs whose logs cannot be created is discarded")
                return JobOutput(DEVNULL, DEVNULL)
            return JobOutput(out, err, out_path, err_path)
        if self.options.tag and self._relays is not None:
            try:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
            except OSError as exc:
                raise SuperviseError(f"--tag: {exc.strerror}", errno=exc.errno) from exc
            try:
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
            except OSError as exc:
                os.close(out_r)
                os.close(out_w)
                raise SuperviseError(f"--tag: {exc.strerror}", errno=exc.errno) from exc
            self._relays.start_soon(_relay, out_r, job.name, 1)
            self._relays.start_soon(_relay, err_r, job.name, 2)
            return JobOutput(out_w, err_w)
        return JobOutput(DEVNULL, DEVNULL)

    # -- records ----------------------------------------------------------------
    def on_result(self, job: BatchJob, result: Result) -> None:
        self.tally.add(result)
        self._seq += 1
        seq = job.seq or self._seq  # its place in the input (jobs made in Python: finishing order)
        self.finished.append(FinishedJob(result.name, result.status, result.exit_code,
                                         result.wall_s, result.peak_memory_bytes))
        for writer, line_of in ((self.results, result.to_json),
                                (self.joblog, lambda: joblog_line(seq, result))):
            if writer is not None and not writer.write(line_of()):
                self.warn_once(writer.path, f"{writer.path}: {writer.error}: records are "
                               "being lost")
        logs = self.options.logs
        if logs is not None and result.stdout_path is not None and _full(logs):
            # (one warning about the logs: a directory out of inodes also fails opens)
            self.warn_once("logs", f"--logs {logs} is full: jobs' output is cut "
                           "short from here on")
        if result.status is Status.ERROR and result.error:
            line = self.errors.say(job.name, result.error)
            if line is not None:
                say(line)
        elif result.status not in (Status.OK, Status.CANCELLED):
            message = end_message(result, job.spec.timeout)
            say(message or f"{job.name} {result.status}: exit {result.exit_code}")

    def on_shortage(self, room: int, exc: SuperviseError) -> None:
        """A start found the machine short (descriptors, memory, processes) while other
        jobs ran: the batch goes on with fewer at once; said once."""
        self.warn_once("shortage", f"{exc} with {room} jobs running: the rest wait, "
                       "starting as others end")

    def on_start(self, job: BatchJob, container: Container, attempt: int) -> None:
        if attempt > 1:
            limit = container.spec.limits.memory_bytes
            extra = f" with -m {format_bytes(limit)}" if limit else ""
            say(f"{job.name}: attempt {attempt}{extra}")

    # -- progress and signals -----------------------------------------------------
    def progress(self) -> BatchProgress:
        assert self.batch is not None
        return BatchProgress(
            total=len(self.jobs), done=self.batch.done,
            running=len(self.batch.running), queued=len(self.batch.queue),
            counts=dict(self.batch.counts), elapsed_s=time.monotonic() - self.started_mono)

    def targets(self) -> list[Target]:
        # Lazy: only the Monitor samples, and _sampler brings psutil (~7 ms).
        from .._sampler import Target

        assert self.batch is not None
        return [Target(c.id, c.name, c.pid, c.command, c.started_at, c.cgroup)
                for c in self.batch.running.values()]

    def progress_line(self) -> str:
        assert self.batch is not None
        done = self.batch.done
        not_ok = done - self.batch.counts.get(Status.OK, 0)
        return (f"{done}/{len(self.jobs)} done ({not_ok} not ok), "
                f"{len(self.batch.running)} running, {len(self.batch.queue)} queued, "
                f"{time.monotonic() - self.started_mono:.0f}s")

    async def report_progress(self) -> None:
        while True:
            await anyio.sleep(PROGRESS_EVERY_S)
            say(self.progress_line())

    async def handle_signals(self, signals: AsyncIterator[int]) -> None:
        async for sig in signals:
            assert self.batch is not None
            if sig not in STOP_SIGNALS:
                name = signal.Signals(sig).name if sig < signal.SIGRTMIN else f"signal {sig}"
                self.warn_once(f"signal-{sig}", f"{name} ignored: a batch stops on SIGINT, "
                               "SIGTERM or SIGHUP")
                continue
            if self.interrupted_by is None:
                self.interrupted_by = sig
                say("stopping: no new jobs; running ones get SIGTERM "
                    "(Ctrl-C again to kill them now)")
                self.batch.stop()
                self.batch.cancel_running()
            else:
                self.batch.kill_running()

    # -- the whole run ------------------------------------------------------------
    async def main(self) -> int:
        self.results = self._writer("--results", self.options.results)
        self.joblog = self._writer("--joblog", self.options.joblog, JOBLOG_HEADER)
        for writer in (self.results, self.joblog):
            if writer is not None and writer.error is not None:
                self.warn_once(writer.path, f"{writer.path}: {writer.error}: records are "
                               "being lost")
        try:
            # Listen before anything starts: SIGINT, SIGTERM and SIGHUP (a closed
            # terminal) stop the batch cleanly; unheard, SIGHUP would end the process
            # and leave every running container's cgroups and state behind.
            with receive(batch_signals()) as signals:
                async with Supervisor(cgroup_parent=self.options.cgroup_parent,
                                      warn=say) as sup:
                    outcome = await self._run(sup, signals)
        finally:
            for writer in (self.results, self.joblog):
                if writer is not None:
                    writer.close()
        return self._finish(outcome)

    async def _run(self, sup: Supervisor, signals: AsyncIterator[int]) -> BatchOutcome:
        self.batch = Batch(sup, self.jobs, self.options.policy, output=self.output,
                           on_start=self.on_start, on_result=self.on_result,
                           on_shortage=self.on_shortage, keep_results=False)
        async with anyio.create_task_group() as relays:
            self._relays = relays
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.handle_signals, signals)
                if not self.monitor.live:
                    tg.start_soon(self.report_progress)
                if self.monitor.active:
                    tg.start_soon(self.monitor.run, self)
                outcome = await self.batch.run()
                tg.cancel_scope.cancel()
        return outcome

    @staticmethod
    def _writer(flag: str, path: str | None, header: str | None = None) -> LineWriter | None:
        """The file's writer; BatchUsageError (exit 2, before anything runs) if it
        cannot be opened but for want of space (then lines are lost, counted)."""
        if path is None:
            return None
        try:
            if flag == "--results":
                repair_torn_tail(path)
            return LineWriter(path, header=header)
        except OSError as exc:
            raise BatchUsageError(f"{flag} {path}: {exc.strerror}") from exc

    def _finish(self, outcome: BatchOutcome) -> int:
        for line in self.errors.rest():
            say(line)
        summary = self.tally.summary()
        wall = time.monotonic() - self.started_mono
        for line in format_summary(summary, wall, not_run=outcome.not_started):
            say(line)
        if self.skipped:
            say(f"{self.skipped} jobs skipped: already ok in {self.options.results}")
        if outcome.halted is not None:
            say(f"halted: --halt {outcome.halted.when},{outcome.halted.condition} reached")
        lost = [w for w in (self.results, self.joblog) if w is not None and w.lost]
        for writer in lost:
            say(f"{writer.lost} of {self.tally.total} records were not written to "
                f"{writer.path} ({writer.error})")
        if lost:
            return EXIT_SUPERVISE_FAILED  # what it ran is not all on record
        if self.interrupted_by is not None:
            return 128 + self.interrupted_by
        if summary.all_ok and not outcome.not_started:
            return EXIT_OK
        return EXIT_NOT_ALL_OK


def _full(path: str) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail == 0 or (st.f_files > 0 and st.f_favail == 0)


async def _relay(fd: int, name: str, target: int) -> None:
    """Copy a job's output to ours, each line prefixed with the job's name (--tag)."""
    os.set_blocking(fd, False)
    pending = b""
    prefix = name.encode() + b"\t"
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                await anyio.wait_readable(fd)
                continue
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                os.write(target, b"".join(prefix + line + b"\n" for line in lines))
        if pending:
            os.write(target, prefix + pending + b"\n")
    finally:
        os.close(fd)
