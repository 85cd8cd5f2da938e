"""`supervise batch FILE --slurm`: submit the batch as a Slurm job array of shards, wait for
it, merge what the shards recorded (see supervisor/_slurm.py for the decisions)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._batch_job import BatchJob
from .._errors import SuperviseError
from .._result import STATUSES, Result, Status
from .._results_file import LineWriter, read_results
from .._slurm import (
    SHARD_RESULTS,
    ShardRow,
    merge,
    parse_task_states,
    parse_tasks,
    progress_line,
    sbatch_argv,
    shard_argv,
    shard_rows,
)
from .._summary import JOBLOG_HEADER, SameErrors, format_summary, joblog_line, summarize
from ._batch_options import BatchOptions, BatchUsageError
from ._output import EXIT_SUPERVISE_FAILED, say

if TYPE_CHECKING:
    from rich.live import Live

_TASK = "\0TASK\0"  # where the shell puts $SLURM_ARRAY_TASK_ID
POLL_S = 0.1  # (squeue is cheap; the end of the array is seen this soon)
PROGRESS_S = 5.0


def run_on_slurm(options: BatchOptions, jobs: Sequence[BatchJob], skipped: int, shards: int,
                 partition: str | None, sbatch_args: Sequence[str],
                 memory_budget_given: bool) -> int:
    """Submit, wait, merge; the batch's exit status. jobs: those to run (resuming:
    what is not ok in --results, which the shards skip too; skipped of them)."""
    if not jobs:
        say(f"{skipped} jobs skipped: already ok in {options.results}")
        return 0
    assert options.results is not None
    results_dir = f"{options.results}.shards"
    os.makedirs(results_dir, exist_ok=True)
    for old in glob.glob(os.path.join(results_dir, "*")):
        os.unlink(old)
    argv = sys.argv[sys.argv.index("batch") + 1:]
    command = shard_argv(argv, sys.executable, results_dir,
                         options.results if options.resume else None)
    where = command.index("--results") + 1
    command[where] = command[where].replace("$SLURM_ARRAY_TASK_ID", _TASK)
    wrapped = " ".join(shlex.quote(w) for w in command).replace(_TASK, "'\"$SLURM_ARRAY_TASK_ID\"'")
    # A shard that recorded every job ends 0 for Slurm (COMPLETED), whatever its jobs
    # did (its exit 1: some were not ok, which the results say); any other status (its
    # own failure: 125, 2, a signal) stays, and Slurm shows the task FAILED.
    wrapped += '; s=$?; [ "$s" -eq 1 ] && s=0; exit "$s"'
    budget = options.policy.admission.memory_budget if memory_budget_given else None
    submit = sbatch_argv(shards, options.policy.admission.max_jobs,
                         None if budget is None else max(1, budget >> 20), results_dir,
                         partition, sbatch_args, wrapped)
    try:
        done = subprocess.run(submit, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise SuperviseError(f"--slurm: sbatch: {exc.strerror} (is Slurm installed?)") from exc
    if done.returncode != 0:
        raise SuperviseError(f"--slurm: sbatch: {done.stderr.strip() or done.returncode}")
    job_id = done.stdout.strip().split(";")[0]
    say(f"slurm: job array {job_id}, {shards} shards of {len(jobs)} jobs")
    started = time.monotonic()
    interrupted: int | None = None
    watch = _Watch(job_id, results_dir, shards, len(jobs), started, options.live,
                   options.interval_s)
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        try:
            _wait(job_id, watch)
        finally:
            watch.close()  # (the view's last frame: the tasks' end states)
    except (KeyboardInterrupt, _Stopped) as exc:
        # Ctrl-C, a SIGTERM or a closed terminal: the array must not outlive us
        interrupted = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # (the cancelling is not to be cut short)
        say(f"stopping: cancelling job array {job_id}")
        subprocess.run(["scancel", job_id], check=False)
        _wait(job_id, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    states = parse_task_states(subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
        check=False).stdout)
    recorded: dict[int, Result] = {}
    for path in glob.glob(os.path.join(results_dir, SHARD_RESULTS.format("*"))):
        for result in read_results(path):
            if result.line is not None:
                recorded[result.line] = result
    merged = merge([(place, j.spec.line or j.seq, j.name, j.spec.argv)
                    for place, j in enumerate(jobs, start=1)],
                   shards, recorded, states, time.time())
    if interrupted is not None:
        merged = [r if r.line in recorded else _cancelled(r) for r in merged]
    if skipped:
        say(f"{skipped} jobs skipped: already ok in {options.results}")
    return _record(options, merged, [j.seq for j in jobs], time.monotonic() - started,
                   interrupted)


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


def _wait(job_id: str, watch: _Watch | None) -> None:
    """Until no task of the array is queued or running (squeue every POLL_S: the end
    is seen this soon); meanwhile the watch shows how it goes."""
    while True:
        queued = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"],
                                capture_output=True, text=True, check=False)
        if queued.returncode != 0 or not queued.stdout.split():
            return
        if watch is not None:
            watch.tick()
        time.sleep(POLL_S)


class _Watch:
    """The live view of the array's tasks (with --live), or else a progress line when
    it changes, at most every PROGRESS_S: Slurm's word on each task (scontrol), and the
    jobs each shard has recorded (its growing results file)."""

    def __init__(self, job_id: str, results_dir: str, shards: int, total: int,
                 started: float, live: bool, interval_s: float) -> None:
        self.job_id, self.shards, self.total, self.started = job_id, shards, total, started
        self.tail = _ShardTail(results_dir)
        self.every = interval_s if live else PROGRESS_S
        self.last = 0.0
        self.said = ""
        self.began: float | None = None  # about when the shards began
        self.display: Live | None = None
        if live:
            # Lazy: rich only for the live view.
            from rich.console import Console
            from rich.live import Live

            self.display = Live(console=Console(highlight=False), auto_refresh=False,
                                redirect_stdout=False, redirect_stderr=True)
            self.display.start()

    def rows(self) -> list[ShardRow]:
        shown = subprocess.run(["scontrol", "show", "job", "-o", self.job_id],
                               capture_output=True, text=True, check=False)
        return shard_rows(self.shards, self.total, parse_tasks(shown.stdout),
                          self.tail.read())

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        rows = self.rows()
        done = sum(row.done for row in rows)
        if self.began is None and (done or any(r.state == "RUNNING" for r in rows)):
            self.began = now - (self.every if done else 0.0)  # (seen this late)
        if self.display is None:
            line = progress_line(self.job_id, rows, self.total)
            if line != self.said:
                say(line)
                self.said = line
            return
        from .._slurm_view import shards_view

        eta = None
        if done and self.began is not None and now > self.began:
            eta = (now - self.began) * (self.total - done) / done
        width, height = self.display.console.size
        self.display.update(shards_view(self.job_id, rows, self.total,
                                        elapsed_s=now - self.started, eta_s=eta,
                                        width=width, height=height - 1), refresh=True)

    def close(self) -> None:
        if self.display is not None:
            with contextlib.suppress(Exception):  # (an interrupt may end it half-drawn)
                self.tick(force=True)
            self.display.stop()
            self.display = None


class _ShardTail:
    """What the shards have recorded so far, by array task and status: their results
    files read as they grow (each refresh reads only what is new)."""

    def __init__(self, results_dir: str) -> None:
        self.results_dir = results_dir
        self.read_to: dict[int, int] = {}
        self.partial: dict[int, bytes] = {}
        self.counts: dict[int, Counter[str]] = {}

    def read(self) -> dict[int, Counter[str]]:
        prefix, suffix = SHARD_RESULTS.split("{}")
        for path in glob.glob(os.path.join(self.results_dir, SHARD_RESULTS.format("*"))):
            task_id = os.path.basename(path).removeprefix(prefix).removesuffix(suffix)
            if not task_id.isdigit():
                continue
            task = int(task_id)
            try:
                with open(path, "rb") as f:
                    f.seek(self.read_to.get(task, 0))
                    new = f.read()
            except OSError:
                continue
            self.read_to[task] = self.read_to.get(task, 0) + len(new)
            *lines, rest = (self.partial.get(task, b"") + new).split(b"\n")
            self.partial[task] = rest
            counts = self.counts.setdefault(task, Counter())
            for line in lines:
                counts[_status_of(line)] += 1
        return self.counts


def _status_of(line: bytes) -> str:
    """A record's status ("error" for what is not a record: it is counted, not trusted)."""
    try:
        status = json.loads(line).get("status")
    except (ValueError, AttributeError):
        return Status.ERROR
    return status if status in STATUSES else Status.ERROR


