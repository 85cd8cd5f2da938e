"""What a batch is given: its jobs and its policy (plain data, cheap to import: the
--slurm coordinator checks a jobs file without loading the event loop)."""

from __future__ import annotations

from dataclasses import dataclass

from ._schedule import FAILED_STATUSES, Admission, HaltPolicy
from ._spec import ContainerSpec

__all__ = ["BatchJob", "BatchPolicy"]


@dataclass(frozen=True)
class BatchJob:
    name: str
    spec: ContainerSpec
    unique_name: bool = True  # False for default names (job-N), unique only in the batch
    seq: int = 0  # its position among the input's jobs, from 1 (GNU parallel's Seq)


@dataclass(frozen=True)
class BatchPolicy:
    admission: Admission
    retries: int = 0
    retry_on: frozenset[str] = FAILED_STATUSES
    retry_memory_factor: float = 1.0
    halt: HaltPolicy | None = None
