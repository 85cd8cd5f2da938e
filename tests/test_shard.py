"""`batch --shard I/N` (supervisor._shard): N copies run every job of the file exactly once
between them, each recording its host."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor._errors import UsageError
from supervisor._shard import Shard, parse_shard, select

from .containers import supervise


@given(st.integers(min_value=0, max_value=300), st.integers(min_value=1, max_value=40))
def test_the_shards_together_are_the_file_each_job_once(jobs: int, count: int) -> None:
    seqs = list(range(1, jobs + 1))
    taken = [seq for index in range(1, count + 1)
             for seq in select(seqs, seqs, Shard(index, count))]
    assert sorted(taken) == seqs  # all of them, none twice
    sizes = [len(select(seqs, seqs, Shard(i, count))) for i in range(1, count + 1)]
    assert max(sizes) - min(sizes) <= 1  # round robin: as even as can be


@pytest.mark.parametrize(("text", "env", "shard"), [
    ("1/4", {}, Shard(1, 4)),
    ("4/4", {}, Shard(4, 4)),
    ("slurm", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5",
               "SLURM_ARRAY_TASK_COUNT": "4"}, Shard(3, 4)),
    ("slurm", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0",
               "SLURM_ARRAY_TASK_COUNT": "2"}, Shard(1, 2)),
    ("k8s/3", {"JOB_COMPLETION_INDEX": "2"}, Shard(3, 3)),
])
def test_parse_shard(text: str, env: dict[str, str], shard: Shard) -> None:
    assert parse_shard(text, env) == shard


@pytest.mark.parametrize(("text", "env", "words"), [
    ("0/4", {}, "I is '0'"),
    ("5/4", {}, "shard 5 of 4 does not exist"),
    ("2", {}, "expected I/N"),
    ("a/b", {}, "I is 'a'"),
    ("slurm", {}, "SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT not set"),
    ("k8s/2", {"JOB_COMPLETION_INDEX": "2"}, "shard 3 of 2 does not exist"),
    ("k8s/2", {}, "JOB_COMPLETION_INDEX is ''"),
])
def test_bad_shards_are_named(text: str, env: dict[str, str], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_shard(text, env)


@pytest.mark.usefixtures("root_only")
def test_shards_run_every_job_once_and_record_their_host(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("# seven jobs\n" + "".join(f"sh -c 'exit {n % 2}'\n" for n in range(7)))
    rows = []
    for index in (1, 2, 3):
        results = tmp_path / f"shard-{index}.jsonl"
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(index - 1),
               "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}
        done = supervise("batch", "--no-live", "--shard", "slurm", "--results", str(results),
                         str(jobs), env=env)
        assert done.returncode in (0, 1), done.stderr
        rows += [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["line"] for r in rows) == list(range(2, 9))  # each job once
    assert all(r["host"] == os.uname().nodename for r in rows)
    assert {r["line"]: r["exit_code"] for r in rows} == {n + 2: n % 2 for n in range(7)}


@pytest.mark.usefixtures("root_only")
def test_a_shard_checks_the_lines_it_runs(tmp_path: Path) -> None:
    """A shard checks (and runs) only its own lines: a bad line stops the shard that owns
    it, with the line's error, and not the others (--slurm checks the whole file first).
    Each shard checking the whole file would cost every node the whole file's checks."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("true\n-m 12q -- true\ntrue\ntrue\n")  # line 2: job 2, shard 2 of 2
    first = supervise("batch", "--no-live", "--shard", "1/2", "--results",
                      str(tmp_path / "1.jsonl"), str(jobs))
    assert first.returncode == 0, first.stderr
    assert sorted(json.loads(r)["line"]
                  for r in (tmp_path / "1.jsonl").read_text().splitlines()) == [1, 3]
    second = supervise("batch", "--no-live", "--shard", "2/2", str(jobs))
    assert second.returncode == 2
    assert f"{jobs}:2: " in second.stderr and "12q" in second.stderr
