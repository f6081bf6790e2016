"""The audit chain on SQLite and PostgreSQL: verify finds an edited, rehashed, deleted,
reordered or inserted row; checkpoints read only new rows; the database refuses UPDATE
and DELETE; purge removes expired rows only and the chain still verifies."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from bot.cli import main as cli
from bot.store import audit_chain, audit_scan
from bot.store.db import make_engine, upgrade
from bot.store.people import PersonDirectory
from bot.store.sql_store import GENESIS, SqlStore, chain_hash
from commands.audit import Auditor
from commands.ports import ERASED, AuditEvent, AuditQuery

NOW = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)
LONG_AGO = datetime(2015, 3, 1, tzinfo=UTC)  # rows written then expired in 2022


def fill(engine: Engine, n: int, at: datetime = NOW, retention: timedelta | None = None) -> None:
    auditor = Auditor(SqlStore(engine), lambda: at, retention=retention or timedelta(days=2557))
    for i in range(n):
        auditor.record("command", f"U{i % 3}", "ok", target="loan-assessor", parameters={"i": i})


@contextlib.contextmanager
def unguarded(engine: Engine) -> Iterator[None]:
    """What someone with the database file or the table owner's rights can do."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only"))
        yield
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only"))
    else:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
        yield


def sql(engine: Engine, statement: str, **params: object) -> None:
    with unguarded(engine), engine.begin() as conn:
        conn.execute(text(statement), params)


def row(engine: Engine, row_id: int) -> AuditEvent:
    return next(e for e in SqlStore(engine).audit(AuditQuery()) if e.id == row_id)


def test_whole_chain_verifies_and_checkpoint_reads_only_new_rows(engine: Engine) -> None:
    fill(engine, 10)
    first = audit_chain.verify(engine, now=NOW)
    assert first.ok and first.checked == 10 and first.head_id == 10
    assert first.started_from == "genesis"
    fill(engine, 3)
    daily = audit_chain.verify(engine, now=NOW)
    assert daily.ok and daily.checked == 3 and daily.started_after == 10
    assert daily.started_from.startswith("checkpoint")
    assert audit_chain.verify(engine, now=NOW).checked == 0  # nothing new
    full = audit_chain.verify(engine, from_checkpoint=False, now=NOW)
    assert full.ok and full.checked == 13 and full.head_hash == daily.head_hash


def test_edited_row_is_found(engine: Engine) -> None:
    fill(engine, 10)
    sql(engine, "UPDATE audit_event SET outcome = 'approved' WHERE id = 5")
    result = audit_chain.verify(engine, from_checkpoint=False)
    assert not result.ok and result.problem is not None
    assert (result.problem.kind, result.problem.row_id) == ("edited", 5)
    assert "row 5" in result.message()


def test_edited_and_rehashed_row_is_found_through_the_next_link(engine: Engine) -> None:
    fill(engine, 10)
    forged = row(engine, 5)
    forged.outcome = "approved"
    new_hash = chain_hash(forged.prev_hash or "", forged)
    sql(engine, "UPDATE audit_event SET outcome = 'approved', hash = :h WHERE id = 5", h=new_hash)
    problem = audit_chain.verify(engine, from_checkpoint=False).problem
    assert problem is not None and (problem.kind, problem.row_id) == ("edited", 5)


def test_deleted_row_is_found(engine: Engine) -> None:
    fill(engine, 10)
    sql(engine, "DELETE FROM audit_event WHERE id = 5")
    problem = audit_chain.verify(engine, from_checkpoint=False).problem
    assert problem is not None and (problem.kind, problem.row_id) == ("deleted", 6)
    assert "after row 4" in problem.detail


def test_deleted_first_row_is_found(engine: Engine) -> None:
    fill(engine, 4)
    sql(engine, "DELETE FROM audit_event WHERE id = 1")
    problem = audit_chain.verify(engine, from_checkpoint=False).problem
    assert problem is not None and (problem.kind, problem.row_id) == ("deleted", 2)


def test_deleted_tail_is_found_by_the_checkpoint(engine: Engine) -> None:
    fill(engine, 10)
    assert audit_chain.verify(engine).ok
    sql(engine, "DELETE FROM audit_event WHERE id >= 9")  # the chain alone cannot see this
    result = audit_chain.verify(engine)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.row_id) == ("deleted", 10)
    assert not audit_chain.verify(engine, from_checkpoint=False).ok  # --full checks it too


