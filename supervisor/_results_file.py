"""The results file (JSON Lines, one record per finished job) and --resume."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO

from ._result import Result, Status


class LineWriter:
    """Appends lines, flushed one by one, so a killed batch leaves whole lines behind."""

    def __init__(self, path: str, header: str | None = None) -> None:
        self.path = path
        fresh = not os.path.exists(path) or os.path.getsize(path) == 0
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        if header is not None and fresh:
            self.write(header)

    def write(self, line: str) -> None:
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError:
            # What did not reach the file must not be written again with the next
            # line: drop the buffer (the caller says the record was lost).
            self._file = _reopen(self._file, self.path)
            raise

    def close(self) -> None:
        self._file.close()


def _reopen(old: IO[str], path: str) -> IO[str]:
    import contextlib

    with contextlib.suppress(OSError):
        old.close()
    repair_torn_tail(path)
    return open(path, "a", encoding="utf-8")


def resume_key(name: str, argv: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    return name, tuple(argv)


def read_results(path: str) -> list[Result]:
    """The records of a results file; a torn last line (a batch killed mid-write) and
    lines that are not records are skipped."""
    results: list[Result] = []
    try:
        # Raises IsADirectoryError, PermissionError, UnicodeDecodeError (a ValueError)
        # for what is not a results file at all: the caller says so.
        with open(path, encoding="utf-8") as f:
            for text in f:
                text = text.strip()
                if not text:
                    continue
                try:
                    results.append(Result.from_json(text))
                except ValueError:
                    continue
    except FileNotFoundError:
        return []
    return results


def succeeded(results: list[Result]) -> set[tuple[str, tuple[str, ...]]]:
    """Keys (name, argv) of jobs whose last record is ok."""
    last: dict[tuple[str, tuple[str, ...]], Status] = {}
    for r in results:
        last[resume_key(r.name, r.argv)] = r.status
    return {key for key, status in last.items() if status == Status.OK}


def repair_torn_tail(path: str) -> None:
    """If the file does not end in a newline (killed mid-write), cut the partial line,
    so appending keeps it valid JSON Lines."""
    try:
        with open(path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        return
