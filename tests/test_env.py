"""Tests for supervisor._env: docker's -e and --env-file rules, default environment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor._env import (
    DEFAULT_ENV,
    build_environment,
    default_environment,
    parse_env_assignment,
    parse_env_file,
)
from supervisor._errors import UsageError

HOST = {"HOME": "/home/me", "EMPTY": "", "LANG": "C.UTF-8"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("K=V", ("K", "V")),
        ("K=", ("K", "")),
        ("K==V", ("K", "=V")),
        ("K=a=b", ("K", "a=b")),
        ("K= spaced value ", ("K", " spaced value ")),
        ("K='quoted'", ("K", "'quoted'")),
        ("lower_case=1", ("lower_case", "1")),
        ("WITH SPACE=1", ("WITH SPACE", "1")),  # docker -e does not check names
        ("HOME", ("HOME", "/home/me")),
        ("EMPTY", ("EMPTY", "")),
        ("UNSET", ("UNSET", None)),  # unset on the host: removed in the container
        ("home", ("home", None)),  # names are case-sensitive
        ("K=\u00e9\u4e2d", ("K", "\u00e9\u4e2d")),
    ],
)
def test_parse_env_assignment(text: str, expected: tuple[str, str | None]) -> None:
    assert parse_env_assignment(text, HOST) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid environment variable '': the name is empty"),
        ("=V", "invalid environment variable '=V': the name is empty"),
        ("=", "invalid environment variable '=': the name is empty"),
        ("K\0=V", "invalid environment variable 'K\\x00=V': contains a NUL character"),
        ("K=V\0W", "invalid environment variable 'K=V\\x00W': contains a NUL character"),
        ("K\0", "invalid environment variable 'K\\x00': contains a NUL character"),
    ],
)
def test_parse_env_assignment_invalid(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_env_assignment(text, HOST)
    assert str(caught.value) == message


def test_parse_env_assignment_does_not_read_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISE_TEST_ONLY_IN_OS", "x")
    assert parse_env_assignment("SUPERVISE_TEST_ONLY_IN_OS", {}) == (
        "SUPERVISE_TEST_ONLY_IN_OS", None)


@given(
    st.text(min_size=1).filter(lambda s: "=" not in s and "\0" not in s),
    st.text().filter(lambda s: "\0" not in s),
)
def test_parse_env_assignment_splits_at_first_equals(name: str, value: str) -> None:
    assert parse_env_assignment(f"{name}={value}", {}) == (name, value)


ENV_FILE = """\
# a comment
K=V

   INDENTED=yes
\tTABBED=yes
QUOTED="not stripped"
SINGLE='kept'
TRAILING=space\x20\x20\x20
EMPTY_VALUE=
HOME
UNSET_ON_HOST
  # indented comment
