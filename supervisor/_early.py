"""Ctrl-C while the CLI is still starting (importing click, trio...): a clean exit,
never a KeyboardInterrupt traceback from inside an import. Installed as soon as this
package is imported as the command line (see __init__), and by supervisor.cli; the
CLI puts Python's own handler back once it handles the command line."""

from __future__ import annotations

import os
import signal


def _interrupted(_signum: int, _frame: object) -> None:
    os.write(2, b"supervise: interrupted\n")
    os._exit(130)


def install() -> None:
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
        signal.signal(signal.SIGINT, _interrupted)


def uninstall() -> None:
    """Python's own handler back (KeyboardInterrupt), if ours is there."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)
