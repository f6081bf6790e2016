"""How the canary writes its figures for people."""

from __future__ import annotations

from datetime import timedelta

from commands.canary.text import minutes


def test_canary_minutes_are_written_to_a_tenth() -> None:
    assert minutes(timedelta(minutes=60, seconds=0.57)) == "60 min"
    assert minutes(timedelta(seconds=30)) == "0.5 min"
    assert minutes(timedelta(minutes=5)) == "5 min"
