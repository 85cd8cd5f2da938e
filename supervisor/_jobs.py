"""The jobs file of `supervise batch`: one job per line, checked whole before anything runs.

Grammar (DESIGN.md): UTF-8; POSIX shell word splitting; `#` comments and
blank lines skipped; a trailing backslash continues the line. A line is
`[JOB OPTIONS --] COMMAND [ARG...]`: options before a `--` are `run`'s and
override the batch's defaults; a line without `--`, or whose first word is
not an option, is all command.

Pure: the option parser (click, in the CLI) is passed in, and errors come
back as `FILE:LINE: message` strings, all of them at once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from ._errors import JobsFileError, UsageError
from ._options import RunOptions
from ._sources import Inputs, combinations, expand, has_replacements
from ._words import UnterminatedQuote, split_words

__all__ = ["Job", "JobsFileError", "Line", "input_jobs", "logical_lines", "merge_options",
           "parse_jobs", "split_line"]

# Options a job line may not set: they make no sense for a batch job.
NOT_PER_JOB = frozenset({"tty", "interactive"})


@dataclass(frozen=True)
class Job:
    line: int
    argv: tuple[str, ...]
    options: RunOptions
    name: str
    seq: int = 0  # its position among the file's jobs, from 1


@dataclass(frozen=True)
class Line:
    number: int
    text: str


def logical_lines(text: str) -> list[Line]:
    """Join backslash-continued lines; keep the first line's number. Blank and comment
    lines are dropped later, after splitting, so quoting rules apply to them too."""
    lines: list[Line] = []
    pending: list[str] = []
    start = 0
    # Only "\n" ends a line (str.splitlines() would also split at \f, \v, \x85,
    # \u2028...: the numbers in FILE:LINE errors and results would then drift).
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not pending:
            start = number
        if _continues(raw):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        lines.append(Line(start, "".join(pending)))
        pending = []
    if pending:
        lines.append(Line(start, "".join(pending)))
    return lines


def _continues(raw: str) -> bool:
    stripped = raw.rstrip("\r")
    trailing = len(stripped) - len(stripped.rstrip("\\"))
    return trailing % 2 == 1  # an escaped backslash "\\" does not continue


def split_line(line: Line) -> list[str]:
    """The line's words by the POSIX shell's quoting rules (see _words)."""
    try:
        return split_words(line.text)
    except UnterminatedQuote as exc:
        raise UsageError(str(exc)) from exc


def merge_options(defaults: RunOptions, given: Mapping[str, Any]) -> RunOptions:
    """The batch's defaults with a line's options over them (env and env files add up)."""
    if not given:
        return defaults  # (shared: most lines of a big file set no options)
    changes = dict(given)
    if "env" in changes:
        changes["env"] = (*defaults.env, *changes["env"])
    if "env_files" in changes:
        changes["env_files"] = (*defaults.env_files, *changes["env_files"])
    return dataclasses.replace(defaults, **changes)


def default_name(line: int) -> str:
    return f"job-{line}"


# What exec(2) takes (Linux): one argument of at most MAX_ARG_STRLEN bytes with its
# NUL, and all of argv and envp (strings and pointers) within ARG_MAX.
MAX_ARG_STRLEN = 32 * 4096
_POINTER = 8


def arg_max() -> int:
    try:
        return os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        return 2 * 1024 * 1024


def unexecutable(argv: list[str], limit: int) -> str | None:
    """Why exec could never take this command line (None: it could): a NUL byte in a
    word, a word longer than MAX_ARG_STRLEN, or all of them past limit (ARG_MAX, less
    what the environment needs)."""
    total = 0
    for n, word in enumerate(argv):
        if "\0" in word:
            return f"a NUL byte in {'the command' if n == 0 else f'argument {n}'}"
        size = len(os.fsencode(word)) + 1
        if size > MAX_ARG_STRLEN:
            return (f"{'the command' if n == 0 else f'argument {n}'} is {size - 1} bytes "
                    f"long: exec takes at most {MAX_ARG_STRLEN - 1}")
        total += size + _POINTER
    if total > limit:
        return f"the command line is {total} bytes: exec takes at most {limit}"
    return None


# What a jobs file may hold: a line no longer than a command exec could take (with
# room for its options), and a number of lines a batch can hold in memory (a job
# costs the supervisor about a kilobyte until it has run). Past either, the file is
# refused as it is read: /dev/zero or an endless stdin must not grow memory without
# end.
MAX_LINE_BYTES = 2 * 1024 * 1024 + 64 * 1024
MAX_LINES = 1_000_000
INPUTS = "<inputs>"  # what errors about jobs made from input sources name


def read_bounded(stream: BinaryIO, path: str, *, max_line: int = MAX_LINE_BYTES,
                 max_lines: int = MAX_LINES, chunk: int = 1 << 20) -> bytes:
    """All of a jobs file, read in chunks; UsageError (`PATH:LINE: why`) as soon as a
    line runs past max_line bytes or the file past max_lines lines."""
    parts: list[bytes] = []
    lines = 0
    current = 0  # bytes of the line being read
    while data := stream.read(chunk):
        start = 0
        while (newline := data.find(b"\n", start)) >= 0:
            current += newline - start
            if current > max_line:
                break
            lines += 1
            if lines > max_lines:
                raise UsageError(f"{path}:{lines}: more than {max_lines} lines: split the "
                                 "file into batches")
            current, start = 0, newline + 1
        else:
            current += len(data) - start
        if current > max_line:
            raise UsageError(f"{path}:{lines + 1}: a line longer than {max_line} bytes "
                             "(no command exec could take)")
        parts.append(data)
    return b"".join(parts)


def parse_jobs(
    text: str, path: str, *, defaults: RunOptions,
    parse_options: Callable[[list[str]], Mapping[str, Any]],
    errors: list[str] | None = None,
) -> list[Job]:
    """Every job of the file, or JobsFileError with every bad line as `path:line: why`
    (given errors, they are added there instead, and the good lines' jobs returned).
    parse_options turns a line's option words into {RunOptions field: value} for the
    options given, raising UsageError (with a suggestion for a misspelt one)."""
    jobs: list[Job] = []
    collect = errors is not None
    errors = [] if errors is None else errors
    limit = arg_max()
    seq = 0  # (a bad line is counted too: the numbers are the file's, errors or not)
    names: dict[str, int] = {}
    for line in logical_lines(text):
        try:
            words = split_line(line)
            if not words:
                continue
            # Options come first: a line whose first word is not an option is all
            # command, even if a "--" appears later (grep -- PATTERN FILE).
            if words[0].startswith("-") and "--" in words:
                cut = words.index("--")
                option_words, argv = words[:cut], words[cut + 1:]
                given = parse_options(option_words) if option_words else {}
                refused = sorted(NOT_PER_JOB & set(given))
                if refused:
                    raise UsageError(f"--{refused[0]} cannot be used in a jobs file")
            else:
                argv, given = words, {}
            if not argv:
                raise UsageError("no command after the options")
            problem = unexecutable(argv, limit)
            if problem is not None:
                raise UsageError(problem)
            options = merge_options(defaults, given)
            name = options.name or default_name(line.number)
            if name in names:
                raise UsageError(f"duplicate name {name!r} (first used on line {names[name]})")
            names[name] = line.number
            seq += 1
            jobs.append(Job(line=line.number, argv=tuple(argv), options=options, name=name,
                            seq=seq))
        except UsageError as exc:
            errors.append(f"{path}:{line.number}: {exc}")
    if errors and not collect:
        raise JobsFileError(errors)
    return jobs


def input_jobs(inputs: Inputs, defaults: RunOptions, read_lines: Callable[[str], list[str]],
               path: str = INPUTS) -> list[Job]:
    """The jobs of `batch -- COMMAND ::: ...` (see _sources): one a combination of the
    sources' values, numbered from 1 (their `line` and `seq`, `job-N` their name), with
    the batch's options; read_lines(path) gives a file source's lines. JobsFileError
    (`<inputs>:N: why`) for a job exec could never take, or too many jobs."""
    sources = [values if kind == "args" else tuple(read_lines(values[0]))
               for kind, values in inputs.sources]
    if any(not values for values in sources):
        raise JobsFileError([f"{path}: an input source is empty: no job to run"])
    count = 1
    for values in sources:
        count *= len(values)
    if count > MAX_LINES:
        raise JobsFileError([f"{path}: {count} jobs: more than {MAX_LINES}; split them "
                             "into batches"])
    replace = has_replacements(inputs.command)
    limit = arg_max()
    jobs: list[Job] = []
    errors: list[str] = []
    for seq, values in enumerate(combinations(sources), start=1):
        try:
            argv = expand(inputs.command, values, seq, replace)
            problem = unexecutable(argv, limit)
            if problem is not None:
                raise UsageError(problem)
        except UsageError as exc:
            errors.append(f"{path}:{seq}: {exc}")
            if len(errors) >= 100:  # (the same mistake a million times is said 100)
                break
            continue
        jobs.append(Job(line=seq, argv=tuple(argv), options=defaults,
                        name=default_name(seq), seq=seq))
    if errors:
        raise JobsFileError(errors)
    return jobs
