"""`supervise batch FILE`: the command. Its flags become one BatchOptions, its jobs file
checked jobs; a BatchRunner runs them."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from .._batch_job import BatchJob
from .._errors import JobsFileError, SuperviseError, UsageError
from .._fds import fd_shortfall
from .._host import host_facts, require_root, require_seccomp
from .._jobs import input_jobs, parse_jobs, read_bounded
from .._jobs_check import batch_grant, check_jobs
from .._options import HostFacts
from .._results_file import read_results, resume_key, succeeded
from .._shard import select
from .._slurm import check_slurm_options
from ._batch_options import BatchOptions, BatchUsageError
from ._flags import limit_options, parse_job_options


@click.command("batch", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("args", nargs=-1, metavar="FILE | -- COMMAND [ARG...] ::: VALUES...")
@click.option("-a", "--arg-file", multiple=True, metavar="FILE",
              help="An input source: each line of FILE an input (as :::: FILE).")
@click.option("-j", "--jobs", "max_jobs", type=click.IntRange(min=1), metavar="N",
              help="Run at most N jobs at once (default: the number of CPUs).")
@click.option("--results", metavar="FILE", help="Append one JSON record per finished job.")
@click.option("--logs", metavar="DIR", help="Write each job's stdout/stderr to DIR/NAME.out/.err.")
@click.option("--joblog", metavar="FILE", help="GNU parallel's joblog format.")
@click.option("--resume", is_flag=True, help="Skip jobs already ok in --results FILE.")
@click.option("--resume-from", metavar="FILE", hidden=True,
              help="(--slurm's shards) Skip the jobs already ok in FILE.")
@click.option("--shard", metavar="I/N|slurm|k8s/N",
              help="Run only shard I of N (job k is shard ((k-1) mod N)+1), for N copies on "
                   "N machines; slurm: from a job array's task, k8s/N: from an Indexed Job.")
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
@click.option("--allow-privileged-jobs", is_flag=True,
              help="Let a jobs-file line ask for more than these flags grant (--privileged, "
                   "--cap-add, --security-opt, --device, --net host, another -u, an --env-file "
                   "the job's user could not read).")
@click.option("--slurm", is_flag=True,
              help="Run the batch on Slurm: one job array of --shards tasks, each running "
                   "its shard on its node; their results merged into --results.")
@click.option("--shards", type=click.IntRange(min=1), default=4, show_default=True,
              metavar="N", help="With --slurm: the array's tasks.")
@click.option("--partition", metavar="P", help="With --slurm: sbatch's --partition.")
@click.option("--sbatch-arg", multiple=True, metavar="ARG",
              help="With --slurm: one more argument for sbatch (repeatable).")
@limit_options
def batch_command(**flags: Any) -> None:
    """Run each line of FILE (- for stdin) in its own limited container; or, as GNU
    parallel, COMMAND once for each input: -- COMMAND [ARG...] ::: VALUES... (:::: FILE
    for a file's lines, -a FILE likewise; several sources: every combination).

    A line is [JOB OPTIONS --] COMMAND [ARG...], split like a shell would; job
    options are run's and override the defaults given here. In COMMAND, {} is the
    input, {N} the Nth source's, {.} {/} {//} {/.} as parallel's, {#} the job's number;
    without any, the inputs are appended."""
    host = host_facts()
    options = BatchOptions.from_flags(flags, host)
    if flags["slurm"]:
        try:
            check_slurm_options(options.results)
        except UsageError as exc:
            raise BatchUsageError(str(exc)) from exc
        if options.shard is not None:
            raise BatchUsageError("--slurm makes the shards: not with --shard")
    jobs, skipped = _load_jobs(options, host)
    if flags["slurm"]:  # the whole file checked here; the shards run it on the nodes
        from ._slurm import run_on_slurm

        sys.exit(run_on_slurm(options, jobs, skipped, flags["shards"], flags["partition"],
                              flags["sbatch_arg"], flags["memory_budget"] is not None))
    require_root()
    require_seccomp(job.spec for job in jobs)
    short = fd_shortfall(min(options.policy.admission.max_jobs, len(jobs)),
                         resource.getrlimit(resource.RLIMIT_NOFILE)[1],
                         logs=options.logs is not None, tag=options.tag)
    if short is not None:
        raise BatchUsageError(short)
    if options.logs is not None:
        try:
            os.makedirs(options.logs, exist_ok=True)
        except OSError as exc:
            raise SuperviseError(f"--logs {options.logs}: {exc.strerror}") from exc
    # (here, not above: the --slurm coordinator needs neither trio nor the runner)
    from ._batch_runner import BatchRunner

    runner = BatchRunner(jobs, options, skipped=skipped)
    gc_quietly()
    sys.exit(trio_run(runner.main))


def trio_run(main: Callable[[], Awaitable[int]]) -> int:
    """trio.run(main), trio imported only now (not by the --slurm coordinator)."""
    import trio

    return trio.run(main)


def gc_quietly() -> None:
    """supervise gc's quiet sweep before a batch (imported only now, as trio is)."""
    from .._gc import gc_quietly as sweep

    sweep()


def _load_jobs(options: BatchOptions, host: HostFacts) -> tuple[list[BatchJob], int]:
    """The jobs file's jobs, checked, less those --resume skips; and how many it skips."""
    shown = options.jobs_file_shown
    if options.inputs is not None:
        parsed = input_jobs(options.inputs, options.defaults, _input_lines)
        text = None
    else:
        assert options.jobs_file is not None
        text = _read_jobs_file(options.jobs_file, shown)
    ceiling = None  # a line may not ask for more than the batch's own flags grant...
    if not options.allow_privileged_jobs:  # ...unless this says so
        try:
            ceiling = batch_grant(options.defaults, host)
        except UsageError as exc:
            raise BatchUsageError(str(exc)) from exc
    # every bad line at once: a line's words and options, then its values
    errors: list[str] = []
    if text is not None:
        parsed = parse_jobs(text, shown, defaults=options.defaults,
                            parse_options=parse_job_options, errors=errors)
    # What is already ok is skipped (--resume: in --results; a --slurm shard of a
    # resumed batch: in the batch's, --resume-from); a shard is then taken from what
    # remains, by place, as the coordinator counts it. Only what runs is checked (a
    # shard checks its own lines: the --slurm coordinator has checked them all).
    skip_from = options.resume_from or (options.results if options.resume else None)
    skipped = 0
    if skip_from is not None and not errors:
        try:
            done = succeeded(read_results(skip_from))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 JSON Lines"
            raise BatchUsageError(f"--results {skip_from}: {reason}") from exc
        remaining = [j for j in parsed if resume_key(j.name, j.argv) not in done]
        skipped, parsed = len(parsed) - len(remaining), remaining
    if options.shard is not None:
        parsed = select(parsed, range(1, len(parsed) + 1), options.shard)
    jobs = check_jobs(parsed,
                      shown, host, options.policy.admission, ceiling=ceiling,
                      batch_env_files=options.defaults.env_files, errors=errors)
    if errors:
        raise JobsFileError(sorted(errors, key=lambda e: _line_of(e, shown)))
    return jobs, skipped


def _input_lines(path: str) -> list[str]:
    """A file input source's lines (:::: FILE, -a FILE; - for stdin), each an input."""
    text = _read_jobs_file(path, "<stdin>" if path == "-" else path)
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _line_of(error: str, path: str) -> int:
    """The line number of a `PATH:LINE: why` error."""
    number = error[len(path) + 1:].partition(":")[0]
    return int(number) if number.isdigit() else 0


def _read_jobs_file(path: str, shown: str) -> str:
    try:
        if path == "-":
            raw = read_bounded(sys.stdin.buffer, shown)
        else:
            with open(path, "rb") as f:
                raw = read_bounded(f, shown)
    except OSError as exc:
        raise BatchUsageError(f"{shown}: {exc.strerror}") from exc
    except UsageError as exc:  # a line too long, too many lines
        raise BatchUsageError(str(exc)) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BatchUsageError(f"{shown}:{line}: not UTF-8") from exc
