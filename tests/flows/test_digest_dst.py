"""A daily digest posts once per local date whatever the clock does: across the change to
summer time in Sydney (first Sunday of October: 02:00 → 03:00, 02:30 never happens) and
back (first Sunday of April: 03:00 → 02:00, 02:30 happens twice)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from bot.scheduler import Scheduler
from commands.config import parse_config
from commands.digests.schedule import DigestKind, digest_settings, local_time
from commands.runtime import NullNotifier
from tests.support.harness import FakeClock, example_config, make_runtime

SYDNEY = ZoneInfo("Australia/Sydney")


def scheduler_at(engine: Engine, clock: FakeClock, morning: str) -> tuple[Scheduler, NullNotifier]:
    raw = example_config().raw
    raw = {
        **raw,
        "digests": {"environments": ["prod"], "days": "daily", "morning": morning, "eod": "off"},
    }
    config = parse_config(raw, source="test")
    notifier = NullNotifier()
    rt = make_runtime(engine, clock, notifier, config=config)
    return Scheduler(rt, engine, owner="dst"), notifier


def fire_times(s: Scheduler, job: str, start: datetime, end: datetime) -> list[datetime]:
    """Every time APScheduler's trigger hands the executor, stepping as APScheduler does."""
    trigger = s.jobs[job].trigger
    out: list[datetime] = []
    t = trigger.get_next_fire_time(None, start)
    while t is not None and t < end and len(out) < 100:
        out.append(t)
        t = trigger.get_next_fire_time(t, t.astimezone(UTC) + timedelta(seconds=1))
    return out


def test_the_documented_rule_for_skipped_and_repeated_local_times() -> None:
    skipped = local_time(date(2026, 10, 4), datetime(2000, 1, 1, 2, 30).time(), SYDNEY)
    assert skipped.astimezone(SYDNEY).strftime("%H:%M %Z") == "03:30 AEDT"  # shifted by the gap
    repeated = local_time(date(2027, 4, 4), datetime(2000, 1, 1, 2, 30).time(), SYDNEY)
    assert repeated.astimezone(UTC) == datetime(2027, 4, 3, 15, 30, tzinfo=UTC)  # the first


def test_a_0230_digest_posts_once_per_local_date_across_both_changes(sqlite_engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 10, 1, tzinfo=UTC))
    s, notifier = scheduler_at(sqlite_engine, clock, "02:30")
    job = "digest:morning:prod"
    times = fire_times(s, job, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 8, tzinfo=UTC))
    times += fire_times(s, job, datetime(2027, 4, 1, tzinfo=UTC), datetime(2027, 4, 8, tzinfo=UTC))
    # What was measured: the trigger fires twice on 4 April 2027 (02:30 AEDT and AEST).
    per_date = Counter(t.astimezone(SYDNEY).date() for t in times)
    assert per_date[date(2027, 4, 4)] == 2 and per_date[date(2026, 10, 4)] == 1
    ran = []
    for t in times:
        clock.now = t.astimezone(UTC) + timedelta(seconds=5)
        result = s.fire(job, t)
        if result.ran:
            ran.append(result.scheduled_for.astimezone(SYDNEY))
    posted = Counter(r.date() for r in ran)
    assert set(posted.values()) == {1} and len(posted) == 14
    assert [r.strftime("%H:%M") for r in ran if r.date() == date(2026, 10, 4)] == ["03:30"]
    assert [r.utcoffset() for r in ran if r.date() == date(2027, 4, 4)] == [timedelta(hours=11)]
    posts = [p for p in notifier.posts if "Morning digest" in p.reply.text]
    assert len(posts) == 14


def test_catch_up_after_the_repeated_hour_finishes(sqlite_engine: Engine) -> None:
    """Stepping the trigger with wall-clock arithmetic looped for ever on the second 02:30."""
    now = datetime(2027, 4, 3, 16, 40, tzinfo=UTC)  # 02:40 AEST, after the second 02:30
    clock = FakeClock(now)
    s, notifier = scheduler_at(sqlite_engine, clock, "02:30")
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(s.catch_up()), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "catch_up did not finish"
    assert len([p for p in notifier.posts if "Morning digest" in p.reply.text]) == 1
    schedule = digest_settings(s.rt.config).schedules["prod"]
    found = schedule.occurrences(DigestKind.MORNING, now - timedelta(days=1), now)
    assert [t.astimezone(UTC) for t in found] == [datetime(2027, 4, 3, 15, 30, tzinfo=UTC)]


ZONES = [
    "Australia/Sydney",
    "Australia/Lord_Howe",  # a 30-minute change of clocks
    "Europe/London",
    "America/New_York",
    "America/Santiago",
    "Pacific/Chatham",
]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hour=st.integers(min_value=0, max_value=23),
    minute=st.sampled_from([0, 15, 30, 45, 59]),
    year=st.sampled_from([2026, 2027]),
)
def test_every_fire_maps_to_one_run_key_per_local_date(
    zone: str, hour: int, minute: int, year: int
) -> None:
    """Whatever APScheduler's cron trigger does around a change of clocks, the run keys of a
    daily digest are one per local date, each on that date."""
    from apscheduler.triggers.cron import CronTrigger

    from commands.digests.schedule import DigestSchedule

    tz = ZoneInfo(zone)
    at = datetime(2000, 1, 1, hour, minute).time()
    schedule = DigestSchedule("prod", "C0OPS", tz, tuple(range(7)), at, None)
    trigger = CronTrigger(hour=hour, minute=minute, timezone=tz)
    keys: dict[date, set[datetime]] = {}
    t = trigger.get_next_fire_time(None, datetime(year, 1, 1, tzinfo=UTC))
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    while t is not None and t < end:
        key = schedule.local_date_key(DigestKind.MORNING, t).astimezone(UTC)
        keys.setdefault(t.astimezone(tz).date(), set()).add(key)
        t = trigger.get_next_fire_time(t, t.astimezone(UTC) + timedelta(seconds=1))
    assert all(len(k) == 1 for k in keys.values())
    assert all(next(iter(k)).astimezone(tz).date() == d for d, k in keys.items())
    assert len(keys) >= 364
