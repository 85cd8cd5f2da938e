"""The Supervisor: owns the spawner and every container it starts."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

import anyio
import anyio.abc

import cgroupfs
from nsutil._messages import InitSpec

from . import _state
from ._container import Container, remove_cgroup
from ._devices import DEFAULT_RULES
from ._errors import SuperviseError
from ._fds import raise_soft_limit
from ._gc import shared_name
from ._ids import new_id
from ._loopback import loopback_up_request
from ._result import Result, iso_utc
from ._spawner_client import Spawned, SpawnerClient, SpawnerGone
from ._spec import DEVNULL, ContainerSpec

_LIMIT_FIELDS = dataclasses.fields(cgroupfs.Limits)
# Starts in flight at most (made, sent, not yet answered): enough to keep the spawner's
# groups (32) and its launchers busy.
STARTS_AT_ONCE = 64
# v1 hierarchies where every container has a cgroup of its own: its figures.
PER_CONTAINER = ("memory", "cpuacct")
_SERIALS = itertools.count()  # the supervisors of this process (see _make_shared)
SPAWNER_RESTARTS = 5
SPAWNER_RESTART_WINDOW_S = 10.0


class Supervisor:
    """An async context manager; leaving it, for any reason, stops every container
    it started and removes their cgroups.

        async with Supervisor() as sup:
            result = await sup.run(ContainerSpec(["echo", "hi"]))
    """

    def __init__(self, *, cgroup_parent: str | None = None, python: str | None = None,
                 state_dir: str | None = None, write_state: bool = True,
                 warn: Callable[[str], None] | None = None) -> None:
        """state_dir: where live containers are announced to `supervise ps` and friends
        (default $SUPERVISE_STATE_DIR or /run/supervise); write_state=False keeps quiet.
        warn: called with a one-line message when something recoverable went wrong
        (the spawner died and was restarted)."""
        self._warn = warn or (lambda _message: None)
        self._closing = False
        self._spawner_error: str | None = None
        self.spawner_restarts = 0
        self._cgroup_parent = cgroup_parent
        self._state_dir = state_dir or _state.state_dir()
        self._write_state = write_state
        self._own_start_ticks = _state.process_start_ticks(os.getpid())
        self._journal = _state.Journal(
            self._state_dir, _state.journal_key(os.getpid(), self._own_start_ticks))
        self._python = python
        self._client: SpawnerClient | None = None
        self._client_changed = anyio.Event()
        self._starting = anyio.Semaphore(STARTS_AT_ONCE)
        self._tg: anyio.abc.TaskGroup | None = None
        self._containers: dict[str, Container] = {}
        self._names: set[str] = set()
        self._claimed: set[str] = set()  # ids whose name is claimed in the state directory
        self._loopback: bytes | None = None
        self._loopback_error: str | None = None
        self._loopback_ready: anyio.Event | None = None
        self._devnull: int | None = None
        self._shared: cgroupfs.Cgroup | None = None
        self._shared_devices = False
        self._shared_unified = False  # the spawner sits in a hybrid host's unified tree
        self.layout: cgroupfs.Layout | None = None
        self._swap_limit = False  # whether memory+swap can be limited here (docker's default)

    async def __aenter__(self) -> Supervisor:
        try:
            self.layout = cgroupfs.detect_layout()
            self._swap_limit = cgroupfs.swap_limit_supported(self.layout)
            self._shared = self._make_shared(self.layout)
        except cgroupfs.CgroupError as exc:
            raise SuperviseError(str(exc)) from exc
        try:
            self._client = SpawnerClient.start(self._python)
        except BaseException:
            self._remove_shared()
            raise
        raise_soft_limit()  # (after the spawner's launch: see _fds)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._serve_spawner)
        await self._place(self._client)
        self._loopback_ready = anyio.Event()
        self._tg.start_soon(self._prepare_loopback, self._loopback_ready)
        self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closing = True
        with anyio.CancelScope(shield=True):
            for container in list(self._containers.values()):
                container.kill(cancel=exc_type is not None)
            with anyio.move_on_after(10):
                for container in list(self._containers.values()):
                    await container.exited()
            # Read their figures and remove their cgroups; what the spawner never
            # reported exited (it is hung) is recorded as dead with it.
            for container in list(self._containers.values()):
                await container.abandon()
            assert self._tg is not None
            tg = self._tg
            if self._client is not None:
                await self._client.close()
            shared, self._shared = self._shared, None
            if shared is not None:  # empty now: the spawner was all it held
                await remove_cgroup(shared)
            if self._devnull is not None:
                os.close(self._devnull)
            self._journal.close()
            if self._cgroup_parent is None:
                with contextlib.suppress(cgroupfs.CgroupError):
                    cgroupfs.remove_unused_parents(self.layout)
        # The task group was entered outside the shield: leave it outside too.
        self._tg = None
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)
        return None

    async def _serve_spawner(self) -> None:
        """Route the spawner's events; if it dies, its containers end as errors (their
        PID 1s die with it: PR_SET_PDEATHSIG) and a new spawner takes over, unless
        they keep dying (SPAWNER_RESTARTS within SPAWNER_RESTART_WINDOW_S)."""
        deaths: deque[float] = deque(maxlen=SPAWNER_RESTARTS)
        while True:
            client = self._client
            assert client is not None
            await client.read_events()
            if self._closing:
                return
            with anyio.CancelScope(shield=True):
                await client.close(timeout=1)
            deaths.append(time.monotonic())
            if (len(deaths) == SPAWNER_RESTARTS
                    and deaths[-1] - deaths[0] < SPAWNER_RESTART_WINDOW_S):
                self._spawner_error = (
                    f"the spawner died {SPAWNER_RESTARTS} times in "
                    f"{SPAWNER_RESTART_WINDOW_S:g}s; giving up")
                self._warn(self._spawner_error)
                self._set_client(None)
                return
            self._warn(f"the spawner (pid {client.pid}) died: its running containers are "
                       "recorded as errors; starting a new one")
            try:
                self._set_client(SpawnerClient.start(self._python))
                assert self._client is not None
                await self._place(self._client)
            except SuperviseError as exc:
                self._spawner_error = str(exc)
                self._set_client(None)
                return
            self.spawner_restarts += 1

    def _make_shared(self, layout: cgroupfs.Layout) -> cgroupfs.Cgroup | None:
        """v1: the cgroup the spawner sits in, in the hierarchies where a container
        needs none of its own (no limit, no figures: freezer, blkio, name=systemd, and
        cpu, cpuset, pids and devices unless asked for; and a hybrid host's unified
        tree, which has no controllers), so that its containers, born there, have
        their cgroup namespace rooted below supervise's own cgroup and not the host's
        root, at no cost each. Docker's device rules hold there."""
        if layout.kind == "v2":
            return None
        own = {layout.v1_mounts[c] for c in PER_CONTAINER if c in layout.v1_mounts}
        shared = [c for c, m in layout.v1_mounts.items() if m not in own]
        if not shared:
            return None
        self._shared_devices = "devices" in shared
        cgroup = cgroupfs.create_cgroup(
            shared_name(os.getpid(), self._own_start_ticks, next(_SERIALS)),
            parent=self._cgroup_parent,
            layout=layout, remove_parent=False,
            leaf=None, v1_controllers=shared, unified=True,
            limits=cgroupfs.Limits(devices=DEFAULT_RULES) if self._shared_devices else None)
        self._shared_unified = cgroup.v2_join_file is not None
        return cgroup

    async def _place(self, client: SpawnerClient) -> None:
        if self._shared is not None:
            v2 = self._shared.v2_join_file
            await client.place((*self._shared.join_files, *(() if v2 is None else (v2,))))

    def _remove_shared(self) -> None:
        """Once the spawner is gone (nothing is left in it then)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            with contextlib.suppress(cgroupfs.CgroupError):
                shared.destroy(timeout=1.0)

    def _set_client(self, client: SpawnerClient | None) -> None:
        """A new spawner (None: none any more); whoever waits for the change hears it."""
        self._client = client
        self._client_changed.set()
        self._client_changed = anyio.Event()

    async def _prepare_loopback(self, ready: anyio.Event) -> None:
        """Encode the lo-up request once, in a thread, while the spawner starts."""
        try:
            self._loopback = await anyio.to_thread.run_sync(loopback_up_request, _state.cache_dir())
        except ImportError as exc:
            self._loopback_error = f"pyroute2 is needed for --net none: {exc}"
        finally:
            ready.set()

    async def _loopback_request(self) -> bytes:
        assert self._loopback_ready is not None
        if not self._loopback_ready.is_set():  # (waiting on a set event still yields)
            await self._loopback_ready.wait()
        if self._loopback is None:
            raise SuperviseError(self._loopback_error or "no loopback request")
        return self._loopback

    def _unreserve(self, cid: str) -> None:
        if self._write_state:
            with contextlib.suppress(OSError):
                self._journal.remove(cid)

    def _container_ended(self, container: Container, cgroup_left: bool) -> None:
        """A container's end is recorded and its cgroup removed (unless cgroup_left:
        then its journal entry stays, for `supervise gc`)."""
        self._containers.pop(container.id, None)
        self._names.discard(container.name)
        if self._write_state and not cgroup_left:
            try:
                self._journal.remove(container.id)
            except OSError as exc:
                self._warn(f"writing state to {self._state_dir}: {exc.strerror}")
        if container.id in self._claimed:
            self._claimed.discard(container.id)
            _state.release_name(container.name, container.id, self._state_dir)

    def _announce(self, container: Container, init: InitSpec) -> None:
        if not self._write_state:
            return
        spec = container.spec
        state = _state.ContainerState(
            id=container.id, name=container.name, pid=container.pid,
            pid_start_ticks=container.pid_start_ticks,  # the spawner's, from its fork
            supervisor_pid=os.getpid(), supervisor_start_ticks=self._own_start_ticks,
            cgroup_paths=list(container.cgroup.paths), argv=list(spec.argv),
            started_at=iso_utc(container.started_at), hostname=spec.hostname or container.id,
            limits={f.name: getattr(spec.limits, f.name) for f in _LIMIT_FIELDS
                    if getattr(spec.limits, f.name) is not None},
            line=spec.line,
            security=_state.exec_security(
                init.capabilities, self._seccomp_ref(init.seccomp), init.no_new_privs,
                init.user, init.cwd or os.getcwd()),
        )
        try:
            self._journal.add(state)
        except OSError as exc:
            raise SuperviseError(
                f"writing state to {self._state_dir}: {exc.strerror}") from exc

    def _seccomp_ref(self, profile: str | None) -> str | None:
        """How the state names a container's seccomp filter: "default", None, or the
        sha256 of a profile of its own, kept once in the cache directory for exec."""
        if profile is None or profile == "default":
            return profile
        try:
            return _state.keep_profile(_state.cache_dir(), profile)
        except OSError as exc:
            raise SuperviseError(
                f"keeping the seccomp profile in {_state.cache_dir()}: {exc.strerror}"
            ) from exc

    async def start(self, spec: ContainerSpec, *, cid: str | None = None,
                    unique_name: bool = True) -> Container:
        """Create the cgroup, start the container, return once its PID 1 exists.

        A spec.name is unique among live containers on the host (claimed in the state
        directory), unless unique_name=False: then only within this supervisor (a
        batch's default job names, job-N, may repeat across batches)."""
        if self._client is None:
            raise SuperviseError(
                self._spawner_error or "the supervisor is not running (use `async with`)")
        cid = cid or new_id()
        name = spec.name or cid
        if name in self._names:
            raise SuperviseError(f"the name {name!r} is already in use by a running container")
        named = spec.name is not None and self._write_state and unique_name
        if named:
            try:
                _state.claim_name(name, cid, os.getpid(), self._own_start_ticks, self._state_dir)
            except (_state.NameTaken, ValueError) as exc:
                raise SuperviseError(str(exc)) from exc
            except OSError as exc:
                raise SuperviseError(
                    f"claiming the name {name!r} in {self._state_dir}: {exc.strerror}") from exc
            self._claimed.add(cid)
        try:
            # A few starts at a time: ten thousand at once would each hold a cgroup
            # and its descriptors, waiting, before the first container ran.
            async with self._starting:
                return await self._start(spec, cid, name)
        except BaseException:
            if named:
                self._claimed.discard(cid)
                _state.release_name(name, cid, self._state_dir)
            raise

    async def _start(self, spec: ContainerSpec, cid: str, name: str) -> Container:
        loopback = await self._loopback_request() if "net" in spec.namespaces() else None
        assert self.layout is not None
        devices = spec.device_rules(_tty_device(spec))
        on_v2 = self.layout.kind == "v2"
        # v1: a cgroup of its own where it has limits or figures; the spawner's shared
        # one elsewhere (see _make_shared), docker's device rules included, unless
        # its rules differ: then a devices cgroup of its own holds them (none at all,
        # privileged). v2: one directory, and a BPF program for the devices.
        # One that can mount has a cgroup of its own everywhere: mounted inside, a
        # hierarchy shows its namespace's root, never the spawner's (siblings in it).
        can_mount = spec.can_mount()
        controllers = ({*self.layout.v1_mounts} if can_mount else
                       {*PER_CONTAINER, *cgroupfs.limited_controllers(spec.limits)})
        # -m alone: memory+swap twice the memory, as docker (where swap can be limited)
        limits = cgroupfs.with_default_swap(spec.limits, self._swap_limit)
        if not on_v2 and (can_mount or not (devices == DEFAULT_RULES
                                             and self._shared_devices)):
            controllers.add("devices")
            if devices is not None:
                limits = dataclasses.replace(limits, devices=devices)
        if self._write_state:  # before the mkdir: a kill in between leaves it attributable
            try:
                self._journal.reserve(cid)
            except OSError as exc:
                raise SuperviseError(f"writing state to {self._state_dir}: {exc.strerror}",
                                     errno=exc.errno) from exc
        try:
            # The shared "supervise" parents stay for our lifetime (removed once, at
            # the end), so each container costs one mkdir per hierarchy.
            cgroup = cgroupfs.create_cgroup(
                cid, limits=limits, parent=self._cgroup_parent, layout=self.layout,
                remove_parent=False, v1_controllers=controllers,
                unified=can_mount or not self._shared_unified)
        except cgroupfs.CgroupError as exc:
            self._unreserve(cid)
            raise SuperviseError(str(exc), errno=exc.errno) from exc
        self._names.add(name)
        # On v2 the spawner makes PID 1 inside its cgroup (clone3 CLONE_INTO_CGROUP):
        # no migration, so no global lock (and its RCU grace period). On v1 PID 1 is
        # born in the spawner's shared cgroup (a hybrid host's unified tree included)
        # and joins its own through their tasks files.
        owned: list[int] = []
        try:
            fds, stdio = self._stdio(spec)
            cgroup_fd = cgroup.open_for_clone()
            if cgroup_fd is not None:
                owned.append(cgroup_fd)
                fds.append(cgroup_fd)
            device_fd = cgroup.open_device_target() if on_v2 and devices is not None else None
            if device_fd is not None:
                owned.append(device_fd)
                fds.append(device_fd)
            init = spec.init_spec(
                hostname=spec.hostname or cid, cgroup_join=cgroup.join_files,
                cgroup_fd=None if cgroup_fd is None else fds.index(cgroup_fd),
                cgroup_v2_join=cgroup.v2_join_file, loopback_request=loopback, stdio=stdio,
                devices=devices if device_fd is not None else None,
                device_cgroup_fd=None if device_fd is None else fds.index(device_fd),
                cwd=os.getcwd(),
            )
            started_at = time.time()
            client, spawned = await self._spawn(cid, init, fds)
            if spawned.pidfd is None:
                await self._unwatchable(client, cid)
        except BaseException as exc:
            self._names.discard(name)
            with anyio.CancelScope(shield=True):
                if await remove_cgroup(cgroup) is None:  # else gc finds it, reserved
                    self._unreserve(cid)
            if isinstance(exc, OSError):  # opening the cgroup's directory (EMFILE, say)
                raise SuperviseError(f"starting container: {exc.strerror}",
                                     errno=exc.errno) from exc
            raise
        finally:
            for fd in owned:
                os.close(fd)
        container = Container(cid, name, spec, cgroup, spawned, started_at,
                              on_end=self._container_ended)
        self._containers[cid] = container
        client.watch(cid, container.notify_exit)
        try:
            self._announce(container, init)
        except SuperviseError:
            container.kill()
            with anyio.CancelScope(shield=True):
                await container.wait()
            raise
        return container

    async def _spawn(self, cid: str, init: InitSpec, fds: list[int]
                     ) -> tuple[SpawnerClient, Spawned]:
        """Spawn with the current spawner; if it has just died, once more with its
        successor (which _serve_spawner starts at once)."""
        for attempt in range(2):
            client = self._client
            if client is None:
                raise SuperviseError(self._spawner_error or "the spawner is gone")
            try:
                return client, await client.spawn(cid, init, fds)
            except SpawnerGone:
                if attempt == 1:
                    raise
                with anyio.move_on_after(2):
                    while self._client is client:
                        await self._client_changed.wait()
        raise AssertionError("unreachable")

    @staticmethod
    async def _unwatchable(client: SpawnerClient, cid: str) -> None:
        """A container started, but its pidfd was dropped on its way here (this process
        is out of descriptors): one we could not signal must not run. The spawner kills
        it; the start fails as one the spawner had no room for."""
        ended = anyio.Event()
        client.watch(cid, lambda _exit: ended.set())
        with anyio.CancelScope(shield=True):
            await client.kill(cid)
            await ended.wait()
        raise SuperviseError("starting container: Too many open files (in the supervisor)",
                             errno=errno.EMFILE)

    def _stdio(self, spec: ContainerSpec) -> tuple[list[int], tuple[int, int, int]]:
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
        return fds, (stdio[0], stdio[1], stdio[2])

    async def run(self, spec: ContainerSpec) -> Result:
        """Start a container and wait for its result."""
        container = await self.start(spec)
        return await container.wait()

    @property
    def containers(self) -> list[Container]:
        return list(self._containers.values())


def _tty_device(spec: ContainerSpec) -> int | None:
    """The device number of a container's terminal (its stdin, with tty=True)."""
    if not spec.tty or spec.stdin is None or spec.stdin < 0:
        return None
    try:
        return os.fstat(spec.stdin).st_rdev
    except OSError:
        return None
