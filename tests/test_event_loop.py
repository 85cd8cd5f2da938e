"""Nothing a container does at its end blocks the event loop that serves the others:
a teardown that takes seconds (a process lingering in the cgroup) runs in a worker
thread, while every other container's output, exit and signals go on."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import anyio
import pytest

import cgroupfs
from supervisor import ContainerSpec, Supervisor

from .containers import PYTHON

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("root_only")]

SLOW_TEARDOWN_S = 2.0
TICKER = ("import time\n"
          "for _ in range(40):\n"
          "    print(time.monotonic(), flush=True)\n"
          "    time.sleep(0.025)\n")


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _slow_down(cgroup: cgroupfs.Cgroup, began: list[float]) -> None:
    """Make this cgroup's removal take SLOW_TEARDOWN_S, as a process that takes that
    long to die would: it never looks empty at once, and destroying it sleeps first."""
    destroy: Callable[..., None] = cgroup.destroy

    def slow_destroy(timeout: float = 5.0) -> None:
        began.append(time.monotonic())
        time.sleep(SLOW_TEARDOWN_S)  # blocking, as cgroupfs's bounded waits are
        destroy(timeout)

    cgroup.remove_if_empty = lambda: False  # type: ignore[method-assign]
    cgroup.destroy = slow_destroy  # type: ignore[method-assign]


async def test_a_slow_teardown_stalls_no_other_container() -> None:
    arrivals: list[tuple[float, float]] = []  # (printed at, read at)
    teardown_began: list[float] = []
    async with Supervisor() as sup:
        slow = await sup.start(ContainerSpec(["true"]))
        _slow_down(slow.cgroup, teardown_began)
        out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            ticker = await sup.start(ContainerSpec([PYTHON, "-c", TICKER], stdout=out_w))
        finally:
            os.close(out_w)
        slow_ended = anyio.Event()

        async def end_slow() -> None:
            await slow.wait()
            slow_ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(end_slow)
            pending = b""
            try:
                while True:
                    try:
                        chunk = os.read(out_r, 65536)
                    except BlockingIOError:
                        await anyio.wait_readable(out_r)
                        continue
                    if not chunk:
                        break
                    now = time.monotonic()
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    arrivals.extend((float(line), now) for line in lines)
            finally:
                os.close(out_r)
            await ticker.exited()
            exit_seen = time.monotonic()
            slow_still_tearing_down = not slow_ended.is_set()
            result = await ticker.wait()
        slow_result = await slow.wait()
    assert result.status == "ok" and slow_result.status == "ok"
    assert teardown_began, "the slow teardown never ran"
    assert slow_still_tearing_down
    # The ticker's output flowed while the other container's teardown slept.
    during = [(printed, read) for printed, read in arrivals if printed > teardown_began[0]]
    assert len(during) >= 10, arrivals
    worst = max(read - printed for printed, read in during)
    assert worst < 0.25, f"a line waited {worst:.3f}s to be read"
    # And its exit was seen at once: the last line is printed just before it exits.
    assert exit_seen - arrivals[-1][0] < 0.1, exit_seen - arrivals[-1][0]
