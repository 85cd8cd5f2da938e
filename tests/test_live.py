"""The batch live view and --stats-json, with real containers."""

from __future__ import annotations

import json
import subprocess
import termios
from pathlib import Path

import pytest

from .containers import PYTHON
from .terminal import in_terminal, read_until

pytestmark = pytest.mark.usefixtures("root_only")


def test_batch_shows_a_live_view_in_a_terminal(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name watched-job -m 64m -- sleep 3\n--name quick -- true\n")
    with in_terminal([PYTHON, "-m", "supervisor", "batch", str(jobs), "-j", "2",
                      "--interval", "0.2s"]) as (proc, master, slave):
        modes = termios.tcgetattr(slave)
        screen = read_until(master, [b"done", b"watched-job", b"MEM USAGE / LIMIT",
                                     b"running", b"64MiB"])
        assert b"1/2 done" in screen or b"0/2 done" in screen
        rest = read_until(master, [b"2 jobs: 2 ok"])
        assert b"2/2 done" in screen + rest
        assert proc.wait(timeout=30) == 0
        # The terminal is as it was (rich's Live only moves the cursor and hides it).
        assert termios.tcgetattr(slave) == modes


def test_stats_json_appends_samples(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name sampled -m 64m -- sh -c 'sleep 1.2'\n")
    stats = tmp_path / "stats.jsonl"
    done = subprocess.run(
        [PYTHON, "-m", "supervisor", "batch", str(jobs), "--no-live", "--interval", "0.2s",
         "--stats-json", str(stats)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in stats.read_text().splitlines()]
    assert len(samples) >= 3
    # A sample taken while it surely runs (a last one may catch it as it exits).
    rows = [c for s in samples for c in s["containers"]
            if c["cpu_percent"] is not None and c["elapsed_s"] < 1.0]
    assert rows
    row = rows[-1]
    assert row["name"] == "sampled" and row["memory_limit_bytes"] == 64 << 20
    assert row["pids"] >= 1
    assert samples[0]["host"]["memory_total_bytes"] > 0
