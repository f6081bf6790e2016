"""On PostgreSQL the bot runs as a login in `aiops_runtime` (migration 0006): it appends
and reads the audit tables but cannot UPDATE, DELETE or TRUNCATE them — refused by the
privileges themselves, before any trigger — while the rest of the bot's work goes on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from bot.store import audit_chain
from bot.store.db import make_engine
from bot.store.sql_store import SqlStore
from commands.audit import Auditor
from tests.conftest import PG_URL
from tests.support.pg import migrated_schema


@pytest.fixture
def as_runtime(pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A schema migrated by the owner with AIOPS_DB_RUNTIME_ROLE naming a fresh login, and
    an engine whose sessions run as that login."""
    login = f"aiops_bot_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE ROLE {login} LOGIN"))
    monkeypatch.setenv("AIOPS_DB_RUNTIME_ROLE", login)
    try:
        with migrated_schema(PG_URL, "rr") as owner:
            with owner.connect() as conn:
                path = conn.execute(text("SHOW search_path")).scalar_one()
            runtime = make_engine(
                PG_URL, connect_args={"options": f"-csearch_path={path} -crole={login}"}
            )
            try:
                yield runtime
            finally:
                runtime.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {login}"))
        admin.dispose()


def test_the_runtime_login_appends_and_verifies_but_cannot_change_the_audit(
    as_runtime: Engine,
) -> None:
    with as_runtime.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one().startswith("aiops_bot_")
    auditor = Auditor(SqlStore(as_runtime), lambda: datetime.now(UTC), retention=timedelta(days=9))
    for i in range(3):
        auditor.record("command", "U0ALICE", "ok", parameters={"i": i})
    result = audit_chain.verify(as_runtime)  # reads, and appends a checkpoint
    assert result.ok and result.checked == 3
    for statement in (
        "UPDATE audit_event SET outcome = 'x' WHERE id = 2",
        "DELETE FROM audit_event WHERE id = 2",
        "TRUNCATE audit_event",
        "UPDATE audit_checkpoint SET last_hash = 'x'",
        "DELETE FROM audit_checkpoint",
        "INSERT INTO alembic_version VALUES ('x')",
        "SELECT aiops_purge_audit(1)",
    ):
        with pytest.raises(DBAPIError, match="permission denied"), as_runtime.begin() as conn:
            conn.execute(text(statement))
    with as_runtime.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def test_the_runtime_login_still_does_the_bots_other_work(as_runtime: Engine) -> None:
    from tests.support.harness import ALICE, BOB, Bot, FakeClock, make_runtime

    clock = FakeClock()
    bot = Bot(make_runtime(as_runtime, clock), clock)
    bot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="canary"')
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    bot.run(BOB, f"/aiops approve {change.id}")
    bot.rt.background.wait_idle(30)
    done = bot.rt.store.get_change(change.id)
    assert done is not None and done.state.value in ("succeeded", "running")
