"""The supervisor's side of the spawner: start it, send spawns, route its events."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from nsutil import _proto
from nsutil._messages import (
    Exited,
    Failed,
    InitSpec,
    Kill,
    Place,
    Placed,
    Record,
    Shutdown,
    Spawn,
    Started,
    WireError,
    from_wire,
    to_wire,
)

from ._errors import SuperviseError
from ._launch import launch, take_prestarted


@dataclass(frozen=True)
class Spawned:
    """A container's PID 1, just started: its host pid and a pidfd for it (None if
    the fd was lost on the way: then it cannot be signalled, only waited for), and its
    start time (/proc/PID/stat's ticks; None if unknown)."""

    pid: int
    pidfd: int | None
    start_ticks: int | None = None


@dataclass
class _Pending:
    started: anyio.Event = field(default_factory=anyio.Event)
    start: Spawned | None = None
    exit: Exited | None = None
    exited: bool = False
    failure: Failed | None = None
    on_exit: Callable[[Exited | None], None] | None = None


class SpawnerGone(SuperviseError):
    pass


class SpawnerClient:
    """Owns the spawner process and the socket to it."""

    def __init__(self, sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
        self._sock = sock
        self._process = process
        self._pending: dict[str, _Pending] = {}
        self._decoder = _proto.Decoder()
        self._receiver = _proto.Receiver(sock)
        self._send_lock = anyio.Lock()
        self._closed = False
        self._placing = False
        self._placed = anyio.Event()
        self._placement: Placed | None = None

    @classmethod
    def start(cls, python: str | None = None) -> SpawnerClient:
        """A new spawner, or the one `prestart` launched earlier (once)."""
        launched = take_prestarted()
        if launched is None or launched[1].poll() is not None:
            launched = launch(python)
        return cls(*launched)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def _send(self, message: Record, fds: list[int]) -> None:
        packets = _proto.encode(to_wire(message), len(fds))
        try:
            self._send_lock.acquire_nowait()  # nobody mid-message: no need to yield
        except anyio.WouldBlock:
            await self._send_lock.acquire()
        try:
            for i, packet in enumerate(packets):
                anc = _proto.fds_ancillary(fds) if i == 0 else []
                while True:
                    try:
                        self._sock.sendmsg([packet], anc)
                        break
                    except BlockingIOError:
                        await anyio.wait_writable(self._sock)
                    except OSError as exc:
                        raise SpawnerGone("the spawner is gone") from exc
        finally:
            self._send_lock.release()

    async def place(self, join: tuple[str, ...]) -> None:
        """Have the spawner join these cgroups (see nsutil's Place) before any spawn.
        Only sent here: the first spawn waits for the answer, and fails with its
        error (every spawn does) if the spawner could not join them."""
        self._placing = True
        await self._send(Place(join=join), [])

    async def _placement_done(self) -> None:
        if not self._placing:
            return
        await self._placed.wait()
        if self._placement is None:
            raise SpawnerGone("the spawner is gone")
        if self._placement.error is not None:
            raise SuperviseError(self._placement.error.message)

    async def spawn(self, cid: str, spec: InitSpec, fds: list[int]) -> Spawned:
        """Start one container; returns its pid and a pidfd, or raises with the spawner's
        or the init's report."""
        if self._closed:
            raise SpawnerGone("the spawner is gone")
        await self._placement_done()
        pending = self._pending[cid] = _Pending()
        await self._send(Spawn(id=cid, spec=spec), fds)
        await pending.started.wait()
        if pending.start is None:
            self._pending.pop(cid, None)
            if pending.failure is None:
                raise SpawnerGone("the spawner is gone")
            error = pending.failure.error
            raise SuperviseError(error.message, errno=error.errno)
        return pending.start

    async def kill(self, cid: str) -> None:
        """Have the spawner SIGKILL a container (one whose pidfd did not reach us)."""
        await self._send(Kill(id=cid), [])

    def watch(self, cid: str, on_exit: Callable[[Exited | None], None]) -> None:
        """Call on_exit with the container's exit (None: the spawner died first) as
        soon as the spawner reports it: from the event reader, no task per container."""
        pending = self._pending.get(cid)
        if pending is None or pending.exited:
            self._pending.pop(cid, None)
            on_exit(pending.exit if pending is not None else None)
        else:
            pending.on_exit = on_exit

    def _exited(self, cid: str, pending: _Pending) -> None:
        pending.exited = True
        pending.started.set()
        if pending.on_exit is not None:
            self._pending.pop(cid, None)
            pending.on_exit(pending.exit)

    def _dispatch(self, message: Record, fds: list[int] | None) -> None:
        if isinstance(message, Placed):
            self._placement = message
            self._placed.set()
            return
        cid = getattr(message, "id", None)
        pending = self._pending.get(cid) if isinstance(cid, str) else None
        if pending is None:
            for fd in fds or []:
                os.close(fd)
            return
        if isinstance(message, Started):
            pending.start = Spawned(message.pid, _pidfd(fds), message.start_ticks)
            pending.started.set()
        elif isinstance(message, Exited):
            pending.exit = message
            self._exited(message.id, pending)
        elif isinstance(message, Failed):
            pending.failure = message
            self._exited(message.id, pending)

    async def read_events(self) -> None:
        """Route events until the spawner closes its socket, or sends what is not a
        valid event (then it is broken, and treated as dead). Run this in a task."""
        try:
            while True:
                try:
                    packet, fds = self._receiver.recv()
                except BlockingIOError:
                    await anyio.wait_readable(self._sock)
                    continue
                except OSError:
                    break
                if not packet:
                    break
                decoded = self._decoder.feed(packet, fds)
                if decoded is None:
                    continue
                wire, got = decoded
                try:
                    message = from_wire(wire)
                except WireError:
                    for fd in got or []:
                        os.close(fd)
                    break
                self._dispatch(message, got)
        finally:
            self._closed = True
            self._placed.set()
            for cid, pending in list(self._pending.items()):
                self._exited(cid, pending)

    async def close(self, timeout: float = 5.0) -> None:
        """Ask the spawner to stop (it kills what it still runs) and reap it."""
        if not self._closed:
            try:
                with anyio.move_on_after(1):
                    await self._send(Shutdown(), [])
            except SpawnerGone:
                pass
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with anyio.move_on_after(timeout):
            try:
                pidfd = os.pidfd_open(self._process.pid)
            except ProcessLookupError:
                pidfd = None
            if pidfd is not None:  # readable once the process has exited
                try:
                    await anyio.wait_readable(pidfd)
                finally:
                    os.close(pidfd)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._sock.close()


def _pidfd(fds: list[int] | None) -> int | None:
    """The pidfd that came with a Started event; None if the kernel dropped it (this
    process is out of descriptors). Never one opened by pid: the spawner may have
    reaped that pid already, and it may be another process's now."""
    if not fds:
        return None
    for fd in fds[1:]:
        os.close(fd)
    return fds[0]
