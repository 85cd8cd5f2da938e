"""`supervise batch --shard I/N`: run only shard I of N of a batch, so that N copies of the
same command on N machines (a Slurm job array, a Kubernetes Indexed Job, `parallel
--sshlogin`) run every job of the file exactly once between them.

The split is by the job's position (its number in the file, from 1): job k belongs to
shard ((k - 1) mod N) + 1. Round robin: neighbouring jobs, often alike in cost, land
on different shards; every shard checks the whole file first, so a bad line stops
them all alike. I counts from 1 (`--shard 1/4` ... `--shard 4/4`); `--shard slurm`
takes the array task's place from SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and
SLURM_ARRAY_TASK_COUNT; `--shard k8s/N` takes it from JOB_COMPLETION_INDEX (an
Indexed Job's index, from 0; Kubernetes does not export the count).

Pure: the environment is a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ._errors import UsageError

__all__ = ["Shard", "parse_shard", "select", "shard_of"]

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # from 1
    count: int

    def owns(self, seq: int) -> bool:
        """Whether the job numbered seq (from 1) is this shard's."""
        return shard_of(seq, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(seq: int, count: int) -> int:
    """The shard (from 1, of count) that runs the job numbered seq (from 1): round robin."""
    return (seq - 1) % count + 1


def parse_shard(text: str, environ: Mapping[str, str]) -> Shard:
    """--shard's value: I/N, slurm, or k8s/N. UsageError naming what is wrong."""
    if text == "slurm":
        return _slurm(environ)
    if text.startswith("k8s/"):
        count = _number(text[4:], "--shard k8s/N: N")
        index = _number(environ.get("JOB_COMPLETION_INDEX", ""),
                        "--shard k8s: JOB_COMPLETION_INDEX", minimum=0)
        return _checked(index + 1, count, f"--shard {text} (JOB_COMPLETION_INDEX={index})")
    index_text, slash, count_text = text.partition("/")
    if not slash:
        raise UsageError(f"--shard {text}: expected I/N (such as 1/4), slurm or k8s/N")
    return _checked(_number(index_text, f"--shard {text}: I"),
                    _number(count_text, f"--shard {text}: N"), f"--shard {text}")


def _slurm(environ: Mapping[str, str]) -> Shard:
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
    missing = [n for n in names if n not in environ]
    if missing:
        raise UsageError(f"--shard slurm: {', '.join(missing)} not set (not in a Slurm job "
                         "array?)")
    task, first, count = (_number(environ[n], f"--shard slurm: {n}", minimum=0) for n in names)
    return _checked(task - first + 1, count,
                    f"--shard slurm (task {task} of {count} from {first})")


def _number(text: str, what: str, minimum: int = 1) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise UsageError(f"{what} is {text!r}: expected a whole number >= {minimum}")
    return int(text)


def _checked(index: int, count: int, what: str) -> Shard:
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"{what}: shard {index} of {count} does not exist")
    return Shard(index, count)


def select(items: Sequence[T], seqs: Sequence[int], shard: Shard) -> list[T]:
    """The items (jobs) whose numbers (their places, from 1) are shard's."""
    return [item for item, seq in zip(items, seqs, strict=True) if shard.owns(seq)]
