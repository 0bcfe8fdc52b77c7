"""Sizes, durations, counts and flags as the task format spells them."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kolejka.common import SpecError
from kolejka.common.units import (
    MAX_INT,
    format_memory,
    format_time,
    parse_bool,
    parse_int,
    parse_memory,
    parse_time,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64M", 64 * 2**20),
        ("1G", 2**30),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("1KB", 1024),
        ("100b", 100),
        ("1.5G", 3 * 2**29),
        (" 64 M ", 64 * 2**20),
        ("4096", 4096),
        (4096, 4096),
        (0, 0),
    ],
)
def test_it_reads_sizes_as_the_original_did(text, expected):
    assert parse_memory(text, "limits.memory") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64MiB", 64 * 2**20), ("2GiB", 2 * 2**30), ("8KiB", 8192), ("1TiB", 2**40)],
)
def test_it_reads_unambiguous_binary_sizes(text, expected):
    assert parse_memory(text, "limits.memory") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s", 1.0),
        ("10s", 10.0),
        ("500ms", 0.5),
        ("2M", 120.0),
        ("2min", 120.0),
        ("1H", 3600.0),
        ("1D", 86400.0),
        ("250us", 250e-6),
        ("1.5", 1.5),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_it_reads_durations_as_the_original_did(text, expected):
    assert parse_time(text, "limits.time") == pytest.approx(expected)


def test_it_reads_lowercase_m_as_milliseconds_like_the_original():
    assert parse_time("2m", "limits.time") == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1M", "must not be negative"),
        ("64X", "unknown size unit 'X'"),
        ("lots", "is not a size"),
        (True, "must be a size"),
        (None, "must be a size"),
        ([64], "must be a size"),
        ("1e30G", "too large"),
        (float("inf"), "finite"),
    ],
)
def test_it_refuses_bad_sizes_naming_field_and_value(value, message):
    with pytest.raises(SpecError) as caught:
        parse_memory(value, "limits.memory")
    assert message in str(caught.value)
    assert str(caught.value).startswith("limits.memory: ")
    assert caught.value.field == "limits.memory"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1s", "must not be negative"),
        ("5 parsecs", "unknown time unit 'parsecs'"),
        ("soon", "is not a duration"),
        (False, "must be a duration"),
        ("nan", "is not a duration"),
    ],
)
def test_it_refuses_bad_durations_naming_field_and_value(value, message):
    with pytest.raises(SpecError, match=message) as caught:
        parse_time(value, "limits.time")
    assert caught.value.field == "limits.time"


def test_it_refuses_zero_where_a_positive_duration_is_needed():
    with pytest.raises(SpecError, match="greater than zero"):
        parse_time("0s", "limits.time", positive=True)


@pytest.mark.parametrize(("value", "expected"), [("16", 16), (16, 16), (2.0, 2), (" 3 ", 3)])
def test_it_reads_counts_given_as_numbers_or_strings(value, expected):
    assert parse_int(value, "limits.pids") == expected


@pytest.mark.parametrize("value", ["1.5", 1.5, True, None, "ten", "0x10"])
def test_it_refuses_counts_that_are_not_whole_numbers(value):
    with pytest.raises(SpecError, match="whole number"):
        parse_int(value, "limits.pids")


def test_it_refuses_counts_below_the_minimum():
    with pytest.raises(SpecError, match="at least 1"):
        parse_int("0", "limits.pids", minimum=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("no", False), (1, True), (0, False)],
)
def test_it_reads_flags(value, expected):
    assert parse_bool(value, "limits.network") is expected


@pytest.mark.parametrize("value", ["maybe", 2, None, []])
def test_it_refuses_values_that_are_not_flags(value):
    with pytest.raises(SpecError, match="true or false"):
        parse_bool(value, "limits.network")


@given(st.integers(min_value=0, max_value=MAX_INT))
def test_it_writes_sizes_that_read_back_exactly(size):
    assert parse_memory(format_memory(size), "x") == size


@given(st.integers(min_value=1, max_value=2**30), st.sampled_from(["K", "M", "G", "KiB", "MiB"]))
def test_it_writes_sizes_in_the_largest_exact_unit(count, unit):
    size = parse_memory(f"{count}{unit}", "x")
    written = format_memory(size)
    assert parse_memory(written, "x") == size
    assert len(written) <= len(f"{size}B")


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_it_writes_durations_that_read_back_exactly(seconds):
    assert parse_time(format_time(seconds), "x") == seconds


@given(st.text(max_size=12))
def test_it_either_parses_a_size_or_raises_spec_error(text):
    try:
        size = parse_memory(text, "limits.memory")
    except SpecError as error:
        assert error.field == "limits.memory"
    else:
        assert 0 <= size <= MAX_INT


@given(st.text(max_size=12))
def test_it_either_parses_a_duration_or_raises_spec_error(text):
    try:
        seconds = parse_time(text, "limits.time")
    except SpecError as error:
        assert error.field == "limits.time"
    else:
        assert seconds >= 0 and math.isfinite(seconds)
