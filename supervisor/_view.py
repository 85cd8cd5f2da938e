"""The live view's rendering, as `docker stats`, ctop and systemd-cgtop show it (pure).

Everything comes in as arguments (samples, progress, the terminal's size): no I/O, no
clock. Each function returns a rich renderable; `render_text` turns one into plain text
for tests and for `--no-stream`. Unknown figures are shown as "-", never as 0.

Tables have no box: a bold header line, then one line per row. Every cell is
`no_wrap`, so a row is always one line, and the NAME column is given whatever width the
other columns leave (ellipsized, never wrapped), so a table fits the width it is built
for and the views can count their lines exactly.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Final, TypeVar

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ._result import STATUSES, Status
from ._sampling import BatchProgress, ContainerSample, FinishedJob, HostSample, busiest_first
from ._units import format_bytes

__all__ = [
    "STATUS_STYLES",
    "batch_header",
    "batch_view",
    "finished_table",
    "format_cpu",
    "format_duration",
    "format_mem",
    "format_percent",
    "render_text",
    "stats_table",
    "stats_view",
    "stats_view_header",
    "status_text",
]

UNKNOWN: Final = "-"

# Keyed by str: a status a newer results format adds is looked up too (and unstyled).
STATUS_STYLES: Final[dict[str, str]] = {
    Status.OK: "green",
    Status.FAILED: "red",
    Status.OOM: "magenta",
    Status.TIMEOUT: "yellow",
    Status.SIGNALED: "cyan",
    Status.CANCELLED: "dim",
    Status.ERROR: "bold red",
}
_STATE_STYLES: Final[dict[str, str]] = {"running": "green", "exited": "dim"}

# Between two columns: one space of right padding and one of left padding; none at
# the table's edges (pad_edge=False).
_COLUMN_GAP: Final = 2
# NAME never gets narrower than this, even if the table then overflows (rich squeezes).
_MIN_NAME_WIDTH: Final = 8
# The ID column is dropped by the views when it would leave NAME less than this.
_MIN_NAME_WIDTH_WITH_ID: Final = 16
# The batch view's finished table shows this many jobs when the running ones need the room.
_FINISHED_ROWS: Final = 5
# ... and the running table keeps this many rows before the finished one gets any.
_RUNNING_ROWS_FIRST: Final = 3
_FINISHED_TITLE: Final = "finished, newest first"
# Lines a table takes besides its rows: the header line (plus the title, if any).
_TABLE_HEAD_LINES: Final = 1

_STATS_COLUMNS: Final = (
    ("CONTAINER ID", "left"),
    ("NAME", "left"),
    ("STATE", "left"),
    ("CPU %", "right"),
    ("MEM USAGE / LIMIT", "right"),
    ("MEM %", "right"),
    ("PIDS", "right"),
    ("ELAPSED", "right"),
)
_FINISHED_COLUMNS: Final = (
    ("NAME", "left"),
    ("STATUS", "left"),
    ("EXIT", "right"),
    ("WALL", "right"),
    ("PEAK MEM", "right"),
)


_Row = TypeVar("_Row")


def format_percent(p: float | None) -> str:
    """12.5 -> "12.50%"; None (unknown) -> "-"."""
    if p is None or not math.isfinite(p):
        return UNKNOWN
    return f"{p:.2f}%"


def format_cpu(p: float | None) -> str:
    """CPU % summed over cores as docker shows it: 2 busy cores are "200.00%"."""
    return format_percent(p)


def _format_size(n: int | None) -> str:
    return UNKNOWN if n is None or n < 0 else format_bytes(n)


def format_mem(usage: int | None, limit: int | None) -> str:
    """"12.5MiB / 64MiB"; either side "-" when unknown (no limit is None, so "-" too)."""
    return f"{_format_size(usage)} / {_format_size(limit)}"


def format_duration(seconds: float | None) -> str:
    """Whole seconds, minutes or hours, two units at most: "4s", "1m05s", "2h03m", "1d02h"."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return UNKNOWN
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _format_count(n: int | None) -> str:
    return UNKNOWN if n is None else str(n)


