"""The Supervisor: owns the spawner and every container it starts."""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from types import TracebackType

import anyio
import anyio.abc

import cgroupfs

from . import _state
from ._container import Container
from ._errors import SuperviseError
from ._loopback import loopback_up_request
from ._result import Result, iso_utc
from ._spawner_client import SpawnerClient
from ._spec import DEVNULL, ContainerSpec


class Supervisor:
    """An async context manager; leaving it, for any reason, stops every container
    it started and removes their cgroups.

        async with Supervisor() as sup:
            result = await sup.run(ContainerSpec(["echo", "hi"]))
    """

    def __init__(self, *, cgroup_parent: str | None = None, python: str | None = None,
                 state_dir: str | None = None, write_state: bool = True) -> None:
        """state_dir: where live containers are announced to `supervise ps` and friends
        (default $SUPERVISE_STATE_DIR or /run/supervise); write_state=False keeps quiet."""
        self._cgroup_parent = cgroup_parent
        self._state_dir = state_dir or _state.state_dir()
        self._write_state = write_state
        self._own_start_ticks = _state.process_start_ticks(os.getpid())
        self._python = python
        self._client: SpawnerClient | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._containers: dict[str, Container] = {}
        self._names: set[str] = set()
        self._loopback: bytes | None = None
        self._loopback_error: str | None = None
        self._loopback_ready: anyio.Event | None = None
        self._devnull: int | None = None
        self.layout: cgroupfs.Layout | None = None

    async def __aenter__(self) -> Supervisor:
        try:
            self.layout = cgroupfs.detect_layout()
        except cgroupfs.CgroupError as exc:
            raise SuperviseError(str(exc)) from exc
        self._client = SpawnerClient.start(self._python)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._client.read_events)
        self._loopback_ready = anyio.Event()
        self._tg.start_soon(self._prepare_loopback, self._loopback_ready)
        self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        with anyio.CancelScope(shield=True):
            for container in list(self._containers.values()):
                container.cancelled = container.cancelled or exc_type is not None
                container.kill()
            with anyio.move_on_after(10):
                for container in list(self._containers.values()):
                    await container.wait()
            for container in list(self._containers.values()):  # spawner hung: force
                container._on_exit(None)
                container._finish()
            assert self._client is not None and self._tg is not None
            tg = self._tg
            await self._client.close()
            if self._devnull is not None:
                os.close(self._devnull)
        # The task group was entered outside the shield: leave it outside too.
        self._tg = None
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)
        return None

    async def _prepare_loopback(self, ready: anyio.Event) -> None:
        """Encode the lo-up request once, in a thread, while the spawner starts."""
        try:
            self._loopback = await anyio.to_thread.run_sync(loopback_up_request)
        except ImportError as exc:
            self._loopback_error = f"pyroute2 is needed for --net none: {exc}"
        finally:
            ready.set()

    async def _loopback_request(self) -> bytes:
        assert self._loopback_ready is not None
        await self._loopback_ready.wait()
        if self._loopback is None:
            raise SuperviseError(self._loopback_error or "no loopback request")
        return self._loopback

    def _forget(self, container: Container) -> None:
        self._containers.pop(container.id, None)
        self._names.discard(container.name)
        if self._write_state:
            _state.remove_state(container.id, self._state_dir)
            if container.spec.name is not None:
                _state.release_name(container.name, container.id, self._state_dir)

    def _announce(self, container: Container) -> None:
        if not self._write_state:
            return
        spec = container.spec
        state = _state.ContainerState(
            id=container.id, name=container.name, pid=container.pid,
            pid_start_ticks=_state.process_start_ticks(container.pid),
            supervisor_pid=os.getpid(), supervisor_start_ticks=self._own_start_ticks,
            cgroup_paths=list(container.cgroup.paths), argv=list(spec.argv),
            started_at=iso_utc(container.started_at), hostname=spec.hostname or container.id,
            limits={k: v for k, v in dataclasses.asdict(spec.limits).items() if v is not None},
            line=spec.line,
        )
        try:
            _state.write_state(state, self._state_dir)
        except OSError as exc:
            raise SuperviseError(
                f"writing state to {self._state_dir}: {exc.strerror}") from exc

    async def start(self, spec: ContainerSpec, *, cid: str | None = None) -> Container:
        """Create the cgroup, start the container, return once its PID 1 exists."""
        if self._client is None:
            raise SuperviseError("the supervisor is not running (use `async with`)")
        cid = cid or secrets.token_hex(6)
        name = spec.name or cid
        if name in self._names:
            raise SuperviseError(f"the name {name!r} is already in use by a running container")
        named = spec.name is not None and self._write_state
        if named:
            try:
                _state.claim_name(name, cid, os.getpid(), self._own_start_ticks, self._state_dir)
            except (_state.NameTaken, ValueError) as exc:
                raise SuperviseError(str(exc)) from exc
            except OSError as exc:
                raise SuperviseError(
                    f"claiming the name {name!r} in {self._state_dir}: {exc.strerror}") from exc
        try:
            return await self._start(spec, cid, name)
        except BaseException:
            if named:
                _state.release_name(name, cid, self._state_dir)
            raise

    async def _start(self, spec: ContainerSpec, cid: str, name: str) -> Container:
        assert self._client is not None
        loopback = await self._loopback_request() if "net" in spec.namespaces() else None
        try:
            cgroup = cgroupfs.create_cgroup(
                cid, limits=spec.limits, parent=self._cgroup_parent, layout=self.layout)
        except cgroupfs.CgroupError as exc:
            raise SuperviseError(str(exc)) from exc
        self._names.add(name)
        try:
            fds, stdio = self._stdio(spec)
            init = spec.init_spec(
                hostname=spec.hostname or cid, cgroup_procs=cgroup.procs_files,
                loopback_request=loopback, stdio=stdio,
            )
            started_at = time.time()
            started = await self._client.spawn(cid, init, fds)
        except BaseException:
            self._names.discard(name)
            with anyio.CancelScope(shield=True):
                cgroup.destroy()
            raise
        container = Container(self, cid, name, spec, cgroup, started, started_at)
        self._containers[cid] = container
        client = self._client
        try:
            self._announce(container)
        except SuperviseError:
            container.kill()
            with anyio.CancelScope(shield=True):
                await client.wait_exit(cid)
                container._on_exit(None)
                container._finish()
            raise

        async def watch() -> None:
            try:
                exited = await client.wait_exit(cid)
            except SuperviseError:
                exited = None
            container._on_exit(exited)

        assert self._tg is not None
        self._tg.start_soon(watch)
        return container

    def _stdio(self, spec: ContainerSpec) -> tuple[list[int], list[int]]:
        fds: list[int] = []
        stdio: list[int] = []
        for default, given in ((0, spec.stdin), (1, spec.stdout), (2, spec.stderr)):
            fd = default if given is None else given
            if fd == DEVNULL:
                assert self._devnull is not None
                fd = self._devnull
            if fd not in fds:
                fds.append(fd)
            stdio.append(fds.index(fd))
        return fds, stdio

    async def run(self, spec: ContainerSpec) -> Result:
        """Start a container and wait for its result."""
        container = await self.start(spec)
        return await container.wait()

    @property
    def containers(self) -> list[Container]:
        return list(self._containers.values())