def test_reordered_rows_are_found(engine: Engine) -> None:
    fill(engine, 10)
    sql(engine, "UPDATE audit_event SET id = 1000 WHERE id = 5")
    sql(engine, "UPDATE audit_event SET id = 5 WHERE id = 6")
    sql(engine, "UPDATE audit_event SET id = 6 WHERE id = 1000")
    problem = audit_chain.verify(engine, from_checkpoint=False).problem
    assert problem is not None and (problem.kind, problem.row_id) == ("reordered", 5)


def test_inserted_row_is_found(engine: Engine) -> None:
    fill(engine, 10)
    for i in range(10, 5, -1):  # make room after row 5, then slip a well-formed row in
        sql(engine, f"UPDATE audit_event SET id = {i + 1} WHERE id = {i}")  # noqa: S608
    after = row(engine, 5)
    forged = AuditEvent("approve", "U0MALLORY", "approved", at=after.at, prev_hash=after.hash)
    forged.hash = chain_hash(after.hash or "", forged)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_event (id, at, actor_id, action, parameters, outcome,"
                " prev_hash, hash, chain_version) VALUES (6, :at, 'U0MALLORY', 'approve', '{}',"
                " 'approved', :prev, :hash, 2)"
            ),
            {"at": forged.at, "prev": after.hash, "hash": forged.hash},
        )
    problem = audit_chain.verify(engine, from_checkpoint=False).problem
    assert problem is not None and (problem.kind, problem.row_id) == ("inserted", 6)


def test_verify_cli_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    fill(engine, 6)
    assert cli.main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out
    sql(engine, "UPDATE audit_event SET justification = 'nothing to see' WHERE id = 3")
    assert cli.main(["audit", "verify", "--full"]) == 1
    err = capsys.readouterr().err
    assert "row 3" in err and "edited" in err
    engine.dispose()


def test_postgres_refuses_update_delete_truncate(pg_engine: Engine) -> None:
    fill(pg_engine, 3)
    assert audit_chain.verify(pg_engine).ok  # a checkpoint row to try to change
    for statement in (
        "UPDATE audit_event SET outcome = 'x' WHERE id = 2",
        "DELETE FROM audit_event WHERE id = 2",
        "TRUNCATE audit_event",
        "UPDATE audit_checkpoint SET last_hash = 'x'",
    ):
        with pytest.raises(DBAPIError, match="append-only"), pg_engine.begin() as conn:
            conn.execute(text(statement))
    # The purge setting alone does not make a row within its retention deletable.
    with pytest.raises(DBAPIError, match="append-only"), pg_engine.begin() as conn:
        conn.execute(text("SET LOCAL aiops.audit_purge = 'on'"))
        conn.execute(text("DELETE FROM audit_event WHERE id = 2"))
    # Nor does the purge function, asked to go past the expired rows.
    with pytest.raises(DBAPIError, match="not all past retain_until"), pg_engine.begin() as conn:
        conn.execute(text("SELECT aiops_purge_audit(3)"))
    assert len(SqlStore(pg_engine).audit(AuditQuery())) == 3
    assert audit_chain.verify(pg_engine, from_checkpoint=False).ok


def test_sqlite_refuses_update_and_early_delete(sqlite_engine: Engine) -> None:
    fill(sqlite_engine, 2)
    for statement in (
        "UPDATE audit_event SET outcome = 'x' WHERE id = 2",
        "DELETE FROM audit_event WHERE id = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"), sqlite_engine.begin() as conn:
            conn.execute(text(statement))


