"""What `supervise batch` was asked to do: its flags, checked once, as one frozen
BatchOptions (the jobs file itself is read and checked later)."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._batch_job import BatchPolicy
from .._errors import UsageError
from .._host import available_memory
from .._jobs import INPUTS
from .._options import HostFacts, RunOptions
from .._schedule import Admission, parse_halt, parse_retry_on
from .._shard import Shard, parse_shard
from .._sources import ARGS, FILES, Inputs, split_sources
from .._units import parse_interval, parse_size
from ._flags import run_fields
from ._output import EXIT_BATCH_USAGE


class BatchUsageError(UsageError):
    """A bad batch flag or jobs file: exit 2, and nothing was started."""

    exit_code = EXIT_BATCH_USAGE


@dataclass(frozen=True)
class BatchOptions:
    jobs_file: str | None  # a path, or "-" for stdin; None: jobs from inputs
    defaults: RunOptions  # run's flags given to batch: each job's, unless its line says
    policy: BatchPolicy
    results: str | None
    logs: str | None
    joblog: str | None
    resume: bool
    tag: bool
    live: bool
    interval_s: float
    stats_json: str | None
    cgroup_parent: str | None
    allow_privileged_jobs: bool = False  # a line may ask for more than the flags grant
    inputs: Inputs | None = None  # `-- COMMAND ::: ...`: the jobs come from these
    shard: Shard | None = None  # --shard: run only these of the jobs
    resume_from: str | None = None  # a --slurm shard of a resumed batch: skip these

    @property
    def jobs_file_shown(self) -> str:
        """The jobs file as errors name it."""
        if self.jobs_file is None:
            return INPUTS
        return "<stdin>" if self.jobs_file == "-" else self.jobs_file

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any], host: HostFacts) -> BatchOptions:
        """The click parameters of `batch`, checked (BatchUsageError names the flag).
        Without --memory-budget it is MemAvailable now; without --live/--no-live the live
        view is on when stdout is a terminal and --tag is not given."""
        retry_memory_factor: float = flags["retry_memory_factor"]
        if not math.isfinite(retry_memory_factor):
            raise BatchUsageError(
                f"--retry-memory-factor {retry_memory_factor}: expected a finite number >= 1")
        budget = _size("--memory-budget", flags["memory_budget"])
        if budget == 0:
            raise BatchUsageError("--memory-budget 0: no job could ever start")
        max_jobs: int | None = flags["max_jobs"]
        try:
            policy = BatchPolicy(
                admission=Admission(
                    max_jobs=max_jobs or host.cpu_count,
                    memory_budget=budget if budget is not None else available_memory(),
                    default_memory=_size("--default-memory", flags["default_memory"])),
                retries=flags["retries"], retry_on=parse_retry_on(flags["retry_on"]),
                retry_memory_factor=retry_memory_factor, halt=parse_halt(flags["halt"]))
            interval_s = parse_interval(flags["interval"])
        except UsageError as exc:
            raise BatchUsageError(str(exc)) from exc
        tag: bool = flags["tag"]
        live: bool | None = flags["live"]
        if live is None:
            live = sys.stdout.isatty() and not tag
        elif live and tag:
            raise BatchUsageError("--live and --tag both want the terminal: choose one")
        results: str | None = flags["results"]
        if flags["resume"] and results is None:
            raise BatchUsageError("--resume needs --results FILE")
        logs: str | None = flags["logs"]
        if tag and logs is not None:
            raise BatchUsageError("--tag relays output to the terminal; with --logs it goes "
                                  "to files: choose one")
        jobs_file, inputs = _jobs_or_inputs(tuple(flags["args"]), tuple(flags["arg_file"]))
        try:
            shard = (parse_shard(flags["shard"], host.environ)
                     if flags.get("shard") is not None else None)
        except UsageError as exc:
            raise BatchUsageError(str(exc)) from exc
        return cls(
            jobs_file=jobs_file, inputs=inputs, shard=shard,
            resume_from=flags.get("resume_from"),
            defaults=RunOptions(**run_fields(flags)),
            policy=policy, results=results, logs=logs, joblog=flags["joblog"],
            resume=flags["resume"], tag=tag, live=live, interval_s=interval_s,
            stats_json=flags["stats_json"], cgroup_parent=flags["cgroup_parent"],
            allow_privileged_jobs=flags.get("allow_privileged_jobs", False))


def _jobs_or_inputs(args: tuple[str, ...], arg_files: tuple[str, ...]
                    ) -> tuple[str | None, Inputs | None]:
    """`batch FILE` (a jobs file), or `batch [-a FILE] -- COMMAND [ARG...] [::: VALUES |
    :::: FILE]...` (jobs made from input sources, as GNU parallel)."""
    if arg_files or ARGS in args or FILES in args:
        try:
            return None, split_sources(args, arg_files)
        except UsageError as exc:
            raise BatchUsageError(str(exc)) from exc
    if len(args) == 1:
        return args[0], None
    raise BatchUsageError(
        "a jobs file, or a command and its inputs: supervise batch [OPTIONS] FILE, or "
        "supervise batch [OPTIONS] -- COMMAND [ARG...] ::: VALUES... (or :::: FILE, -a FILE)")


def _size(flag: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except UsageError as exc:
        raise BatchUsageError(f"{flag}: {exc}") from exc
