"""The CLI's own async code, in process, on trio (pytest-trio): the loop `supervise run`
and `supervise batch` run under. No container: a stand-in receives what is forwarded,
and trio's autojump clock makes the stop timeout pass at once."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace
from typing import cast

import anyio
import pytest
import trio
import trio.testing

from supervisor.cli._batch_runner import _relay
from supervisor.cli._run import Attached, _forward_signals

pytestmark = pytest.mark.trio


class StandIn:
    """What _forward_signals sees of a container: the signals and kills, and when."""

    def __init__(self, stop_timeout: float) -> None:
        self.spec = SimpleNamespace(stop_timeout=stop_timeout)
        self.calls: list[tuple[str, int | None, float]] = []

    def signal(self, sig: int) -> None:
        self.calls.append(("signal", sig, trio.current_time()))

    def kill(self) -> None:
        self.calls.append(("kill", None, trio.current_time()))


async def _forward(sent: list[int], stop_timeout: float, wait: float) -> list[tuple[str,
                                                                                   int | None,
                                                                                   float]]:
    """Send ``sent`` to _forward_signals at time 0; what the container got within ``wait``."""
    container = StandIn(stop_timeout)
    send, receive = trio.open_memory_channel[int](len(sent))
    start = trio.current_time()
    with trio.move_on_after(wait):
        async with anyio.create_task_group() as tg:
            tg.start_soon(_forward_signals, cast(Attached, container), receive, tg,
                          container.spec.stop_timeout)
            for sig in sent:
                await send.send(sig)
            await trio.sleep_forever()
    return [(what, sig, at - start) for what, sig, at in container.calls]


async def test_a_signal_is_forwarded_then_the_stop_timeout_kills(
        autojump_clock: trio.testing.MockClock) -> None:
    calls = await _forward([signal.SIGTERM], stop_timeout=10, wait=60)
    assert calls == [("signal", signal.SIGTERM, 0), ("kill", None, pytest.approx(10))]


async def test_a_second_interrupt_kills_at_once(autojump_clock: trio.testing.MockClock) -> None:
    calls = await _forward([signal.SIGINT, signal.SIGINT], stop_timeout=10, wait=5)
    assert calls == [("signal", signal.SIGINT, 0), ("kill", None, 0)]


async def test_a_second_term_is_forwarded_not_a_kill(
        autojump_clock: trio.testing.MockClock) -> None:
    calls = await _forward([signal.SIGTERM, signal.SIGHUP], stop_timeout=10, wait=5)
    assert calls == [("signal", signal.SIGTERM, 0), ("signal", signal.SIGHUP, 0)]


async def test_tagged_output_is_whole_lines_each_with_the_name() -> None:
    job_r, job_w = os.pipe()
    ours_r, ours_w = os.pipe()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_relay, job_r, "web", ours_w)
            for chunk in (b"one\ntw", b"o\n", b"three"):  # a line across two reads
                os.write(job_w, chunk)
                await trio.testing.wait_all_tasks_blocked()  # read, and waiting for more
            os.close(job_w)
            job_w = -1
        os.close(ours_w)
        ours_w = -1
        with os.fdopen(ours_r, "rb") as relayed:
            ours_r = -1
            assert relayed.read() == b"web\tone\nweb\ttwo\nweb\tthree\n"
    finally:
        for fd in (job_w, ours_r, ours_w):
            if fd >= 0:
                os.close(fd)
