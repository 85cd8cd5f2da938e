"""The spawner: a lean, single-threaded process that forks containers.

Started once per supervisor (see `spawner_command`), it imports only the
standard library, so forking it costs a fraction of forking the supervisor.
It talks to the supervisor over a SOCK_SEQPACKET socket (framing in `_proto`),
in the records of `_messages`:

    supervisor -> spawner   Spawn(id, spec: InitSpec) + stdio fds (and on v2 the
                                cgroup's directory, spec.cgroup_fd its index)
                            Kill(id)   (one whose pidfd the supervisor lost)
                            Shutdown()
    spawner -> supervisor   Started(id, pid, start_ticks) + a pidfd
                            Exited(id, pid, status, user_s, system_s, maxrss_kib, error)
                            Failed(id, error)   (a spawn message that is not a valid
                                record - the error names the field -, a spec exec
                                could never take, its fds lost, or the fork failed)

For each container it makes a PID namespace with one raw clone3 (which on
cgroup v2 also makes the child inside its cgroup; before Linux 5.7: unshare,
fork, setns back), so
the child is PID 1 there and the spawner's own child: it watches the child's
pidfd in its epoll set (no SIGCHLD handler), reaps it and reports the wait
status. The child sets PR_SET_PDEATHSIG=SIGKILL, and the spawner sets
it too against the supervisor: if the supervisor dies, the spawner dies, each
PID 1 is killed, and with it its whole namespace. At EOF on its socket the
spawner kills every container it started and exits.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import resource
import select
import signal
import socket
import sys
import time

from . import _init, _launchers, _libc, _native, _plan, _proto
from ._messages import (
    Exited,
    Failed,
    InitEnded,
    Kill,
    Place,
    Placed,
    Record,
    Shutdown,
    Spawn,
    Started,
    StepReport,
    WireError,
    from_wire,
    to_wire,
)
from ._seccomp import ProfileError

# Spawns forked together at most (see Spawner.spawn_all); a batch at -j 8 rarely
# has more than 8 waiting.
GROUP_MAX = 32
# Containers started natively at once: a start is ~1 ms of the child's own work, with
# its launcher thread blocked (see _launchers). Two a CPU: a start also waits, for
# the kernel's locks and for the CPU (A/B at -j 8 on 2 CPUs, 1000 jobs, against one
# a CPU: two 1.011x, three 1.024x, four 1.016x; noise is about 1 %).
LAUNCHERS = max(2, min(8, 2 * (os.cpu_count() or 1)))
# A clock tick of /proc/PID/stat's start time (USER_HZ), in ns of CLOCK_BOOTTIME.
TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._messages import InitSpec

_here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spawner_command(python: str | None = None) -> list[str]:
    """argv that starts a spawner: isolated mode, no site, only this package on sys.path."""
    code = f"import sys; sys.path.insert(0, {_here!r}); import nsutil.spawner as s; s.main()"
    return [python or sys.executable, "-I", "-S", "-c", code]


class _Pending:
    """A spawn compiled and waiting for its fork."""

    __slots__ = ("cgroup_fd", "cid", "err_r", "err_w", "fds", "forked_ns", "native",
                 "new_pid_ns", "outcome", "pidfd", "plan", "report", "spec")

    def __init__(self, cid: str, spec: InitSpec, plan: _plan.Plan, err_r: int,
                 err_w: int, fds: list[int], cgroup_fd: int | None) -> None:
        self.cid = cid
        self.spec = spec
        self.plan = plan
        self.new_pid_ns = "pid" in spec.namespaces
        self.err_r = err_r
        self.err_w = err_w
        self.fds = fds
        self.cgroup_fd = cgroup_fd  # born into this v2 cgroup (clone3), not joining it
        self.forked_ns = (0, 0)  # CLOCK_BOOTTIME just before and just after its fork
        # the plan as machine code's data (_native), None: fork and run it in Python
        self.native: _native.Program | None = None
        self.pidfd = -1  # the clone's, when it made one
        self.report: StepReport | None = None  # a native start's failure, read at once
        self.outcome: tuple[int, int] | BaseException | None = None  # a launcher's


class Spawner:
    def __init__(self, sock: socket.socket,
                 nofile: tuple[int, int] | None = None) -> None:
        self.sock = sock
        # pid -> (container id, error pipe (-1: read already), pidfd, the report read);
        # pidfd -> pid
        self.children: dict[int, tuple[str, int, int, StepReport | None]] = {}
        self.by_pidfd: dict[int, int] = {}
        self.by_cid: dict[str, int] = {}  # container id -> pid
        self.epoll = select.epoll()
        self.own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.decoder = _proto.Decoder()
        self.host = _plan.Host.learn()  # learnt once here, not in every container's init
        self.host.nofile = nofile
        # Close-on-exec: each child looks at it (is the spawner still there?), then
        # execs. Before Linux 5.3 the error pipe tells instead (less surely).
        with contextlib.suppress(OSError):
            self.host.spawner_pidfd = os.pidfd_open(os.getpid())
        self.clone3 = True  # until the kernel says it lacks clone3 (or CLONE_INTO_CGROUP)
        # Containers started without forking this process (see _native), where
        # possible, by a few threads at once (_launchers).
        self.native = _native.available()
        self.launchers = _launchers.Launchers(LAUNCHERS, self.epoll)
        self.device_programs: dict[tuple[tuple[str, int, int, str], ...], int] = {}

    def send(self, message: Record, fds: list[int] | None = None) -> None:
        _proto.send_blocking(self.sock, to_wire(message), fds)

    def spawn_all(self, requests: list[tuple[Spawn, list[int]]]) -> None:
        """Start the containers asked for, forking them back to back.

        Every page this process writes after a fork is a copy-on-write fault (the
        child still shares it): ~200 a cycle of decode, compile, fork and reply. So
        the plans are all compiled first, the forks follow with almost nothing
        between them, and the replies come after the last fork."""
        ready = [p for p in (self._prepare(m, fds) for m, fds in requests) if p is not None]
        forks = []
        for entry in ready:
            if entry.native is not None and self.native:
                try:
                    self.launchers.submit(entry)
                    continue
                except OSError:  # no stack for a launcher: fork, as below
                    self.native = False
            forks.append(entry)
        if forks:
            # no launcher may be waiting for the GIL when this process forks
            for entry in self.launchers.wait_idle():
                self._launched(entry)
        forked = [(entry, self._fork(entry)) for entry in forks]
        for entry, pid in forked:
            self._started(entry, pid)

    def _launched(self, entry: _Pending) -> None:
        """A launcher has started entry (or failed to): the child has exec'd or died,
        so what it wrote on the error pipe is all there is."""
        outcome, entry.outcome = entry.outcome, None
        program, entry.native = entry.native, None  # its buffers are not needed any more
        if isinstance(outcome, tuple):
            pid, entry.pidfd = outcome
            assert program is not None
            entry.report = program.report(read_report(entry.err_r))
            entry.err_r = -1
            self._started(entry, pid)
            return
        err = getattr(outcome, "errno", None) or errno.EIO
        if err in (errno.ENOSYS, errno.E2BIG, errno.EINVAL, errno.EPERM):
            # clone3 refused (a seccomp filter around us, say): fork from now on
            self.native = False
            for other in self.launchers.wait_idle():
                self._launched(other)
            self._started(entry, self._fork(entry))
            return
        self._started(entry, -err)

    def _prepare(self, message: Spawn, fds: list[int]) -> _Pending | None:
        cid, spec = message.id, message.spec
        # Non-blocking: containers forked in one group hold each other's write ends
        # until they exec, so EOF may come late; a dead child's report is all there.
        try:
            err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:  # out of descriptors (or memory): this one fails alone
            err = exc.errno or errno.EIO
            self._refuse(cid, fds, "spawn", err, f"starting container: {os.strerror(err)} "
                         "(in the spawner)")
            return None
        try:
            # A v2 cgroup's directory, when the supervisor sent one: the child is born
            # in it and joins nothing.
            index = spec.cgroup_fd
            if index is not None and not 0 <= index < len(fds):
                raise ValueError(f"the cgroup is fd #{index}, but {len(fds)} came")
            cgroup_fd = fds[index] if index is not None and self.clone3 else None
            # Everything the child will do, worked out here (see _plan): the child
            # only makes the calls.
            plan = _plan.compile_plan(spec, fds, self.host, err_w,
                                      joined=cgroup_fd is not None)
            if spec.devices is not None and spec.device_cgroup_fd is not None:
                self._filter_devices(spec.devices, fds, spec.device_cgroup_fd)
        except OSError as exc:  # the device filter could not be loaded or attached
            err = exc.errno or errno.EIO
            self._refuse(cid, [err_r, err_w, *fds], "devices", err,
                         f"attaching the device filter: {os.strerror(err)}")
            return None
        except ProfileError as exc:  # libseccomp missing, or refusing the profile
            self._refuse(cid, [err_r, err_w, *fds], "seccomp", errno.EINVAL, f"seccomp: {exc}")
            return None
        except ValueError as exc:
            self._refuse(cid, [err_r, err_w, *fds], "spec", errno.EINVAL,
                         f"exec {spec.argv[0] if spec.argv else '?'!r}: {exc}")
            return None
        entry = _Pending(cid, spec, plan, err_r, err_w, fds, cgroup_fd)
        if self.native:
            entry.native = _native.lower(plan, self.host)
        return entry

    def _filter_devices(self, rules: tuple[tuple[str, int, int, str], ...], fds: list[int],
                        index: int) -> None:
        """Attach the device filter for these rules (loaded once) to the v2 cgroup
        that is fds[index], before anything is born in it."""
        if not 0 <= index < len(fds):
            raise ValueError(f"the device cgroup is fd #{index}, but {len(fds)} came")
        from . import _devices  # only on v2

        program = self.device_programs.get(rules)
        if program is None:
            program = self.device_programs[rules] = _devices.load(rules)
        _devices.attach(program, fds[index])

    def _fork(self, entry: _Pending) -> int:
        """The child's pid; -errno if the fork failed. Never returns in the child."""
        new_pid_ns = entry.new_pid_ns
        if self.clone3:
            try:
                before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
                pid = _libc.clone3(_libc.CLONE_NEWPID if new_pid_ns else 0, entry.cgroup_fd)
                entry.forked_ns = (before, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.E2BIG, errno.EINVAL):
                    return -(exc.errno or errno.EIO)
                # A kernel before 5.7 (or a seccomp filter refusing clone3): fork,
                # and the child joins as on v1.
                self.clone3 = False
                if entry.cgroup_fd is not None:
                    entry.plan = _plan.compile_plan(entry.spec, entry.fds, self.host,
                                                    entry.err_w)
            else:
                if pid == 0:
                    _init.child_main(entry.plan, entry.err_w)
                return pid
        try:
            if new_pid_ns:
                _libc.unshare(_libc.CLONE_NEWPID)
            try:
                before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
                pid = os.fork()
                entry.forked_ns = (before, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
            except OSError:
                pid = -1
                raise
            finally:
                if new_pid_ns and pid != 0:
                    # pid_for_children back to our own namespace, for the next unshare.
                    _libc.setns(self.own_pid_ns, _libc.CLONE_NEWPID)
        except OSError as exc:
            return -(exc.errno or errno.EIO)
        if pid == 0:
            _init.child_main(entry.plan, entry.err_w)
        return pid

    def _started(self, entry: _Pending, pid: int) -> None:
        cid, err_r, err_w, fds = entry.cid, entry.err_r, entry.err_w, entry.fds
        if pid < 0:
            self._refuse(cid, [err_r, err_w, *fds], "fork", -pid,
                         f"starting container: {os.strerror(-pid)} (in the spawner)")
            return
        os.close(err_w)
        for fd in fds:
            os.close(fd)
        pidfd = entry.pidfd
        if pidfd < 0:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as exc:  # out of fds: a container we could not watch must not run
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                err = exc.errno or errno.EIO
                self._refuse(cid, [err_r] if err_r >= 0 else [], "fork", err,
                             f"starting container: {os.strerror(err)} (in the spawner)")
                return
        self.children[pid] = (cid, err_r, pidfd, entry.report)
        self.by_pidfd[pidfd] = pid
        self.by_cid[cid] = pid
        self.epoll.register(pidfd, select.EPOLLIN)
        # The supervisor gets its own copy of the pidfd; ours stays in the epoll set.
        self.send(Started(id=cid, pid=pid, start_ticks=start_ticks(pid, *entry.forked_ns)),
                  [pidfd])

    def _refuse(self, cid: str, fds: list[int], step: str, err: int, message: str) -> None:
        for fd in fds:
            os.close(fd)
        self.send(Failed(id=cid, error=StepReport(step=step, errno=err, message=message)))

    def reap(self, pidfd: int) -> None:
        """The child behind pidfd has exited (its pidfd is readable): reap and report it."""
        pid = self.by_pidfd.pop(pidfd)
        self.epoll.unregister(pidfd)
        os.close(pidfd)
        _pid, status, usage = os.wait4(pid, 0)
        cid, err_r, _pidfd, report = self.children.pop(pid)
        self.by_cid.pop(cid, None)
        if err_r >= 0:
            report, signum = child_outcome(read_report(err_r))
            if signum is not None and os.WIFEXITED(status):
                status = signum  # --init's command was killed by it: a wait status saying so
        self.send(Exited(id=cid, pid=pid, status=status, user_s=usage.ru_utime,
                         system_s=usage.ru_stime, maxrss_kib=usage.ru_maxrss,
                         error=report))

    def _kill(self, cid: str) -> None:
        pid = self.by_cid.get(cid)
        if pid is not None:  # (else it has exited: Exited is on its way)
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.children[pid][2], signal.SIGKILL)

    def kill_all(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def serve(self) -> None:
        """Reap what exited and take every message waiting, then start the spawns
        asked for, together (see spawn_all); until EOF or a shutdown."""
        sock_fd = self.sock.fileno()
        self.epoll.register(sock_fd, select.EPOLLIN)
        receiver = _proto.Receiver(self.sock)
        try:
            running = True
            # The supervisor takes ~100 ms to send its first spawn: time to compile
            # what most containers need (docker's seccomp filter, ~9 ms), unless a
            # spawn is already waiting.
            if not self.epoll.poll(0):
                _plan.warm_up(self.host)
            while running:
                spawns: list[tuple[Spawn, list[int]]] = []
                for fd, _events in self.epoll.poll():
                    if fd == self.launchers.wake_r:
                        for entry in self.launchers.finished():
                            self._launched(entry)
                    elif fd != sock_fd:
                        self.reap(fd)
                    elif running:
                        running = self._drain(receiver, spawns)
                self.spawn_all(spawns)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the supervisor is gone: what it started goes too
        finally:
            for entry in self.launchers.wait_idle():
                if isinstance(entry.outcome, tuple):
                    self.children[entry.outcome[0]] = (entry.cid, -1, entry.outcome[1], None)
            self.kill_all()

    def _drain(self, receiver: _proto.Receiver,
               spawns: list[tuple[Spawn, list[int]]]) -> bool:
        """Collect the spawns waiting on the socket, at most GROUP_MAX (the rest wait
        for the next round: the first of a thousand is not kept waiting for the
        last); False at EOF or a shutdown."""
        while len(spawns) < GROUP_MAX:
            try:
                packet, fds = receiver.recv(socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            if not packet:
                return False
            decoded = self.decoder.feed(packet, fds)
            if decoded is None:
                continue
            wire, got = decoded
            try:
                message = from_wire(wire)
            except WireError as exc:
                self._refuse(exc.id or "", got or [], "spawn", errno.EINVAL, str(exc))
                continue
            if isinstance(message, Shutdown):
                for fd in got or []:
                    os.close(fd)
                return False
            if isinstance(message, Kill):
                for fd in got or []:
                    os.close(fd)
                self._kill(message.id)
                continue
            if isinstance(message, Place):
                for fd in got or []:
                    os.close(fd)
                self.send(Placed(error=self._place(message.join)))
                continue
            if not isinstance(message, Spawn):
                self._refuse(getattr(message, "id", ""), got or [], "spawn", errno.EINVAL,
                             f"a {type(message).__name__} message is not for the spawner")
            elif got is None:
                # recvmsg dropped them (MSG_CTRUNC): this process is out of descriptors.
                self._refuse(message.id, [], "spawn", errno.EMFILE,
                             "starting container: its file descriptors were lost in transit "
                             "(the spawner is out of file descriptors)")
            else:
                spawns.append((message, got))
        return True


    def _place(self, files: tuple[str, ...]) -> StepReport | None:
        """Join the cgroups the supervisor shares among its containers (see Place)."""
        for path in files:
            try:
                _plan.join_cgroup(os.fsencode(path))
            except OSError as exc:
                err = exc.errno or errno.EIO
                return StepReport(step="cgroup", errno=err,
                                  message=f"the spawner joining {path}: {os.strerror(err)}")
        return None


def start_ticks(pid: int, before_ns: int, after_ns: int) -> int | None:
    """The start time of a child forked between two CLOCK_BOOTTIME readings, as
    /proc/PID/stat's field 22 gives it (clock ticks since boot): the kernel stamps a
    new task with that clock inside fork, so when both readings fall in one tick, that
    tick is it (~0.2 us); across a tick's edge (a fork takes well under one: a few
    percent of them), /proc/PID/stat says (~10 us). The child is not reaped yet, so
    the pid is still its own. None if /proc cannot be read."""
    tick = before_ns // TICK_NS
    if after_ns // TICK_NS == tick:
        return tick
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        # the command name (field 2) may hold spaces and parentheses
        return int(stat[stat.rfind(b")") + 2:].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def child_outcome(raw: bytes) -> tuple[StepReport | None, int | None]:
    """What a dead child wrote on its error pipe, read once: the report of the step that
    failed, or the signal that killed --init's command (InitEnded); (None, None) if it
    wrote nothing (it exec'd)."""
    if not raw:
        return None, None
    try:
        record = from_wire(marshal.loads(raw))
    except (ValueError, EOFError, TypeError) as exc:  # marshal's, or WireError
        return StepReport(step="init", errno=0, message=f"an unreadable report: {exc}"), None
    if isinstance(record, StepReport):
        return record, None
    if isinstance(record, InitEnded) and 0 < record.signal < 65:
        return None, record.signal
    return StepReport(step="init", errno=0,
                      message=f"an unexpected report: {type(record).__name__}"), None


def step_report(raw: bytes) -> StepReport | None:
    """The report a child wrote before it died (None: it wrote none, so it exec'd)."""
    return child_outcome(raw)[0]


def read_report(fd: int) -> bytes:
    """What a dead child wrote on its error pipe (non-blocking; closes fd)."""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass  # a sibling forked with it still holds the write end: nothing more will come
    finally:
        os.close(fd)
    return b"".join(chunks)


def main() -> None:
    """Entry point: argv is [sock_fd, supervisor_pid, containers' soft RLIMIT_NOFILE]."""
    sock_fd, supervisor_pid = int(sys.argv[1]), int(sys.argv[2])
    # Die with the supervisor; if it is already gone, the death signal will never come.
    _libc.prctl(_libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor_pid:
        os._exit(1)
    # Ctrl-C, a closing terminal's SIGHUP or a SIGTERM to the whole process group
    # (a shell's job control, timeout(1)) are the supervisor's to forward.
    # (The supervisor starts us with them blocked, so none came before this.)
    ignored = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
    for sig in ignored:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, ignored)
    # A pidfd for each container: as many descriptors as the hard limit allows; the
    # containers get the soft limit the supervisor was started with.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    given = int(sys.argv[3]) if len(sys.argv) > 3 else soft
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sock = socket.socket(fileno=sock_fd)
    Spawner(sock, nofile=(given, hard) if given < hard else None).serve()
    # Nothing to flush or finalize: skip the interpreter's teardown, so the
    # supervisor that waits for us is not kept waiting.
    os._exit(0)
