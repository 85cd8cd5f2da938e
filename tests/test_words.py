"""The jobs file's word splitter (supervisor._words): the POSIX shell's quoting rules,
checked against `sh` itself on generated lines, and linear in the line's length."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor._words import UnterminatedQuote, split_words

SH = shutil.which("sh") or "/bin/sh"


def sh_words(line: str) -> list[str]:
    """What sh makes of line as the arguments of a command (each printed, NUL-ended)."""
    # (a first word of its own: printf with no arguments would still print once)
    done = subprocess.run([SH, "-c", f"printf '%s\\0' first {line}"], capture_output=True,
                          check=True)
    return done.stdout.decode().split("\0")[1:-1]


@pytest.mark.parametrize(("line", "words"), [
    ("a#b", ["a#b"]),                       # shlex: ["a"]
    ("a #b c", ["a"]),
    ('"\\$5"', ["$5"]),                     # shlex: ["\\$5"]
    ('"x\\`y"', ["x`y"]),                   # shlex: ["x\\`y"]
    ('"a\\b"', ["a\\b"]),
    ("'a\\b'", ["a\\b"]),
    ('"" \'\'', ["", ""]),
    ('a""b', ["ab"]),
    ('"\\\\\\\\"', ["\\\\"]),
    ("x\\ y", ["x y"]),
    ("\\#a #b", ["#a"]),
    ('"#a"', ["#a"]),
    ("a\\", ["a\\"]),
    ("a\\\nb", ["ab"]),
    ("  \t ", []),
    ("$HOME `x` *.c ~ a;b|c>d", ["$HOME", "`x`", "*.c", "~", "a;b|c>d"]),
])
def test_the_shells_quoting_rules(line: str, words: list[str]) -> None:
    assert split_words(line) == words
    if "$" not in line and "`x`" not in line and "*" not in line and ";" not in line:
        assert sh_words(line) == words


@pytest.mark.parametrize("line", ["'abc", '"abc', 'a "b\\"', "a 'b'c'"])
def test_an_unterminated_quote_is_an_error(line: str) -> None:
    with pytest.raises(UnterminatedQuote, match="unterminated quote"):
        split_words(line)


# Lines sh reads the same way when nothing is expanded: no $ (but \$ in double quotes),
# backquotes only escaped, no glob or operator characters, no newlines.
_plain = st.text(alphabet="abcxyz019-_.=/:,@%+", min_size=1, max_size=6)
_piece = st.one_of(
    _plain,
    _plain.map(lambda s: f"'{s}'"),
    st.text(alphabet="ab \\'#", max_size=6).map(lambda s: "'" + s.replace("'", "") + "'"),
    st.text(alphabet='ab #\'', max_size=6).map(lambda s: f'"{s}"'),
    st.sampled_from(['"\\$"', '"\\`"', '"\\""', '"\\\\"', '"\\a"', '"a\\#"', "\\'", '\\"',
                     "\\\\", "\\ ", "\\#", "#", "a#b", "''", '""', "\\a", "\t", "  "]),
)
_line = st.lists(_piece, max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(_line)
def test_split_like_sh_on_generated_lines(line: str) -> None:
    expected = sh_words(line)
    assert split_words(line) == expected, line


@pytest.mark.parametrize("maker", [
    lambda n: "x" * n,                        # one long bare word
    lambda n: "'" + "y" * n + "'",            # quoted
    lambda n: '"' + "z\\$" * (n // 3) + '"',  # escapes inside double quotes
    lambda n: "a " * (n // 2),                # many words
])
def test_linear_in_the_lines_length(maker: object) -> None:
    """A 10 MB line in well under a second, and 10x the length costs ~10x the time
    (shlex took 4.5 s for a 400 KB argument, and a 10 MB one never ended)."""
    assert callable(maker)

    def timed(n: int) -> float:
        text = maker(n)
        t0 = time.perf_counter()
        split_words(text)
        return time.perf_counter() - t0

    small, big = timed(1_000_000), timed(10_000_000)
    assert big < 5.0
    assert big < 25 * max(small, 1e-3)
