"""Tests for supervisor._result: the result record and its pure helpers."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor._result import (
    STATUSES,
    Result,
    Status,
    classify,
    cpu_times,
    exit_code_from_wait_status,
    iso_utc,
    parse_iso_utc,
)

FIELD_ORDER = [
    "name",
    "line",
    "argv",
    "status",
    "exit_code",
    "signal",
    "oom_killed",
    "timed_out",
    "attempts",
    "started_at",
    "ended_at",
    "wall_s",
    "cpu_user_s",
    "cpu_system_s",
    "peak_memory_bytes",
    "memory_limit_bytes",
    "stdout_path",
    "stderr_path",
    "error",
    "writable",
    "host",
]


def make_result(**changes: Any) -> Result:
    values: dict[str, Any] = {
        "name": "job-3",
        "line": 3,
        "argv": ["sh", "-c", "echo hi"],
        "status": "ok",
        "exit_code": 0,
        "signal": None,
        "oom_killed": False,
        "timed_out": False,
        "attempts": 1,
        "started_at": "2026-11-29T05:17:51.123456Z",
        "ended_at": "2026-11-29T05:17:52.623456Z",
        "wall_s": 1.5,
        "cpu_user_s": 0.25,
        "cpu_system_s": 0.125,
        "peak_memory_bytes": 4_194_304,
        "memory_limit_bytes": 67_108_864,
        "stdout_path": "out/job-3.out",
        "stderr_path": "out/job-3.err",
        "error": None,
    }
    values.update(changes)
    return Result(**values)


# --- Result --------------------------------------------------------------------


def test_field_order_matches_design() -> None:
    assert [field.name for field in dataclasses.fields(Result)] == FIELD_ORDER


def test_result_is_frozen() -> None:
    result = make_result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "failed"  # type: ignore[misc]


def test_error_defaults_to_none() -> None:
    values = dataclasses.asdict(make_result())
    del values["error"]
    assert Result(**values).error is None


def test_to_json_is_one_line_with_keys_in_order() -> None:
    text = make_result().to_json()
    assert "\n" not in text
    data = json.loads(text)
    assert list(data) == FIELD_ORDER
    assert data["argv"] == ["sh", "-c", "echo hi"]
    assert data["signal"] is None
    assert data["oom_killed"] is False
    assert data["wall_s"] == 1.5


def test_to_json_escapes_newlines_and_odd_paths() -> None:
    result = make_result(
        argv=["printf", "a\nb"],
        stdout_path="/tmp/\udcff.out",  # a non-UTF-8 file name, as os.fsdecode gives
        error="exec 'x': No such file or directory",
    )
    text = result.to_json()
    assert "\n" not in text
    text.encode("utf-8")  # always writable as UTF-8
    assert Result.from_json(text) == result


def test_to_json_rejects_nan() -> None:
    with pytest.raises(ValueError):
        make_result(wall_s=float("nan")).to_json()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"line": None, "name": "run"},
        {"status": "signaled", "exit_code": 137, "signal": 9},
        {"status": "oom", "exit_code": 137, "signal": 9, "oom_killed": True},
        {"status": "timeout", "timed_out": True, "attempts": 3},
        {"status": "error", "exit_code": None, "error": "exec 'nosuch': not found"},
        {"cpu_user_s": None, "cpu_system_s": None, "peak_memory_bytes": None},
        {"memory_limit_bytes": None, "stdout_path": None, "stderr_path": None},
        {"argv": []},
        {"wall_s": 0.0},
    ],
)
def test_json_round_trip(changes: dict[str, Any]) -> None:
    result = make_result(**changes)
    assert Result.from_json(result.to_json()) == result
    assert Result.from_dict(json.loads(result.to_json())) == result


def test_from_dict_accepts_integer_floats_and_converts() -> None:
    data = json.loads(make_result().to_json())
    data.update(wall_s=2, cpu_user_s=0, cpu_system_s=1)
    result = Result.from_dict(data)
    assert result.wall_s == 2.0
    assert isinstance(result.wall_s, float)
    assert isinstance(result.cpu_user_s, float)
    assert isinstance(result.cpu_system_s, float)


def test_from_dict_ignores_unknown_keys_and_defaults_nullable_ones() -> None:
    data = json.loads(make_result().to_json())
    data["added_in_a_later_version"] = 1
    for name in ("error", "stdout_path", "cpu_user_s", "line", "signal"):
        del data[name]
    result = Result.from_dict(data)
    assert result == make_result(error=None, stdout_path=None, cpu_user_s=None, line=None)


@pytest.mark.parametrize(
    "name",
    [
        "name",
        "argv",
        "status",
        "oom_killed",
        "timed_out",
        "attempts",
        "started_at",
        "ended_at",
        "wall_s",
    ],
)
def test_from_dict_requires_non_nullable_fields(name: str) -> None:
    data = json.loads(make_result().to_json())
    del data[name]
    with pytest.raises(ValueError, match=f"^result has no '{name}'$"):
        Result.from_dict(data)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("name", 5, "result field 'name' is 5, expected str"),
        ("name", None, "result field 'name' is None, expected str"),
        ("line", "3", "result field 'line' is '3', expected int or null"),
        ("line", True, "result field 'line' is True, expected int or null"),
        ("line", 3.0, "result field 'line' is 3.0, expected int or null"),
        ("argv", "sh -c x", "result field 'argv' is 'sh -c x', expected list"),
        ("argv", ["sh", 1], "result field 'argv' is ['sh', 1], expected strings"),
        ("status", "OK", "result field 'status' is 'OK', expected one of " + ", ".join(STATUSES)),
        ("status", 0, "result field 'status' is 0, expected str"),
        ("exit_code", False, "result field 'exit_code' is False, expected int or null"),
        ("signal", "KILL", "result field 'signal' is 'KILL', expected int or null"),
        ("oom_killed", 0, "result field 'oom_killed' is 0, expected bool"),
        ("oom_killed", None, "result field 'oom_killed' is None, expected bool"),
        ("timed_out", "false", "result field 'timed_out' is 'false', expected bool"),
        ("attempts", 1.0, "result field 'attempts' is 1.0, expected int"),
        ("started_at", 0, "result field 'started_at' is 0, expected str"),
        ("wall_s", "1.5", "result field 'wall_s' is '1.5', expected float"),
        ("wall_s", True, "result field 'wall_s' is True, expected float"),
        ("cpu_user_s", "x", "result field 'cpu_user_s' is 'x', expected float or null"),
        (
            "peak_memory_bytes",
            1.5,
            "result field 'peak_memory_bytes' is 1.5, expected int or null",
        ),
        ("stdout_path", 1, "result field 'stdout_path' is 1, expected str or null"),
        ("error", [], "result field 'error' is [], expected str or null"),
    ],
)
def test_from_dict_rejects_wrong_types(name: str, value: object, message: str) -> None:
    data = json.loads(make_result().to_json())
    data[name] = value
    with pytest.raises(ValueError) as caught:
        Result.from_dict(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "result is not a JSON object"),
        ('"ok"', "result is not a JSON object"),
        ("{", "Expecting property name"),
        ("", "Expecting value"),
    ],
)
def test_from_json_rejects_non_objects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Result.from_json(text)


# --- exit_code_from_wait_status -------------------------------------------------


def exited(code: int) -> int:
    return (code & 0xFF) << 8


def killed(signum: int, core: bool = False) -> int:
    return signum | (0x80 if core else 0)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (exited(0), (0, None)),
        (exited(1), (1, None)),
        (exited(126), (126, None)),
        (exited(127), (127, None)),
        (exited(137), (137, None)),  # exited with 137 itself: not a signal
        (exited(255), (255, None)),
        (killed(signal.SIGKILL), (137, 9)),
        (killed(signal.SIGTERM), (143, 15)),
        (killed(signal.SIGINT), (130, 2)),
        (killed(signal.SIGHUP), (129, 1)),
        (killed(signal.SIGSEGV, core=True), (139, 11)),  # core dumped
        (killed(signal.SIGABRT, core=True), (134, 6)),
    ],
)
def test_exit_code_from_wait_status(status: int, expected: tuple[int, int | None]) -> None:
    assert exit_code_from_wait_status(status) == expected


def test_exit_code_from_wait_status_agrees_with_os_macros() -> None:
    for signum in range(1, 32):
        status = killed(signum)
        assert os.WIFSIGNALED(status)
        assert exit_code_from_wait_status(status) == (128 + os.WTERMSIG(status), signum)
    for code in range(256):
        status = exited(code)
        assert os.WIFEXITED(status)
        assert exit_code_from_wait_status(status) == (os.WEXITSTATUS(status), None)


def test_exit_code_from_wait_status_rejects_stopped() -> None:
    stopped = (signal.SIGSTOP << 8) | 0x7F
    assert os.WIFSTOPPED(stopped)
    with pytest.raises(ValueError):
        exit_code_from_wait_status(stopped)


def test_exit_code_from_real_child() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert exit_code_from_wait_status(status) == (3, None)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert exit_code_from_wait_status(status) == (137, 9)


# --- classify ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exit_code", "signum", "oom_killed", "timed_out", "cancelled", "error", "status"),
    [
        (0, None, False, False, False, None, "ok"),
        (1, None, False, False, False, None, "failed"),
        (137, None, False, False, False, None, "failed"),  # exited 137, no signal
        (255, None, False, False, False, None, "failed"),
        (137, 9, False, False, False, None, "signaled"),
        (143, 15, False, False, False, None, "signaled"),
        (137, 9, True, False, False, None, "oom"),
        (1, None, True, False, False, None, "oom"),  # oom even with an ordinary exit code
        (0, None, True, False, False, None, "oom"),  # a child was OOM-killed, main survived
        (137, 9, True, True, False, None, "timeout"),
        (143, 15, False, True, False, None, "timeout"),
        (0, None, False, True, False, None, "timeout"),
        (143, 15, True, True, True, None, "cancelled"),
        (None, None, False, False, True, None, "cancelled"),
        (127, None, True, True, True, "exec 'x': not found", "error"),
        (0, None, False, False, False, "writing memory.max: Permission denied", "error"),
        (None, None, False, False, False, None, "error"),  # never produced a status
        (0, None, False, False, False, "", "ok"),  # an empty message is no error
    ],
)
def test_classify(
    exit_code: int | None,
    signum: int | None,
    oom_killed: bool,
    timed_out: bool,
    cancelled: bool,
    error: str | None,
    status: str,
) -> None:
    assert classify(exit_code, signum, oom_killed, timed_out, cancelled, error) == status


@given(
    st.one_of(st.none(), st.integers(0, 255)),
    st.one_of(st.none(), st.integers(1, 64)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.one_of(st.none(), st.text(min_size=1)),
)
def test_classify_precedence(
    exit_code: int | None,
    signum: int | None,
    oom_killed: bool,
    timed_out: bool,
    cancelled: bool,
    error: str | None,
) -> None:
    status = classify(exit_code, signum, oom_killed, timed_out, cancelled, error)
    assert status in STATUSES
    if error:
        assert status == "error"
    elif cancelled:
        assert status == "cancelled"
    elif timed_out:
        assert status == "timeout"
    elif oom_killed:
        assert status == "oom"
    elif signum is not None:
        assert status == "signaled"


def test_statuses() -> None:
    assert STATUSES == ("ok", "failed", "oom", "timeout", "signaled", "cancelled", "error")
    assert tuple(Status) == STATUSES


def test_status_is_written_as_its_value() -> None:
    """A Status is a str: the JSON, f-strings and joins show "oom", never "Status.OOM",
    and a plain string compares equal (so files and callers using strings still work)."""
    assert json.dumps({"status": Status.OOM}) == '{"status": "oom"}'
    assert json.dumps([Status.OK], indent=2) == '[\n  "ok"\n]'
    assert f"{Status.TIMEOUT} 3" == "timeout 3" and str(Status.ERROR) == "error"
    assert ", ".join(sorted({Status.OOM, Status.ERROR})) == "error, oom"
    assert Status.OK == "ok" and {"ok": 1}[Status.OK] == 1


def test_to_json_is_byte_identical_with_a_status_member() -> None:
    as_member = make_result(status=Status.OOM).to_json()
    as_text = make_result(status="oom").to_json()
    assert as_member == as_text and '"status": "oom"' in as_member


def test_from_dict_gives_a_status_member() -> None:
    result = Result.from_json(make_result(status=Status.SIGNALED).to_json())
    assert result.status is Status.SIGNALED
    assert classify(0, None, False, False, False, None) is Status.OK


# --- iso_utc -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (0.5, "1970-01-01T00:00:00.500000Z"),
        (1_795_929_471.123456, "2026-11-29T05:17:51.123456Z"),
        (1_795_929_471, "2026-11-29T05:17:51.000000Z"),
        (951_782_400, "2000-02-29T00:00:00.000000Z"),
        (-1, "1969-12-31T23:59:59.000000Z"),
    ],
)
def test_iso_utc(epoch: float, text: str) -> None:
    assert iso_utc(epoch) == text


def test_iso_utc_ignores_local_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert iso_utc(0) == "1970-01-01T00:00:00.000000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_iso_utc_parses_back(epoch: float) -> None:
    import datetime

    text = iso_utc(epoch)
    assert len(text) == 27 and text.endswith("Z")
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    assert abs(parsed - epoch) <= 2e-6


@given(st.floats(min_value=-86_400, max_value=4_102_444_800, allow_nan=False))
def test_parse_iso_utc_round_trip(epoch: float) -> None:
    assert abs(parse_iso_utc(iso_utc(epoch)) - epoch) <= 1e-6
    text = iso_utc(epoch)
    assert iso_utc(parse_iso_utc(text)) == text


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("1970-01-01T00:00:00.000000Z", 0.0),
        ("2026-11-29T05:17:51.123456Z", 1_795_929_471.123456),
        ("2026-11-29T05:17:51.123456+00:00", 1_795_929_471.123456),
        ("2026-11-29T06:17:51.123456+01:00", 1_795_929_471.123456),
        ("2026-11-29T05:17:51", 1_795_929_471.0),  # no zone: UTC, whatever TZ says
    ],
)
def test_parse_iso_utc(text: str, epoch: float, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_iso_utc(text) == pytest.approx(epoch, abs=1e-6)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("text", ["", "not a time", "2026-13-01T00:00:00Z", "5 seconds ago",
                                  "2026-11-29T05:17:51.123456ZZ", "\udcff"])
def test_parse_iso_utc_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_iso_utc(text)


# --- cpu_times -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cgroup", "rusage", "expected"),
    [
        # a short job: the cgroup charged one 4 ms tick, the rusage is exact
        ((4_000_000, 0), (0.0012, 0.0004), (0.0012, 0.0004)),
        ((0, 0), (0.0012, 0.0004), (0.0012, 0.0004)),
        # within the cgroup's granularity: the exact figures
        ((1_000_000_000, 8_000_000), (0.99, 0.0101), (0.99, 0.0101)),
        # the cgroup saw much more (children nobody waited for): the cgroup's
        ((900_000_000, 100_000_000), (0.1, 0.01), (0.9, 0.1)),
        # one source missing: the other
        ((4_000_000, 0), (None, None), (0.004, 0.0)),
        ((None, None), (0.25, 0.125), (0.25, 0.125)),
        ((None, None), (None, None), (None, None)),
    ],
)
def test_cpu_times_prefer_the_exact_rusage_unless_the_cgroup_saw_more(
        cgroup: tuple[int | None, int | None], rusage: tuple[float | None, float | None],
        expected: tuple[float | None, float | None]) -> None:
    assert cpu_times(*cgroup, *rusage) == expected


def test_writable_round_trips_and_must_be_strings() -> None:
    result = make_result(writable=("/tmp", "/run"))
    assert json.loads(result.to_json())["writable"] == ["/tmp", "/run"]
    assert list(Result.from_json(result.to_json()).writable or ()) == ["/tmp", "/run"]
    data = json.loads(result.to_json())
    data["writable"] = ["/tmp", 3]
    with pytest.raises(ValueError, match="'writable'"):
        Result.from_dict(data)
    del data["writable"]
    assert Result.from_dict(data).writable is None  # a file from before the field
