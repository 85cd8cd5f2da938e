"""`supervise batch FILE`: many limited jobs, results, logs, progress."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import click
import trio

from .._batch import Batch, BatchJob, BatchOutcome, BatchPolicy, JobOutput
from .._container import Container
from .._errors import SuperviseError, UsageError
from .._gc import gc_quietly
from .._host import available_memory, host_facts, read_host_file, require_root
from .._jobs import Job, JobsFileError, parse_jobs
from .._options import HostFacts, RunOptions, build_spec
from .._result import Result
from .._results_file import LineWriter, read_results, repair_torn_tail, resume_key, succeeded
from .._sampling import BatchProgress, ContainerSample, FinishedJob, HostSample
from .._schedule import Admission, parse_halt, parse_retry_on
from .._spec import DEVNULL
from .._summary import JOBLOG_HEADER, end_message, format_summary, joblog_line, summarize
from .._supervisor import Supervisor
from .._units import format_bytes, parse_interval, parse_size
from ._flags import limit_options, parse_job_options, run_fields
from ._output import EXIT_BATCH_USAGE, say
from ._signals import STOP_SIGNALS

if TYPE_CHECKING:
    from rich.live import Live

    from .._sampler import Target

EXIT_OK, EXIT_NOT_ALL_OK = 0, 1
PROGRESS_EVERY_S = 5.0


class BatchUsageError(UsageError):
    exit_code = EXIT_BATCH_USAGE


def _read_jobs_file(path: str) -> str:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise BatchUsageError(f"{path}: {exc.strerror}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BatchUsageError(f"{path}:{line}: not UTF-8") from exc


def _size(flag: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except UsageError as exc:
        raise BatchUsageError(f"{flag}: {exc}") from exc


def check_jobs(jobs: list[Job], path: str, host: HostFacts, admission: Admission
               ) -> list[BatchJob]:
    """Each job's container spec; every bad line reported at once (FILE:LINE)."""
    checked: list[BatchJob] = []
    errors: list[str] = []
    for job in jobs:
        try:
            spec = build_spec(list(job.argv), job.options, host, default_hostname=job.name,
                              read_file=read_host_file)
        except UsageError as exc:
            errors.append(f"{path}:{job.line}: {exc}")
            continue
        memory = admission.memory_of(spec.limits.memory_bytes)
        if admission.too_big(memory):
            assert admission.memory_budget is not None
            errors.append(
                f"{path}:{job.line}: memory limit {format_bytes(memory)} exceeds the memory "
                f"budget {format_bytes(admission.memory_budget)}")
            continue
        checked.append(BatchJob(job.name, dataclasses.replace(spec, name=job.name,
                                                              line=job.line),
                                unique_name=job.options.name is not None))
    if errors:
        raise JobsFileError(errors)
    return checked