def _cancelled(result: Result) -> Result:
    import dataclasses

    return dataclasses.replace(result, status=Status.CANCELLED,
                               error="cancelled: the job array was cancelled")


def _record(options: BatchOptions, merged: list[Result], seqs: list[int], wall: float,
            interrupted: int | None) -> int:
    lost = 0
    for path, line_of, header in ((options.results, lambda r, n: r.to_json(), None),
                                  (options.joblog, lambda r, n: joblog_line(n, r),
                                   JOBLOG_HEADER)):  # (n: the job's Seq, its place in the file)
        if path is None:
            continue
        try:
            writer = LineWriter(path, header=header)
        except OSError as exc:
            raise BatchUsageError(f"{path}: {exc.strerror}") from exc
        for n, result in zip(seqs, merged, strict=True):
            writer.write(line_of(result, n))
        writer.close()
        if writer.lost:
            say(f"{writer.lost} of {len(merged)} records were not written to {path} "
                f"({writer.error})")
            lost += writer.lost
    errors = SameErrors()
    for result in merged:
        if result.status is Status.ERROR and result.error:
            line = errors.say(result.name, result.error)
            if line is not None:
                say(line)
    for line in errors.rest():
        say(line)
    summary = summarize(merged)
    for line in format_summary(summary, wall):
        say(line)
    if lost:
        return EXIT_SUPERVISE_FAILED
    if interrupted is not None:
        return 128 + interrupted
    return 0 if summary.all_ok else 1
