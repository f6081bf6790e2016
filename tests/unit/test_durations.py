"""One duration grammar for config keys, digests, the canary and `since=`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.durations import DurationError, format_duration, parse_duration

FORMS_IN_MESSAGE = "write e.g. `30m`, `4h`, `1h30m`, `7d` or `2w` (units w, d, h, m, s)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4h", timedelta(hours=4)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("1H30M", timedelta(minutes=90)),
        (" 1d 12h ", timedelta(hours=36)),
        ("2m", timedelta(minutes=2)),
    ],
)
def test_accepted_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "5", "4 hours", "30m1h", "1h1h", "h", "1y", "-1h", "1,5h", "soon", "99999999w"]
)
def test_refused_forms_share_one_message(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert FORMS_IN_MESSAGE in str(info.value)
    assert f"`{text}`" in str(info.value)


def test_non_strings_are_refused() -> None:
    for value in (14400, 1.5, True, None):
        with pytest.raises(DurationError):
            parse_duration(value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=100 * 365 * 86400))
def test_format_and_parse_round_trip(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    text = format_duration(value)
    assert parse_duration(text) == value
    assert parse_duration(text.upper()) == value


@given(
    st.lists(st.integers(min_value=0, max_value=999), min_size=5, max_size=5),
)
def test_parts_add_up(parts: list[int]) -> None:
    w, d, h, m, s = parts
    text = f"{w}w{d}d{h}h{m}m{s}s"
    assert parse_duration(text) == timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)


def test_since_uses_the_same_grammar() -> None:
    from commands.errors import Refusal
    from commands.reports.audit import parse_since

    assert parse_since("1h30m") == timedelta(minutes=90)
    assert parse_since("2W") == timedelta(weeks=2)
    with pytest.raises(Refusal) as info:
        parse_since("yesterday")
    assert "`since=yesterday` is not a duration" in info.value.message
    assert info.value.hint is not None and "`1h30m`" in info.value.hint
