"""Tests for supervisor._units: flag value parsers and formatters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor._errors import SuperviseError, UsageError
from supervisor._units import (
    CPU_PERIOD_US,
    MAX_CPUSET_ID,
    MAX_PIDS_LIMIT,
    format_bytes,
    format_cpuset,
    parse_cpu_list_file,
    parse_cpu_shares,
    parse_cpus,
    parse_cpuset,
    parse_duration,
    parse_memory_swap,
    parse_pids_limit,
    parse_size,
    quote_value,
)

KiB, MiB, GiB, TiB, PiB = 2**10, 2**20, 2**30, 2**40, 2**50
SIZE_EXPECTED = "expected a number with an optional unit b, k, m, g, t (e.g. 64m)"


def test_usage_error_is_value_error_and_supervise_error() -> None:
    error = UsageError("x")
    assert isinstance(error, ValueError)
    assert isinstance(error, SuperviseError)
    assert error.exit_code == 125
    assert SuperviseError.exit_code == 125


# --- quote_value ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("12x", "'12x'"),
        ("", "''"),
        ("a b", "'a b'"),
        ("it's", '"it\'s"'),
        ("a\nb", "'a\\nb'"),
        ("x" * 61, "'" + "x" * 57 + "...'"),
    ],
)
def test_quote_value(text: str, shown: str) -> None:
    assert quote_value(text) == shown


# --- parse_size ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1024", 1024),
        ("1b", 1),
        ("1B", 1),
        ("512k", 512 * KiB),
        ("512K", 512 * KiB),
        ("512kb", 512 * KiB),
        ("512KiB", 512 * KiB),
        ("64m", 64 * MiB),
        ("64M", 64 * MiB),
        ("64MB", 64 * MiB),
        ("64MiB", 64 * MiB),
        ("64mib", 64 * MiB),
        ("64 m", 64 * MiB),
        ("1g", GiB),
        ("1.5g", 3 * GiB // 2),
        ("1.5G", 3 * GiB // 2),
        ("0.5k", 512),
        (".5k", 512),
        ("1.k", KiB),
        ("2t", 2 * TiB),
        ("3p", 3 * PiB),
        ("1.7", 1),  # truncated like docker's int64(float)
        ("1.0001k", 1024),  # 1024.1024 bytes, truncated
        ("007m", 7 * MiB),
        ("8191p", 8191 * PiB),
        ("9223372036854775807", 2**63 - 1),
    ],
)
def test_parse_size_valid(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("12x", f"invalid size '12x': {SIZE_EXPECTED}"),
        ("", f"invalid size '': {SIZE_EXPECTED}"),
        ("m", f"invalid size 'm': {SIZE_EXPECTED}"),
        ("k64", f"invalid size 'k64': {SIZE_EXPECTED}"),
        ("64bb", f"invalid size '64bb': {SIZE_EXPECTED}"),
        ("64bib", f"invalid size '64bib': {SIZE_EXPECTED}"),
        ("64ib", f"invalid size '64ib': {SIZE_EXPECTED}"),
        ("64mx", f"invalid size '64mx': {SIZE_EXPECTED}"),
        ("64mibb", f"invalid size '64mibb': {SIZE_EXPECTED}"),
        ("64e", f"invalid size '64e': {SIZE_EXPECTED}"),
        ("1e3", f"invalid size '1e3': {SIZE_EXPECTED}"),
        ("64  m", f"invalid size '64  m': {SIZE_EXPECTED}"),
        (" 64m", f"invalid size ' 64m': {SIZE_EXPECTED}"),
        ("64m ", f"invalid size '64m ': {SIZE_EXPECTED}"),
        ("1,5g", f"invalid size '1,5g': {SIZE_EXPECTED}"),
        ("1.2.3", f"invalid size '1.2.3': {SIZE_EXPECTED}"),
        (".", f"invalid size '.': {SIZE_EXPECTED}"),
        ("+1", f"invalid size '+1': {SIZE_EXPECTED}"),
        ("nan", f"invalid size 'nan': {SIZE_EXPECTED}"),
        ("NaN", f"invalid size 'NaN': {SIZE_EXPECTED}"),
        ("inf", f"invalid size 'inf': {SIZE_EXPECTED}"),
        ("infinity", f"invalid size 'infinity': {SIZE_EXPECTED}"),
        ("0x10", f"invalid size '0x10': {SIZE_EXPECTED}"),
        ("1_000", f"invalid size '1_000': {SIZE_EXPECTED}"),
        ("\u0661\u0662", f"invalid size '\u0661\u0662': {SIZE_EXPECTED}"),  # Arabic-Indic
        ("64m\n", f"invalid size '64m\\n': {SIZE_EXPECTED}"),
        ("-1", "invalid size '-1': must not be negative"),
        ("-64m", "invalid size '-64m': must not be negative"),
        ("-", f"invalid size '-': {SIZE_EXPECTED}"),
        ("9223372036854775808", "invalid size '9223372036854775808': must be less than 8EiB"),
        ("8192p", "invalid size '8192p': must be less than 8EiB"),
        (
            "99999999999999999999999t",
            "invalid size '99999999999999999999999t': must be less than 8EiB",
        ),
        ("1" * 101, f"invalid size '{'1' * 57}...': too long"),
    ],
)
def test_parse_size_invalid(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_size(text)
    assert str(caught.value) == message


def test_parse_size_boundary_just_below_2_63() -> None:
    assert parse_size("8191.999p") == 8191999 * PiB // 1000
    assert parse_size(f"{2**63 - 1}b") == 2**63 - 1


@given(st.text())
def test_parse_size_only_raises_usage_error(text: str) -> None:
    try:
        size = parse_size(text)
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert 0 <= size < 2**63


@given(
    st.integers(min_value=0, max_value=2**33 - 1),
    st.sampled_from([("k", KiB), ("m", MiB), ("g", GiB)]),
    st.sampled_from(["", "b", "ib"]),
    st.booleans(),
)
def test_parse_size_round_trips_integers(
    number: int, unit: tuple[str, int], suffix: str, upper: bool
) -> None:
    text = f"{number}{unit[0]}{suffix}"
    if upper:
        text = text.upper()
    assert parse_size(text) == number * unit[1]


# --- parse_memory_swap ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-1", -1), ("0", 0), ("128m", 128 * MiB), ("1g", GiB), ("1.5GiB", 3 * GiB // 2)],
)
def test_parse_memory_swap_valid(text: str, expected: int) -> None:
    assert parse_memory_swap(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-2", "invalid size '-2': must not be negative (-1 means unlimited swap)"),
        ("-1m", "invalid size '-1m': must not be negative (-1 means unlimited swap)"),
        ("-1.0", "invalid size '-1.0': must not be negative (-1 means unlimited swap)"),
        ("-x", f"invalid size '-x': {SIZE_EXPECTED}"),
        ("12x", f"invalid size '12x': {SIZE_EXPECTED}"),
        ("", f"invalid size '': {SIZE_EXPECTED}"),
    ],
)
def test_parse_memory_swap_invalid(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_memory_swap(text)
    assert str(caught.value) == message


# --- parse_cpus ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "available", "expected"),
    [
        ("0.5", 2, (50_000, CPU_PERIOD_US)),
        ("1", 2, (100_000, CPU_PERIOD_US)),
        ("2", 2, (200_000, CPU_PERIOD_US)),
        ("2.0", 2, (200_000, CPU_PERIOD_US)),
        ("1.5", 4, (150_000, CPU_PERIOD_US)),
        ("0.01", 1, (1_000, CPU_PERIOD_US)),
        (".25", 1, (25_000, CPU_PERIOD_US)),
        ("+1", 1, (100_000, CPU_PERIOD_US)),
        ("0.123456", 1, (12_346, CPU_PERIOD_US)),  # rounded to the microsecond
        ("0.000005", 1, None),  # rounds to 1us, below the kernel's 1ms minimum
        ("0.009995", 1, (1_000, CPU_PERIOD_US)),  # rounds half up to exactly 1ms
        ("64", 64, (6_400_000, CPU_PERIOD_US)),
    ],
)
def test_parse_cpus_valid(text: str, available: int, expected: tuple[int, int] | None) -> None:
    if expected is None:
        with pytest.raises(UsageError):
            parse_cpus(text, available)
    else:
        assert parse_cpus(text, available) == expected


@pytest.mark.parametrize(
    ("text", "available", "message"),
    [
        (
            "3",
            2,
            "--cpus 3: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            "2.001",
            2,
            "--cpus 2.001: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            "2",
            1,
            "--cpus 2: range of CPUs is from 0.01 to 1.00, as there is only 1 CPU available",
        ),
        (
            "0",
            2,
            "--cpus 0: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            "0.009",
            2,
            "--cpus 0.009: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        (
            "-1",
            2,
            "--cpus -1: range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available",
        ),
        ("abc", 2, "--cpus abc: expected a number of CPUs such as 0.5 or 2"),
        ("", 2, "--cpus '': expected a number of CPUs such as 0.5 or 2"),
        ("1 ", 2, "--cpus '1 ': expected a number of CPUs such as 0.5 or 2"),
        ("nan", 2, "--cpus nan: expected a number of CPUs such as 0.5 or 2"),
        ("inf", 2, "--cpus inf: expected a number of CPUs such as 0.5 or 2"),
        ("1e0", 2, "--cpus 1e0: expected a number of CPUs such as 0.5 or 2"),
        ("1/2", 2, "--cpus 1/2: expected a number of CPUs such as 0.5 or 2"),
        ("50%", 2, "--cpus 50%: expected a number of CPUs such as 0.5 or 2"),
    ],
)
def test_parse_cpus_invalid(text: str, available: int, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_cpus(text, available)
    assert str(caught.value) == message


@given(st.text(max_size=30), st.integers(min_value=1, max_value=256))
def test_parse_cpus_only_raises_usage_error(text: str, available: int) -> None:
    try:
        quota_us, period_us = parse_cpus(text, available)
    except UsageError:
        return
    assert period_us == CPU_PERIOD_US
    assert 1_000 <= quota_us <= available * CPU_PERIOD_US


# --- parse_cpu_shares ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("2", 2), ("512", 512), ("1024", 1024), ("262144", 262_144)]
)
def test_parse_cpu_shares_valid(text: str, expected: int) -> None:
    assert parse_cpu_shares(text) == expected


@pytest.mark.parametrize("text", ["0", "1", "-5", "262145", "1" * 30, "", "1.5", "abc", " 2"])
def test_parse_cpu_shares_invalid(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_cpu_shares(text)
    assert str(caught.value) == (
        f"invalid CPU shares {quote_value(text)}: expected an integer from 2 to 262144"
    )


# --- parse_cpuset / format_cpuset / parse_cpu_list_file ------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", "0"),
        ("0-1,3", "0-1,3"),
        ("3,0-1", "0-1,3"),
        ("0,1", "0-1"),
        ("0,1,2,5,6", "0-2,5-6"),
        ("1-1", "1"),
        ("0-3,2-5", "0-5"),
        ("1,1,1", "1"),
        ("007", "7"),
        ("8191", "8191"),
    ],
)
def test_parse_cpuset_valid_without_available(text: str, expected: str) -> None:
    assert parse_cpuset(text, None, "--cpuset-cpus") == expected


@pytest.mark.parametrize(
    ("text", "flag", "available", "expected"),
    [
        ("0-1", "--cpuset-cpus", frozenset({0, 1}), "0-1"),
        ("1", "--cpuset-cpus", frozenset({0, 1}), "1"),
        ("0,2", "--cpuset-cpus", frozenset({0, 2, 4}), "0,2"),
        ("0", "--cpuset-mems", frozenset({0}), "0"),
    ],
)
def test_parse_cpuset_valid_with_available(
    text: str, flag: str, available: frozenset[int], expected: str
) -> None:
    assert parse_cpuset(text, available, flag) == expected


TWO_CPUS = frozenset({0, 1})


@pytest.mark.parametrize(
    ("text", "flag", "available", "message"),
    [
        (
            "99",
            "--cpuset-cpus",
            TWO_CPUS,
            "--cpuset-cpus 99: CPU 99 is not available (this host has 0-1)",
        ),
        (
            "0-2",
            "--cpuset-cpus",
            TWO_CPUS,
            "--cpuset-cpus 0-2: CPU 2 is not available (this host has 0-1)",
        ),
        (
            "0-4000000000",
            "--cpuset-cpus",
            TWO_CPUS,
            "--cpuset-cpus 0-4000000000: CPU 2 is not available (this host has 0-1)",
        ),
        (
            "1",
            "--cpuset-mems",
            frozenset({0}),
            "--cpuset-mems 1: memory node 1 is not available (this host has 0)",
        ),
        (
            "1",
            "--cpuset",
            frozenset({0, 2, 3}),
            "--cpuset 1: CPU 1 is not available (this host has 0,2-3)",
        ),
        (
            "0",
            "--cpuset-cpus",
            frozenset(),
            "--cpuset-cpus 0: CPU 0 is not available (this host has none)",
        ),
        (
            "8192",
            "--cpuset-cpus",
            None,
            "--cpuset-cpus 8192: CPU 8192 is out of range (the largest is 8191)",
        ),
        (
            "0-9999",
            "--cpuset-mems",
            None,
            "--cpuset-mems 0-9999: memory node 9999 is out of range (the largest is 8191)",
        ),
        (
            "3-1",
            "--cpuset-cpus",
            None,
            "--cpuset-cpus 3-1: range 3-1 is descending (write 1-3)",
        ),
        (
            "3-1",
            "--cpuset-cpus",
            TWO_CPUS,
            "--cpuset-cpus 3-1: range 3-1 is descending (write 1-3)",
        ),
        ("", "--cpuset-cpus", None, "--cpuset-cpus '': expected a list of CPUs such as 0-1,3"),
        (
            "0, 1",
            "--cpuset-cpus",
            None,
            "--cpuset-cpus '0, 1': expected a list of CPUs such as 0-1,3",
        ),
        ("0-", "--cpuset-cpus", None, "--cpuset-cpus 0-: expected a list of CPUs such as 0-1,3"),
        ("-1", "--cpuset-cpus", None, "--cpuset-cpus -1: expected a list of CPUs such as 0-1,3"),
        ("0,", "--cpuset-cpus", None, "--cpuset-cpus 0,: expected a list of CPUs such as 0-1,3"),
        (",0", "--cpuset-cpus", None, "--cpuset-cpus ,0: expected a list of CPUs such as 0-1,3"),
        (
            "0-1-2",
            "--cpuset-cpus",
            None,
            "--cpuset-cpus 0-1-2: expected a list of CPUs such as 0-1,3",
        ),
        ("a", "--cpuset-cpus", None, "--cpuset-cpus a: expected a list of CPUs such as 0-1,3"),
        (
            "0\n",
            "--cpuset-cpus",
            None,
            "--cpuset-cpus '0\\n': expected a list of CPUs such as 0-1,3",
        ),
        (
            "1" * 12,
            "--cpuset-cpus",
            None,
            f"--cpuset-cpus {'1' * 12}: CPU {'1' * 12} is out of range (the largest is 8191)",
        ),
        (
            "1" * 101,
            "--cpuset-cpus",
            None,
            f"--cpuset-cpus '{'1' * 57}...': expected a list of CPUs such as 0-1,3",
        ),
        (
            "x",
            "--cpuset-mems",
            None,
            "--cpuset-mems x: expected a list of memory nodes such as 0-1,3",
        ),
    ],
)
def test_parse_cpuset_invalid(
    text: str, flag: str, available: frozenset[int] | None, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse_cpuset(text, available, flag)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        (frozenset(), ""),
        (frozenset({0}), "0"),
        (frozenset({0, 1}), "0-1"),
        (frozenset({0, 1, 3}), "0-1,3"),
        (frozenset({5, 3, 1}), "1,3,5"),
        (frozenset(range(64)), "0-63"),
        (frozenset({0, 2, 3, 4, 7, 8}), "0,2-4,7-8"),
    ],
)
def test_format_cpuset(ids: frozenset[int], text: str) -> None:
    assert format_cpuset(ids) == text


def test_format_cpuset_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_cpuset(frozenset({-1, 0}))


@given(st.frozensets(st.integers(min_value=0, max_value=MAX_CPUSET_ID), min_size=1))
def test_parse_cpuset_round_trips_format(ids: frozenset[int]) -> None:
    text = format_cpuset(ids)
    assert parse_cpuset(text, None, "--cpuset-cpus") == text
    assert parse_cpuset(text, ids, "--cpuset-cpus") == text
    assert parse_cpu_list_file(text + "\n") == ids


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), min_size=1, max_size=8))
def test_parse_cpuset_normalizes_any_list(ranges: list[tuple[int, int]]) -> None:
    text = ",".join(f"{low}-{low + width}" if width else str(low) for low, width in ranges)
    ids = frozenset(cpu for low, width in ranges for cpu in range(low, low + width + 1))
    assert parse_cpuset(text, None, "--cpuset-cpus") == format_cpuset(ids)


@given(st.text(max_size=30))
def test_parse_cpuset_only_raises_usage_error(text: str) -> None:
    try:
        parse_cpuset(text, TWO_CPUS, "--cpuset-cpus")
    except UsageError as error:
        assert str(error).startswith("--cpuset-cpus ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", frozenset()),
        ("\n", frozenset()),
        ("0\n", frozenset({0})),
        ("0-1\n", frozenset({0, 1})),
        ("0-1,3\n", frozenset({0, 1, 3})),
        ("0-3,8-11", frozenset({0, 1, 2, 3, 8, 9, 10, 11})),
    ],
)
def test_parse_cpu_list_file(text: str, expected: frozenset[int]) -> None:
    assert parse_cpu_list_file(text) == expected


def test_parse_cpu_list_file_long_sparse_list() -> None:
    ids = frozenset(range(0, MAX_CPUSET_ID + 1, 2))
    assert parse_cpu_list_file(format_cpuset(ids) + "\n") == ids


@pytest.mark.parametrize(
    "text", ["x\n", "0-\n", "3-1\n", "0 1\n", "0-99999\n", "0,,1", "1" * 5000, "0," * 60000]
)
def test_parse_cpu_list_file_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="malformed CPU list") as caught:
        parse_cpu_list_file(text)
    assert not isinstance(caught.value, UsageError)


# --- parse_duration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1.5", 1.5),
        ("0.5s", 0.5),
        ("1", 1.0),
        (".5", 0.5),
        ("1.", 1.0),
        ("+5s", 5.0),
        ("1h2m3s", 3723.0),
        ("1h1h", 7200.0),
        ("1.5h", 5400.0),
        ("250us", 0.00025),
        ("250\u00b5s", 0.00025),
        ("250\u03bcs", 0.00025),
        ("1ns", 1e-9),
        ("1s500ms", 1.5),
        ("0s1ms", 0.001),
    ],
)
def test_parse_duration_valid(text: str, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected, rel=1e-12)


DURATION_EXPECTED = (
    "expected a number with a unit h, m, s, ms, us or ns (e.g. 30s, 1m30s, 500ms) "
    "or a bare number of seconds"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"invalid duration '': {DURATION_EXPECTED}"),
        ("s", f"invalid duration 's': {DURATION_EXPECTED}"),
        ("ms", f"invalid duration 'ms': {DURATION_EXPECTED}"),
        ("1m30", f"invalid duration '1m30': {DURATION_EXPECTED}"),
        ("30x", f"invalid duration '30x': {DURATION_EXPECTED}"),
        ("30S", f"invalid duration '30S': {DURATION_EXPECTED}"),
        ("1d", f"invalid duration '1d': {DURATION_EXPECTED}"),
        ("1 s", f"invalid duration '1 s': {DURATION_EXPECTED}"),
        (" 1s", f"invalid duration ' 1s': {DURATION_EXPECTED}"),
        (".s", f"invalid duration '.s': {DURATION_EXPECTED}"),
        ("nan", f"invalid duration 'nan': {DURATION_EXPECTED}"),
        ("inf", f"invalid duration 'inf': {DURATION_EXPECTED}"),
        ("1e3", f"invalid duration '1e3': {DURATION_EXPECTED}"),
        ("-", f"invalid duration '-': {DURATION_EXPECTED}"),
        ("--1s", f"invalid duration '--1s': {DURATION_EXPECTED}"),
        ("1s-1s", f"invalid duration '1s-1s': {DURATION_EXPECTED}"),
        ("-5s", "invalid duration '-5s': must be greater than zero"),
        ("-1.5", "invalid duration '-1.5': must be greater than zero"),
        ("0", "invalid duration '0': must be greater than zero"),
        ("0s", "invalid duration '0s': must be greater than zero"),
        ("0h0m0s", "invalid duration '0h0m0s': must be greater than zero"),
        ("-0s", "invalid duration '-0s': must be greater than zero"),
        ("1" * 101 + "s", f"invalid duration '{'1' * 57}...': too long"),
    ],
)
def test_parse_duration_invalid(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


@given(st.text())
def test_parse_duration_only_raises_usage_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except UsageError as error:
        assert "\n" not in str(error)
    else:
        assert seconds > 0


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
)
def test_parse_duration_round_trips_compound(hours: int, minutes: int, seconds: int) -> None:
    total = hours * 3600 + minutes * 60 + seconds
    text = f"{hours}h{minutes}m{seconds}s"
    if total == 0:
        with pytest.raises(UsageError):
            parse_duration(text)
    else:
        assert parse_duration(text) == total
        assert parse_duration(str(total)) == total


# --- parse_pids_limit ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("100", 100),
        (str(MAX_PIDS_LIMIT), MAX_PIDS_LIMIT),
        ("0", None),
        ("-1", None),
        ("00", None),
    ],
)
def test_parse_pids_limit_valid(text: str, expected: int | None) -> None:
    assert parse_pids_limit(text) == expected


@pytest.mark.parametrize(
    "text", ["-2", str(MAX_PIDS_LIMIT + 1), "9" * 30, "", "1.5", "abc", "unlimited", " 5"]
)
def test_parse_pids_limit_invalid(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_pids_limit(text)
    assert str(caught.value) == (
        f"invalid PIDs limit {quote_value(text)}: "
        "expected an integer from 1 to 4194304, or 0 or -1 for unlimited"
    )


# --- format_bytes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (512, "512B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1.5KiB"),
        (64 * MiB, "64MiB"),
        (3 * GiB // 2, "1.5GiB"),
        (5 * GiB // 4, "1.25GiB"),
        (GiB + GiB // 1000, "1GiB"),  # 1.000977 trims to 1
        (GiB + 10 * MiB, "1.01GiB"),
        (1024 * MiB - 1, "1GiB"),  # 1023.99999MiB rounds up to the next unit
        (1023 * KiB + 1000, "1023.98KiB"),
        (TiB, "1TiB"),
        (PiB, "1PiB"),
        (2**60, "1EiB"),
        (2**63 - 1, "8EiB"),
        (2**70, "1024EiB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_format_bytes_rejects_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_bytes(-1)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_format_bytes_parses_back_close(n: int) -> None:
    text = format_bytes(n)
    number, unit = text.rstrip("BKMGTPEi"), text[len(text.rstrip("BKMGTPEi")) :]
    assert unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    assert len(number.partition(".")[2]) <= 2
    if unit != "EiB":
        assert abs(parse_size(text) - n) <= 0.005 * n + 1


def test_available_memory_is_what_psutil_reports() -> None:
    """The default --memory-budget, read without importing psutil: the kernel's
    MemAvailable, which is psutil's figure too (both read it; it moves a little)."""
    import psutil

    from supervisor._host import available_memory

    assert abs(available_memory() - psutil.virtual_memory().available) < 64 * 2**20
