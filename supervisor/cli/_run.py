"""`supervise run`: one container, the user's terminal attached."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import click
import trio

from .._container import Container
from .._errors import SuperviseError
from .._host import host_facts
from .._options import RunOptions, build_spec
from .._result import Result
from .._spec import DEVNULL, ContainerSpec
from .._supervisor import Supervisor
from .._tty import PtyPump, copy_window_size, raw_mode, terminal_fd
from .._units import format_bytes

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8", errors="surrogateescape")


@click.command(
    "run",
    context_settings={"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]},
)
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-i", "--interactive", is_flag=True, help="Forward stdin to the container.")
@click.option("-m", "--memory", metavar="SIZE", help="Memory limit (64m, 1g, bytes).")
@click.option("--memory-swap", metavar="SIZE", help="Memory plus swap limit; -1: unlimited swap.")
@click.option("--cpus", metavar="N", help="CPU quota in CPUs (0.5 = half of one CPU).")
@click.option("-c", "--cpu-shares", "--cpushare", "cpu_shares", metavar="N",
              help="Relative CPU weight (v1 shares; converted to cpu.weight on v2).")
@click.option("--cpuset-cpus", "--cpuset", "cpuset_cpus", metavar="LIST",
              help="CPUs to run on (0-1,3).")
@click.option("--cpuset-mems", metavar="LIST", help="Memory nodes to allocate from.")
@click.option("--pids-limit", metavar="N", help="Maximum number of processes (-1: unlimited).")
@click.option("--name", help="A name for the container (unique among running ones).")
@click.option("--hostname", help="Hostname inside (default: the name or the id).")
@click.option("-e", "--env", multiple=True, metavar="K=V", help="Set an environment variable.")
@click.option("--env-file", multiple=True, metavar="FILE", help="Read variables from a file.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside.")
@click.option("--net", type=click.Choice(["none", "host"]), default="none", show_default=True,
              help="none: a new network namespace with lo up; host: the host's network.")
@click.option("--timeout", metavar="DURATION", help="Stop the container after this long (30s).")
@click.option("--stop-timeout", metavar="DURATION",
              help="Grace between SIGTERM and SIGKILL when stopping (default 10s).")
@click.option("--cgroup-parent", metavar="PATH",
              help="Create the container's cgroup below this one instead of our own.")
@click.option("--report", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the result record as JSON.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command(command: tuple[str, ...], report: str | None, cgroup_parent: str | None,
                **flags: Any) -> None:
    """Run COMMAND in a new isolated, resource-limited container."""
    opts = RunOptions(
        tty=flags["tty"], interactive=flags["interactive"], memory=flags["memory"],
        memory_swap=flags["memory_swap"], cpus=flags["cpus"], cpu_shares=flags["cpu_shares"],
        cpuset_cpus=flags["cpuset_cpus"], cpuset_mems=flags["cpuset_mems"],
        pids_limit=flags["pids_limit"], name=flags["name"], hostname=flags["hostname"],
        env=flags["env"], env_files=flags["env_file"], workdir=flags["workdir"],
        net=flags["net"], timeout=flags["timeout"], stop_timeout=flags["stop_timeout"],
    )
    cid = secrets.token_hex(6)
    spec = build_spec(list(command), opts, host_facts(), default_hostname=cid,
                      read_file=_read_text)
    if os.geteuid() != 0:
        raise SuperviseError("needs root (namespaces and cgroups); try sudo")
    result = trio.run(_run, cid, spec, opts.interactive, cgroup_parent)
    _report(result, spec, report)
    sys.exit(exit_status(result))


def exit_status(result: Result) -> int:
    if result.status == "error":
        return 125
    if result.exit_code is None:
        return 125
    return result.exit_code


def _report(result: Result, spec: ContainerSpec, path: str | None) -> None:
    name = result.name
    if result.oom_killed:
        limit = spec.limits.memory_bytes
        detail = f" (limit {_spaced(format_bytes(limit))})" if limit is not None else ""
        print(f"supervise: {name} was killed: out of memory{detail}", file=sys.stderr)
    elif result.timed_out:
        print(f"supervise: {name} timed out after {spec.timeout:g}s and was stopped",
              file=sys.stderr)
    elif result.error:
        print(f"supervise: {result.error}", file=sys.stderr)
    if path is not None:
        try:
            Path(path).write_text(result.to_json() + "\n")
        except OSError as exc:
            raise SuperviseError(f"--report {path}: {exc.strerror}") from exc


def _spaced(size: str) -> str:
    """'64MiB' -> '64 MiB', for prose."""
    unit_at = len(size.rstrip("KMGTPEiB"))
    return f"{size[:unit_at]} {size[unit_at:]}"


async def _forward_signals(container: Container, tg: anyio.abc.TaskGroup) -> None:
    """SIGINT/SIGTERM/SIGHUP go to the container; stop-timeout later, or at a
    second Ctrl-C, it is killed."""
    killer_started = False
    interrupts = 0

    async def kill_later() -> None:
        await anyio.sleep(container.spec.stop_timeout)
        container.kill()

    with anyio.open_signal_receiver(*FORWARDED_SIGNALS) as signals:
        async for sig in signals:
            if sig == signal.SIGINT:
                interrupts += 1
                if interrupts > 1:
                    container.kill()
                    continue
            container.signal(sig)
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
        async with Supervisor(cgroup_parent=cgroup_parent) as supervisor:
            container = await supervisor.start(spec, cid=cid)
            if slave is not None:
                os.close(slave)
                slave = None
            if master is None:
                return await _attached(container)
            raw_fd = terminal_fd(0) if interactive else None
            with raw_mode(raw_fd):
                return await _attached(container, PtyPump(master, 0, 1, interactive), term)
    finally:
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)


async def _attached(container: Container, pump: PtyPump | None = None,
                    term: int | None = None) -> Result:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_forward_signals, container, tg)
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
        result = await container.wait()
        if pump is not None:
            with anyio.move_on_after(2):
                await output_done.wait()
            pump.close()
        tg.cancel_scope.cancel()
    return result


async def _follow_window_size(term: int, master: int) -> None:
    with anyio.open_signal_receiver(signal.SIGWINCH) as signals:
        async for _ in signals:
            copy_window_size(term, master)
