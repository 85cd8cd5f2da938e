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
from ._options import HostFacts, build_spec
from ._schedule import Admission
from ._units import format_bytes

__all__ = ["check_jobs"]


def check_jobs(jobs: Sequence[Job], path: str, host: HostFacts, admission: Admission, *,
               read_file: Callable[[str], str] = read_host_file) -> list[BatchJob]:
    """Each job's container spec, or JobsFileError with every bad line: a bad value, or
    a memory limit that could never fit the admission's memory budget."""
    checked: list[BatchJob] = []
    errors: list[str] = []
    for job in jobs:
        try:
            spec = build_spec(list(job.argv), job.options, host, default_hostname=job.name,
                              read_file=read_file)
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
