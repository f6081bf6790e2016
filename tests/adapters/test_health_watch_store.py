"""The health watch's state on SQLite and PostgreSQL (migration 0011): stored per endpoint
as JSON, read back as written, moved by compare-and-set so that of two replicas judging
one window only one stores its judgement; and an alert's `paged_at` kept like its other
moments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.store.incident_store import SqlHealthWatchStore, SqlIncidentStore
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from tests.adapters.test_incident_store import race, replica  # noqa: F401  (a fixture)

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
STATE = {
    "version": 1,
    "endpoint": "loan-assessor",
    "last_window_end": NOW.isoformat(),
    "metrics": {"p95_latency_ms": {"open": True, "breaching": 2, "last": 2600.5}},
}


def test_a_state_round_trips_and_moves_by_compare_and_set(engine: Engine) -> None:
    store = SqlHealthWatchStore(engine)
    empty = store.watch_state("loan-assessor")
    assert (empty.state, empty.rev, empty.window_end) == ({}, 0, None)
    first = store.save_watch_state("loan-assessor", 0, STATE, NOW, NOW)
    assert first is not None and first.rev == 1
    read = store.watch_state("loan-assessor")
    assert read.state == STATE and read.rev == 1 and read.window_end == NOW
    assert store.save_watch_state("loan-assessor", 0, {}, NOW, NOW) is None  # not over it
    later = NOW + timedelta(minutes=5)
    moved = store.save_watch_state("loan-assessor", 1, {"endpoint": "x"}, later, later)
    assert moved is not None and moved.rev == 2
    assert store.save_watch_state("loan-assessor", 1, STATE, later, later) is None  # stale
    assert store.watch_state("loan-assessor").state == {"endpoint": "x"}
    assert store.watch_state("loan-assessor-stg").rev == 0  # one row per endpoint


def test_two_replicas_saving_the_same_window_store_it_once(
    engine: Engine,
    replica: Engine,  # noqa: F811
) -> None:
    stores = [SqlHealthWatchStore(engine), SqlHealthWatchStore(replica)]
    for rev in (0, 1):  # the first state (an insert), then a move (an update)
        results = race(6, lambda i, r=rev: stores[i % 2].save_watch_state("ep", r, STATE, NOW, NOW))
        assert not [r for r in results if isinstance(r, Exception)], results
        assert len([r for r in results if r is not None]) == 1
    assert stores[1].watch_state("ep").rev == 2


def test_an_alerts_paged_at_is_kept(engine: Engine) -> None:
    store = SqlIncidentStore(engine)
    record, _ = store.record_alert(
        AlertNotice(
            key="canary:CAN-1",
            source=AlertSource.CANARY,
            state=AlertState.OPEN,
            policy="canary regression",
        ),
        NOW,
    )
    assert record.paged_at is None
    moved = store.update_alert(record.id, record.rev, paged_at=NOW)
    assert moved is not None and moved.paged_at == NOW
    assert store.get_alert(record.id) == moved
