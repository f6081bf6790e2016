"""Backing a release out: the schema goes down to the previous release's revision with its
data, on SQLite (foreign keys on) and PostgreSQL, and back up again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from bot.store.db import alembic_config, upgrade
from tests.support.harness import ALICE, BOB, Bot, FakeClock, make_runtime

PROD = "loan-assessor"


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("change")}


def test_a_database_with_approved_changes_goes_down_and_up_again(
    engine: Engine, clock: FakeClock
) -> None:
    """An approval references its change: a downgrade that rebuilt `change` on SQLite was
    refused by the foreign key as soon as one change had been approved."""
    bot = Bot(make_runtime(engine, clock), clock)
    assert bot.run(ALICE, f'/deploy {PROD} gemma-3-1b-it@1.2.1 canary=10 reason="x"').ok
    change = bot.rt.store.list_changes(limit=1)[0]
    assert bot.run(BOB, f"/aiops approve {change.id}").ok
    bot.rt.background.wait_idle(30)

    command.downgrade(alembic_config(engine), "0013")  # the previous release
    assert not {"stop_requested_by", "stop_reason"} & _columns(engine)
    if engine.dialect.name == "sqlite":
        # past the lease's columns too (on PostgreSQL 0009's downgrade leaves procrastinate's
        # types behind, so an upgrade from below it again fails: not this test's subject)
        command.downgrade(alembic_config(engine), "0007")
        assert not {"lease_owner", "lease_expires_at"} & _columns(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM approval")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM change")).scalar_one() == 1

    upgrade(engine)
    assert {"stop_requested_by", "stop_reason", "lease_owner"} <= _columns(engine)
    again = Bot(make_runtime(engine, clock), clock)
    assert again.change(change.id).state is bot.change(change.id).state
    assert [a.approver_id for a in again.rt.store.approvals(change.id)] == [BOB.id]