@click.command("batch", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("jobs_file", metavar="FILE")
@click.option("-j", "--jobs", "max_jobs", type=click.IntRange(min=1), metavar="N",
              help="Run at most N jobs at once (default: the number of CPUs).")
@click.option("--results", metavar="FILE", help="Append one JSON record per finished job.")
@click.option("--logs", metavar="DIR", help="Write each job's stdout/stderr to DIR/NAME.out/.err.")
@click.option("--joblog", metavar="FILE", help="GNU parallel's joblog format.")
@click.option("--resume", is_flag=True, help="Skip jobs already ok in --results FILE.")
@click.option("--memory-budget", metavar="SIZE",
              help="Start a job only if the running jobs' memory limits plus its own fit "
                   "(default: MemAvailable at start).")
@click.option("--default-memory", metavar="SIZE",
              help="What a job without -m counts against the budget (default 0).")
@click.option("--retries", type=click.IntRange(min=0), default=0, metavar="N",
              help="Run a job up to N more times when it ends in a --retry-on status.")
@click.option("--retry-on", default="failed,oom,timeout,signaled,error", metavar="LIST",
              show_default=True, help="Statuses that are retried.")
@click.option("--retry-memory-factor", type=click.FloatRange(min=1.0), default=1.0,
              metavar="F", help="Multiply the memory limit by F on each OOM retry.")
@click.option("--halt", default="never", metavar="POLICY",
              help="never, or soon|now,fail|success|done|oom=N|P% (as GNU parallel).")
@click.option("--tag", is_flag=True, help="Relay output to the terminal, each line "
              "prefixed with the job's name (without --logs).")
@click.option("--live/--no-live", default=None,
              help="Show the live view (default: when stdout is a terminal and no --tag).")
@click.option("--interval", default="1s", metavar="DURATION", show_default=True,
              help="How often the live view and --stats-json sample the containers.")
@click.option("--stats-json", metavar="FILE",
              help="Append each sample (host and running containers) as a JSON line.")
@click.option("--cgroup-parent", metavar="PATH",
              help="Create the containers' cgroups below this one instead of our own.")
@limit_options
def batch_command(jobs_file: str, max_jobs: int | None, results: str | None, logs: str | None,
                  joblog: str | None, resume: bool, memory_budget: str | None,
                  default_memory: str | None, retries: int, retry_on: str,
                  retry_memory_factor: float, halt: str, tag: bool, live: bool | None,
                  interval: str, stats_json: str | None, cgroup_parent: str | None,
                  **flags: Any) -> None:
    """Run each line of FILE (- for stdin) in its own limited container.

    A line is [JOB OPTIONS --] COMMAND [ARG...], split like a shell would; job
    options are run's and override the defaults given here."""
    host = host_facts()
    if not math.isfinite(retry_memory_factor):
        raise BatchUsageError(
            f"--retry-memory-factor {retry_memory_factor}: expected a finite number >= 1")
    budget = _size("--memory-budget", memory_budget)
    if budget == 0:
        raise BatchUsageError("--memory-budget 0: no job could ever start")
    try:
        policy = BatchPolicy(
            admission=Admission(
                max_jobs=max_jobs or host.cpu_count,
                memory_budget=budget if budget is not None else available_memory(),
                default_memory=_size("--default-memory", default_memory)),
            retries=retries, retry_on=parse_retry_on(retry_on),
            retry_memory_factor=retry_memory_factor, halt=parse_halt(halt))
    except UsageError as exc:
        raise BatchUsageError(str(exc)) from exc
    try:
        interval_s = parse_interval(interval)
    except UsageError as exc:
        raise BatchUsageError(str(exc)) from exc
    if live is None:
        live = sys.stdout.isatty() and not tag
    elif live and tag:
        raise BatchUsageError("--live and --tag both want the terminal: choose one")
    if resume and results is None:
        raise BatchUsageError("--resume needs --results FILE")
    if tag and logs is not None:
        raise BatchUsageError("--tag relays output to the terminal; with --logs it goes to "
                              "files: choose one")
    defaults = RunOptions(**run_fields(flags))
    text = _read_jobs_file(jobs_file)
    shown = "<stdin>" if jobs_file == "-" else jobs_file
    jobs = check_jobs(parse_jobs(text, shown, defaults=defaults, parse_options=parse_job_options),
                      shown, host, policy.admission)
    skipped = 0
    if resume and results is not None:
        try:
            done = succeeded(read_results(results))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 JSON Lines"
            raise BatchUsageError(f"--results {results}: {reason}") from exc
        remaining = [j for j in jobs if resume_key(j.name, j.spec.argv) not in done]
        skipped = len(jobs) - len(remaining)
        jobs = remaining
    require_root()
    if logs is not None:
        try:
            os.makedirs(logs, exist_ok=True)
        except OSError as exc:
            raise SuperviseError(f"--logs {logs}: {exc.strerror}") from exc
    runner = BatchRunner(jobs, policy, results=results, logs=logs, joblog=joblog, tag=tag,
                         skipped=skipped, monitor=Monitor(live, interval_s, stats_json))
    gc_quietly()
    code = trio.run(runner.main, cgroup_parent)
    sys.exit(code)


class BatchRunner:
    """The CLI around a Batch: files, output relay, progress, signals, summary."""

    def __init__(self, jobs: list[BatchJob], policy: BatchPolicy, *, results: str | None,
                 logs: str | None, joblog: str | None, tag: bool, skipped: int,
                 monitor: Monitor | None = None) -> None:
        self.monitor = monitor or Monitor(False, 1.0, None)
        self.finished: deque[FinishedJob] = deque(maxlen=50)
        self.jobs = jobs
        self.policy = policy
        self.logs = logs
        self.tag = tag
        self.skipped = skipped
        self.results_path = results
        self.joblog_path = joblog
        self.results: LineWriter | None = None
        self.joblog: LineWriter | None = None
        self.batch: Batch | None = None
        self.interrupted_by: int | None = None
        self.started_mono = time.monotonic()
        self._relays: anyio.abc.TaskGroup | None = None
        self._seq = 0
        self._warned: set[str] = set()

    # -- output -----------------------------------------------------------------
    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            say(message)

    def output(self, job: BatchJob, attempt: int) -> JobOutput:
        if self.logs is not None:
            out_path = os.path.join(self.logs, f"{job.name}.out")
            err_path = os.path.join(self.logs, f"{job.name}.err")
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            out: int | None = None
            try:
                out = os.open(out_path, flags, 0o644)
                err = os.open(err_path, flags, 0o644)
            except OSError as exc:
                if out is not None:
                    os.close(out)
                # A full or broken logs directory must not stop the batch: the job
                # runs, its output is discarded, and the user hears it once.
                self.warn_once("logs-open", f"--logs {self.logs}: {exc.strerror}: output of "
                               "jobs whose logs cannot be created is discarded")
                return JobOutput(DEVNULL, DEVNULL)
            return JobOutput(out, err, out_path, err_path)
        if self.tag and self._relays is not None:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            self._relays.start_soon(_relay, out_r, job.name, 1)
            self._relays.start_soon(_relay, err_r, job.name, 2)
            return JobOutput(out_w, err_w)
        return JobOutput(DEVNULL, DEVNULL)

    # -- records ----------------------------------------------------------------
    def on_result(self, job: BatchJob, result: Result) -> None:
        self._seq += 1
        self.finished.append(FinishedJob(result.name, result.status, result.exit_code,
                                             result.wall_s, result.peak_memory_bytes))
        for writer, line_of in ((self.results, result.to_json),
                                (self.joblog, lambda: joblog_line(self._seq, result))):
            if writer is not None:
                try:
                    writer.write(line_of())
                except OSError as exc:
                    self.warn_once(writer.path, f"{writer.path}: {exc.strerror}: records are "
                                   "being lost")
        if self.logs is not None and result.stdout_path is not None and _full(self.logs):
            self.warn_once("logs-full", f"--logs {self.logs} is full: jobs' output is cut "
                           "short from here on")
        if result.status not in ("ok", "cancelled"):
            message = end_message(result, job.spec.timeout)
            if message is not None and result.error:
                message = f"{job.name}: {message}"
            say(message or f"{job.name} {result.status}: exit {result.exit_code}")

    def on_start(self, job: BatchJob, container: Container, attempt: int) -> None:
        if attempt > 1:
            limit = container.spec.limits.memory_bytes
            extra = f" with -m {format_bytes(limit)}" if limit else ""
            say(f"{job.name}: attempt {attempt}{extra}")

    # -- progress and signals -----------------------------------------------------
    def progress(self) -> BatchProgress:
        assert self.batch is not None
        return BatchProgress(
            total=len(self.jobs), done=len(self.batch.outcome.results),
            running=len(self.batch.running), queued=len(self.batch.queue),
            counts=dict(self.batch.counts), elapsed_s=time.monotonic() - self.started_mono)

    def targets(self) -> list[Target]:
        # Lazy: only the Monitor samples, and _sampler brings psutil (~7 ms).
        from .._sampler import Target

        assert self.batch is not None
        return [Target(c.id, c.name, c.pid, shlex.join(c.spec.argv), c.started_at, c.cgroup)
                for c in self.batch.running.values()]

    def progress_line(self) -> str:
        assert self.batch is not None
        done = len(self.batch.outcome.results)
        not_ok = done - self.batch.counts.get("ok", 0)
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
            if self.interrupted_by is None:
                self.interrupted_by = sig
                say("stopping: no new jobs; running ones get SIGTERM "
                    "(Ctrl-C again to kill them now)")
                self.batch.stop()
                self.batch.cancel_running()
            else:
                self.batch.kill_running()

    # -- the whole run ------------------------------------------------------------
    async def main(self, cgroup_parent: str | None) -> int:
        if self.results_path is not None:
            repair_torn_tail(self.results_path)
            self.results = LineWriter(self.results_path)
        if self.joblog_path is not None:
            self.joblog = LineWriter(self.joblog_path, header=JOBLOG_HEADER)
        try:
            # Listen before anything starts: SIGINT, SIGTERM and SIGHUP (a closed
            # terminal) stop the batch cleanly; unheard, SIGHUP would end the process
            # and leave every running container's cgroups and state behind.
            with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
                async with Supervisor(cgroup_parent=cgroup_parent, warn=say) as sup:
                    outcome = await self._run(sup, signals)
        finally:
            for writer in (self.results, self.joblog):
                if writer is not None:
                    writer.close()
        return self._finish(outcome)

    async def _run(self, sup: Supervisor, signals: AsyncIterator[int]) -> BatchOutcome:
        self.batch = Batch(sup, self.jobs, self.policy, output=self.output,
                           on_start=self.on_start, on_result=self.on_result)
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

    def _finish(self, outcome: BatchOutcome) -> int:
        summary = summarize(outcome.results)
        wall = time.monotonic() - self.started_mono
        for line in format_summary(summary, wall, not_run=outcome.not_started):
            say(line)
        if self.skipped:
            say(f"{self.skipped} jobs skipped: already ok in {self.results_path}")
        if outcome.halted is not None:
            say(f"halted: --halt {outcome.halted.when},{outcome.halted.condition} reached")
        if self.interrupted_by is not None:
            return 128 + self.interrupted_by
        if summary.all_ok and not outcome.not_started:
            return EXIT_OK
        return EXIT_NOT_ALL_OK


class Monitor:
    """Samples the running containers every interval, for the live view (rich Live on
    stdout) and/or --stats-json."""

    def __init__(self, live: bool, interval_s: float, stats_json: str | None) -> None:
        self.live = live
        self.interval_s = interval_s
        self.stats_json = stats_json

    @property
    def active(self) -> bool:
        return self.live or self.stats_json is not None

    async def run(self, runner: BatchRunner) -> None:
        """Until cancelled (the batch is over); the last frame shows the end state."""
        # Lazy: psutil (~7 ms) is needed only when sampling.
        from .._sampler import Sampler, sample_record

        sampler = Sampler()
        writer = LineWriter(self.stats_json) if self.stats_json is not None else None
        display: Live | None = None
        if self.live:
            # Lazy: rich (~15 ms) only for the live view, not for --stats-json alone.
            from rich.console import Console
            from rich.live import Live

            from .._view import batch_view

            console = Console(highlight=False)
            display = Live(console=console, auto_refresh=False, redirect_stdout=False,
                           redirect_stderr=True)

        def show(host: HostSample, rows: list[ContainerSample]) -> None:
            if display is not None:
                width, height = display.console.size
                display.update(batch_view(runner.progress(), host, rows, list(runner.finished),
                                          width=width, height=height - 1), refresh=True)

        try:
            with display if display is not None else contextlib.nullcontext():
                try:
                    while True:
                        now = time.time()
                        host = sampler.host()
                        rows = sampler.sample(runner.targets(), host, now)
                        if writer is not None:
                            writer.write(json.dumps(sample_record(host, rows, now)))
                        show(host, rows)
                        await anyio.sleep(self.interval_s)
                finally:
                    show(sampler.host(), [])
        finally:
            if writer is not None:
                writer.close()


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
