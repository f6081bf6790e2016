"""The respond store on SQLite and on PostgreSQL: one `ALERT-N` per alert key whoever
races for it (threads, and two engines as two replicas), compare-and-set on `rev`, one
incident per alert, closed alerts that stay closed, masked free text."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from bot.store.db import make_engine
from bot.store.incident_store import SqlIncidentStore
from commands.incidents.model import (
    AlertNotice,
    AlertSource,
    AlertState,
    Handoff,
    Incident,
    IncidentState,
    Severity,
)
from commands.incidents.ports import AlertDeclared

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CARD = "4111 1111 1111 1111"


def notice(key: str = "cloud-monitoring:0.abc", **kw: object) -> AlertNotice:
    fields: dict[str, object] = dict(
        key=key,
        source=AlertSource.CLOUD_MONITORING,
        state=AlertState.OPEN,
        policy="loan-assessor error rate",
        condition="error rate > 1%",
        started_at=NOW - timedelta(minutes=3),
        endpoint="loan-assessor",
        environment="prod",
        summary="error rate 4.2% for loan-assessor",
        observed="error rate 4.20% > 1%",
        labels={"endpoint_id": "123"},
    )
    return AlertNotice(**(fields | kw))  # type: ignore[arg-type]


def incident(**kw: object) -> Incident:
    fields: dict[str, object] = dict(
        id="",
        severity=Severity.P1,
        state=IncidentState.DECLARED,
        summary="loan-assessor failing",
        declared_by="U0ALICE",
        declared_at=NOW,
        endpoint="loan-assessor",
        environment="prod",
    )
    return Incident(**(fields | kw))  # type: ignore[arg-type]


def race(n: int, attempt: object) -> list[object]:
    """Run `attempt(i)` on `n` threads released together; their results (or errors)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)  # type: ignore[operator]
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture
def replica(engine: Engine) -> Iterator[Engine]:
    """A second engine on the same database: another replica's connections."""
    if engine.dialect.name == "sqlite":
        other = make_engine(engine.url.render_as_string(hide_password=False))
    else:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        other = make_engine(
            engine.url.render_as_string(hide_password=False),
            connect_args={"options": f"-csearch_path={schema}"},
        )
    yield other
    other.dispose()


def test_the_first_notice_makes_the_alert_and_a_repeat_updates_it(engine: Engine) -> None:
    store = SqlIncidentStore(engine)
    first, new = store.record_alert(notice(), NOW)
    assert new and first.id == "ALERT-1" and first.rev == 0
    assert first.notice.endpoint == "loan-assessor" and first.received_at == NOW
    again, new_again = store.record_alert(notice(summary="still 4.2%"), NOW + timedelta(minutes=1))
    assert not new_again and again.id == first.id
    assert again.notice.summary == "still 4.2%" and again.rev == 1
    assert again.received_at == NOW and again.updated_at == NOW + timedelta(minutes=1)
    other, other_new = store.record_alert(notice("cloud-monitoring:0.def"), NOW)
    assert other_new and other.id == "ALERT-2"
    assert store.get_alert("alert-1") == again  # by id, any case
    assert store.get_alert("cloud-monitoring:0.abc") == again  # by key
    assert store.get_alert("ALERT-99") is None and store.get_alert("nonsense") is None


def test_racing_first_notices_make_one_alert(engine: Engine, replica: Engine) -> None:
    """Eight deliveries of one notice at once, half through another replica's engine:
    exactly one is new, and all of them name the same alert. (Which number it gets is not
    fixed: on PostgreSQL a racing insert that loses on the unique key has still drawn a
    number from the sequence, so the winner may be ALERT-2.)"""
    stores = [SqlIncidentStore(engine), SqlIncidentStore(replica)]
    results = race(8, lambda i: stores[i % 2].record_alert(notice(), NOW))
    assert not [r for r in results if isinstance(r, Exception)], results
    news = [r for r in results if isinstance(r, tuple) and r[1]]
    assert len(news) == 1
    assert {r[0].id for r in results if isinstance(r, tuple)} == {news[0][0].id}
    [stored] = stores[0].list_alerts(NOW - timedelta(days=1))
    assert stored.id == news[0][0].id


def test_a_closed_alert_stays_closed(engine: Engine) -> None:
    store = SqlIncidentStore(engine)
    store.record_alert(notice(), NOW)
    ended = NOW + timedelta(minutes=20)
    closed, _ = store.record_alert(notice(state=AlertState.CLOSED, ended_at=ended), ended)
    assert closed.notice.state is AlertState.CLOSED and closed.notice.ended_at == ended
    late, new = store.record_alert(notice(summary="late retry of the open"), ended)
    assert not new
    assert late.notice.state is AlertState.CLOSED and late.notice.summary == closed.notice.summary
    assert late.rev == closed.rev  # nothing written


def test_alert_updates_are_compare_and_set(engine: Engine, replica: Engine) -> None:
    store, other = SqlIncidentStore(engine), SqlIncidentStore(replica)
    alert, _ = store.record_alert(notice(), NOW)
    results = race(
        6,
        lambda i: (store if i % 2 else other).update_alert(
            alert.id, alert.rev, closed_at=NOW + timedelta(seconds=i)
        ),
    )
    assert sum(r is not None for r in results) == 1
    posted = store.update_alert(alert.id, alert.rev + 1, channel="C0OPS", message_ts="1.2")
    assert posted is not None and (posted.channel, posted.message_ts) == ("C0OPS", "1.2")
    assert store.update_alert(alert.id, alert.rev, channel="C0X") is None  # stale rev
    with pytest.raises(ValueError, match="policy"):
        store.update_alert(alert.id, posted.rev, policy="rewritten")