def status_text(status: str) -> Text:
    """A job status in its color (ok green, failed/error red, oom magenta, ...)."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLES.get(state, "yellow"))


def _more_text(hidden: int) -> Text:
    return Text(f"+{hidden} more", style="dim")


def _fit_rows(rows: Sequence[_Row], max_rows: int | None) -> tuple[list[_Row], int]:
    """The rows to show and how many are hidden: max_rows-1 rows and a "+N more" row."""
    if max_rows is None or len(rows) <= max_rows:
        return list(rows), 0
    shown = list(rows[: max(max_rows - 1, 0)])
    return shown, len(rows) - len(shown)


def _new_table(title: str | None = None) -> Table:
    title_text = None
    if title is not None:
        title_text = Text(title, style="bold")
        title_text.no_wrap = True
        title_text.overflow = "ellipsis"
    return Table(
        box=None,
        padding=(0, _COLUMN_GAP // 2),
        pad_edge=False,
        show_edge=False,
        header_style="bold",
        title=title_text,
        title_justify="left",
        expand=False,
    )


def _name_width(
    columns: Sequence[tuple[str, str]], cells: Sequence[Sequence[Text]], name_index: int,
    width: int,
) -> int:
    """What the NAME column may take of `width` after the other columns and the gaps."""
    used = _COLUMN_GAP * (len(columns) - 1)
    for index, (header, _) in enumerate(columns):
        if index != name_index:
            used += max([cell_len(header), *(row[index].cell_len for row in cells)])
    return width - used


def _build_table(
    columns: Sequence[tuple[str, str]], cells: list[list[Text]], name_index: int, width: int,
    *, more_row: bool, title: str | None = None,
) -> Table:
    # The "+N more" label is in the first column: when that is NAME, it must fit.
    label = cells[-1][0].cell_len if more_row and name_index == 0 else 0
    name_width = max(_name_width(columns, cells, name_index, width), _MIN_NAME_WIDTH, label)
    table = _new_table(title)
    for index, (header, justify) in enumerate(columns):
        table.add_column(
            header,
            justify="right" if justify == "right" else "left",
            no_wrap=True,
            overflow="ellipsis",
            max_width=name_width if index == name_index else None,
        )
    for row in cells:
        table.add_row(*row)
    return table


def _stats_cells(
    rows: Sequence[ContainerSample], max_rows: int | None, hidden_columns: frozenset[str],
) -> tuple[list[tuple[str, str]], list[list[Text]], int]:
    """Columns, cells (the "+N more" row last, if any) and the NAME column's index."""
    shown, hidden = _fit_rows(busiest_first(list(rows)), max_rows)
    keep = [
        index for index, (header, _) in enumerate(_STATS_COLUMNS)
        if header not in hidden_columns
    ]
    cells: list[list[Text]] = []
    for row in shown:
        full = [
            Text(row.id[:12]),
            Text(row.name),
            _state_text(row.state),
            Text(format_cpu(row.cpu_percent)),
            Text(format_mem(row.memory_usage_bytes, row.memory_limit_bytes)),
            Text(format_percent(row.memory_percent)),
            Text(_format_count(row.pids)),
            Text(format_duration(row.elapsed_s)),
        ]
        cells.append([full[index] for index in keep])
    if hidden:
        cells.append([_more_text(hidden)] + [Text("") for _ in keep[1:]])
    columns = [_STATS_COLUMNS[index] for index in keep]
    return columns, cells, [header for header, _ in columns].index("NAME")


