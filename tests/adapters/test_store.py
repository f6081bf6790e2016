"""The store on SQLite and on PostgreSQL: compare-and-set, the endpoint lock, the audit chain."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from bot.store.sql_store import GENESIS, SqlStore, chain_hash
from commands.model import Change, ChangeKind, ChangeState
from commands.ports import ApprovalRecord, AuditEvent, AuditQuery, EndpointLocked

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def new_change(endpoint: str = "loan-assessor") -> Change:
    return Change(
        id="",
        kind=ChangeKind.DEPLOY,
        endpoint=endpoint,
        environment="prod",
        requester_id="U0ALICE",
        state=ChangeState.REQUESTED,
        created_at=NOW,
        version="gemma-3-1b-it@1.2.1",
        split_before={"1": 100},
        split_after={"1": 90, "0": 10},
    )


def test_change_round_trip_and_cas(engine: Engine) -> None:
    store = SqlStore(engine)
    change = store.create_change(new_change())
    assert change.id.startswith("CHG-")
    loaded = store.get_change(change.id)
    assert loaded is not None and loaded.split_after == {"1": 90, "0": 10}
    assert loaded.created_at == NOW
    moved = store.transition(change.id, ChangeState.REQUESTED, ChangeState.PENDING_APPROVAL)
    assert moved is not None and moved.state is ChangeState.PENDING_APPROVAL
    assert store.transition(change.id, ChangeState.REQUESTED, ChangeState.APPROVED) is None
    assert store.get_change(change.id).state is ChangeState.PENDING_APPROVAL  # type: ignore[union-attr]


def test_lock_is_one_open_change_per_endpoint(engine: Engine) -> None:
    store = SqlStore(engine)
    first = store.create_change(new_change())
    with pytest.raises(EndpointLocked) as locked:
        store.create_change(new_change())
    assert locked.value.holder.id == first.id
    store.create_change(new_change("loan-assessor-stg"))  # other endpoints are free
    store.transition(first.id, ChangeState.REQUESTED, ChangeState.CANCELLED)
    assert store.open_change("loan-assessor") is None
    store.create_change(new_change())  # released with the terminal state


def test_racing_transitions_succeed_once(engine: Engine) -> None:
    store = SqlStore(engine)
    change = store.create_change(new_change())
    store.transition(change.id, ChangeState.REQUESTED, ChangeState.PENDING_APPROVAL)
    barrier = threading.Barrier(6)
    wins: list[bool] = []

    def race() -> None:
        barrier.wait()
        wins.append(
            store.transition(change.id, ChangeState.PENDING_APPROVAL, ChangeState.APPROVED)
            is not None
        )

    threads = [threading.Thread(target=race) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]


def pending(store: SqlStore) -> Change:
    change = store.create_change(new_change())
    moved = store.transition(change.id, ChangeState.REQUESTED, ChangeState.PENDING_APPROVAL)
    assert moved is not None
    return moved


def test_approval_once_per_person(engine: Engine) -> None:
    store = SqlStore(engine)
    change = pending(store)
    approve = ChangeState.APPROVED
    first = store.decide(ApprovalRecord(change.id, "U0BOB", "approve", NOW), approve, 2)
    assert first.stored and first.deciders == ("U0BOB",)
    assert first.change.state is ChangeState.PENDING_APPROVAL
    again = store.decide(ApprovalRecord(change.id, "U0BOB", "reject", NOW), approve, 2)
    assert again.duplicate and not again.stored
    second = store.decide(ApprovalRecord(change.id, "U0CAROL", "approve", NOW), approve, 2)
    assert second.stored and second.deciders == ("U0BOB", "U0CAROL")
    assert second.change.state is ChangeState.APPROVED
    assert [a.approver_id for a in store.approvals(change.id)] == ["U0BOB", "U0CAROL"]


def test_a_decision_on_a_change_no_longer_pending_stores_nothing(engine: Engine) -> None:
    store = SqlStore(engine)
    change = pending(store)
    rejected = store.decide(
        ApprovalRecord(change.id, "U0BOB", "reject", NOW), ChangeState.REJECTED, 1
    )
    assert rejected.stored and rejected.change.state is ChangeState.REJECTED
    assert store.open_change(change.endpoint) is None  # a terminal move releases the lock
    late = store.decide(
        ApprovalRecord(change.id, "U0CAROL", "approve", NOW), ChangeState.APPROVED, 1
    )
    assert not late.stored and not late.duplicate and late.deciders == ()
    assert late.change.state is ChangeState.REJECTED
    assert [(a.approver_id, a.decision) for a in store.approvals(change.id)] == [
        ("U0BOB", "reject")
    ]


def test_racing_decisions_store_only_the_one_that_took_effect(engine: Engine) -> None:
    store = SqlStore(engine)
    change = pending(store)
    people = [f"U0P{i}" for i in range(6)]
    barrier = threading.Barrier(len(people))
    results = {}

    def race(who: str, i: int) -> None:
        decision, new = (
            ("reject", ChangeState.REJECTED) if i % 2 else ("approve", ChangeState.APPROVED)
        )
        barrier.wait()
        results[who] = store.decide(ApprovalRecord(change.id, who, decision, NOW), new, 1)

    threads = [threading.Thread(target=race, args=(who, i)) for i, who in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (winner,) = [who for who, d in results.items() if d.stored]
    (row,) = store.approvals(change.id)
    assert row.approver_id == winner
    final = store.get_change(change.id)
    assert final is not None and final.state is results[winner].change.state
    assert all(d.change.state is final.state for d in results.values())


def test_audit_chain_with_concurrent_writers(engine: Engine) -> None:
    store = SqlStore(engine)

    def write(n: int) -> None:
        for i in range(10):
            store.append_audit(
                AuditEvent(
                    action="command",
                    actor_id=f"U{n}",
                    outcome="ok",
                    at=NOW,
                    parameters={"i": i},
                    target="loan-assessor",
                )
            )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = store.audit(AuditQuery())
    assert len(rows) == 40
    prev = GENESIS
    for row in rows:
        assert row.prev_hash == prev
        assert row.hash == chain_hash(prev, row)
        prev = row.hash
    assert len(store.audit(AuditQuery(actor_id="U1"))) == 10
    assert len(store.audit(AuditQuery(limit=5))) == 5


def test_long_outcomes_and_reasons_are_kept_whole(engine: Engine) -> None:
    store = SqlStore(engine)
    outcome = (
        "failed: "
        + "quota exceeded for aiplatform.googleapis.com/custom_model_serving_nvidia_l4 " * 5
    )
    stored = store.append_audit(
        AuditEvent(
            action="execution_finished",
            actor_id="bot",
            outcome=outcome,
            at=NOW,
            justification="x" * 5000,
        )
    )
    (row,) = store.audit(AuditQuery(change_id=None, limit=1))
    assert row.id == stored.id and row.outcome == outcome and len(row.justification or "") == 5000


def test_audit_time_bounds_in_any_zone(engine: Engine) -> None:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    store = SqlStore(engine)
    for hours in (0, 2, 4):
        store.append_audit(
            AuditEvent(
                action="command", actor_id="U0BOB", outcome="ok", at=NOW + timedelta(hours=hours)
            )
        )
    sydney = ZoneInfo("Australia/Sydney")
    since = (NOW + timedelta(hours=1)).astimezone(sydney)  # the same instant, written in Sydney
    until = (NOW + timedelta(hours=3)).astimezone(sydney)
    rows = store.audit(AuditQuery(since=since, until=until))
    assert [r.at for r in rows] == [NOW + timedelta(hours=2)]


def test_audit_rows_by_action_within_a_time_bound(engine: Engine) -> None:
    """`AuditQuery.actions` keeps only those actions (the owed-pages sweep reads page
    attempts and severity raises this way, on migration 0015's index), with the other
    filters still applied."""
    from datetime import timedelta

    store = SqlStore(engine)
    for minutes, action in enumerate(
        ("command", "page_sent", "approve", "page_failed", "page_sent")
    ):
        store.append_audit(
            AuditEvent(
                action=action,
                actor_id="U0BOB",
                outcome="ok",
                environment="prod" if minutes else "staging",
                at=NOW + timedelta(minutes=minutes),
            )
        )
    pages = frozenset({"page_sent", "page_failed"})
    rows = store.audit(AuditQuery(actions=pages, since=NOW + timedelta(minutes=2)))
    assert [(r.action, r.at) for r in rows] == [
        ("page_failed", NOW + timedelta(minutes=3)),
        ("page_sent", NOW + timedelta(minutes=4)),
    ]
    assert len(store.audit(AuditQuery(actions=pages, environment="prod"))) == 3
    assert store.audit(AuditQuery(actions=frozenset({"nothing"}))) == []


def test_times_in_another_zone_are_stored_as_the_same_instant(engine: Engine) -> None:
    from zoneinfo import ZoneInfo

    from bot.store.audit_chain import verify

    store = SqlStore(engine)
    sydney = NOW.astimezone(ZoneInfo("Australia/Sydney"))
    store.append_audit(AuditEvent(action="command", actor_id="U0BOB", outcome="ok", at=sydney))
    change = new_change()
    change.created_at = sydney
    created = store.create_change(change)
    assert store.audit(AuditQuery())[0].at == NOW
    assert created.created_at == NOW
    assert verify(engine).ok
