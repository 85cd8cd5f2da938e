"""The one way the CLI speaks for itself: a `supervise: ...` line on stderr.

Every such line goes through `say`, so a user's value holding a line break
("-w $'a\\nb'", a file name, a container name) never splits it over lines.
"""

from __future__ import annotations

import sys
import unicodedata
from typing import NoReturn

EXIT_SUPERVISE_FAILED = 125  # supervise's own failures: bad flags, not root, cgroup errors
EXIT_BATCH_USAGE = 2  # a bad `batch` flag or jobs file: nothing was started


def one_line(message: str) -> str:
    """The message with control characters and line breaks shown as escapes: a user's
    value ("-w $'a\\nb'") must not split an error over lines."""
    return "".join(
        repr(c)[1:-1] if c != "\t" and unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") else c
        for c in message)


def say(message: str) -> None:
    """`supervise: MESSAGE` on stderr as one line, flushed: it may come before a long
    wait, or between lines of a container's output."""
    print(f"supervise: {one_line(message)}", file=sys.stderr, flush=True)


def fail(message: str, code: int = EXIT_SUPERVISE_FAILED) -> NoReturn:
    say(message)
    sys.exit(code)
