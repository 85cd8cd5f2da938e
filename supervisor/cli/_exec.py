"""`supervise exec`: run a command inside a running container (see supervisor._exec)."""

from __future__ import annotations

import os
import socket
import sys

import anyio
import click
import trio

from .. import _exec
from .._env import DEFAULT_ENV, build_environment, default_environment, parse_env_assignment
from .._errors import UsageError
from .._host import read_host_file, require_root
from .._options import parse_user
from .._result import Result
from .._spawner_client import SpawnerClient
from .._tty import copy_window_size, terminal_fd
from ._flags import terminal_options
from ._output import say
from ._run import attach, exit_status
from ._signals import forwarded_signals, receive


@click.command(
    "exec",
    context_settings={"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]},
)
@terminal_options
@click.option("-u", "--user", metavar="UID[:GID]",
              help="Run as this user (default: the container's).")
@click.option("-e", "--env", multiple=True, metavar="K=V",
              help="Set an environment variable (K alone: the host's value).")
@click.option("-w", "--workdir", metavar="DIR",
              help="Working directory inside (default: the container's).")
@click.argument("ref", metavar="ID|NAME")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_command(ref: str, command: tuple[str, ...], tty: bool, interactive: bool,
                 user: str | None, env: tuple[str, ...], workdir: str | None) -> None:
    """Run COMMAND inside the running container ID|NAME (of any supervise here): in
    its namespaces, root and cgroups, with its capabilities, seccomp filter and user.
    Exits with the command's status."""
    argv = list(command[1:] if command[:1] == ("--",) else command)
    if not argv:
        raise UsageError("a command is needed: supervise exec [OPTIONS] ID|NAME -- COMMAND")
    if workdir is not None and not workdir.startswith("/"):
        raise UsageError(f"-w {workdir}: the working directory must be an absolute path")
    as_user = None
    home = DEFAULT_ENV["HOME"]
    if user is not None:
        parsed = parse_user(user, read_host_file)
        as_user = (parsed.uid, parsed.gid)
        home = parsed.home or "/"
    require_root()
    target = _exec.open_target(ref)
    try:
        assignments = [parse_env_assignment(item, os.environ) for item in env]
        environment = build_environment(
            {**default_environment(tty, target.state.hostname or target.state.id),
             "HOME": home}, assignments, home)
        result = trio.run(_run, target, argv, environment, tty, interactive,
                          as_user, workdir)
    finally:
        target.close()
    if result.error is not None:
        say(result.error)
    sys.exit(exit_status(result))


async def _run(target: _exec.Target, argv: list[str], env: dict[str, str], tty: bool,
               interactive: bool, user: tuple[int, int] | None, workdir: str | None
               ) -> Result:
    master = None
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    term = terminal_fd(0, 1, 2)
    # With -t the terminal is made inside, in the container's own devpts (so `tty`
    # names it there, as in docker); its master end comes back on this socket.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if tty else (None,
                                                                                      None)
    try:
        if theirs is not None:
            fds = [devnull, target.pidfd, target.root_fd, theirs.fileno()]
            stdio, console = (0, 0, 0), 3
        else:
            fds = [0 if interactive else devnull, 1, 2, target.pidfd, target.root_fd]
            stdio, console = (0, 1, 2), None
        spec = _exec.exec_spec(target, argv, env, tty=tty, stdio=stdio,
                               pidfd_index=fds.index(target.pidfd),
                               root_index=fds.index(target.root_fd), user=user,
                               workdir=workdir, console_index=console)
        with receive(forwarded_signals(tty)) as signals:
            client = SpawnerClient.start()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.read_events)
                    execution = await _exec.start(client, spec, fds)
                    if ours is not None and theirs is not None:
                        theirs.close()
                        master = await _terminal(ours)
                        if master is not None and term is not None:
                            copy_window_size(term, master)
                    if tty and master is None:  # it failed before: its report says why
                        result = await execution.wait()
                    else:
                        result = await attach(execution, signals, master, interactive, term,
                                              execution.stop_timeout)
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await client.close()
        return result
    finally:
        for fd in (master, devnull):
            if fd is not None:
                os.close(fd)
        for end in (ours, theirs):
            if end is not None:
                end.close()


async def _terminal(sock: socket.socket) -> int | None:
    """The terminal's master end, sent by the process exec started (None: it ended
    first)."""
    sock.setblocking(False)
    while True:
        await anyio.wait_readable(sock)
        try:
            _data, fds, _flags, _addr = socket.recv_fds(sock, 1, 1)
        except BlockingIOError:
            continue
        for extra in fds[1:]:
            os.close(extra)
        if fds:
            os.set_inheritable(fds[0], False)
        return fds[0] if fds else None
