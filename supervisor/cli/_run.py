"""`supervise run`: one container, the user's terminal attached."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc
import click
import trio

from .._errors import SuperviseError
from .._gc import gc_quietly
from .._host import host_facts, read_host_file, require_root, require_seccomp
from .._ids import new_id
from .._options import RunOptions, build_spec
from .._result import Result, Status
from .._spec import DEVNULL, ContainerSpec
from .._summary import end_message
from .._supervisor import Supervisor
from .._tty import PtyPump, copy_window_size, raw_mode, terminal_fd
from ._flags import limit_options, name_option, run_fields, terminal_options
from ._output import EXIT_SUPERVISE_FAILED, say
from ._signals import STOP_SIGNALS, forwarded_signals, receive


@click.command(
    "run",
    context_settings={"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]},
)
@terminal_options
@name_option
@limit_options
@click.option("--cgroup-parent", metavar="PATH",
              help="Create the container's cgroup below this one instead of our own.")
@click.option("--report", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the result record as JSON.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command(command: tuple[str, ...], report: str | None, cgroup_parent: str | None,
                **flags: Any) -> None:
    """Run COMMAND in a new isolated, resource-limited container."""
    opts = RunOptions(**run_fields(flags))
    cid = new_id()
    spec = build_spec(list(command), opts, host_facts(), default_hostname=cid,
                      read_file=read_host_file)
    require_root()
    require_seccomp([spec])
    gc_quietly()
    result = trio.run(_run, cid, spec, opts.interactive, cgroup_parent)
    _report(result, spec, report)
    sys.exit(exit_status(result))


def exit_status(result: Result) -> int:
    if result.status == Status.ERROR or result.exit_code is None:
        return EXIT_SUPERVISE_FAILED
    return result.exit_code


def _report(result: Result, spec: ContainerSpec, path: str | None) -> None:
    message = end_message(result, spec.timeout)
    if message is not None:
        say(message)
    if path is not None:
        try:
            Path(path).write_text(result.to_json() + "\n")
        except OSError as exc:
            raise SuperviseError(f"--report {path}: {exc.strerror}") from exc


class Attached(Protocol):
    """What a terminal is attached to: a container, or a process exec started."""

    def signal(self, sig: int) -> bool: ...

    def kill(self) -> None: ...

    async def wait(self) -> Result: ...


async def _forward_signals(container: Attached, signals: AsyncIterator[int],
                           tg: anyio.abc.TaskGroup, stop_timeout: float) -> None:
    """Every signal heard goes to the container (docker's sig-proxy); after SIGINT,
    SIGTERM or SIGHUP it is killed stop-timeout later, or at a second Ctrl-C."""
    killer_started = False
    interrupts = 0

    async def kill_later() -> None:
        await anyio.sleep(stop_timeout)
        container.kill()

    async for sig in signals:
        if sig == signal.SIGINT:
            interrupts += 1
            if interrupts > 1:
                container.kill()
                continue
        container.signal(sig)
        if sig not in STOP_SIGNALS:
            continue
        if not killer_started:
            killer_started = True
            tg.start_soon(kill_later)


async def _run(cid: str, spec: ContainerSpec, interactive: bool,
               cgroup_parent: str | None) -> Result:
    master = slave = None
    term = terminal_fd(0, 1, 2)
    if spec.tty:
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        if term is not None:
            copy_window_size(term, master)
        spec = replace(spec, stdin=slave, stdout=slave, stderr=slave)
    else:
        spec = replace(spec, stdin=0 if interactive else DEVNULL, stdout=1, stderr=2)
    try:
        # Listen before the container exists: a signal during startup is forwarded
        # once it does, never lost and never a KeyboardInterrupt.
        with receive(forwarded_signals(spec.tty)) as signals:
            async with Supervisor(cgroup_parent=cgroup_parent) as supervisor:
                container = await supervisor.start(spec, cid=cid)
                if slave is not None:
                    os.close(slave)
                    slave = None
                return await attach(container, signals, master, interactive, term,
                                    spec.stop_timeout)
    finally:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)


async def attach(container: Attached, signals: AsyncIterator[int], master: int | None,
                 interactive: bool, term: int | None, stop_timeout: float) -> Result:
    """Wait for its end, forwarding signals, and with -t pumping the pty (master)."""
    if master is None:
        return await _attached(container, signals, stop_timeout)
    raw_fd = terminal_fd(0) if interactive else None
    with raw_mode(raw_fd):
        pump = PtyPump(master, 0, 1, interactive)
        return await _attached(container, signals, stop_timeout, pump, term)


async def _attached(container: Attached, signals: AsyncIterator[int], stop_timeout: float,
                    pump: PtyPump | None = None, term: int | None = None) -> Result:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_forward_signals, container, signals, tg, stop_timeout)
        output_done = anyio.Event()
        if pump is not None:
            async def output() -> None:
                try:
                    await pump.pump_output()
                finally:
                    output_done.set()

            tg.start_soon(output)
            tg.start_soon(pump.pump_input)
            if term is not None:
                tg.start_soon(_follow_window_size, term, pump.master)
        try:
            result = await container.wait()
            if pump is not None:
                # What the container wrote before it ended is still in the pty.
                with anyio.move_on_after(2):
                    await output_done.wait()
        finally:
            if pump is not None:
                pump.close()
        tg.cancel_scope.cancel()
    return result


async def _follow_window_size(term: int, master: int) -> None:
    with anyio.open_signal_receiver(signal.SIGWINCH) as signals:
        copy_window_size(term, master)  # a resize since the copy at start went unsignalled
        async for _ in signals:
            copy_window_size(term, master)