def test_one_incident_per_alert_even_when_declarations_race(
    engine: Engine, replica: Engine
) -> None:
    stores = [SqlIncidentStore(engine), SqlIncidentStore(replica)]
    results = race(6, lambda i: stores[i % 2].create_incident(incident(alert_id="ALERT-1")))
    made = [r for r in results if isinstance(r, Incident)]
    refused = [r for r in results if isinstance(r, AlertDeclared)]
    assert len(made) == 1 and len(refused) == 5, results
    assert {r.incident.id for r in refused} == {made[0].id}
    # incidents without an alert are never in each other's way
    a = stores[0].create_incident(incident(endpoint=None))
    b = stores[1].create_incident(incident(endpoint=None))
    assert a.id != b.id and a.alert_id is None and b.alert_id is None


def test_incident_round_trip_compare_and_set_and_lists(engine: Engine) -> None:
    store = SqlIncidentStore(engine)
    first = store.create_incident(incident(suggested_severity=Severity.P2, detected_at=NOW))
    assert first.id == "INC-1" and first.rev == 0 and first.suggested_severity is Severity.P2
    assert store.get_incident("inc-1") == first
    assert store.get_incident("INC-2") is None and store.get_incident("CHG-1") is None
    acked = store.update_incident(
        first.id, 0, state=IncidentState.ACKNOWLEDGED, acknowledged_at=NOW, on_call="U0BOB"
    )
    assert acked is not None and acked.state is IncidentState.ACKNOWLEDGED and acked.rev == 1
    assert store.update_incident(first.id, 0, state=IncidentState.RESOLVED) is None
    second = store.create_incident(incident(endpoint="loan-assessor-stg", environment="staging"))
    resolved = store.update_incident(
        second.id, 0, state=IncidentState.RESOLVED, resolved_at=NOW, root_cause="bad rc"
    )
    assert resolved is not None
    assert [i.id for i in store.open_incidents_for("loan-assessor")] == ["INC-1"]
    assert store.open_incidents_for("loan-assessor-stg") == []
    assert [i.id for i in store.list_incidents()] == ["INC-2", "INC-1"]
    later = NOW + timedelta(days=2)
    # since: declared after it, or still open
    assert [i.id for i in store.list_incidents(since=later)] == ["INC-1"]
    # resolved_since: also those resolved at or after it
    assert [i.id for i in store.list_incidents(since=later, resolved_since=NOW)] == [
        "INC-2",
        "INC-1",
    ]
    assert [i.id for i in store.list_incidents(since=later, resolved_since=later)] == ["INC-1"]
    only = store.list_incidents(states=frozenset({IncidentState.RESOLVED}))
    assert [i.id for i in only] == ["INC-2"]
    with pytest.raises(ValueError, match="nonsense"):
        store.update_incident(first.id, acked.rev, nonsense=1)


def test_free_text_is_stored_masked(engine: Engine) -> None:
    """Whoever calls it, the store keeps no PII: a card number in an alert's summary, an
    incident's summary or root cause, or a hand-off note."""
    store = SqlIncidentStore(engine)
    alert, _ = store.record_alert(
        notice(summary=f"customer paid with {CARD}", labels={"note": CARD}), NOW
    )
    made = store.create_incident(incident(summary=f"card {CARD} declined"))
    done = store.update_incident(made.id, made.rev, root_cause=f"log line held {CARD}")
    note = store.add_handoff(Handoff(id=0, author="U0BOB", at=NOW, text=f"watch {CARD}"))
    with engine.connect() as conn:
        dump = " ".join(
            str(row)
            for table in ("alert", "incident", "handoff")
            for row in conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
        )
    assert "4111" not in dump
    assert CARD not in alert.notice.summary and CARD not in alert.notice.labels["note"]
    assert done is not None and CARD not in (done.root_cause or "") and CARD not in note.text


def test_handoffs_in_order_by_environment(engine: Engine) -> None:
    store = SqlIncidentStore(engine)
    base = Handoff(id=0, author="U0BOB", at=NOW, text="all quiet")
    store.add_handoff(replace(base, text="prod: watch drift", environment="prod"))
    store.add_handoff(replace(base, at=NOW + timedelta(hours=1), text="general"))
    store.add_handoff(replace(base, text="staging note", environment="staging"))
    store.add_handoff(replace(base, at=NOW - timedelta(days=1), text="yesterday"))
    texts = [h.text for h in store.handoffs(NOW, "prod")]
    assert texts == ["prod: watch drift", "general"]
    assert len(store.handoffs(NOW)) == 3
    assert all(h.id > 0 and h.at.tzinfo is not None for h in store.handoffs(NOW))


def test_the_longest_cloud_monitoring_key_the_parser_admits_is_stored(engine: Engine) -> None:
    """PostgreSQL enforces `alert.key`'s 255 characters (SQLite does not): the longest id
    the webhook admits must fit, or it would be answered 200 and fail in the worker."""
    from bot.alerts.cloud_monitoring import KEY_PREFIX, MAX_INCIDENT_ID

    key = KEY_PREFIX + "0." + "x" * (MAX_INCIDENT_ID - 2)
    stored, new = SqlIncidentStore(engine).record_alert(notice(key), NOW)
    assert new and stored.notice.key == key
