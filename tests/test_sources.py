"""GNU parallel's input sources for `supervise batch -- COMMAND ::: ...` (supervisor._sources):
the replacement strings and the order of combinations, checked against parallel itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor._errors import UsageError
from supervisor._sources import Inputs, combinations, expand, split_sources

PARALLEL = shutil.which("parallel")
needs_parallel = pytest.mark.skipif(PARALLEL is None, reason="needs GNU parallel")


def parallel_lines(template: str, *sources: list[str]) -> list[str]:
    """What `parallel -k echo TEMPLATE ::: ... ::: ...` prints, a line a job."""
    argv = [PARALLEL or "parallel", "--will-cite", "-k", "echo", template]
    for source in sources:
        argv += [":::", *source]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


def ours(template: str, *sources: list[str]) -> list[str]:
    return [" ".join(expand(["echo", template], values, seq)[1:])
            for seq, values in enumerate(combinations(sources), start=1)]


def test_split_sources() -> None:
    assert split_sources(["gzip", "-k", "{}", ":::", "a", "b", "::::", "f", ":::", "c"],
                         arg_files=["g"]) == Inputs(
        ("gzip", "-k", "{}"),
        (("file", ("g",)), ("args", ("a", "b")), ("file", ("f",)), ("args", ("c",))))
    with pytest.raises(UsageError, match="::: with nothing after it"):
        split_sources(["echo", ":::"])
    with pytest.raises(UsageError, match="no command"):
        split_sources([":::", "a"])


@pytest.mark.parametrize(("command", "values", "argv"), [
    (["gzip", "{}"], ["a b.txt"], ["gzip", "a b.txt"]),  # one argument, spaces and all
    (["wc", "-l"], ["x", "y"], ["wc", "-l", "x", "y"]),   # none: appended
    (["cp", "{1}", "{2}/{1/}"], ["d/f.c", "out"], ["cp", "d/f.c", "out/f.c"]),
    (["echo", "{#}-{/.}"], ["a/b.tar.gz"], ["echo", "7-b.tar"]),
])
def test_expand(command: list[str], values: list[str], argv: list[str]) -> None:
    assert expand(command, values, 7) == argv


def test_a_source_number_past_the_sources_is_an_error() -> None:
    with pytest.raises(UsageError, match=r"\{3\}: there are 2 input sources"):
        expand(["echo", "{3}"], ["a", "b"], 1)


@needs_parallel
@pytest.mark.parametrize("value", ["a.tar.gz", "dir.d/file", ".bashrc", "/file", "file",
                                   "dir/sub/x.y", "a b.c", "dir/.hidden", "x.", "./a.b/c"])
def test_replacement_strings_as_parallel_makes_them(value: str) -> None:
    template = "[{}] [{.}] [{/}] [{//}] [{/.}] [{#}]"
    assert ours(template, [value]) == parallel_lines(template, [value])


@needs_parallel
def test_several_sources_combine_as_in_parallel() -> None:
    template = "[{}] [{1}] [{2.}] [{3/}] [{#}]"
    sources = [["a", "b"], ["x.c", "y.c"], ["p/q", "r"]]
    assert ours(template, *sources) == parallel_lines(template, *sources)
    assert ours("plain", ["a", "b"], ["1"]) == parallel_lines("plain", ["a", "b"], ["1"])


_value = st.text(alphabet="ab./_-", min_size=1, max_size=10).filter(
    lambda v: not v.startswith("-"))


@needs_parallel
@settings(max_examples=60, deadline=None)
@given(st.lists(_value, min_size=1, max_size=3))
def test_replacements_match_parallel_on_generated_values(values: list[str]) -> None:
    template = "[{}] [{.}] [{/}] [{//}] [{/.}]"
    assert ours(template, values) == parallel_lines(template, values)


def test_input_jobs_number_name_and_bound() -> None:
    from supervisor._jobs import MAX_LINES, JobsFileError, input_jobs
    from supervisor._options import RunOptions

    defaults = RunOptions(memory="64m")
    inputs = split_sources(["cp", "{1}", "{2}/{1/}", ":::", "x/a.c", "b.c", "::::", "dirs"])
    jobs = input_jobs(inputs, defaults, lambda path: ["out", "tmp"])
    assert [(j.seq, j.line, j.name, j.argv) for j in jobs] == [
        (1, 1, "job-1", ("cp", "x/a.c", "out/a.c")), (2, 2, "job-2", ("cp", "x/a.c", "tmp/a.c")),
        (3, 3, "job-3", ("cp", "b.c", "out/b.c")), (4, 4, "job-4", ("cp", "b.c", "tmp/b.c"))]
    assert all(j.options is defaults for j in jobs)  # the batch's limits, every one
    with pytest.raises(JobsFileError, match="empty"):
        input_jobs(inputs, defaults, lambda path: [])
    many = split_sources(["true", ":::", *map(str, range(1001)), ":::", *map(str, range(1000))])
    with pytest.raises(JobsFileError, match=f"more than {MAX_LINES}"):
        input_jobs(many, defaults, lambda path: [])


_word = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["{}", "{1}", "{2}", "{.}", "{/}", "{//}", "{/.}", "{#}",
                                 "{1/.}", "x{}y", "-v", "plain"]), min_size=1, max_size=4),
       st.lists(st.lists(_word, min_size=1, max_size=3), min_size=1, max_size=3))
def test_input_jobs_fuzz(command: list[str], sources: list[list[str]]) -> None:
    """Any command and sources: the jobs of every combination, or one clear error per
    bad one (a {N} past the sources, a NUL byte), never anything else."""
    from supervisor._jobs import JobsFileError, input_jobs
    from supervisor._options import RunOptions

    words = [*command]
    for source in sources:
        words += [":::", *source]
    inputs = split_sources(words)
    try:
        jobs = input_jobs(inputs, RunOptions(), lambda path: [])
    except JobsFileError as exc:
        assert all(e.startswith("<inputs>:") for e in exc.errors)
        return
    expected = 1
    for source in sources:
        expected *= len(source)
    assert len(jobs) == expected
    assert [j.seq for j in jobs] == list(range(1, expected + 1))
    assert len({j.name for j in jobs}) == expected
    assert all(j.argv and all(isinstance(a, str) and "\0" not in a for a in j.argv)
               for j in jobs)


@pytest.mark.usefixtures("root_only")
def test_batch_runs_a_command_once_per_input(tmp_path: Path) -> None:
    """`batch -- COMMAND ::: ...`, `:::: FILE` and `-a FILE`: a job (a container with the
    batch's limits) per combination, recorded with its number and argv."""
    import json

    from .containers import supervise

    names = tmp_path / "names.txt"
    names.write_text("one\ntwo words\n")
    results = tmp_path / "results.jsonl"
    done = supervise("batch", "--no-live", "-m", "32m", "--results", str(results),
                     "-a", str(names), "--", "sh", "-c", 'echo "$0|$1"; test "$1" != x',
                     "{1}", "{2.}", ":::", "a.txt", "x")
    assert done.returncode == 1, done.stderr  # the x jobs fail
    rows = sorted((json.loads(line) for line in results.read_text().splitlines()),
                  key=lambda r: r["line"])
    assert [(r["line"], r["argv"][3:], r["status"]) for r in rows] == [
        (1, ["one", "a"], "ok"), (2, ["one", "x"], "failed"),
        (3, ["two words", "a"], "ok"), (4, ["two words", "x"], "failed")]
    assert all(r["memory_limit_bytes"] == 32 << 20 for r in rows)