def stats_table(
    rows: Sequence[ContainerSample], *, max_rows: int | None, show_id: bool = True,
    width: int = 80,
) -> Table:
    """docker stats' table, busiest first; past `max_rows` rows the last one says "+N more".

    `max_rows` counts the "+N more" row (not the header); None shows every row. NAME is
    ellipsized so that the table fits `width` columns.
    """
    hidden_columns = frozenset() if show_id else frozenset({"CONTAINER ID"})
    columns, cells, name_index = _stats_cells(rows, max_rows, hidden_columns)
    more_row = max_rows is not None and len(rows) > max_rows
    return _build_table(columns, cells, name_index, width, more_row=more_row)


# What a narrow terminal drops, in turn, and how wide NAME must then stay at least.
_DROPPED_COLUMNS: Final = (
    (frozenset[str](), _MIN_NAME_WIDTH_WITH_ID),
    (frozenset({"CONTAINER ID"}), _MIN_NAME_WIDTH),
    (frozenset({"CONTAINER ID", "STATE"}), _MIN_NAME_WIDTH),
    (frozenset({"CONTAINER ID", "STATE", "MEM %"}), _MIN_NAME_WIDTH),
)


def _fitting_stats_table(
    rows: Sequence[ContainerSample], max_rows: int | None, width: int,
) -> Table:
    """The stats table with the columns `width` affords: the ID goes first, then STATE,
    then MEM % (the usage and limit beside it tell the same)."""
    for hidden_columns, name_needs in _DROPPED_COLUMNS:
        columns, cells, name_index = _stats_cells(rows, max_rows, hidden_columns)
        names = [row[name_index].cell_len for row in cells]
        more = names.pop() if max_rows is not None and len(rows) > max_rows else 0
        needs = max(min(max([0, *names]), name_needs), more if name_index == 0 else 0)
        if _name_width(columns, cells, name_index, width) >= needs:
            break
    return _build_table(columns, cells, name_index, width, more_row=bool(more))


def finished_table(
    jobs: Sequence[FinishedJob], max_rows: int, *, width: int = 80, title: str | None = None,
) -> Table:
    """The latest finished jobs, newest first; `jobs` are in the order they finished.

    Past `max_rows` rows (the "+N more" row included) the oldest are hidden.
    """
    shown, hidden = _fit_rows(list(reversed(jobs)), max_rows)
    cells = [
        [
            Text(job.name),
            status_text(job.status),
            Text(_format_count(job.exit_code)),
            Text(format_duration(job.wall_s)),
            Text(_format_size(job.peak_memory_bytes)),
        ]
        for job in shown
    ]
    if hidden:
        cells.append([_more_text(hidden)] + [Text("") for _ in _FINISHED_COLUMNS[1:]])
    return _build_table(_FINISHED_COLUMNS, cells, 0, width, more_row=hidden > 0, title=title)


def _host_text(host: HostSample | None) -> Text:
    if host is None:
        return Text(f"host cpu {UNKNOWN}  mem {UNKNOWN} / {UNKNOWN}")
    cpus = f" ({host.cpu_count} CPU{'' if host.cpu_count == 1 else 's'})"
    return Text(
        f"host cpu {format_cpu(host.cpu_percent)}{cpus}  "
        f"mem {format_mem(host.memory_used_bytes, host.memory_total_bytes)}"
    )


def _one_line(parts: Sequence[Text]) -> Text:
    line = Text("  ").join(part for part in parts if part.plain)
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


def _cut(line: Text, width: int) -> Text:
    """The line ellipsized to `width` now, whatever width it is rendered at."""
    line = line.copy()
    line.truncate(width, overflow="ellipsis")
    return line


