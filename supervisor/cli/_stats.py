"""`supervise stats`: the live table of containers, whichever supervise started them."""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from collections.abc import Sequence

import click
from rich.console import Console
from rich.live import Live

import cgroupfs

from .. import _state
from .._errors import SuperviseError
from .._result import parse_iso_utc
from .._sampler import Sampler, Target
from .._sampling import ContainerSample, HostSample
from .._units import parse_interval
from .._view import render_text, stats_table, stats_view
from ._output import say

# --no-stream samples twice this far apart, so that CPU % has a span (docker does too).
NO_STREAM_SPAN_S = 0.5


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """stats reads the state directory at each refresh: the first warning is said, once."""
    if not _warned:
        _warned.add(message)
        say(message)


def _targets(refs: Sequence[str], layout: cgroupfs.Layout) -> tuple[list[Target], list[str]]:
    states = _state.read_states(warn=_warn_once)
    missing: list[str] = []
    chosen: list[_state.ContainerState] = []
    if refs:
        for ref in refs:
            found = _state.find(states, ref)
            if not found:
                missing.append(ref)
            chosen.extend(s for s in found if s not in chosen)
    else:
        chosen = states
    targets: list[Target] = []
    for st in chosen:
        try:
            cgroup = cgroupfs.cgroup_at(st.cgroup_paths, layout=layout)
        except cgroupfs.CgroupError:
            continue
        state = "running" if _state.supervisor_alive(st) else "orphaned"
        try:
            started = parse_iso_utc(st.started_at)
        except ValueError:
            started = time.time()
        targets.append(Target(st.id, st.name, st.pid, shlex.join(st.argv), started, cgroup,
                              state=state, supervisor_pid=st.supervisor_pid))
    return targets, missing


def _sample(sampler: Sampler, refs: Sequence[str], layout: cgroupfs.Layout
            ) -> tuple[HostSample, list[ContainerSample], list[str]]:
    targets, missing = _targets(refs, layout)
    host = sampler.host()
    return host, sampler.sample(targets, host), missing


@click.command("stats", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("containers", nargs=-1, metavar="[ID|NAME...]")
@click.option("--no-stream", is_flag=True, help="Print one snapshot and exit.")
@click.option("--interval", default="1s", metavar="DURATION", show_default=True,
              help="Time between refreshes.")
def stats_command(containers: tuple[str, ...], no_stream: bool, interval: str) -> None:
    """Live CPU, memory and pids of running containers (default: all on this host)."""
    every = parse_interval(interval)
    try:
        layout = cgroupfs.detect_layout()
    except cgroupfs.CgroupError as exc:
        raise SuperviseError(str(exc)) from exc
    sampler = Sampler()
    if no_stream:
        _sample(sampler, containers, layout)
        time.sleep(NO_STREAM_SPAN_S)
        _host, rows, missing = _sample(sampler, containers, layout)
        width = Console().width if sys.stdout.isatty() else 200
        sys.stdout.write(render_text(stats_table(rows, max_rows=None, width=width), width=width))
        for ref in missing:
            say(f"no such container: {ref}")
        sys.exit(1 if missing else 0)
    console = Console(highlight=False)
    with Live(console=console, auto_refresh=False, screen=console.is_terminal) as live, \
            contextlib.suppress(KeyboardInterrupt):
        while True:
            host, rows, _missing = _sample(sampler, containers, layout)
            width, height = console.size
            live.update(stats_view(host, rows, width=width, height=height), refresh=True)
            time.sleep(every)
