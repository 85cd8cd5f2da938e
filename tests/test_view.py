"""The live view's rendering: figures, units, unknowns, cutting to the terminal (pure)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from supervisor._sampling import BatchProgress, ContainerSample, FinishedJob, HostSample
from supervisor._view import (
    batch_header,
    batch_view,
    finished_table,
    format_cpu,
    format_duration,
    format_mem,
    format_percent,
    render_text,
    stats_table,
    stats_view,
    status_text,
)

# Pure rendering: nothing here can leak a container, and the check would only see
# what other test runs on this host are doing.
pytestmark = pytest.mark.no_leak_check

MiB = 2**20
GiB = 2**30
HOST = HostSample(cpu_percent=37.5, cpu_count=2, memory_used_bytes=3 * GiB // 2,
                  memory_total_bytes=4 * GiB)


def sample(
    name: str, *, cpu: float | None = 1.0, usage: int | None = 12 * MiB + MiB // 2,
    limit: int | None = 64 * MiB, mem_percent: float | None = 19.53, pids: int | None = 3,
    elapsed_s: float = 65.0, state: str = "running", id: str | None = None,
) -> ContainerSample:
    return ContainerSample(
        id=id or f"{abs(hash(name)) % 16**12:012x}", name=name, state=state, pid=1234,
        command="sleep 1", elapsed_s=elapsed_s, cpu_percent=cpu, memory_usage_bytes=usage,
        memory_limit_bytes=limit, memory_percent=mem_percent, pids=pids,
    )


def row_of(text: str, name: str) -> str:
    """The one rendered line that holds `name`."""
    lines = [line for line in text.splitlines() if re.search(rf"\b{re.escape(name)}\b", line)]
    assert len(lines) == 1, (name, text)
    return lines[0]


def body_lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


# --- formatters ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [
    (12.345, "12.35%"), (0.0, "0.00%"), (250.0, "250.00%"), (None, "-"),
    (float("nan"), "-"),
])
def test_format_cpu(value: float | None, shown: str) -> None:
    assert format_cpu(value) == shown
    assert format_percent(value) == shown


@pytest.mark.parametrize(("usage", "limit", "shown"), [
    (12 * MiB + MiB // 2, 64 * MiB, "12.5MiB / 64MiB"),
    (3 * GiB // 2, 2 * GiB, "1.5GiB / 2GiB"),
    (0, 64 * MiB, "0B / 64MiB"),
    (None, None, "- / -"),
    (12 * MiB + MiB // 2, None, "12.5MiB / -"),
    (None, 64 * MiB, "- / 64MiB"),
])
def test_format_mem(usage: int | None, limit: int | None, shown: str) -> None:
    assert format_mem(usage, limit) == shown


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.0, "0s"), (4.9, "4s"), (59.99, "59s"), (60.0, "1m00s"), (65.0, "1m05s"),
    (3599.0, "59m59s"), (3600.0, "1h00m"), (2 * 3600 + 3 * 60 + 59, "2h03m"),
    (26 * 3600, "1d02h"), (None, "-"), (-1.0, "-"), (float("inf"), "-"),
])
def test_format_duration(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


# --- stats table --------------------------------------------------------------------------


def test_stats_table_columns_and_figures() -> None:
    row = sample("web", cpu=50.0, pids=7, elapsed_s=125.0, id="0123456789abcdef")
    text = render_text(stats_table([row], max_rows=None))
    header = body_lines(text)[0].split()
    assert " ".join(header) == "CONTAINER ID NAME STATE CPU % MEM USAGE / LIMIT MEM % PIDS ELAPSED"
    line = row_of(text, "web")
    # The ID is docker's short 12 hex digits.
    assert line.split() == ["0123456789ab", "web", "running", "50.00%", "12.5MiB", "/",
                            "64MiB", "19.53%", "7", "2m05s"]


def test_stats_table_numbers_are_right_aligned() -> None:
    rows = [sample("a", cpu=5.0, pids=7), sample("b", cpu=150.25, pids=1234)]
    lines = body_lines(render_text(stats_table(rows, max_rows=None, show_id=False)))
    cpu_end = lines[0].index("CPU %") + len("CPU %")
    assert lines[1][:cpu_end].endswith("150.25%")
    assert lines[2][:cpu_end].endswith("  5.00%")
    assert lines[1].endswith(" 1234    1m05s") and lines[2].endswith("    7    1m05s")


def test_stats_table_without_id() -> None:
    text = render_text(stats_table([sample("web", id="feedfacecafe")], max_rows=None,
                                   show_id=False))
    assert "CONTAINER ID" not in text and "feedfacecafe" not in text
    assert body_lines(text)[0].startswith("NAME")


def test_unknown_figures_show_a_dash_never_zero() -> None:
    row = sample("blank", cpu=None, usage=None, limit=None, mem_percent=None, pids=None,
                 elapsed_s=3.0, id="abcdefabcdef")
    line = row_of(render_text(stats_table([row], max_rows=None)), "blank")
    assert line.split() == ["abcdefabcdef", "blank", "running", "-", "-", "/", "-", "-", "-",
                            "3s"]
    assert "0" not in line.replace("abcdefabcdef", "")


def test_cpu_over_100_percent_is_shown_as_is() -> None:
    line = row_of(render_text(stats_table([sample("busy", cpu=387.5)], max_rows=None)), "busy")
    assert "387.50%" in line


def test_rows_are_busiest_first() -> None:
    rows = [sample("idle", cpu=0.5), sample("unknown", cpu=None), sample("hot", cpu=90.0),
            sample("warm", cpu=20.0)]
    text = render_text(stats_table(rows, max_rows=None))
    order = [name for name in ("hot", "warm", "idle", "unknown")]
    positions = [text.index(row_of(text, name)) for name in order]
    assert positions == sorted(positions)


def test_more_rows_than_max_rows_shows_the_busiest_and_a_count() -> None:
    rows = [sample(f"job{i:02d}", cpu=float(i)) for i in range(20)]
    text = render_text(stats_table(rows, max_rows=5, show_id=False))
    lines = body_lines(text)
    assert len(lines) == 1 + 5  # header, 4 busiest, "+16 more"
    assert [line.split()[0] for line in lines[1:5]] == ["job19", "job18", "job17", "job16"]
    assert lines[5].split() == ["+16", "more"]
    assert "job15" not in text


def test_max_rows_exactly_enough_has_no_more_row() -> None:
    rows = [sample(f"job{i}", cpu=float(i)) for i in range(5)]
    text = render_text(stats_table(rows, max_rows=5))
    assert "more" not in text
    assert len(body_lines(text)) == 6


def test_more_row_is_in_the_id_column_when_shown() -> None:
    rows = [sample(f"job{i}", cpu=float(i)) for i in range(3)]
    lines = body_lines(render_text(stats_table(rows, max_rows=2)))
    assert lines[-1].startswith("+2 more")


def test_long_names_are_ellipsized_not_wrapped() -> None:
    long_name = "a-very-long-container-name-" + "x" * 80 + "-tail"
    rows = [sample(long_name, cpu=10.0), sample("short", cpu=5.0)]
    text = render_text(stats_table(rows, max_rows=None, show_id=False, width=80), width=80)
    lines = body_lines(text)
    assert len(lines) == 3  # header and two rows: nothing wrapped
    assert all(len(line) <= 80 for line in lines)
    assert "…" in lines[1] and "-tail" not in text
    assert lines[1].startswith("a-very-long-contain")
    # The figures beside the cut name are whole.
    assert lines[1].endswith("  10.00%    12.5MiB / 64MiB  19.53%     3    1m05s")


@pytest.mark.parametrize("width", [72, 80, 100, 132])
def test_stats_table_fits_its_width(width: int) -> None:
    rows = [sample("n" * 120, cpu=123.45, usage=1023 * MiB, limit=1023 * MiB + 1)]
    text = render_text(stats_table(rows, max_rows=None, show_id=False, width=width), width=300)
    assert max(len(line) for line in body_lines(text)) <= width


# --- batch header and finished table -------------------------------------------------------


def test_batch_header_figures_and_eta() -> None:
    progress = BatchProgress(total=100, done=25, running=4, queued=71,
                             counts={"ok": 20, "failed": 5}, elapsed_s=60.0)
    text = render_text(batch_header(progress, HOST))
    assert len(body_lines(text)) == 2
    first, second = body_lines(text)
    assert "25/100 done" in first and "4 running" in first and "71 queued" in first
    assert "elapsed 1m00s" in first
    assert "ETA 3m00s" in first  # 75 left at 25 a minute
    assert "37.50%" in second and "1.5GiB / 4GiB" in second and "2 CPUs" in second


def test_batch_header_eta_unknown_before_a_job_ends() -> None:
    progress = BatchProgress(total=10, done=0, running=2, queued=8, elapsed_s=5.0)
    text = render_text(batch_header(progress, None))
    assert "ETA -" in text
    assert "ETA 0s" not in text
    # No host sample: its figures are unknown, not zero.
    assert "cpu -" in text and "mem - / -" in text
    assert "0B" not in text and "0.00%" not in text


def test_batch_header_counts_in_fixed_order_nonzero_only() -> None:
    counts = {"error": 1, "cancelled": 2, "timeout": 3, "ok": 4, "oom": 5, "failed": 6,
              "signaled": 0}
    progress = BatchProgress(total=30, done=21, running=1, queued=8, counts=counts,
                             elapsed_s=10.0)
    text = render_text(batch_header(progress, HOST), width=200)
    found = re.findall(r"\b(ok|failed|oom|timeout|signaled|cancelled|error) (\d+)", text)
    assert found == [("ok", "4"), ("failed", "6"), ("oom", "5"), ("timeout", "3"),
                     ("cancelled", "2"), ("error", "1")]


def test_batch_header_keeps_to_two_lines_when_narrow() -> None:
    counts = {status: 123 for status in
              ("ok", "failed", "oom", "timeout", "signaled", "cancelled", "error")}
    progress = BatchProgress(total=100000, done=861, running=64, queued=99075, counts=counts,
                             elapsed_s=99999.0)
    lines = body_lines(render_text(batch_header(progress, HOST), width=40))
    assert len(lines) == 2
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].endswith("…")


def test_statuses_are_colored() -> None:
    def color(status: str) -> str | None:
        style = Console().get_style(str(status_text(status).style))
        return None if style.color is None else style.color.name

    assert color("ok") == "green"
    assert color("failed") == "red"
    assert color("error") == "red"
    assert color("oom") == "magenta"
    assert color("timeout") == "yellow"


def test_colors_reach_the_terminal() -> None:
    progress = BatchProgress(total=2, done=2, running=0, queued=0,
                             counts={"ok": 1, "oom": 1}, elapsed_s=1.0)
    console = Console(width=80, file=io.StringIO(), force_terminal=True,
                      color_system="standard")
    with console.capture() as capture:
        console.print(batch_header(progress, HOST))
    out = capture.get()
    assert "\x1b[32mok 1" in out  # green
    assert "\x1b[35moom 1" in out  # magenta


def finished(name: str, status: str = "ok", exit_code: int | None = 0, wall_s: float = 4.0,
             peak: int | None = 12 * MiB + MiB // 2) -> FinishedJob:
    return FinishedJob(name=name, status=status, exit_code=exit_code, wall_s=wall_s,
                       peak_memory_bytes=peak)


def test_finished_table_newest_first_and_cut() -> None:
    jobs = [finished(f"job{i}", wall_s=float(i)) for i in range(10)]  # in the order they ended
    text = render_text(finished_table(jobs, max_rows=4))
    lines = body_lines(text)
    assert lines[0].split() == ["NAME", "STATUS", "EXIT", "WALL", "PEAK", "MEM"]
    assert [line.split()[0] for line in lines[1:4]] == ["job9", "job8", "job7"]
    assert lines[4].split() == ["+7", "more"]


def test_finished_table_figures_and_unknowns() -> None:
    jobs = [finished("good", wall_s=65.0),
            finished("killed", status="oom", exit_code=None, wall_s=3.0, peak=None)]
    text = render_text(finished_table(jobs, max_rows=10))
    assert row_of(text, "good").split() == ["good", "ok", "0", "1m05s", "12.5MiB"]
    assert row_of(text, "killed").split() == ["killed", "oom", "-", "3s", "-"]


# --- whole views ------------------------------------------------------------------------


def running_rows(n: int) -> list[ContainerSample]:
    return [
        sample(f"job-{i:03d}" + ("-with-a-rather-long-name" if i % 7 == 0 else ""),
               cpu=None if i % 11 == 0 else float(i % 97) * 1.5,
               usage=(i + 1) * MiB, limit=None if i % 3 == 0 else 256 * MiB,
               pids=i % 9, elapsed_s=i * 10.0)
        for i in range(n)
    ]


PROGRESS = BatchProgress(total=1000, done=300, running=200, queued=500,
                         counts={"ok": 280, "failed": 12, "oom": 5, "timeout": 3},
                         elapsed_s=600.0)
FINISHED = [finished(f"done-{i}", status="ok" if i % 4 else "failed", wall_s=float(i))
            for i in range(300)]


def test_batch_view_fits_80x24_with_200_running() -> None:
    text = render_text(batch_view(PROGRESS, HOST, running_rows(200), FINISHED,
                                  width=80, height=24), width=80)
    lines = body_lines(text)
    assert len(lines) <= 24
    assert max(len(line) for line in lines) <= 80
    # The running table has most of the room and says how many it hides.
    shown_running = [line for line in lines if line.startswith("job-")]
    assert len(shown_running) >= 10
    more = [line.split() for line in lines if re.match(r"\+\d+ more", line)]
    assert more[0] == [f"+{200 - len(shown_running)}", "more"]
    # A few finished jobs, newest first, with their own "+N more".
    shown_finished = [line.split()[0] for line in lines if line.startswith("done-")]
    assert 1 <= len(shown_finished) <= 5
    assert shown_finished[0] == "done-299"
    assert more[1] == [f"+{300 - len(shown_finished)}", "more"]


def test_batch_view_shows_the_busiest_running_jobs() -> None:
    rows = running_rows(200)
    text = render_text(batch_view(PROGRESS, HOST, rows, [], width=80, height=24))
    shown = re.findall(r"^(job-\d{3})", text, flags=re.MULTILINE)  # long names are cut
    assert len(shown) >= 10
    top_cpu = sorted((r.cpu_percent or 0.0 for r in rows), reverse=True)
    shown_cpu = [r.cpu_percent or 0.0 for r in rows if r.name[:7] in shown]
    assert shown_cpu and sorted(shown_cpu, reverse=True) == top_cpu[: len(shown)]


@pytest.mark.parametrize(("width", "height"), [
    (80, 24), (80, 10), (60, 12), (100, 40), (132, 50), (200, 60), (40, 8), (80, 5),
])
@pytest.mark.parametrize("n_running", [0, 1, 3, 200])
@pytest.mark.parametrize("n_finished", [0, 2, 300])
def test_batch_view_never_exceeds_the_terminal(
    width: int, height: int, n_running: int, n_finished: int,
) -> None:
    view = batch_view(PROGRESS, HOST, running_rows(n_running), FINISHED[:n_finished],
                      width=width, height=height)
    lines = body_lines(render_text(view, width=width))
    assert len(lines) <= height
    assert max(len(line) for line in lines) <= width
    if n_running and height >= 4:
        assert any("job-" in line for line in lines)
    if width >= 60:
        # Rendered wider than asked, the view still keeps to `width`: its columns are
        # chosen for it, not squeezed by rich, so every figure column stays whole.
        wide = body_lines(render_text(view, width=width + 100))
        assert max(len(line.rstrip()) for line in wide) <= width
        assert len(wide) == len(lines)
        for line in lines[2:]:
            assert "…" not in line or re.match(r"(\w{12}  )?job-", line), line


def test_batch_view_uses_spare_room_when_few_run() -> None:
    text = render_text(batch_view(PROGRESS, HOST, running_rows(2), FINISHED,
                                  width=80, height=24))
    lines = body_lines(text)
    assert len([line for line in lines if line.startswith("job-")]) == 2
    # 24 lines: header 2, running header 1 + 2 rows, title 1, finished header 1, 17 rows.
    assert len([line for line in lines if line.startswith("done-")]) == 16
    assert len(lines) == 24


def test_batch_view_all_fits_without_more_rows() -> None:
    text = render_text(batch_view(PROGRESS, HOST, running_rows(3), FINISHED[:2],
                                  width=80, height=24))
    assert "more" not in text
    assert text.index("done-1") < text.index("done-0")


def test_batch_view_wide_terminal_shows_ids() -> None:
    rows = running_rows(3)
    narrow = render_text(batch_view(PROGRESS, HOST, rows, [], width=80, height=24))
    wide = render_text(batch_view(PROGRESS, HOST, rows, [], width=132, height=24), width=132)
    assert "CONTAINER ID" in wide and rows[0].id[:12] in wide
    assert "STATE" in narrow  # 80 columns keep NAME readable rather than show the ID
    assert "job-000-with-a-rather-long-name" in wide


def test_stats_view_header_and_fit() -> None:
    rows = running_rows(50)
    text = render_text(stats_view(HOST, rows, width=80, height=24))
    lines = body_lines(text)
    assert len(lines) == 24
    assert lines[0].startswith("50 containers")
    assert "37.50%" in lines[0] and "1.5GiB / 4GiB" in lines[0]
    assert lines[1].split()[0] in ("NAME", "CONTAINER")
    assert lines[-1].split() == [f"+{50 - 21}", "more"]


def test_stats_view_unknown_host_and_no_containers() -> None:
    text = render_text(stats_view(None, [], width=80, height=24))
    lines = body_lines(text)
    assert lines[0].startswith("0 containers")
    assert "cpu -" in lines[0] and "mem - / -" in lines[0]
    assert "NAME" in lines[1]
    assert len(lines) == 2


def test_render_text_is_plain() -> None:
    text = render_text(status_text("ok"))
    assert text == "ok\n"
    assert "\x1b" not in render_text(batch_header(PROGRESS, HOST))
