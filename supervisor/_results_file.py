"""The results file (JSON Lines, one record per finished job) and --resume."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from typing import IO

from ._result import Result, Status

# A file system out of space (or quota): lines are lost, the batch goes on. Any other
# error opening the file is the caller's (a usage error, before anything runs).
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class LineWriter:
    """Appends lines, flushed one by one, so a killed batch leaves whole lines behind.
    A line that cannot be written (a full disk) is counted in `lost`, with the reason
    in `error`, and never raised: the caller warns once, and says at the end. OSError
    from the constructor if the file cannot be opened but for want of space."""

    def __init__(self, path: str, header: str | None = None) -> None:
        self.path = path
        self.lost = 0
        self.error: str | None = None
        self._header = header
        self._file: IO[str] | None = None
        self._open()

    def _open(self) -> None:
        try:
            fresh = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if self._header is not None and fresh:
                self._put(self._header)
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            self._drop(exc)

    def write(self, line: str) -> bool:
        """Append line; False if it was lost (see `error`)."""
        if self._file is None:
            self._open()  # space may have come back
        try:
            if self._file is None:
                raise OSError(errno.ENOSPC, self.error or os.strerror(errno.ENOSPC))
            self._put(line)
        except OSError as exc:
            self.lost += 1
            self._drop(exc)
            return False
        return True

    def _put(self, line: str) -> None:
        assert self._file is not None
        self._file.write(line + "\n")
        self._file.flush()

    def _drop(self, exc: OSError) -> None:
        """What did not reach the file must not be written again with the next line:
        drop the buffer and what the failed write left half done."""
        self.error = exc.strerror or str(exc)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            repair_torn_tail(self.path)

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


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
