"""`run`'s container flags, shared by `run`, `batch` (as defaults) and jobs-file lines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .._errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

# click parameter name -> RunOptions field, where they differ
_FIELD = {"env_file": "env_files", "volume": "volumes"}


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


terminal_options = _options(
    click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal."),
    click.option("-i", "--interactive", is_flag=True, help="Forward stdin to the container."),
)

name_option = click.option(
    "--name", help="A name for the container (unique among running ones).")

limit_options = _options(
    click.option("-m", "--memory", metavar="SIZE", help="Memory limit (64m, 1g, bytes)."),
    click.option("--memory-swap", metavar="SIZE",
                 help="Memory plus swap limit; -1: unlimited swap."),
    click.option("--cpus", metavar="N", help="CPU quota in CPUs (0.5 = half of one CPU)."),
    click.option("-c", "--cpu-shares", "--cpushare", "cpu_shares", metavar="N",
                 help="Relative CPU weight (v1 shares; converted to cpu.weight on v2)."),
    click.option("--cpuset-cpus", "--cpuset", "cpuset_cpus", metavar="LIST",
                 help="CPUs to run on (0-1,3)."),
    click.option("--cpuset-mems", metavar="LIST", help="Memory nodes to allocate from."),
    click.option("--pids-limit", metavar="N",
                 help="Maximum number of processes (-1: unlimited)."),
    click.option("--hostname", help="Hostname inside (default: the name or the id)."),
    click.option("-e", "--env", multiple=True, metavar="K=V",
                 help="Set an environment variable (K alone: the host's value)."),
    click.option("--env-file", multiple=True, metavar="FILE", help="Read variables from a file."),
    click.option("-w", "--workdir", metavar="DIR", help="Working directory inside."),
    click.option("--net", type=click.Choice(["none", "host"]), default="none",
                 show_default=True,
                 help="none: a new network namespace with lo up; host: the host's network."),
    click.option("--timeout", metavar="DURATION",
                 help="Stop the container after this long (30s, 1m30s)."),
    click.option("--stop-timeout", metavar="DURATION",
                 help="Grace between SIGTERM and SIGKILL when stopping (default 10s)."),
    click.option("--privileged", is_flag=True,
                 help="Keep every capability; /sys and /proc unrestricted; no no_new_privs."),
    click.option("--cap-add", multiple=True, metavar="CAP",
                 help="Add a capability (NET_ADMIN, CAP_NET_ADMIN or ALL). Repeatable."),
    click.option("--cap-drop", multiple=True, metavar="CAP",
                 help="Drop a capability (ALL: every one). Repeatable."),
    click.option("-u", "--user", metavar="UID[:GID]",
                 help="Run as this user (or NAME[:GROUP] from the host's /etc/passwd); "
                      "no supplementary groups."),
    click.option("--init", is_flag=True,
                 help="PID 1 is a minimal init: reaps orphans, forwards signals."),
    click.option("--security-opt", multiple=True, metavar="OPT",
                 help="seccomp=unconfined, seccomp=PROFILE.json (docker's format) or "
                      "no-new-privileges. Repeatable."),
    click.option("--device", multiple=True, metavar="HOST[:CONTAINER][:rwm]",
                 help="Let the container use a host device (every other is denied). "
                      "Repeatable."),
    click.option("-v", "--volume", multiple=True, metavar="HOST:CONTAINER[:ro|rw]",
                 help="Bind a host path inside, read-write unless :ro; '.' is the "
                      "current directory, read-write, at its own path. Repeatable."),
    click.option("--tmpfs", multiple=True, metavar="PATH[:OPTIONS]",
                 help="A tmpfs of the container's own at PATH (size=, mode=, exec...). "
                      "Repeatable."),
    click.option("--shm-size", metavar="SIZE", help="Size of /dev/shm (default 64m)."),
    click.option("--rootfs", metavar="DIR|TAR",
                 help="A root file system of its own (a directory, or a .tar, .tar.gz or "
                      ".tar.zst of one), under a copy-on-write layer discarded at exit."),
    click.option("--read-only", is_flag=True,
                 help="With --rootfs: no copy-on-write layer; the root is read-only."),
    click.option("--keep-upper", metavar="DIR",
                 help="With --rootfs: keep the copy-on-write layer in DIR (its upper/)."),
    click.option("--fs", type=click.Choice(["view", "host"]), default="view",
                 show_default=True,
                 help="view: the host's files read-only, /tmp /var/tmp /run /dev/shm and "
                      "/dev of its own; host: the host's files writable (unsafe for "
                      "untrusted code)."),
)

RUN_FIELDS = ("tty", "interactive", "memory", "memory_swap", "cpus", "cpu_shares",
              "cpuset_cpus", "cpuset_mems", "pids_limit", "name", "hostname", "env",
              "env_file", "workdir", "net", "timeout", "stop_timeout", "privileged",
              "cap_add", "cap_drop", "user", "init", "security_opt", "device", "volume",
              "tmpfs", "shm_size", "fs", "rootfs", "read_only", "keep_upper")


def run_fields(params: Mapping[str, Any], only_given: Callable[[str], bool] | None = None
               ) -> dict[str, Any]:
    """click params -> RunOptions fields (those present; with only_given, those the
    user actually gave)."""
    fields: dict[str, Any] = {}
    for name in RUN_FIELDS:
        if name in params and (only_given is None or only_given(name)):
            value = params[name]
            fields[_FIELD.get(name, name)] = tuple(value) if isinstance(value, tuple) else value
    return fields


@click.command("job", add_help_option=False)
@terminal_options
@name_option
@limit_options
def job_line_command(**_params: Any) -> None:
    """The options a jobs-file line may carry (parsing only; never invoked)."""


def parse_job_options(words: list[str]) -> dict[str, Any]:
    """A jobs-file line's option words -> the RunOptions fields it sets."""
    try:
        ctx = job_line_command.make_context("job", list(words))
    except click.UsageError as exc:
        # one line: click echoes the words, which may hold a quoted newline or CR
        message = exc.format_message()
        raise UsageError("".join(c if c.isprintable() else repr(c)[1:-1]
                                 for c in message)) from None
    return run_fields(
        ctx.params, lambda name: ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE)
