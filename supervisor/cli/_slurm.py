"""`supervise batch FILE --slurm`: submit the batch as a Slurm job array of shards, wait for
it, merge what the shards recorded (see supervisor/_slurm.py for the decisions)."""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from .._batch import BatchJob
from .._errors import SuperviseError
from .._result import Result, Status
from .._results_file import LineWriter, read_results
from .._slurm import (
    SHARD_RESULTS,
    merge,
    parse_task_states,
    progress_line,
    sbatch_argv,
    shard_argv,
)
from .._summary import JOBLOG_HEADER, format_summary, joblog_line, summarize
from ._batch_options import BatchOptions, BatchUsageError
from ._output import EXIT_SUPERVISE_FAILED, say

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
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        _wait(job_id, results_dir, len(jobs))
    except (KeyboardInterrupt, _Stopped) as exc:
        # Ctrl-C, a SIGTERM or a closed terminal: the array must not outlive us
        interrupted = exc.signum if isinstance(exc, _Stopped) else signal.SIGINT
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # (the cancelling is not to be cut short)
        say(f"stopping: cancelling job array {job_id}")
        subprocess.run(["scancel", job_id], check=False)
        _wait(job_id)
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


def _wait(job_id: str, results_dir: str = "", total: int = 0) -> None:
    """Until no task of the array is queued or running; meanwhile, when it changes (at
    most every PROGRESS_S), a line with the tasks' states and the jobs recorded (the
    lines of the growing shard result files)."""
    said, last = "", 0.0
    while True:
        queued = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"],
                                capture_output=True, text=True, check=False)
        states = queued.stdout.split()
        if queued.returncode != 0 or not states:
            return
        if results_dir and time.monotonic() - last >= PROGRESS_S:
            line = progress_line(job_id, states, _recorded(results_dir), total)
            if line != said:
                say(line)
                said, last = line, time.monotonic()
        time.sleep(POLL_S)


def _recorded(results_dir: str) -> dict[int, int]:
    """The records each shard (by array task) has written so far: its file's lines."""
    counts: dict[int, int] = {}
    prefix, suffix = SHARD_RESULTS.split("{}")
    for path in glob.glob(os.path.join(results_dir, SHARD_RESULTS.format("*"))):
        task = os.path.basename(path).removeprefix(prefix).removesuffix(suffix)
        with contextlib.suppress(OSError), open(path, "rb") as f:
            if task.isdigit():
                counts[int(task)] = f.read().count(b"\n")
    return counts


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
    for result in merged:
        if result.status is Status.ERROR and result.error:
            say(f"{result.name}: {result.error}")
    summary = summarize(merged)
    for line in format_summary(summary, wall):
        say(line)
    if lost:
        return EXIT_SUPERVISE_FAILED
    if interrupted is not None:
        return 128 + interrupted
    return 0 if summary.all_ok else 1
