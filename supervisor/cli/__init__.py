"""The `supervise` command line: click for parsing, trio for running.

Every failure ends as one line, `supervise: ...`, and an exit status from
DESIGN.md: 125 for supervise's own failures and bad flags; a traceback only
with --debug.
"""

from __future__ import annotations

import os

from .. import _early

_early.install()  # a Ctrl-C until the command is imported: "interrupted", no traceback

import contextlib  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import NoReturn  # noqa: E402

import click  # noqa: E402

from .._errors import JobsFileError, SuperviseError  # noqa: E402
from ._output import EXIT_BATCH_USAGE, EXIT_SUPERVISE_FAILED, fail, say  # noqa: E402

# command -> (module, attribute): a command's module (and what it imports: rich,
# psutil...) loads only when that command runs, so `supervise run` starts fast.
COMMANDS = {
    "run": ("._run", "run_command"),
    "batch": ("._batch", "batch_command"),
    "ps": ("._ps", "ps_command"),
    "stats": ("._stats", "stats_command"),
    "kill": ("._ps", "kill_command"),
    "stop": ("._ps", "stop_command"),
    "gc": ("._ps", "gc_command"),
    "exec": ("._exec", "exec_command"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module_name, __name__), attribute)
        assert isinstance(command, click.Command)
        # Its imports done (a KeyboardInterrupt inside one can surface as another error,
        # RuntimeError from a class body's __set_name__): from here a Ctrl-C is click's
        # Abort ("interrupted", 130), or the command's own.
        _early.uninstall()
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show a traceback for internal errors.")
@click.version_option(package_name="supervise", prog_name="supervise")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run isolated, resource-limited containers without a daemon."""
    ctx.obj = {"debug": debug}


def _prestart_spawner(args: list[str]) -> None:
    """For run and batch as root, launch the spawner before trio is even imported:
    its start overlaps ours (about 15 ms of a short run's 0.2 s)."""
    command = next((a for a in args if not a.startswith("-")), None)
    if (command in ("run", "batch") and os.geteuid() == 0 and "--help" not in args
            and "--slurm" not in args):  # (--slurm runs no container here)
        from .._launch import prestart

        with contextlib.suppress(SuperviseError):
            prestart()


def main(argv: list[str] | None = None) -> NoReturn:
    """The console script. As a process's entry (argv None) it leaves with os._exit
    once its output is flushed: everything is cleaned up by then, and the
    interpreter's teardown would add tens of milliseconds to every short run."""
    if argv is not None:
        _main(argv)
    try:
        _main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code if isinstance(code, int) else 0)


def _main(args: list[str]) -> NoReturn:
    _prestart_spawner(args)
    debug = "--debug" in args[: args.index("run")] if "run" in args else "--debug" in args
    try:
        code = cli.main(args=args, prog_name="supervise", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "")
        sys.exit(0)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        # click's parser raises some errors ("Option '-j' requires an argument") without
        # a ctx: then the command is the first word that is not a group option.
        command = (ctx.command.name if ctx is not None
                   else next((a for a in args if not a.startswith("-")), None))
        in_batch = command == "batch"
        fail(exc.format_message(), EXIT_BATCH_USAGE if in_batch else EXIT_SUPERVISE_FAILED)
    except click.Abort:
        fail("interrupted", 130)
    except JobsFileError as exc:
        for error in exc.errors:
            say(error)
        sys.exit(exc.exit_code)
    except SuperviseError as exc:
        if debug:
            traceback.print_exc()
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # a bug: still one line unless asked
        if debug:
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {exc} (--debug shows a traceback)")
    sys.exit(code if isinstance(code, int) else 0)