K=later
URL=http://x/?a=b
"""


def test_parse_env_file() -> None:
    assert parse_env_file(ENV_FILE, "env.list", HOST) == [
        ("K", "V"),
        ("INDENTED", "yes"),
        ("TABBED", "yes"),
        ("QUOTED", '"not stripped"'),
        ("SINGLE", "'kept'"),
        ("TRAILING", "space   "),
        ("EMPTY_VALUE", ""),
        ("HOME", "/home/me"),
        ("UNSET_ON_HOST", None),
        ("K", "later"),
        ("URL", "http://x/?a=b"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("\n\n", []),
        ("# only a comment", []),
        ("K=V", [("K", "V")]),  # no final newline
        ("K=V\r\nL=W\r\n", [("K", "V"), ("L", "W")]),  # CRLF line ends
        ("K=V\r", [("K", "V")]),
        ("K=a\rb", [("K", "a\rb")]),  # only a line-ending \r is dropped
        ("\ufeffK=V\n", [("K", "V")]),  # byte order mark
        ("K=V#not a comment", [("K", "V#not a comment")]),
        ("\u3000K=V", [("K", "V")]),  # Unicode whitespace is stripped too
    ],
)
def test_parse_env_file_edge_cases(text: str, expected: list[tuple[str, str]]) -> None:
    assert parse_env_file(text, "env.list", HOST) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("=V\n", "env.list:1: invalid environment variable '=V': the name is empty"),
        ("K=V\n\n  =x\n", "env.list:3: invalid environment variable '=x': the name is empty"),
        (
            "# c\nMY VAR=1\n",
            "env.list:2: invalid environment variable 'MY VAR=1': "
            "the name 'MY VAR' contains whitespace",
        ),
        (
            "K\t=1\n",
            "env.list:1: invalid environment variable 'K\\t=1': "
            "the name 'K\\t' contains whitespace",
        ),
        (
            "A=1\nK=a\0b\n",
            "env.list:2: invalid environment variable 'K=a\\x00b': contains a NUL character",
        ),
    ],
)
def test_parse_env_file_invalid(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_env_file(text, "env.list", HOST)
    assert str(caught.value) == message


def test_parse_env_file_error_names_given_path() -> None:
    with pytest.raises(UsageError, match=r"^/etc/app\.env:1: "):
        parse_env_file("=1", "/etc/app.env", HOST)


@pytest.mark.parametrize(
    ("base", "assignments", "expected"),
    [
        ({}, [], {}),
        ({"A": "1"}, [], {"A": "1"}),
        ({"A": "1"}, [("B", "2")], {"A": "1", "B": "2"}),
        ({"A": "1"}, [("A", "2")], {"A": "2"}),
        ({}, [("A", "1"), ("A", "2"), ("A", "3")], {"A": "3"}),
        ({"A": "1"}, [("A", "")], {"A": ""}),
    ],
)
def test_build_environment(
    base: dict[str, str], assignments: list[tuple[str, str]], expected: dict[str, str]
) -> None:
    assert build_environment(base, assignments) == expected


def test_build_environment_copies_base_and_accepts_iterators() -> None:
    base = {"A": "1"}
    result = build_environment(base, iter([("A", "2")]))
    assert result == {"A": "2"}
    assert base == {"A": "1"}
    assert result is not base


def test_default_environment_without_tty() -> None:
    assert default_environment(tty=False, hostname="abc123") == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": "abc123",
        "HOME": "/root",
    }


def test_default_environment_with_tty() -> None:
    environment = default_environment(tty=True, hostname="web")
    assert environment["TERM"] == "xterm"
    assert environment["HOSTNAME"] == "web"
    assert environment["PATH"] == DEFAULT_ENV["PATH"]
    assert environment["HOME"] == "/root"
    assert set(environment) == {"PATH", "HOSTNAME", "TERM", "HOME"}


def test_default_environment_is_fresh_and_default_env_is_read_only() -> None:
    first = default_environment(tty=False, hostname="a")
    first["PATH"] = "/mutated"
    assert default_environment(tty=False, hostname="a")["PATH"] == DEFAULT_ENV["PATH"]
    with pytest.raises(TypeError):
        DEFAULT_ENV["PATH"] = "/x"  # type: ignore[index]
    assert dict(DEFAULT_ENV) == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
    }


def test_user_assignments_override_defaults() -> None:
    base = default_environment(tty=True, hostname="h")
    user = [
        parse_env_assignment("TERM=dumb", HOST),
        parse_env_assignment("LANG", HOST),
        parse_env_assignment("NOPE", HOST),
    ]
    environment = build_environment(base, iter(user))
    assert environment["TERM"] == "dumb"
    assert environment["LANG"] == "C.UTF-8"
    assert "NOPE" not in environment


@pytest.mark.parametrize(("flags", "expected"), [
    # a bare name unset on the host removes the variable, docker's defaults included
    (["HOSTNAME"], {"PATH": DEFAULT_ENV["PATH"], "HOME": "/root"}),
    (["PATH", "TERM"], {"HOSTNAME": "h", "HOME": "/root"}),
    # later entries win: removed then set, set then removed
    (["HOSTNAME", "HOSTNAME=again"], {**default_environment(False, "h"), "HOSTNAME": "again"}),
    (["A=1", "A"], default_environment(False, "h")),
    # HOME removed or empty is the user's home again (runc's rule)
    (["HOME="], default_environment(False, "h")),
    (["HOME"], default_environment(False, "h")),
    (["HOME=/elsewhere"], {**default_environment(False, "h"), "HOME": "/elsewhere"}),
])
def test_docker_environment_rules(flags: list[str], expected: dict[str, str]) -> None:
    # (a host environment without any of these)
    environment = build_environment(default_environment(False, "h"),
                                    [parse_env_assignment(f, {}) for f in flags], home="/root")
    assert environment == expected


def test_home_is_the_users_when_left_empty() -> None:
    base = default_environment(False, "h")
    assert build_environment(base, [("HOME", "")], home="/home/u")["HOME"] == "/home/u"
    assert build_environment(base, [("HOME", None)], home="/")["HOME"] == "/"
    # without a home given, what the assignments leave stands
    assert build_environment(base, [("HOME", "")])["HOME"] == ""
