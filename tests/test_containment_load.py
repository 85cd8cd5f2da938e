"""Greedy containers stay inside their limits and the host stays usable."""

from __future__ import annotations

import subprocess
import time

import anyio
import psutil
import pytest

from supervisor import ContainerSpec, Limits, Supervisor

from .containers import PYTHON

# On trio (pytest-trio), the backend users get from the CLI.
pytestmark = [pytest.mark.trio, pytest.mark.usefixtures("root_only"), pytest.mark.hardening]

# Every process forks for ever, and retries when the kernel says no.
FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""


def _host_latency() -> float:
    started = time.monotonic()
    subprocess.run(["true"], check=True)
    return time.monotonic() - started


async def test_a_fork_bomb_is_held_at_the_pids_limit() -> None:
    async with Supervisor() as sup:
        bomb = await sup.start(ContainerSpec([PYTHON, "-c", FORK_BOMB],
                                             limits=Limits(pids_max=64), timeout=4,
                                             stop_timeout=0.5))
        peak = 0
        latencies = []
        for _ in range(15):
            await anyio.sleep(0.2)
            current = bomb.stats().pids_current or 0
            peak = max(peak, current)
            latencies.append(await anyio.to_thread.run_sync(_host_latency))
        result = await bomb.wait()
    assert peak == 64, f"pids.current peaked at {peak}"
    assert max(latencies) < 1.0, latencies  # the host still runs a process in well under 1 s
    assert result.status == "timeout"


async def test_a_memory_hog_is_killed_inside_its_limit_not_the_host() -> None:
    hog = ("chunks = []\n"
           "while True:\n"
           "    chunks.append(bytearray(16 << 20))\n")
    available_before = psutil.virtual_memory().available
    async with Supervisor() as sup:
        result = await sup.run(ContainerSpec(
            [PYTHON, "-c", hog], limits=Limits(memory_bytes=128 << 20,
                                               memory_swap_bytes=128 << 20), timeout=30))
    assert result.status == "oom" and result.oom_killed
    assert result.peak_memory_bytes is not None and result.peak_memory_bytes <= 128 << 20
    # The host never came near its own OOM: what the hog took was its limit at most.
    assert psutil.virtual_memory().available > available_before - (256 << 20)
