"""Every `supervise: ...` line is one line: a name or path holding a line break or a
control character is shown escaped, wherever in the CLI the line comes from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor.cli._output import one_line, say

from .containers import supervise


def test_say_escapes_line_breaks_and_control_characters(
        capsys: pytest.CaptureFixture[str]) -> None:
    say("a\nb\r\x1b[31m\u2028\udcff\tc é")
    assert capsys.readouterr().err == "supervise: a\\nb\\r\\x1b[31m\\u2028\\udcff\tc é\n"


def test_one_line_keeps_printable_text() -> None:
    assert one_line("--logs /tmp/x y: No space left on device") == (
        "--logs /tmp/x y: No space left on device")


def test_kill_names_an_unknown_container_on_one_line() -> None:
    done = supervise("kill", "gh\nost")
    assert done.returncode == 1
    assert done.stderr == "supervise: no such container: gh\\nost\n"


@pytest.mark.usefixtures("root_only")
def test_batch_names_a_results_path_on_one_line(tmp_path: Path) -> None:
    """The summary's "skipped: already ok in FILE" (--resume) names --results as given."""
    odd = tmp_path / "r\nd"
    odd.mkdir()
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\n")
    results = str(odd / "results.jsonl")
    first = supervise("batch", "--no-live", str(jobs), "--results", results)
    assert first.returncode == 0, first.stderr
    again = supervise("batch", "--no-live", str(jobs), "--resume", "--results", results)
    assert again.returncode == 0, again.stderr
    lines = again.stderr.splitlines()
    assert all(line.startswith("supervise: ") for line in lines), again.stderr
    shown = os.path.join(str(tmp_path), "r\\nd", "results.jsonl")
    assert f"supervise: 1 jobs skipped: already ok in {shown}" in lines, again.stderr
