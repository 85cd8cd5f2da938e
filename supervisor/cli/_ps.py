"""`supervise ps`, `kill`, `stop` and `gc`: the containers of every supervise on this host,
found through the state directory."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

import cgroupfs

from .. import _control, _gc, _state
from .._errors import SuperviseError
from .._result import parse_iso_utc
from .._state import ContainerState
from ._output import EXIT_SUPERVISE_FAILED, say

EXIT_NOT_FOUND = 1
MIN_COMMAND_WIDTH = 20
HEADERS = ("ID", "NAME", "PID", "COMMAND", "CREATED", "STATUS", "SUPERVISOR PID")


# -- pure helpers --------------------------------------------------------------------
def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration: "Less than a second", "5 seconds", "About a minute",
    "3 hours", "2 weeks"..."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


def created_ago(started_at: str, now: float) -> str:
    """An ISO 8601 UTC start time as "5 seconds ago"; unparsable text is shown as is."""
    try:
        started = parse_iso_utc(started_at)
    except ValueError:
        return started_at
    return f"{human_duration(max(0.0, now - started))} ago"


def status_of(supervisor_alive: bool, pid1_alive: bool) -> str:
    if not supervisor_alive:
        return "orphaned"
    return "running" if pid1_alive else "exited"


def printable(text: str) -> str:
    """Control characters and undecodable bytes (surrogates) escaped, for one table cell."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def truncate(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def format_table(rows: Sequence[Sequence[str]], *, width: int | None,
                 shrink_column: int | None = None) -> list[str]:
    """Left-aligned columns three spaces apart (docker's look); with ``width``, the
    ``shrink_column`` is truncated (not below MIN_COMMAND_WIDTH) so lines fit."""
    if not rows:
        return []
    columns = len(rows[0])
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    if width is not None and shrink_column is not None:
        others = sum(w for i, w in enumerate(widths) if i != shrink_column) + 3 * (columns - 1)
        widths[shrink_column] = min(widths[shrink_column],
                                    max(MIN_COMMAND_WIDTH, width - others))
        rows = [[truncate(cell, widths[i]) if i == shrink_column else cell
                 for i, cell in enumerate(row)] for row in rows]
    return ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
            for row in rows]


# -- ps ---------------------------------------------------------------------------------
def describe(state: ContainerState, now: float) -> dict[str, Any]:
    supervisor_alive = _state.supervisor_alive(state)
    pid1_alive = _state.is_alive(state.pid, state.pid_start_ticks)
    return {
        "id": state.id,
        "name": state.name,
        "pid": state.pid,
        "command": shlex.join(state.argv),
        "argv": list(state.argv),
        "created": state.started_at,
        "created_ago": created_ago(state.started_at, now),
        "status": status_of(supervisor_alive, pid1_alive),
        "supervisor_pid": state.supervisor_pid,
        "cgroup_paths": list(state.cgroup_paths),
        "limits": dict(state.limits),
        "hostname": state.hostname,
        "line": state.line,
    }


@click.command("ps", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-a", "--all", "show_all", is_flag=True,
              help="Also show containers whose PID 1 has exited but whose state remains.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of objects.")
@click.option("-q", "--quiet", is_flag=True, help="Only the ids.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the command.")
def ps_command(show_all: bool, as_json: bool, quiet: bool, no_trunc: bool) -> None:
    """List the containers of every supervise on this host, newest first.

    STATUS is running, orphaned (its supervisor is dead: `supervise gc` cleans up) or,
    with -a, exited (PID 1 gone, its state file not yet removed)."""
    now = time.time()
    states = sorted(_state.read_states(warn=say), key=lambda s: (s.started_at, s.id),
                    reverse=True)
    entries = [describe(s, now) for s in states]
    if not show_all:
        entries = [e for e in entries if e["status"] != "exited"]
    if as_json:
        print(json.dumps(entries, indent=2))  # ASCII: argv may hold undecodable bytes
        return
    if quiet:
        for entry in entries:
            print(entry["id"])
        return
    rows = [list(HEADERS)] + [
        [printable(str(cell)) for cell in (e["id"], e["name"], e["pid"], e["command"],
                                           e["created_ago"], e["status"], e["supervisor_pid"])]
        for e in entries
    ]
    width = None if no_trunc else shutil.get_terminal_size((120, 24)).columns
    for line in format_table(rows, width=width, shrink_column=HEADERS.index("COMMAND")):
        print(line)


# -- kill and stop -------------------------------------------------------------------
def _finish(errors: Sequence[str]) -> None:
    for error in errors:
        say(error)
    sys.stdout.flush()
    if errors:
        sys.exit(EXIT_NOT_FOUND)


@click.command("kill", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-s", "--signal", "sig", default="KILL", show_default=True, metavar="SIGNAL",
              help="Signal to send: a name (TERM, SIGTERM) or a number.")
@click.argument("refs", nargs=-1, required=True, metavar="ID|NAME...")
def kill_command(sig: str, refs: tuple[str, ...]) -> None:
    """Send a signal to each container's PID 1 (default SIGKILL).

    A PID 1 without a handler for the signal ignores it (the kernel protects it);
    only SIGKILL always works."""
    signum = _control.parse_signal(sig)
    targets, errors = _control.open_targets(_state.read_states(warn=say), refs)
    try:
        for target in targets:
            try:
                sent = _control.send(target.pidfd, signum)
            except OSError as exc:
                errors.append(f"cannot signal {target.state.id}: {exc.strerror}")
                continue
            if sent:
                print(target.state.id, flush=True)
            else:
                errors.append(f"{target.state.id} is not running")
    finally:
        _control.close_targets(targets)
    _finish(errors)


@click.command("stop", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-t", "--time", "seconds", type=click.FloatRange(min=0), default=10.0,
              show_default=True, metavar="SECONDS",
              help="Seconds to wait after SIGTERM before SIGKILL.")
@click.argument("refs", nargs=-1, required=True, metavar="ID|NAME...")
def stop_command(seconds: float, refs: tuple[str, ...]) -> None:
    """Stop each container: SIGTERM, then SIGKILL after the grace period.

    A PID 1 without a SIGTERM handler would ignore SIGTERM: it gets SIGKILL at once.
    Returns once each PID 1 has exited; its supervisor then removes the rest."""
    targets, errors = _control.open_targets(_state.read_states(warn=say), refs)
    try:
        stuck = _control.stop(targets, seconds)
        for target in targets:
            if target in stuck:
                errors.append(f"{target.state.id} did not exit after SIGKILL")
            else:
                print(target.state.id, flush=True)
    finally:
        _control.close_targets(targets)
    _finish(errors)


# -- gc ---------------------------------------------------------------------------------
@click.command("gc", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True, help="Do not list what was removed.")
def gc_command(quiet: bool) -> None:
    """Remove what dead supervisors left behind: their containers' processes, cgroups
    and state files, and empty unclaimed container cgroups older than a minute. Only
    the container cgroups below our own <cgroup>/supervise/ are touched."""
    try:
        report = _gc.gc(say=None if quiet else lambda m: print(m, flush=True), warn=say)
    except (OSError, cgroupfs.CgroupError) as exc:
        raise SuperviseError(f"gc: {exc}") from exc
    for note in report.left:
        say(f"gc: {note}")
    if report.errors:
        for error in report.errors:
            say(f"gc: {error}")
        sys.exit(EXIT_SUPERVISE_FAILED)
