"""A parsed jobs file (see _jobs) -> the batch's jobs: each line's container spec,
checked whole before anything runs.

Pure but for the files a line names (--env-file, and /etc/passwd for -u NAME), read
through `read_file`. Errors come back as `FILE:LINE: why`, all of them at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ._batch import BatchJob
from ._errors import JobsFileError, UsageError
from ._host import read_host_file
from ._jobs import Job
from ._options import HostFacts, RunOptions, build_spec
from ._privileges import PRIVILEGE_OPTIONS, Grant, beyond, grant_of
from ._schedule import Admission
from ._units import format_bytes

__all__ = ["batch_grant", "check_jobs"]


def batch_grant(defaults: RunOptions, host: HostFacts,
                read_file: Callable[[str], str] = read_host_file) -> Grant:
    """What the batch's own flags grant its jobs (the ceiling of check_jobs): the grant
    of a spec made of its privilege options alone (its other flags may need a line's to
    make sense: --memory-swap without -m). UsageError for a bad value among them."""
    privilege = {f: getattr(defaults, f) for f in PRIVILEGE_OPTIONS if hasattr(defaults, f)}
    alone = dataclasses.replace(type(defaults)(), **privilege)
    return grant_of(build_spec(["true"], alone, host, default_hostname="batch",
                               read_file=read_file))


def check_jobs(jobs: Sequence[Job], path: str, host: HostFacts, admission: Admission, *,
               read_file: Callable[[str], str] = read_host_file,
               ceiling: Grant | None = None) -> list[BatchJob]:
    """Each job's container spec, or JobsFileError with every bad line: a bad value, a
    memory limit that could never fit the admission's memory budget, or (given the
    batch's own grant as ceiling) a privilege past it (see _privileges)."""
    checked: list[BatchJob] = []
    errors: list[str] = []
    for job in jobs:
        try:
            spec = build_spec(list(job.argv), job.options, host, default_hostname=job.name,
                              read_file=read_file)
        except UsageError as exc:
            errors.append(f"{path}:{job.line}: {exc}")
            continue
        if ceiling is not None:
            extra = beyond(ceiling, grant_of(spec), job.options)
            if extra:
                verb = "needs" if len(extra) == 1 else "need"
                errors.append(f"{path}:{job.line}: {' and '.join(extra)} {verb} "
                              "--allow-privileged-jobs")
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
