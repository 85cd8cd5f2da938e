"""The CLI's own async code, in process, on trio (pytest-trio): the loop `supervise run`
and `supervise batch` run under. No container: a stand-in receives what is forwarded,
and trio's autojump clock makes the stop timeout pass at once."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace
from typing import Any, cast

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


class _Starting:
    """A stand-in Supervisor whose starts wait for `go`; its containers end only when
    stopped or killed."""

    def __init__(self) -> None:
        self.go = trio.Event()
        self.started: list[_Held] = []

    async def start(self, spec: object, *, unique_name: bool = True) -> _Held:
        await self.go.wait()
        held = _Held(spec)
        self.started.append(held)
        return held


class _Held:
    setup_errno = None

    def __init__(self, spec: object) -> None:
        self.spec = spec
        self.ended = trio.Event()
        self.how = ""

    def kill(self, *, cancel: bool = False) -> None:
        self.how = self.how or "kill"
        self.ended.set()

    async def stop(self, *, cancel: bool = False) -> None:
        self.how = self.how or "stop"
        self.ended.set()

    async def wait(self) -> object:
        with trio.move_on_after(2):  # (a sleep 60 neither stopped nor killed: runs on)
            await self.ended.wait()
        return _result(self.spec)


def _result(spec: object) -> object:
    from supervisor._result import Result

    return Result(name="j", line=None, argv=["sleep"], status="cancelled", exit_code=None,
                  signal=9, oom_killed=False, timed_out=False, attempts=1,
                  started_at="2026-01-01T00:00:00Z", ended_at="2026-01-01T00:00:00Z",
                  wall_s=0.0, cpu_user_s=None, cpu_system_s=None, peak_memory_bytes=None,
                  memory_limit_bytes=None, stdout_path=None, stderr_path=None, error=None)


@pytest.mark.parametrize("end", ["cancel_running", "kill_running"])
async def test_jobs_still_starting_when_the_batch_is_stopped_are_ended_too(end: str) -> None:
    """Ctrl-C (or --halt now) while starts are in flight: each container that comes up
    after it is stopped (or killed) at once, not left to run out its time."""
    from supervisor import ContainerSpec
    from supervisor._batch import Batch
    from supervisor._batch_job import BatchJob, BatchPolicy
    from supervisor._schedule import Admission

    sup = _Starting()
    jobs = [BatchJob(f"job-{n}", ContainerSpec(["sleep", "60"])) for n in range(5)]
    batch = Batch(cast("Any", sup), jobs, BatchPolicy(Admission(max_jobs=5)))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(batch.run)
            await trio.testing.wait_all_tasks_blocked()  # all five starts in flight
            batch.stop()
            getattr(batch, end)()
            sup.go.set()
    assert len(sup.started) == 5
    assert {held.how for held in sup.started} == {"stop" if end == "cancel_running" else "kill"}