def test_purge_removes_expired_rows_only_and_chain_still_verifies(engine: Engine) -> None:
    fill(engine, 5, at=LONG_AGO, retention=timedelta(days=365))  # expired in 2016
    fill(engine, 4)  # retained until 2033
    fill(engine, 2, at=LONG_AGO, retention=timedelta(days=365))  # expired, behind retained rows
    assert audit_chain.verify(engine, now=NOW).ok  # a checkpoint inside the purged range
    result = audit_chain.purge(engine, now=NOW, actor_id="U0BOB", reason="annual purge")
    assert (result.purged, result.through_id, result.kept_expired) == (5, 5, 2)
    rows = SqlStore(engine).audit(AuditQuery())
    assert [r.id for r in rows] == [6, 7, 8, 9, 10, 11, 12]
    purge_row = rows[-1]
    assert purge_row.action == "audit_purge" and purge_row.actor_id == "U0BOB"
    assert purge_row.parameters["through_hash"] == result.through_hash
    assert purge_row.justification == "annual purge"
    for from_checkpoint in (False, True):
        verified = audit_chain.verify(engine, from_checkpoint=from_checkpoint, now=NOW)
        assert verified.ok, verified.message()
    assert audit_chain.verify(engine, from_checkpoint=False).started_from.startswith("purge")
    again = audit_chain.purge(engine, now=NOW)  # nothing more is expired at the front
    assert again.purged == 0 and again.audit_id is not None
    assert audit_chain.verify(engine, from_checkpoint=False).ok


def test_purge_anchor_cannot_be_faked(engine: Engine) -> None:
    fill(engine, 3, at=LONG_AGO, retention=timedelta(days=365))
    fill(engine, 2)
    audit_chain.purge(engine, now=NOW)
    assert audit_chain.verify(engine, from_checkpoint=False).ok
    sql(engine, "DELETE FROM audit_event WHERE action = 'audit_purge'")
    problem = audit_chain.verify(engine, from_checkpoint=False).problem
    assert problem is not None and problem.kind == "anchor"


def test_purge_of_everything_expired_keeps_a_verifiable_chain(engine: Engine) -> None:
    fill(engine, 4, at=LONG_AGO, retention=timedelta(days=365))
    assert audit_chain.purge(engine, now=NOW).purged == 4
    result = audit_chain.verify(engine, from_checkpoint=False)
    assert result.ok and result.checked == 1  # the purge's own row, anchored


