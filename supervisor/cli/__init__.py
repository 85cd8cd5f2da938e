"""The `supervise` command line: click for parsing, trio for running.

Every failure ends as one line, `supervise: ...`, and an exit status from
DESIGN.md: 125 for supervise's own failures and bad flags; a traceback only
with --debug.
"""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import click

from .._errors import SuperviseError
from .._jobs import JobsFileError
from ._batch import batch_command
from ._ps import gc_command, kill_command, ps_command, stop_command
from ._run import run_command
from ._stats import stats_command

EXIT_SUPERVISE_FAILED = 125
EXIT_BATCH_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show a traceback for internal errors.")
@click.version_option(package_name="supervise", prog_name="supervise")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run isolated, resource-limited containers without a daemon."""
    ctx.obj = {"debug": debug}


cli.add_command(run_command)
cli.add_command(batch_command)
cli.add_command(ps_command)
cli.add_command(kill_command)
cli.add_command(stop_command)
cli.add_command(gc_command)
cli.add_command(stats_command)


def fail(message: str, code: int = EXIT_SUPERVISE_FAILED) -> NoReturn:
    print(f"supervise: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
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
        in_batch = ctx is not None and ctx.command.name == "batch"
        fail(exc.format_message(), EXIT_BATCH_USAGE if in_batch else EXIT_SUPERVISE_FAILED)
    except click.Abort:
        fail("interrupted", 130)
    except JobsFileError as exc:
        for error in exc.errors:
            print(f"supervise: {error}", file=sys.stderr)
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
