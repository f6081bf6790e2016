"""`at=` times in the configured zone: the daylight-saving edges are refused, not guessed."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from commands.errors import Refusal
from commands.parsing import parse_at

SYDNEY = ZoneInfo("Australia/Sydney")
NOW = datetime(2027, 3, 20, 0, 0, tzinfo=UTC)


def test_a_time_the_clocks_repeat_is_refused() -> None:
    # Sydney goes back from 03:00 to 02:00 on Sunday 4 April 2027: 02:30 happens twice.
    with pytest.raises(Refusal) as refused:
        parse_at("2027-04-04 02:30", SYDNEY, NOW)
    assert "occurs twice in Australia/Sydney" in refused.value.message


def test_a_time_the_clocks_skip_is_refused() -> None:
    # Sydney goes forward from 02:00 to 03:00 on Sunday 3 October 2027.
    with pytest.raises(Refusal) as refused:
        parse_at("2027-10-03 02:30", SYDNEY, datetime(2027, 9, 20, tzinfo=UTC))
    assert "does not exist in Australia/Sydney" in refused.value.message


def test_the_hours_around_the_change_are_taken_as_written() -> None:
    assert parse_at("2027-04-04 01:30", SYDNEY, NOW) == datetime(2027, 4, 3, 14, 30, tzinfo=UTC)
    assert parse_at("2027-04-04 03:30", SYDNEY, NOW) == datetime(2027, 4, 3, 17, 30, tzinfo=UTC)
