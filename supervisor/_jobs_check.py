"""A parsed jobs file (see _jobs) -> the batch's jobs: each line's container spec,
checked whole before anything runs.

Pure but for the files a line names (--env-file, and /etc/passwd for -u NAME), read
through `read_file`. Errors come back as `FILE:LINE: why`, all of them at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ._batch_job import BatchJob
from ._errors import JobsFileError, UsageError
from ._host import read_host_file, readable_by
from ._jobs import Job
from ._options import HostFacts, RunOptions, build_spec
from ._privileges import PRIVILEGE_OPTIONS, Grant, beyond, grant_of
from ._schedule import Admission
from ._spec import ContainerSpec
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
               ceiling: Grant | None = None, batch_env_files: Sequence[str] = (),
               readable: Callable[[str, int, int], bool] = readable_by,
               errors: list[str] | None = None) -> list[BatchJob]:
    """Each job's container spec, or JobsFileError with every bad line: a bad value, a
    memory limit that could never fit the admission's memory budget, or (given the
    batch's own grant as ceiling) a privilege past it (see _privileges), a line's own
    --env-file (after the batch's batch_env_files) among them: supervise reads it as
    root, so a job that runs as another user may have only what that user could read
    (judged by ``readable(path, uid, gid)``). Given errors (a parse's, say), the lines'
    errors are added there and the good lines' jobs returned instead."""
    checked: list[BatchJob] = []
    collect = errors is not None
    errors = [] if errors is None else errors
    for job in jobs:
        try:
            spec = build_spec(list(job.argv), job.options, host, default_hostname=job.name,
                              read_file=read_file)
        except UsageError as exc:
            errors.append(f"{path}:{job.line}: {exc}")
            continue
        if ceiling is not None:
            extra = beyond(ceiling, grant_of(spec), job.options)
            extra += _unreadable(spec, job.options.env_files[len(batch_env_files):], readable)
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
                                unique_name=job.options.name is not None, seq=job.seq))
    if errors and not collect:
        raise JobsFileError(errors)
    return checked


def _unreadable(spec: ContainerSpec, files: Sequence[str],
                readable: Callable[[str, int, int], bool]) -> list[str]:
    """A line's env files its job's user could not read itself (root reads anything)."""
    if spec.user is None or spec.user[0] == 0:
        return []
    uid, gid = spec.user[0], spec.user[1]
    return [f"--env-file {name} (which user {uid}:{gid} may not read)"
            for name in dict.fromkeys(files) if not readable(name, uid, gid)]
