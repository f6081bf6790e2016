"""The lease on a change's background work, in the store, on SQLite and on PostgreSQL:
exactly one winner among racing takers, a live lease cannot be taken, a lost lease fences
its old holder's writes, and what counts as stranded."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.store.sql_store import SqlStore
from commands.model import Change, ChangeKind, ChangePlan, ChangeState

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
SETTLE = timedelta(seconds=60)


def change_in(store: SqlStore, state: ChangeState, endpoint: str = "loan-assessor") -> Change:
    """A change moved along the table's legal moves up to `state`."""
    change = store.create_change(
        Change(
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
    )
    moved = store.transition(
        change.id, ChangeState.REQUESTED, ChangeState.APPROVED, decided_at=NOW, updated_at=NOW
    )
    assert moved is not None
    if state is ChangeState.RUNNING:
        moved = store.transition(change.id, ChangeState.APPROVED, ChangeState.RUNNING)
        assert moved is not None
    return moved


def race(n: int, attempt: object) -> list[object]:
    """Run `attempt(i)` on `n` threads released together; their results."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = attempt(i)  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_racing_takers_of_a_stranded_change_have_exactly_one_winner(engine: Engine) -> None:
    store = SqlStore(engine)
    change = change_in(store, ChangeState.RUNNING)  # never leased: stranded
    results = race(8, lambda i: store.take_lease(change.id, f"host:{i}:w", NOW, TTL))
    winners = [i for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1
    held = store.get_change(change.id)
    assert held is not None and held.lease_owner == f"host:{winners[0]}:w"
    assert held.lease_expires_at == NOW + TTL and held.lease_heartbeat_at == NOW


def test_racing_starters_of_an_approved_change_have_exactly_one_winner(engine: Engine) -> None:
    store = SqlStore(engine)
    change = change_in(store, ChangeState.APPROVED)
    results = race(
        8,
        lambda i: store.take_lease(
            change.id, f"host:{i}:w", NOW, TTL, from_state=ChangeState.APPROVED
        ),
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    started = winners[0]
    assert isinstance(started, Change)
    # started and leased in the one statement: never RUNNING without a lease
    assert started.state is ChangeState.RUNNING and started.lease_owner is not None
    assert store.take_lease(change.id, "late", NOW, TTL, from_state=ChangeState.APPROVED) is None


def test_racing_takers_of_an_expired_lease_have_exactly_one_winner(engine: Engine) -> None:
    store = SqlStore(engine)
    change = change_in(store, ChangeState.RUNNING)
    assert store.take_lease(change.id, "dead:1:aaaa", NOW, TTL) is not None
    later = NOW + TTL + timedelta(seconds=1)
    results = race(6, lambda i: store.take_lease(change.id, f"live:{i}:b", later, TTL))
    assert sum(r is not None for r in results) == 1


def test_a_live_lease_is_not_taken_and_a_lost_one_fences_its_old_holder(
    engine: Engine,
) -> None:
    store = SqlStore(engine)
    change = change_in(store, ChangeState.RUNNING)
    assert store.take_lease(change.id, "a", NOW, TTL) is not None
    assert store.take_lease(change.id, "b", NOW + timedelta(seconds=29), TTL) is None
    assert store.take_lease(change.id, "a", NOW + timedelta(seconds=5), TTL) is not None  # ours
    assert store.renew_lease(change.id, "a", NOW + timedelta(seconds=20), TTL)
    # renewed to 20 + 30 s: still live at 45 s
    assert store.take_lease(change.id, "b", NOW + timedelta(seconds=45), TTL) is None
    taken = store.take_lease(change.id, "b", NOW + timedelta(seconds=51), TTL)
    assert taken is not None and taken.lease_owner == "b"
    # the old holder can neither renew nor write nor finish
    assert not store.renew_lease(change.id, "a", NOW + timedelta(seconds=52), TTL)
    assert not store.update_change(change.id, holder="a", operation="op-of-a")
    assert (
        store.transition(change.id, ChangeState.RUNNING, ChangeState.SUCCEEDED, holder="a") is None
    )
    assert not store.release_lease(change.id, "a")
    after = store.get_change(change.id)
    assert after is not None and after.state is ChangeState.RUNNING
    assert after.operation is None and after.lease_owner == "b"
    # the holder writes, finishes, and the finish clears the lease and the endpoint lock
    assert store.update_change(change.id, holder="b", operation="op-of-b")
    done = store.transition(change.id, ChangeState.RUNNING, ChangeState.SUCCEEDED, holder="b")
    assert done is not None and done.lease_owner is None and done.lease_expires_at is None
    assert store.open_change("loan-assessor") is None


def test_an_expired_lease_nobody_took_is_still_its_owners(engine: Engine) -> None:
    store = SqlStore(engine)
    change = change_in(store, ChangeState.RUNNING)
    store.take_lease(change.id, "a", NOW, TTL)
    assert store.renew_lease(change.id, "a", NOW + timedelta(minutes=5), TTL)
    assert store.take_lease(change.id, "b", NOW + timedelta(minutes=5, seconds=1), TTL) is None
    assert store.release_lease(change.id, "a")
    released = store.get_change(change.id)
    assert released is not None and released.lease_owner is None


def test_stranded_is_running_without_a_live_lease_or_approved_due_and_not_started(
    engine: Engine,
) -> None:
    """… or left `requested` past the settle time (its opener died: found by the chaos run,
    tests/edge/test_chaos.py)."""
    store = SqlStore(engine)
    never_leased = change_in(store, ChangeState.RUNNING, "a")
    live = change_in(store, ChangeState.RUNNING, "b")
    store.take_lease(live.id, "live", NOW, TTL)
    dead = change_in(store, ChangeState.RUNNING, "c")
    store.take_lease(dead.id, "dead", NOW - timedelta(minutes=2), TTL)
    approved_long_ago = change_in(store, ChangeState.APPROVED, "d")
    scheduled_later = change_in(store, ChangeState.APPROVED, "e")
    store.update_change(
        scheduled_later.id, plan=ChangePlan(run_at=NOW + timedelta(hours=1), mode="deploy")
    )

    def requested(endpoint: str, at: datetime) -> Change:
        return store.create_change(
            Change(
                id="",
                kind=ChangeKind.ROLLBACK,
                endpoint=endpoint,
                environment="prod",
                requester_id="U0ALICE",
                state=ChangeState.REQUESTED,
                created_at=at,
            )
        )

    left_requested = requested("f", NOW - timedelta(hours=1))
    being_opened = requested("g", NOW)
    now = NOW + timedelta(seconds=10)
    found = {c.id for c in store.stranded(now, SETTLE)}
    # approved 10 s ago: still settling; requested 10 s ago: still being opened
    assert found == {never_leased.id, dead.id, left_requested.id}
    later = {c.id for c in store.stranded(NOW + timedelta(minutes=2), SETTLE)}
    assert later == {
        never_leased.id,
        dead.id,
        live.id,
        approved_long_ago.id,
        left_requested.id,
        being_opened.id,
    }
    assert scheduled_later.id not in later
