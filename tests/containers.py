"""Helpers for tests that run real containers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from nsutil import _proto, spawner_command
from nsutil._messages import InitSpec, Record, Spawn, from_wire, to_wire
from supervisor import ContainerSpec, Result, Supervisor
from supervisor._fsview import Volume

PYTHON = sys.executable
# A script's start: attempt(act) is 'ok' or the errno's name act raised.
ATTEMPT = """
import errno, json, os, socket, sys
def attempt(act):
    try:
        act()
        return 'ok'
    except OSError as exc:
        return errno.errorcode[exc.errno]
"""


def children_of(pid: int) -> list[int]:
    """The pids of pid's children, made by any of its threads (the spawner's launcher
    threads start containers too)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(p) for p in f.read().split()]
    return found


def shown(path: object, read_only: bool = False) -> list[Volume]:
    """volumes= for a ContainerSpec that sees path (a test's tmp_path: below /tmp,
    which a container sees a tmpfs of its own at) at its own path."""
    return [Volume(str(path), str(path), read_only, True)]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


async def run_capture(
    sup: Supervisor, argv: Sequence[str], **spec: Any
) -> tuple[Result, str, str]:
    """Run a container to its end; its result, stdout and stderr (small outputs only)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        container = await sup.start(ContainerSpec(list(argv), stdout=out_w, stderr=err_w, **spec))
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    result = await container.wait()
    return (result, _read_all(out_r).decode(errors="replace"),
            _read_all(err_r).decode(errors="replace"))


def supervise(
    *args: str | bytes, timeout: float = 60, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would (the real interpreter, not a shim)."""
    return subprocess.run(
        [PYTHON, "-m", "supervisor", *args], capture_output=True, text=True,
        timeout=timeout, **kw,
    )


def init_spec(**changes: Any) -> InitSpec:
    """An InitSpec for tests: a bare child (no namespaces, nothing dropped, stdio all
    fd #0) unless changed; lists given are made tuples."""
    fields: dict[str, Any] = {
        "argv": ("true",), "env": {"PATH": "/usr/bin:/bin"}, "cwd": None, "hostname": None,
        "namespaces": (), "cgroup_join": (), "cgroup_fd": None, "cgroup_v2_join": None,
        "loopback_request": None,
        "tty": False, "stdio": (0, 0, 0), "capabilities": None, "no_new_privs": False,
        "harden_mounts": False, "user": None, "init": False,
        "devices": None, "device_cgroup_fd": None, "seccomp": None, "filesystem": None,
        "join_pidfd": None, "join_root_fd": None, "console_socket": None}
    fields.update({k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()})
    return InitSpec(**fields)


def send_spawn(sock: socket.socket, cid: str, spec: InitSpec, fds: list[int]) -> None:
    """Ask a spawner for a container, as the supervisor does."""
    _proto.send_blocking(sock, to_wire(Spawn(id=cid, spec=spec)), fds)


def spawner_message(sock: socket.socket) -> tuple[Record, list[int]]:
    """The next whole message (and its fds) a spawner sends on sock (blocking)."""
    decoder, receiver = _proto.Decoder(), _proto.Receiver(sock)
    decoded = None
    while decoded is None:
        packet, fds = receiver.recv()
        decoded = decoder.feed(packet, fds)
    wire, got = decoded
    assert got is not None, "fds lost in transit"
    return from_wire(wire), got


@contextlib.contextmanager
def spawner_process() -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """A spawner of our own (no supervisor around it) and our end of its socket;
    closing the socket at the end makes it kill what it runs and exit."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    spawner = subprocess.Popen([*spawner_command(PYTHON), str(theirs.fileno()),
                                str(os.getpid())], pass_fds=[theirs.fileno()])
    theirs.close()
    try:
        yield ours, spawner
    finally:
        ours.close()
        if spawner.poll() is None:
            try:
                spawner.wait(timeout=10)
            except subprocess.TimeoutExpired:
                spawner.kill()
                spawner.wait()
