"""The jobs-file grammar and its errors (pure)."""

from __future__ import annotations

import pytest

from supervisor._errors import UsageError
from supervisor._jobs import MAX_ARG_STRLEN, JobsFileError, logical_lines, parse_jobs
from supervisor._options import RunOptions
from supervisor.cli._flags import parse_job_options


def parse(text: str, defaults: RunOptions | None = None):  # type: ignore[no-untyped-def]
    return parse_jobs(text, "jobs.txt", defaults=defaults or RunOptions(),
                      parse_options=parse_job_options)


def errors(text: str) -> list[str]:
    with pytest.raises(JobsFileError) as caught:
        parse(text)
    return caught.value.errors


def test_plain_commands_comments_and_blank_lines() -> None:
    jobs = parse("# header\n\necho a b\n  # indented comment\ngzip -9 -k data.bin # trailing\n")
    assert [(j.line, j.argv) for j in jobs] == [
        (3, ("echo", "a", "b")), (5, ("gzip", "-9", "-k", "data.bin"))]
    assert [j.name for j in jobs] == ["job-3", "job-5"]


def test_shell_quoting_rules() -> None:
    (job,) = parse("""sh -c 'echo "a  b"; echo $HOME' "x y" '' \\# z""")
    assert job.argv == ("sh", "-c", 'echo "a  b"; echo $HOME', "x y", "", "#", "z")


def test_continuation_lines_keep_the_first_line_number() -> None:
    jobs = parse("true\npython3 -c \\\n  'print(1)'\nfalse\n")
    assert [(j.line, j.argv) for j in jobs] == [
        (1, ("true",)), (2, ("python3", "-c", "print(1)")), (4, ("false",))]
    assert [line.number for line in logical_lines("a \\\\\nb")] == [1, 2]  # escaped backslash


def test_job_options_override_the_defaults() -> None:
    defaults = RunOptions(memory="64m", cpus="1", env=("A=1",), timeout="10s")
    jobs = parse("--name small -m 32m -e B=2 -- echo hi\necho plain\n", defaults)
    small, plain = jobs
    assert small.name == "small" and small.argv == ("echo", "hi")
    assert (small.options.memory, small.options.cpus, small.options.timeout) == ("32m", "1", "10s")
    assert small.options.env == ("A=1", "B=2")
    assert plain.options == defaults


def test_a_line_not_starting_with_an_option_is_all_command() -> None:
    (job,) = parse("grep -- -pattern file\n")
    assert job.argv == ("grep", "--", "-pattern", "file")


def test_seed_aliases_work_in_jobs_files() -> None:
    (job,) = parse("--cpushare 512 --cpuset 0 -- true\n")
    assert (job.options.cpu_shares, job.options.cpuset_cpus) == ("512", "0")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("--memroy 64m -- true\n",
         ["jobs.txt:1: No such option '--memroy'", "Did you mean", "'--memory'"]),
        ("true\n--name a 'unterminated -- x\n", ["jobs.txt:2: unterminated quote"]),
        ("-m 64m --\n", ["jobs.txt:1: no command after the options"]),
        ("--name a -- true\n--name a -- false\n",
         ["jobs.txt:2: duplicate name 'a' (first used on line 1)"]),
        ("-t -- top\n", ["jobs.txt:1: --tty cannot be used in a jobs file"]),
        ("--net bridge -- true\n", ["jobs.txt:1:", "bridge"]),
        ("-m -- true\n", ["jobs.txt:1:"]),
    ],
)
def test_errors_name_file_and_line(text: str, expected: list[str]) -> None:
    (error,) = errors(text)
    for part in expected:
        assert part in error


@pytest.mark.parametrize(("line", "expected"), [
    ("echo a\0b\n", "jobs.txt:1: a NUL byte in argument 1"),
    ("a\0 b\n", "jobs.txt:1: a NUL byte in the command"),
    ("echo " + "x" * MAX_ARG_STRLEN + "\n",
     f"jobs.txt:1: argument 1 is {MAX_ARG_STRLEN} bytes long: exec takes at most "
     f"{MAX_ARG_STRLEN - 1}"),
    ("echo " + " ".join(["y" * 100_000] * 30) + "\n", "jobs.txt:1: the command line is "),
])
def test_a_command_exec_could_never_take_is_an_error_of_its_line(line: str, expected: str
                                                                 ) -> None:
    (error,) = errors(line)
    assert error.startswith(expected)
    # the longest argument exec takes is fine
    assert parse("echo " + "x" * (MAX_ARG_STRLEN - 1) + "\n")


def test_every_bad_line_is_reported_at_once() -> None:
    found = errors("--bad -- true\nok\n'open\n--name x -- a\n--name x -- b\n")
    assert [e.split(":")[1] for e in found] == ["1", "3", "5"]


def test_a_jobs_file_is_read_within_bounds() -> None:
    """/dev/zero (one endless line) or an endless stdin must not grow memory without
    end: the reader stops at the first line past the bound, or the first line past the
    count, with its FILE:LINE."""
    import io

    from supervisor._jobs import read_bounded

    with open("/dev/zero", "rb") as zero, pytest.raises(UsageError, match=r"^z:1: a line longer"):
        read_bounded(zero, "z", max_line=1000, chunk=300)
    endless = io.BytesIO(b"true\n" * 50)
    with pytest.raises(UsageError, match=r"^in:11: more than 10 lines"):
        read_bounded(endless, "in", max_lines=10, chunk=7)
    # within the bounds, whatever the chunks: all of it
    text = b"echo a\n" + b"x" * 999 + b"\nlast"
    for chunk in (1, 5, 1000, 1 << 20):
        assert read_bounded(io.BytesIO(text), "f", max_line=999, chunk=chunk) == text
    with pytest.raises(UsageError, match=r"^f:2: a line longer than 998"):
        read_bounded(io.BytesIO(text), "f", max_line=998, chunk=64)
