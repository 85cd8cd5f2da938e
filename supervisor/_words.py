"""A jobs file line split into words by the POSIX shell's quoting rules, with nothing
expanded, in one pass.

The rules (POSIX.1-2017 XCU 2.2, 2.3), as `sh -c 'printf "%s\\n" WORDS'` applies them
(the tests compare the two on generated lines):

- blanks (space, tab) separate words; a newline too (a line continued with a
  trailing backslash has been joined by then: `_jobs.logical_lines`);
- a backslash outside quotes keeps the next character as it is (a backslash and a
  newline vanish; a backslash at the very end stays);
- single quotes keep everything up to the next single quote as it is;
- inside double quotes a backslash escapes only `$`, a backquote, `"`, `\\` and a
  newline (which it removes); before anything else it stays;
- `#` starts a comment only where a word would start; `a#b` is one word;
- quotes with nothing in them make an empty word; `a""b` is `ab`.

Nothing is expanded (no shell runs): `$HOME`, backquotes, `*`, `~` and the
operators `; | & < > ( )` are literal characters of their word.

Linear in the line's length: runs of ordinary characters are taken whole (regular
expressions and str.find), never a character at a time into a growing string.
"""

from __future__ import annotations

import re

__all__ = ["UnterminatedQuote", "split_words"]


class UnterminatedQuote(ValueError):
    """A quote opened and never closed on the line."""


_BLANKS = re.compile(r"[ \t\n]+")
# outside quotes: everything but blanks, quotes, backslashes (# only matters at a start)
_PLAIN = re.compile(r"[^ \t\n'\"\\]+")
# inside double quotes: everything but the closing quote and backslashes
_IN_DOUBLE = re.compile(r'[^"\\]+')
_DOUBLE_ESCAPES = frozenset('$`"\\\n')


def split_words(text: str) -> list[str]:
    """The words of text; UnterminatedQuote if a quote is not closed."""
    words: list[str] = []
    parts: list[str] = []  # the word being read, in pieces
    in_word = False  # quotes make a word even with nothing in them
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\n":
            if in_word:
                words.append("".join(parts))
                parts, in_word = [], False
            match = _BLANKS.match(text, i)
            assert match is not None
            i = match.end()
        elif c == "#" and not in_word:
            break  # a comment, to the end of the line
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise UnterminatedQuote("unterminated quote")
            parts.append(text[i + 1:end])
            in_word, i = True, end + 1
        elif c == '"':
            i = _double_quoted(text, i + 1, parts)
            in_word = True
        elif c == "\\":
            if i + 1 == n:
                parts.append("\\")  # as sh: a backslash at the very end is itself
                in_word = True
            elif text[i + 1] != "\n":
                parts.append(text[i + 1])
                in_word = True
            i += 2  # a backslash and a newline: gone, as if never there
        else:
            match = _PLAIN.match(text, i)
            assert match is not None
            parts.append(match.group())
            in_word, i = True, match.end()
    if in_word:
        words.append("".join(parts))
    return words


def _double_quoted(text: str, i: int, parts: list[str]) -> int:
    """Read a double-quoted string from text[i] (just past the opening quote) into
    parts; the index past the closing quote."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1
        if c == "\\":
            if i + 1 < n and text[i + 1] in _DOUBLE_ESCAPES:
                if text[i + 1] != "\n":
                    parts.append(text[i + 1])
                i += 2
            else:
                parts.append("\\")
                i += 1
            continue
        match = _IN_DOUBLE.match(text, i)
        assert match is not None
        parts.append(match.group())
        i = match.end()
    raise UnterminatedQuote("unterminated quote")