def test_erasing_a_person_keeps_the_chain(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    people = PersonDirectory(engine)
    people.remember("U0ZED", "Zed Example", NOW)
    Auditor(SqlStore(engine), lambda: NOW).record("command", "U0ZED", "ok")
    assert cli.main(["audit", "export", "--format", "jsonl"]) == 0
    before = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert before[0]["actor"] == "Zed Example"
    assert cli.main(["person", "erase", "U0ZED", "--by", "U0CAROL", "--reason", "PRIV-7"]) == 0
    capsys.readouterr()
    assert people.name("U0ZED") == ERASED
    people.remember("U0ZED", "Zed Example", NOW)  # not collected again
    assert people.name("U0ZED") == ERASED
    assert cli.main(["audit", "export", "--format", "jsonl"]) == 0
    after = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "Zed Example" not in json.dumps(after)
    assert after[0]["actor_id"] == "U0ZED" and after[0]["actor"] == ERASED
    assert after[-1]["action"] == "person_erased" and after[-1]["actor_id"] == "U0CAROL"
    assert cli.main(["audit", "verify", "--full"]) == 0
    engine.dispose()


def test_export_has_both_zones_and_the_authorising_approval(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from tests.support.harness import ALICE, BOB, Bot, FakeClock, make_runtime

    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    bot = Bot(make_runtime(engine, clock), clock)
    bot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="fix" ticket=CHG-42')
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    bot.run(BOB, f"/aiops approve {change.id}")
    assert cli.main(["audit", "export", "--since", "1d", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [r for r in rows if r["change_id"] == change.id]
    assert mine and all(r["authorised_by"] == BOB.id and r["ticket"] == "CHG-42" for r in mine)
    first = mine[0]
    assert first["at"].endswith("+00:00") and first["at_local"].endswith(("+11:00", "+10:00"))
    assert datetime.fromisoformat(first["at"]) == datetime.fromisoformat(first["at_local"])
    engine.dispose()


def test_verify_reads_a_large_table_in_batches(sqlite_engine: Engine) -> None:
    fill(sqlite_engine, 250)
    result = audit_chain.verify(sqlite_engine, batch=64, record=False)
    assert result.ok and result.checked == 250
    assert replace(result, checked=0).message().startswith("audit chain intact")


def test_fast_scan_proves_rows_as_append_audit_writes_them(engine: Engine) -> None:
    """The fast pass builds canonical() from raw columns: it must accept every real row
    (awkward text, nested parameters, microseconds, no retention), not hand them all to
    the slow walk. (Times are UTC: SQLite stores an aware datetime's wall time as is, so
    a non-UTC `at` fails the slow walk too.)"""
    store = SqlStore(engine)
    events = [
        AuditEvent("command", "U0ALICE", "ok", at=NOW, parameters={"b": 1, "a": [1.5, None]}),
        AuditEvent(
            "decision",
            "U0JOSÉ",
            'refused: "quoted" \\ back\nslash — é ✓',
            at=datetime(2026, 11, 27, 9, 30, 0, 123456, tzinfo=UTC),
            environment="prod",
            target="loan-assessor",
            parameters={"z": {"y": "ü", "x": True}, "n": 10**20, "f": 1e16},
            justification="ticket ✓",
            change_id="CHG-7",
            request_id="req-1",
            retain_until=datetime(2033, 11, 26, 23, 0, 59, 999999, tzinfo=UTC),
        ),
        AuditEvent("plan", "bot", "ok", at=datetime(2026, 11, 27, 0, 0, tzinfo=UTC)),
    ]
    for event in events:
        store.append_audit(event)
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        fast = audit_scan.scan(engine, raw, 0, GENESIS, workers=1)
    assert (fast.good, fast.last_id, fast.stopped) == (3, events[-1].id, False)
    assert fast.last_hash == events[-1].hash
    assert audit_chain.verify(engine, record=False).checked == 3


@pytest.mark.parametrize(
    "tamper, found",
    [
        ("UPDATE audit_event SET outcome = 'approved' WHERE id = 47", ("edited", 47)),
        ("DELETE FROM audit_event WHERE id = 33", ("deleted", 34)),
        ("DELETE FROM audit_event WHERE id = 21", ("deleted", 22)),  # a chunk's first row
    ],
)
def test_parallel_scan_finds_what_the_walk_finds(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tamper: str, found: tuple[str, int]
) -> None:
    fill(engine, 60)
    monkeypatch.setattr(audit_scan, "PARALLEL_FROM", 10)
    monkeypatch.setattr(audit_scan, "CHUNK", 10)
    monkeypatch.setattr(audit_scan, "BATCH", 4)
    whole = audit_chain.verify(engine, from_checkpoint=False, record=False, workers=2)
    assert whole.ok and whole.checked == 60 and whole.head_id == 60
    sql(engine, tamper)
    parallel = audit_chain.verify(engine, from_checkpoint=False, record=False, workers=2)
    walk = audit_chain.verify(engine, from_checkpoint=False, record=False, workers=1)
    assert parallel.problem is not None
    assert (parallel.problem.kind, parallel.problem.row_id) == found
    assert parallel == walk


def test_export_since_and_until_filter_and_refuse_what_they_cannot_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    """`--since 7d` is a duration back from now, not "everything"; a date without an offset
    is in the config's zone; a value that is neither is one line and exit 2."""
    from tests.support.harness import ALICE, Bot, FakeClock, make_runtime

    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now - timedelta(days=10))
    bot = Bot(make_runtime(engine, clock), clock)
    bot.run(ALICE, "/aiops status")  # one row ten days ago
    clock.now = now - timedelta(hours=1)
    bot.run(ALICE, "/aiops changes")  # one row an hour ago

    def export(*flags: str) -> list[dict[str, str]]:
        assert cli.main(["audit", "export", *flags, "--format", "jsonl"]) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert len(export()) == 2
    assert [r["parameters"] for r in export("--since", "7d")] == [
        r["parameters"] for r in export()[1:]
    ]
    assert export("--since", "1m") == []
    assert len(export("--until", "7d")) == 1
    day = (now - timedelta(days=3)).astimezone(bot.rt.config.timezone).date().isoformat()
    assert len(export("--since", day)) == 1
    for bad in ("5x", "yesterday", "2026-13-01"):
        assert cli.main(["audit", "export", "--since", bad]) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith("aiops-bot: ") and "Traceback" not in err and len(err.splitlines()) == 1
        )
    engine.dispose()
