"""`supervise batch FILE --slurm`: the batch as one Slurm job array of shard tasks (each
runs `supervise batch FILE --shard slurm` on its node), then the shards' results
merged into the batch's, in the file's order, as a local batch would have written
them. The decisions are pure here; cli/_slurm.py does the submitting and waiting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ._errors import UsageError
from ._result import Result, Status, iso_utc
from ._shard import Shard

__all__ = ["merge", "parse_task_states", "sbatch_argv", "shard_argv"]

# batch's options the coordinator keeps to itself: (name, takes a value)
_COORDINATOR_ONLY = {
    "--slurm": False, "--shards": True, "--partition": True, "--sbatch-arg": True,
    "--results": True, "--joblog": True, "--live": False, "--no-live": False,
    "--stats-json": True, "--shard": True, "--resume": False, "--resume-from": True,
}
SHARD_RESULTS = "shard-{}.jsonl"  # in the shards' directory, by array task id


def shard_argv(argv: Sequence[str], python: str, results_dir: str,
               resume_from: str | None = None) -> list[str]:
    """The command each array task runs: this batch's own command line (argv: what
    came after `batch`) less the coordinator's options, with --shard slurm and a
    results file of its own (named by $SLURM_ARRAY_TASK_ID: the shell expands it);
    resuming, --resume-from the batch's results (the shards skip what is ok there)."""
    kept: list[str] = []
    skip = False
    rest = False
    for word in argv:
        if rest:
            kept.append(word)
            continue
        if skip:
            skip = False
            continue
        if word == "--":
            rest = True
            kept.append(word)
            continue
        name, eq, _value = word.partition("=")
        if name in _COORDINATOR_ONLY:
            skip = _COORDINATOR_ONLY[name] and not eq
            continue
        kept.append(word)
    where = os.path.join(results_dir, SHARD_RESULTS.format("$SLURM_ARRAY_TASK_ID"))
    head = [python, "-m", "supervisor", "batch", "--no-live", "--shard", "slurm",
            "--results", where]
    if resume_from is not None:
        head += ["--resume-from", resume_from]
    return [*head, *kept]


def sbatch_argv(shards: int, cpus: int, memory_mb: int | None, log_dir: str,
                partition: str | None, extra: Sequence[str], wrapped: str) -> list[str]:
    """sbatch's command line: one array of `shards` tasks, each with `cpus` CPUs (-j)
    and the batch's memory budget, its output in log_dir."""
    argv = ["sbatch", "--parsable", f"--array=0-{shards - 1}", f"--cpus-per-task={cpus}",
            f"--output={os.path.join(log_dir, 'slurm-%a.out')}", "--job-name=supervise"]
    if memory_mb is not None:
        argv.append(f"--mem={memory_mb}M")
    if partition is not None:
        argv.append(f"--partition={partition}")
    return [*argv, *extra, f"--wrap={wrapped}"]


def progress_line(job_id: str, task_states: Sequence[str], recorded: Mapping[int, int],
                  total: int) -> str:
    """What the coordinator says while the array runs: its tasks by Slurm state, the
    jobs the shards have recorded so far, and how many each (by array task)."""
    counts: dict[str, int] = {}
    for state in task_states:
        counts[state.lower()] = counts.get(state.lower(), 0) + 1
    tasks = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "done"
    each = ", ".join(f"{task}: {n}" for task, n in sorted(recorded.items()))
    return (f"slurm: array {job_id}: tasks {tasks}; {sum(recorded.values())}/{total} jobs "
            f"recorded" + (f" (by task {each})" if each else ""))


def parse_task_states(scontrol: str) -> dict[int, str]:
    """Each array task's state, from `scontrol show job -o ID` (one line a task)."""
    states: dict[int, str] = {}
    for line in scontrol.splitlines():
        fields = dict(item.partition("=")[::2] for item in line.split() if "=" in item)
        task, state = fields.get("ArrayTaskId", ""), fields.get("JobState", "")
        if task.isdigit() and state:
            states[int(task)] = state
    return states


def merge(jobs: Sequence[tuple[int, int, str, Sequence[str]]], shards: int,
          recorded: Mapping[int, Result], states: Mapping[int, str], now: float
          ) -> list[Result]:
    """The batch's results in the file's order: jobs are (place, line, name, argv),
    place among the jobs the array ran (from 1: how the shards split them); what a
    shard recorded (by line) stands; a job its shard did not record is `error`, with
    the shard's Slurm state (a shard killed, timed out, or out of memory)."""
    merged: list[Result] = []
    for seq, line, name, argv in jobs:
        result = recorded.get(line)
        if result is None:
            task = next(i for i in range(shards) if Shard(i + 1, shards).owns(seq))
            state = states.get(task, "UNKNOWN")
            merged.append(_lost(name, line, argv, f"its shard (array task {task}) ended "
                                f"{state} before running it", now))
        else:
            merged.append(result)
    return merged


def _lost(name: str, line: int, argv: Sequence[str], message: str, now: float) -> Result:
    at = iso_utc(now)
    return Result(name=name, line=line, argv=list(argv), status=Status.ERROR, exit_code=None,
                  signal=None, oom_killed=False, timed_out=False, attempts=0, started_at=at,
                  ended_at=at, wall_s=0.0, cpu_user_s=None, cpu_system_s=None,
                  peak_memory_bytes=None, memory_limit_bytes=None, stdout_path=None,
                  stderr_path=None, error=message)


def check_slurm_options(results: str | None) -> None:
    if results is None:
        raise UsageError("--slurm needs --results FILE, on a file system the nodes share "
                         "(the shards write theirs beside it)")
