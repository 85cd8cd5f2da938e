"""The live view of a batch on Slurm (`batch --slurm`): the job array's tasks, each with
its Slurm state, node and the jobs its shard has recorded (pure, as _view.py: everything
comes in as arguments; a rich renderable comes out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.text import Text

from ._result import STATUSES, Status
from ._slurm import ShardRow
from ._view import (
    _COLUMN_GAP,
    STATUS_STYLES,
    _build_table,
    _cut,
    _fit_rows,
    _more_text,
    _one_line,
    format_duration,
)

__all__ = ["shards_view"]

_COLUMNS: Final = (
    ("TASK", "right"),
    ("STATE", "left"),
    ("NODE", "left"),
    ("DONE", "right"),
    ("OK", "right"),
    ("NOT OK", "right"),
    ("ELAPSED", "right"),
)
_NODE: Final = 2  # the column that gives way on a narrow terminal
# Slurm's states: what a task is doing, and how each one ends.
_GOING: Final = {"PENDING": "dim", "CONFIGURING": "dim", "RUNNING": "green",
                 "COMPLETING": "green", "SUSPENDED": "yellow", "REQUEUED": "yellow"}
_ENDED_WELL: Final = "COMPLETED"


def _state_style(state: str) -> str:
    if state in _GOING:
        return _GOING[state]
    if state == _ENDED_WELL:
        return "cyan"
    return "bold red" if state else "dim"  # FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL...


def _order(row: ShardRow) -> tuple[int, int]:
    """Which rows a short terminal shows first: tasks Slurm ended badly, then running,
    then pending, then the completed."""
    state = row.state
    rank = (3 if state == _ENDED_WELL else 1 if state in ("RUNNING", "COMPLETING")
            else 2 if state in _GOING or not state else 0)
    return rank, row.task


def _header(job_id: str, rows: Sequence[ShardRow], total: int, elapsed_s: float | None,
            eta_s: float | None) -> list[Text]:
    done = sum(row.done for row in rows)
    states: dict[str, int] = {}
    for row in rows:
        states[row.state or "unknown"] = states.get(row.state or "unknown", 0) + 1
    tasks = ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items()))
    first = [
        Text(f"{done}/{total} done", style="bold"),
        Text(f"elapsed {format_duration(elapsed_s)}"),
        Text(f"ETA {format_duration(eta_s)}"),
        Text(f"slurm array {job_id}: {len(rows)} tasks" + (f" ({tasks})" if tasks else "")),
    ]
    counts: dict[str, int] = {}
    for row in rows:
        for status, n in row.counts.items():
            counts[status] = counts.get(status, 0) + n
    second = [Text(f"{status} {counts[status]}", style=STATUS_STYLES[status])
              for status in STATUSES if counts.get(status)]
    return [_one_line(first), _one_line(second or [Text("no job recorded yet", style="dim")])]


def _cells(row: ShardRow) -> list[Text]:
    ok = row.counts.get(Status.OK, 0)
    return [
        Text(str(row.task)),
        Text(row.state or "-", style=_state_style(row.state)),
        Text(row.node or "-"),
        Text(f"{row.done}/{row.jobs}"),
        Text(str(ok), style="green" if ok else ""),
        Text(str(row.done - ok), style="red" if row.done - ok else ""),
        Text(format_duration(row.run_s)),
    ]


def shards_view(job_id: str, rows: Sequence[ShardRow], total: int, *,
                elapsed_s: float | None, eta_s: float | None, width: int,
                height: int) -> RenderableType:
    """Two header lines (jobs done of total, elapsed, ETA, the tasks by Slurm state;
    the jobs by status), then a row per task, cut to `height` lines with "+N more": the tasks
    Slurm ended badly first, then the running, the pending, the completed."""
    header = [_cut(line, width) for line in
              _header(job_id, rows, total, elapsed_s, eta_s)[: max(height, 1)]]
    max_rows = height - len(header) - 1
    if max_rows < 1 or not rows:
        return Group(*header)
    shown, hidden = _fit_rows(sorted(rows, key=_order), max_rows)
    cells = [_cells(row) for row in shown]
    keep = _fitting_columns(cells, width)
    table = _build_table([_COLUMNS[i] for i in keep], [[row[i] for i in keep] for row in cells],
                         keep.index(_NODE) if _NODE in keep else -1, width, more_row=False)
    return Group(*header, table, *([_more_text(hidden)] if hidden else []))


# What a narrow terminal drops, in turn: the run time, the ok count (DONE and NOT OK
# tell it), the node.
_DROPPED: Final = (6, 4, _NODE)


def _fitting_columns(cells: Sequence[Sequence[Text]], width: int) -> list[int]:
    """The columns that fit `width`, each as wide as its widest cell."""
    keep = list(range(len(_COLUMNS)))
    for dropped in (None, *_DROPPED):
        if dropped is not None:
            keep.remove(dropped)
        needs = sum(max([cell_len(_COLUMNS[i][0]), *(row[i].cell_len for row in cells)])
                    for i in keep) + _COLUMN_GAP * (len(keep) - 1)
        if needs <= width:
            break
    return keep
