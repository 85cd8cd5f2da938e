"""`supervise exec`: run a command inside a running container (see supervisor._exec)."""

from __future__ import annotations

import os
import sys

import anyio
import click
import trio

from .. import _exec
from .._env import build_environment, default_environment, parse_env_assignment
from .._errors import UsageError
from .._host import read_host_file, require_root
from .._options import parse_user
from .._result import Result
from .._spawner_client import SpawnerClient
from .._tty import copy_window_size, terminal_fd
from ._flags import terminal_options
from ._output import say
from ._run import attach, exit_status
from ._signals import STOP_SIGNALS


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
    if user is not None:
        parsed = parse_user(user, read_host_file)
        as_user = (parsed.uid, parsed.gid)
    require_root()
    target = _exec.open_target(ref)
    try:
        assignments = [pair for item in env
                       if (pair := parse_env_assignment(item, os.environ)) is not None]
        environment = build_environment(
            default_environment(tty, target.state.hostname or target.state.id), assignments)
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
    master = slave = None
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    term = terminal_fd(0, 1, 2)
    try:
        if tty:
            master, slave = os.openpty()
            os.set_inheritable(master, False)
            if term is not None:
                copy_window_size(term, master)
            fds, stdio = [slave, target.pidfd, target.root_fd], (0, 0, 0)
        else:
            fds = [0 if interactive else devnull, 1, 2, target.pidfd, target.root_fd]
            stdio = (0, 1, 2)
        spec = _exec.exec_spec(target, argv, env, tty=tty, stdio=stdio,
                               pidfd_index=len(fds) - 2, root_index=len(fds) - 1, user=user,
                               workdir=workdir)
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            client = SpawnerClient.start()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.read_events)
                    execution = await _exec.start(client, spec, fds)
                    if slave is not None:
                        os.close(slave)
                        slave = None
                    result = await attach(execution, signals, master, interactive, term,
                                          execution.stop_timeout)
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await client.close()
        return result
    finally:
        for fd in (master, slave, devnull):
            if fd is not None:
                os.close(fd)
