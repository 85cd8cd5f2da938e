"""The spawner: a lean, single-threaded process that forks containers.

Started once per supervisor (see `spawner_command`), it imports only the
standard library, so forking it costs a fraction of forking the supervisor.
It talks to the supervisor over a SOCK_SEQPACKET socket (see `_proto`):

    supervisor -> spawner   {"op": "spawn", "id", "spec"} + stdio fds
                            {"op": "shutdown"}
    spawner -> supervisor   {"ev": "started", "id", "pid"} + a pidfd
                            {"ev": "exited", "id", "pid", "status", "rusage", "error"}
                            {"ev": "failed", "id", "error"}   (fork itself failed)

For each container it makes a PID namespace (unshare, fork, setns back), so
the child is PID 1 there and the spawner's own child: it reaps it and reports
the wait status. The child sets PR_SET_PDEATHSIG=SIGKILL, and the spawner sets
it too against the supervisor: if the supervisor dies, the spawner dies, each
PID 1 is killed, and with it its whole namespace. At EOF on its socket the
spawner kills every container it started and exits.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import selectors
import signal
import socket
import sys

from . import _init, _libc, _plan, _proto

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spawner_command(python: str | None = None) -> list[str]:
    """argv that starts a spawner: isolated mode, no site, only this package on sys.path."""
    code = f"import sys; sys.path.insert(0, {_here!r}); import nsutil.spawner as s; s.main()"
    return [python or sys.executable, "-I", "-S", "-c", code]


class Spawner:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: dict[int, tuple[str, int]] = {}  # pid -> (container id, error pipe)
        self.own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.decoder = _proto.Decoder()
        self.host = _plan.Host.learn()  # learnt once here, not in every container's init

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        _proto.send_blocking(self.sock, message, fds)

    def spawn(self, message: dict[str, Any], fds: list[int]) -> None:
        cid = str(message["id"])
        spec: dict[str, Any] = message["spec"]
        new_pid_ns = "pid" in spec.get("namespaces", [])
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            # Everything the child will do, worked out here (see _plan): the child
            # only makes the calls.
            plan = _plan.compile_plan(spec, fds, self.host, err_w)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self._refuse(cid, [err_r, err_w, *fds], "spec", errno.EINVAL,
                         f"exec {spec.get('argv', ['?'])[0]!r}: {exc}")
            return
        try:
            if new_pid_ns:
                _libc.unshare(_libc.CLONE_NEWPID)
            try:
                pid = os.fork()
            except OSError:
                pid = -1
                raise
            finally:
                if new_pid_ns and pid != 0:
                    # pid_for_children back to our own namespace, for the next unshare.
                    _libc.setns(self.own_pid_ns, _libc.CLONE_NEWPID)
        except OSError as exc:
            err = exc.errno or errno.EIO
            self._refuse(cid, [err_r, err_w, *fds], "fork", err,
                         f"starting container: {os.strerror(err)}")
            return
        if pid == 0:
            _init.child_main(plan, err_w)
        os.close(err_w)
        for fd in fds:
            os.close(fd)
        self.children[pid] = (cid, err_r)
        pidfd = os.pidfd_open(pid)
        try:
            self.send({"ev": "started", "id": cid, "pid": pid}, [pidfd])
        finally:
            os.close(pidfd)

    def _refuse(self, cid: str, fds: list[int], step: str, err: int, message: str) -> None:
        for fd in fds:
            os.close(fd)
        self.send({"ev": "failed", "id": cid,
                   "error": {"step": step, "errno": err, "message": message}})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            entry = self.children.pop(pid, None)
            if entry is None:
                continue
            cid, err_r = entry
            report = _read_all(err_r)
            error = marshal.loads(report) if report else None
            self.send({
                "ev": "exited", "id": cid, "pid": pid, "status": status, "error": error,
                "rusage": {"utime": usage.ru_utime, "stime": usage.ru_stime,
                           "maxrss_kib": usage.ru_maxrss},
            })

    def kill_all(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def handle(self, message: dict[str, Any], fds: list[int]) -> bool:
        op = message.get("op")
        if op == "spawn":
            self.spawn(message, fds)
        elif op == "shutdown":
            return False
        else:
            for fd in fds:
                os.close(fd)
        return True

    def serve(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "sock")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        running = True
        try:
            while running:
                for key, _events in sel.select():
                    if key.data == "wake":
                        try:
                            while os.read(wake_r, 512):
                                pass
                        except BlockingIOError:
                            pass
                        self.reap()
                        continue
                    packet, fds = _proto.recv_packet(self.sock)
                    if not packet:
                        running = False
                        break
                    decoded = self.decoder.feed(packet, fds)
                    if decoded is not None and not self.handle(*decoded):
                        running = False
                        break
        finally:
            self.kill_all()


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def main() -> None:
    """Entry point: argv is [sock_fd, supervisor_pid]."""
    sock_fd, supervisor_pid = int(sys.argv[1]), int(sys.argv[2])
    # Die with the supervisor; if it is already gone, the death signal will never come.
    _libc.prctl(_libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor_pid:
        os._exit(1)
    # Ctrl-C, a closing terminal's SIGHUP or a SIGTERM to the whole process group
    # (a shell's job control, timeout(1)) are the supervisor's to forward.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=sock_fd)
    Spawner(sock).serve()
    # Nothing to flush or finalize: skip the interpreter's teardown, so the
    # supervisor that waits for us is not kept waiting.
    os._exit(0)
