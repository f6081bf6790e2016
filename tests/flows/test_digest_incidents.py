"""Incidents and hand-off notes in the digests: the morning's overnight and still-open
incidents, the end of day's incidents with their times to mitigate and resolve and the
notes for the next on-call; masked, within Slack's limits, absent without a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from bot.slack.blocks import render_message
from commands.digests.gather import gather, schedule_for
from commands.digests.render import compose
from commands.digests.schedule import DigestKind
from commands.incidents.model import (
    AlertNotice,
    AlertRecord,
    AlertSource,
    AlertState,
    Handoff,
    Incident,
    IncidentState,
    Severity,
)
from commands.runtime import NullNotifier, Runtime
from tests.flows.test_digests import check_limits, texts
from tests.support.harness import FakeClock, make_runtime
from tests.support.memory_incidents import MemoryIncidents

MORNING = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)  # Tue 1 Dec 08:30 AEDT
EOD = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # Tue 1 Dec 17:30 AEDT
PII = "jane.citizen@example.com"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A Sydney wall-clock time in early December 2026 (AEDT, UTC+11), as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC) - timedelta(hours=11)


def monday(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=UTC) - timedelta(hours=11)


def incident(n: int, declared: datetime, **kw: Any) -> Incident:
    fields: dict[str, Any] = dict(
        id=f"INC-{n}",
        severity=Severity.P1,
        state=IncidentState.DECLARED,
        summary=f"incident {n}",
        declared_by="U0ALICE",
        declared_at=declared,
        endpoint="loan-assessor",
        environment="prod",
    )
    return Incident(**(fields | kw))


def runtime(engine: Engine, now: datetime, store: MemoryIncidents | None) -> Runtime:
    rt = make_runtime(engine, FakeClock(now), NullNotifier())
    rt.incidents = store
    return rt


def test_the_morning_lists_the_nights_incidents_and_those_still_open(
    sqlite_engine: Engine,
) -> None:
    store = MemoryIncidents()
    for i in (
        incident(
            1,
            local(1, 2, 10),
            state=IncidentState.ACKNOWLEDGED,
            summary=f"errors for {PII} on loan-assessor\nsince 02:00",
            commander="U0BOB",
        ),
        incident(2, monday(14), severity=Severity.P2, state=IncidentState.MITIGATED),
        incident(
            3,
            monday(19),
            severity=Severity.P3,
            state=IncidentState.RESOLVED,
            resolved_at=monday(21),
        ),
        incident(4, local(1, 1), endpoint="loan-assessor-stg", environment="staging"),
        incident(5, monday(10), state=IncidentState.RESOLVED, resolved_at=monday(11)),
        incident(6, local(1, 3), endpoint=None, environment=None, severity=Severity.P3),
    ):
        store.incidents[i.id] = i
    digest = compose(
        runtime(sqlite_engine, MORNING, store), DigestKind.MORNING, "prod", now=MORNING
    )
    out = texts(digest.reply)
    overnight = out.split("Incidents opened overnight")[1].split("Incidents still open")[0]
    assert [f"*INC-{n}*" in overnight for n in (1, 2, 3, 4, 5, 6)] == [
        True,
        False,
        True,
        False,
        False,
        True,
    ]
    assert overnight.index("*INC-6*") < overnight.index("*INC-1*") < overnight.index("*INC-3*")
    assert (
        ":red_circle: *INC-1* P1 `loan-assessor` errors for [EMAIL:" in overnight
    )  # masked, one line
    assert "on loan-assessor since 02:00 · declared Tue 02:10 · *open*, acknowledged" in overnight
    assert "commander <@U0BOB>" in overnight
    assert (
        ":white_circle: *INC-3* P3 `loan-assessor` incident 3 · declared Mon 19:00 · resolved Mon 21:00"
        in overnight
    )
    still = out.split("Incidents still open")[1].split("Model health")[0]
    assert "*INC-2* P2" in still and "*INC-1*" not in still and "*INC-5*" not in still
    assert PII not in out
    assert "Incidents" in out and "2 new overnight" not in out and "3 new overnight · 3 open" in out
    assert ":rotating_light: 3 incident(s) open" in out
    assert "Hand-off notes" not in out  # the end of day carries them
    assert digest.counts["incidents"] == 4 and digest.counts["incidents_open"] == 3
    check_limits(render_message(digest.reply))


def test_the_end_of_day_gives_each_incidents_times_and_the_hand_off_notes(
    sqlite_engine: Engine,
) -> None:
    store = MemoryIncidents()
    store.alerts["ALERT-1"] = AlertRecord(
        id="ALERT-1",
        notice=AlertNotice(
            key="cloud-monitoring:0.a",
            source=AlertSource.CLOUD_MONITORING,
            state=AlertState.CLOSED,
            policy="[prod] loan-assessor: error rate > 1 %",
            started_at=local(1, 8, 55),
        ),
        received_at=local(1, 8, 58),
        updated_at=local(1, 11),
    )
    for i in (
        incident(
            1,
            local(1, 9),
            state=IncidentState.RESOLVED,
            alert_id="ALERT-1",
            detected_at=local(1, 8, 55),
            acknowledged_at=local(1, 9, 2),
            mitigated_at=local(1, 9, 10),
            resolved_at=local(1, 11),
        ),
        incident(
            2,
            monday(15),
            severity=Severity.P2,
            state=IncidentState.RESOLVED,
            resolved_at=local(1, 10),
        ),
        incident(3, monday(10), state=IncidentState.RESOLVED, resolved_at=monday(12)),
        incident(4, datetime(2026, 11, 28, 22, 0, tzinfo=UTC), severity=Severity.P3),
    ):
        store.incidents[i.id] = i
    for at, text, env in (
        (monday(17), "before the last digest", "prod"),
        (monday(18), "INC-2 still open overnight; watch the error rate", "prod"),
        (local(1, 16), f"call back {PII}\nabout the\nretry storm", None),
        (local(1, 16, 30), "staging only", "staging"),
    ):
        store.add_handoff(Handoff(id=0, author="U0BOB", at=at, text=text, environment=env))
    rt = runtime(sqlite_engine, EOD, store)
    digest = compose(rt, DigestKind.EOD, "prod", now=EOD)
    out = texts(digest.reply)
    today = out.split("Incidents today")[-1].split("Hand-off notes")[0]
    assert "*INC-4* P3" in today and today.index("*INC-4*") < today.index("*INC-1*")  # open first
    assert (
        "*INC-4* P3 `loan-assessor` incident 4 · declared Sun 09:00 · *open*, not acknowledged"
        in today
    )
    assert "mitigated in — · resolved in —" in today
    assert (
        "*INC-1* P1 `loan-assessor` incident 1 · declared Tue 09:00 · resolved Tue 11:00" in today
    )
    assert "mitigated in 12m · resolved in 2h2m" in today  # from the alert reaching Slack
    assert "*INC-2* P2" in today and "mitigated in 19h · resolved in 19h" in today
    assert "*INC-3*" not in today
    notes = out.split("Hand-off notes for the next on-call")[1].split("Manual interventions")[0]
    assert "before the last digest" not in notes and "staging only" not in notes
    assert "`Mon 18:00` <@U0BOB>: INC-2 still open overnight" in notes
    assert "`Tue 16:00` <@U0BOB>: call back [EMAIL:" in notes and "about the retry storm" in notes
    assert notes.index("Mon 18:00") < notes.index("Tue 16:00")
    assert PII not in out
    assert digest.counts["incidents"] == 3 and digest.counts["handoffs"] == 2
    check_limits(render_message(digest.reply))

    data = gather(rt, DigestKind.EOD, schedule_for(rt, "prod"), now=EOD)
    assert data.handoffs_since == monday(17, 30)  # the last end-of-day digest
    times = data.incident_times["INC-1"]
    assert times.time_to_detect == timedelta(minutes=3)
    assert times.time_to_acknowledge == timedelta(minutes=4)


def test_a_quiet_day_says_so_and_no_store_changes_nothing(sqlite_engine: Engine) -> None:
    quiet = compose(runtime(sqlite_engine, EOD, MemoryIncidents()), DigestKind.EOD, "prod", now=EOD)
    out = texts(quiet.reply)
    assert out.count("Incidents today") == 1  # the field says none; no section
    assert "*Incidents today*\\nnone" in out
    assert 'none yet — write one with `/aiops handoff \\"…\\"`' in out
    assert "incident(s) open" not in out
    unwired = compose(runtime(sqlite_engine, EOD, None), DigestKind.EOD, "prod", now=EOD)
    out = texts(unwired.reply)
    assert "Incidents" not in out and "Hand-off" not in out
    assert "incidents" not in unwired.counts


def test_a_bad_night_still_fits_slacks_limits(sqlite_engine: Engine) -> None:
    store = MemoryIncidents()
    for n in range(1, 121):
        i = incident(n, MORNING - timedelta(minutes=n), summary="x" * 900 + f" {n}")
        store.incidents[i.id] = i
    for n in range(80):
        store.add_handoff(
            Handoff(id=0, author="U0BOB", at=EOD - timedelta(minutes=n), text="note " * 200)
        )
    for kind, now in ((DigestKind.MORNING, MORNING), (DigestKind.EOD, EOD)):
        digest = compose(runtime(sqlite_engine, now, store), kind, "prod", now=now)
        message = render_message(digest.reply)
        check_limits(message)
        out = texts(digest.reply)
        assert "…and 108 more" in out  # 12 lines shown, the rest counted
