"""The batch live view and --stats-json, with real containers."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from .containers import PYTHON

pytestmark = pytest.mark.usefixtures("root_only")


def _read_until(fd: int, needles: list[bytes], timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while not all(n in seen for n in needles):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"never saw {needles}; got {seen[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_batch_shows_a_live_view_in_a_terminal(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("--name watched-job -m 64m -- sleep 3\n--name quick -- true\n")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    modes = termios.tcgetattr(slave)
    wrapper = ("import fcntl, os, sys, termios; os.setsid(); "
               "fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])")
    proc = subprocess.Popen(
        [PYTHON, "-c", wrapper, PYTHON, "-m", "supervisor", "batch", str(jobs), "-j", "2",
         "--interval", "0.2s"],
        stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    try:
        screen = _read_until(master, [b"done", b"watched-job", b"MEM USAGE / LIMIT",
                                      b"running", b"64MiB"])
        assert b"1/2 done" in screen or b"0/2 done" in screen
        rest = _read_until(master, [b"2 jobs: 2 ok"])
        assert b"2/2 done" in screen + rest
        assert proc.wait(timeout=30) == 0
        # The terminal is as it was (rich's Live only moves the cursor and hides it).
        assert termios.tcgetattr(slave) == modes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


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
