"""Threads that start containers natively (`_native`), so that several start at once.

A native start blocks the thread that makes it until the child has exec'd (CLONE_VFORK:
the child uses the spawner's memory until then), about a millisecond of the child's
own work. One thread doing them all made the spawner the bottleneck of a batch of
short jobs (measured: a quarter of both CPUs idle at -j 8). So the spawner's main
thread compiles and lowers each plan and hands it to one of a few launcher threads;
each blocks in its start with the GIL released, then puts the outcome on a queue and
wakes the main thread through a pipe in its epoll set. Only the main thread talks to
the supervisor.

`_thread` and `_queue` are the interpreter's own C modules: nothing to import at the
spawner's start. The threads are made at the first start (after `Place`: a v1 `tasks`
file moves only the thread that writes it, and a new thread inherits its maker's
cgroups) and live as long as the spawner; a child's parent-death signal follows the
thread that started it, so they never exit.

A fork of this process (the Python path) must not happen while a launcher waits for
the GIL: the child would wait forever for a thread it does not have to take it. So
the spawner calls `wait_idle` first; an idle launcher is blocked on its queue.
"""

from __future__ import annotations

import _queue
import _thread
import contextlib
import os
import select
import time

from . import _libc, _native

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Launchers:
    """A pool of launcher threads, made at the first start; then `wake_r` (registered in
    the epoll set given) is readable when starts have finished."""

    def __init__(self, count: int, epoll: Any) -> None:
        self.count = count
        self.epoll = epoll
        self.jobs: Any = _queue.SimpleQueue()
        self.done: Any = _queue.SimpleQueue()
        self.wake_r = self.wake_w = -1
        self.in_flight = 0

    def submit(self, entry: Any) -> None:
        """Start entry.native (see _work); its outcome comes back from `finished`.
        OSError if the launchers could not be made (no memory for their stacks)."""
        if self.wake_r < 0:
            launchers = [_native.Launcher() for _ in range(self.count)]
            self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self.epoll.register(self.wake_r, select.EPOLLIN)
            for launcher in launchers:
                _thread.start_new_thread(self._work, (launcher,))
        self.in_flight += 1
        self.jobs.put(entry)

    def _work(self, launcher: _native.Launcher) -> None:
        jobs, done = self.jobs, self.done
        while True:
            entry = jobs.get()
            try:
                before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
                entry.outcome = launcher.spawn(
                    entry.native, entry.err_w,
                    _libc.CLONE_NEWPID if entry.new_pid_ns else 0, entry.cgroup_fd)
                entry.forked_ns = (before, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
            except BaseException as exc:  # the main thread reports it
                entry.outcome = exc
            done.put(entry)
            # full: the main thread will drain it; or the spawner is exiting
            with contextlib.suppress(OSError):
                os.write(self.wake_w, b"\0")

    def finished(self) -> list[Any]:
        """The entries whose start has finished since the last call (each with
        .outcome: (pid, pidfd), or the exception)."""
        if self.wake_r >= 0:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 65536)
        out = []
        while True:
            try:
                out.append(self.done.get_nowait())
            except _queue.Empty:
                break
        self.in_flight -= len(out)
        return out

    def wait_idle(self) -> list[Any]:
        """Block until no start is in flight; the entries that finished meanwhile."""
        out = self.finished()
        while self.in_flight:
            out.append(self.done.get())
            self.in_flight -= 1
        return out