def _batch_header_lines(progress: BatchProgress, host: HostSample | None) -> list[Text]:
    counts = [
        Text(f"{status} {progress.counts[status]}", style=STATUS_STYLES[status])
        for status in STATUSES if progress.counts.get(status)
    ]
    # A status the results format does not know yet still shows, after the known ones.
    counts += [
        Text(f"{status} {n}")
        for status, n in progress.counts.items() if status not in STATUSES and n
    ]
    first = [
        Text(f"{progress.done}/{progress.total} done", style="bold"),
        Text(f"{progress.running} running"),
        Text(f"{progress.queued} queued"),
        Text(f"elapsed {format_duration(progress.elapsed_s)}"),
        Text(f"ETA {format_duration(progress.eta_s)}"),
    ]
    # The counts come before the host figures: if the line is cut, the host's go.
    second = [*counts, _host_text(host)]
    return [_one_line(first), _one_line(second)]


def batch_header(progress: BatchProgress, host: HostSample | None) -> RenderableType:
    """Two lines, each kept to one line (ellipsized at the end when too long).

    First done/total, running, queued, elapsed and ETA ("-" until a job has finished);
    then the counts per status in a fixed order (ok failed oom timeout signaled
    cancelled error, nonzero only, colored) and the host's CPU and memory.
    """
    return Group(*_batch_header_lines(progress, host))


def _table_lines(rows: int, title: bool = False) -> int:
    return _TABLE_HEAD_LINES + int(title) + rows


def batch_view(
    progress: BatchProgress, host: HostSample | None, running: Sequence[ContainerSample],
    finished: Sequence[FinishedJob], *, width: int, height: int,
) -> RenderableType:
    """The batch's live view in at most `height` lines of `width` columns.

    The header, then the running jobs (busiest first), then the latest finished ones
    (newest first). Running jobs get the room; finished ones get up to 5 rows, more
    when the running ones leave it free. A table cut short ends with "+N more". Narrow
    terminals drop the ID column (below about 100 columns with long names), then STATE,
    then MEM %, rather than squeeze NAME below 8 characters.
    """
    header = [_cut(line, width) for line in _batch_header_lines(progress, host)[: max(height, 1)]]
    room = height - len(header)
    running_head = _table_lines(0)
    finished_head = _table_lines(0, title=True)
    if room < running_head + (1 if running else 0):
        return Group(*header)
    finished_rows = 0
    if finished:
        # The running table keeps a few rows and most of the room on a short terminal.
        spare = room - running_head - min(len(running), _RUNNING_ROWS_FIRST) - finished_head
        finished_rows = max(0, min(len(finished), _FINISHED_ROWS, spare, room // 3))
    finished_lines = finished_head + finished_rows if finished_rows else 0
    running_rows = min(len(running), room - running_head - finished_lines)
    if finished_rows:
        # Whatever the running table leaves free goes to the finished one.
        finished_rows = min(len(finished), room - running_head - running_rows - finished_head)

    parts: list[RenderableType] = [*header, _fitting_stats_table(running, running_rows, width)]
    if finished_rows:
        parts.append(finished_table(finished, finished_rows, width=width, title=_FINISHED_TITLE))
    return Group(*parts)


def stats_view_header(host: HostSample | None, containers: int) -> Text:
    """One line: host CPU and memory, and how many containers there are."""
    noun = "container" if containers == 1 else "containers"
    return _one_line([Text(f"{containers} {noun}", style="bold"), _host_text(host)])


def stats_view(
    host: HostSample | None, rows: Sequence[ContainerSample], *, width: int, height: int,
) -> RenderableType:
    """`supervise stats`: a header line, then the table cut to fit `height` lines and
    `width` columns (dropping columns on a narrow terminal as `batch_view` does)."""
    header = _cut(stats_view_header(host, len(rows)), width)
    max_rows = height - 1 - _table_lines(0)
    if max_rows < (1 if rows else 0):
        return Group(header)
    return Group(header, _fitting_stats_table(rows, max_rows, width))


def render_text(renderable: RenderableType, width: int = 80) -> str:
    """Plain text of a renderable at `width` columns: for tests and `--no-stream`."""
    console = Console(
        width=width, record=True, file=io.StringIO(), force_terminal=False, color_system=None,
    )
    console.print(renderable)
    return console.export_text()
