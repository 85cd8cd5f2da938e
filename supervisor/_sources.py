"""GNU parallel's input sources, for `supervise batch -- COMMAND ::: ARGS...`.

    supervise batch -j 4 -- gzip -k {} ::: a.txt b.txt      a job per argument
    supervise batch -- convert {} {.}.png :::: list.txt       a job per line of a file
    supervise batch -a list.txt -- wc -l                      the same source, as -a
    supervise batch -- echo {1} {2} ::: a b ::: 1 2           every combination: a 1, a 2,
                                                              b 1, b 2 (the first source
                                                              varies slowest)

The command's words are the argv of every job, with the replacement strings in them
replaced (inside a word: no shell runs, so an input with spaces or quotes stays one
argument): `{}` the input (with several sources, their values joined by spaces),
`{N}` the Nth source's value, `{.}` without its extension, `{/}` its basename,
`{//}` its directory (`.` for none), `{/.}` its basename without extension, the same
after a number (`{2/.}`), and `{#}` the job's number. A command without any gets the
inputs appended as arguments, as parallel does.

Pure: the files (`::::`, -a) are read by the caller and passed in as their lines.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._errors import UsageError

__all__ = ["Inputs", "expand", "split_sources", "combinations", "has_replacements"]

ARGS, FILES = ":::", "::::"

# {}, {#}, {N}, and the modifiers . / // /. after an optional number
_REPLACEMENT = re.compile(r"\{(#|(\d*)(//|/\.|/|\.)?)\}")


@dataclass(frozen=True)
class Inputs:
    """A command with its sources: each a list of values (`:::` words), or a file
    (`::::` FILE, -a FILE) whose lines the caller reads in."""

    command: tuple[str, ...]
    sources: tuple[tuple[str, tuple[str, ...]], ...]  # ("args", values) or ("file", (path,))


def split_sources(words: Sequence[str], arg_files: Sequence[str] = ()) -> Inputs:
    """The command before the first `:::`/`::::`, and the sources after it, in order
    (-a files first, as parallel reads them). UsageError for a source with nothing in
    it or no command."""
    sources: list[tuple[str, tuple[str, ...]]] = [("file", (path,)) for path in arg_files]
    command: list[str] = []
    current: list[str] | None = None
    kind = ""
    for word in words:
        if word in (ARGS, FILES):
            if current is not None:
                sources.append(_source(kind, current))
            kind, current = ("args" if word == ARGS else "file"), []
        elif current is None:
            command.append(word)
        else:
            current.append(word)
    if current is not None:
        sources.append(_source(kind, current))
    if not command:
        raise UsageError("no command before the input sources (-- COMMAND [ARG...] ::: ...)")
    return Inputs(tuple(command), tuple(sources))


def _source(kind: str, values: list[str]) -> tuple[str, tuple[str, ...]]:
    if not values:
        mark = ARGS if kind == "args" else FILES
        raise UsageError(f"{mark} with nothing after it")
    return kind, tuple(values)


def combinations(sources: Sequence[Sequence[str]]) -> Iterator[tuple[str, ...]]:
    """Every combination of one value from each source, the first source varying
    slowest (parallel's order)."""
    return itertools.product(*sources)


def has_replacements(command: Sequence[str]) -> bool:
    return any(_REPLACEMENT.search(word) for word in command)


def expand(command: Sequence[str], values: Sequence[str], seq: int,
           replace: bool | None = None) -> list[str]:
    """One job's argv: the command with its replacement strings replaced by values
    (one per source) and seq ({#}); without any, the values appended. UsageError for
    a {N} past the number of sources."""
    if replace is None:
        replace = has_replacements(command)
    if not replace:
        return [*command, *values]

    def one(match: re.Match[str]) -> str:
        if match.group(1) == "#":
            return str(seq)
        number, modifier = match.group(2), match.group(3) or ""
        if number:
            index = int(number)
            if not 1 <= index <= len(values):
                raise UsageError(f"{match.group(0)}: there {'is' if len(values) == 1 else 'are'}"
                                 f" {len(values)} input source{'s' if len(values) != 1 else ''}")
            value = values[index - 1]
        else:
            value = " ".join(values)
        return _modified(value, modifier)

    return [_REPLACEMENT.sub(one, word) for word in command]


def _modified(value: str, modifier: str) -> str:
    """{.} {/} {//} {/.} of a value, as GNU parallel makes them (its Perl: `{.}` is
    s:\\.[^/.]*$::, `{/}` s:^.*/::, `{//}` File::Basename's dirname)."""
    if modifier == "":
        return value
    if modifier == "//":
        return _dirname(value)
    base = value.rsplit("/", 1)[-1] if modifier in ("/", "/.") else value
    return base if modifier == "/" else _EXTENSION.sub("", base)


_EXTENSION = re.compile(r"\.[^/.]*\Z")


def _dirname(path: str) -> str:
    """Perl's dirname: trailing slashes are not a component; "." for none."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    head, sep, _name = stripped.rpartition("/")
    if not sep:
        return "."
    return head.rstrip("/") or "/"
