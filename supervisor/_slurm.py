"""`supervise batch FILE --slurm`: the batch as one Slurm job array of shard tasks (each
runs `supervise batch FILE --shard slurm` on its node), then the shards' results
merged into the batch's, in the file's order, as a local batch would have written
them. The decisions are pure here; cli/_slurm.py does the submitting and waiting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._errors import UsageError
from ._result import Result, Status, iso_utc
from ._shard import shard_of

__all__ = [
    "ShardRow", "TaskInfo", "jobs_per_task", "merge", "parse_task_states", "parse_tasks",
    "progress_line", "sbatch_argv", "shard_argv", "shard_rows", "task_of",
]

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


@dataclass(frozen=True)
class TaskInfo:
    """One array task as Slurm tells it: its state (PENDING, RUNNING, COMPLETED,
    TIMEOUT...), its node (None until it has one) and how long it has run."""

    state: str
    node: str | None = None
    run_s: float | None = None


def parse_tasks(scontrol: str, limit: int = 1 << 16) -> dict[int, TaskInfo]:
    """Each array task, from `scontrol show job -o ID` (one line a task; the tasks still
    pending share one line, their ids a range list such as 2-5,7 or 2-5%2)."""
    tasks: dict[int, TaskInfo] = {}
    for line in scontrol.splitlines():
        fields = dict(item.partition("=")[::2] for item in line.split() if "=" in item)
        state = fields.get("JobState", "")
        if not state:
            continue
        node = fields.get("NodeList", "")
        info = TaskInfo(state, node if node and node not in ("(null)", "None") else None,
                        parse_run_time(fields.get("RunTime", "")))
        for task in _task_ids(fields.get("ArrayTaskId", ""), limit):
            tasks[task] = info
    return tasks


def _task_ids(text: str, limit: int) -> list[int]:
    """2 -> [2]; 2-4,7 -> [2, 3, 4, 7]; a %N (the array's throttle) is no task; ids at
    or past limit are left out (no range makes a list bigger than that)."""
    ids: list[int] = []
    for part in text.partition("%")[0].split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            continue
        ids += range(int(first), min(int(last) if dash else int(first), limit - 1) + 1)
    return ids


def parse_run_time(text: str) -> float | None:
    """Slurm's [D-]HH:MM:SS (or MM:SS) in seconds; None when it is not one."""
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = clock.split(":")
    if not days.isdigit() or not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return float(int(days) * 86400 + seconds)


def parse_task_states(scontrol: str) -> dict[int, str]:
    """Each array task's state, from `scontrol show job -o ID`."""
    return {task: info.state for task, info in parse_tasks(scontrol).items()}


def task_of(place: int, shards: int) -> int:
    """The array task (from 0) whose shard runs the job at place (from 1)."""
    return shard_of(place, shards) - 1


def jobs_per_task(jobs: int, shards: int) -> list[int]:
    """How many of the jobs each array task's shard runs."""
    return [len(range(task + 1, jobs + 1, shards)) for task in range(shards)]


def progress_line(job_id: str, rows: Sequence[ShardRow], total: int) -> str:
    """What the coordinator says while the array runs (without the live view): its
    tasks by Slurm state, the jobs the shards have recorded so far, and each task's."""
    counts: dict[str, int] = {}
    for row in rows:
        state = (row.state or "unknown").lower()
        counts[state] = counts.get(state, 0) + 1
    tasks = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "done"
    each = ", ".join(f"{row.task}: {row.done}/{row.jobs}" for row in rows[:_LINE_TASKS])
    more = f", +{len(rows) - _LINE_TASKS} more" if len(rows) > _LINE_TASKS else ""
    done = sum(row.done for row in rows)
    return (f"slurm: array {job_id}: tasks {tasks}; {done}/{total} jobs recorded"
            + (f" (by task {each}{more})" if done else ""))


_LINE_TASKS = 16  # the progress line names this many tasks' counts at most


@dataclass(frozen=True)
class ShardRow:
    """What the live view and the progress line show of one array task's shard."""

    task: int
    jobs: int  # its share of the batch
    counts: Mapping[str, int]  # what it has recorded so far, by status
    state: str = ""  # Slurm's ("" until Slurm has said)
    node: str | None = None
    run_s: float | None = None

    @property
    def done(self) -> int:
        return sum(self.counts.values())


def shard_rows(shards: int, jobs: int, tasks: Mapping[int, TaskInfo],
               recorded: Mapping[int, Mapping[str, int]]) -> list[ShardRow]:
    """A row per array task, in task order."""
    rows = []
    for task, share in enumerate(jobs_per_task(jobs, shards)):
        info = tasks.get(task, TaskInfo(""))
        rows.append(ShardRow(task, share, dict(recorded.get(task, {})), info.state,
                             info.node, info.run_s))
    return rows


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
            task = task_of(seq, shards)
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
