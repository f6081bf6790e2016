"""The head of every verification is also written to the `aiops-audit` log, and the table
is compared with those heads: cutting the newest rows and re-appending forged ones passes
the chain check inside the database, but not the comparison with the log. The real
google-cloud-logging client talks to a local fake of `entries:write` / `entries:list`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as gcl
from google.cloud.logging_v2.resource import Resource
from sqlalchemy import Engine, text

from bot.cli import compliance as compliance_cli
from bot.cli import main as cli
from bot.gcp_logging import AUDIT_LOG, CHECKPOINT, AuditLogSink
from bot.store import audit_chain
from bot.store.db import make_engine, upgrade
from bot.store.sql_store import SqlStore
from commands.audit import Auditor
from commands.ports import AuditQuery
from tests.support.fakes.http_fakes import FakeGoogleHTTP

PROJECT = "lender-aiops-prod"
GLOBAL = Resource(type="global", labels={"project_id": PROJECT})


@pytest.fixture
def http() -> Iterator[FakeGoogleHTTP]:
    fake = FakeGoogleHTTP().serve()
    yield fake
    fake.stop()


@pytest.fixture
def sink(http: FakeGoogleHTTP) -> AuditLogSink:
    client = gcl.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": http.url},
    )
    return AuditLogSink(client, resource=GLOBAL)


def fill(engine: Engine, n: int, actor: str = "U0BOB") -> None:
    auditor = Auditor(SqlStore(engine), lambda: datetime.now(UTC), retention=timedelta(days=2557))
    for i in range(n):
        auditor.record("command", actor, "ok", target="loan-assessor", parameters={"i": i})


def verify_and_witness(engine: Engine, sink: AuditLogSink, full: bool = False) -> None:
    result = audit_chain.verify(engine, from_checkpoint=not full)
    assert result.ok
    assert audit_chain.witness(result, sink, at=datetime.now(UTC), full=full)


def cut_newest(engine: Engine, keep: int) -> None:
    """What someone with the table owner's rights can do: delete the newest rows, and the
    checkpoints inside the database that name them."""
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
        conn.execute(text("DROP TRIGGER IF EXISTS audit_checkpoint_no_delete"))
        conn.execute(text("DELETE FROM audit_event WHERE id > :keep"), {"keep": keep})
        conn.execute(text("DELETE FROM audit_checkpoint WHERE last_id > :keep"), {"keep": keep})


def test_checkpoints_are_written_and_read_back_newest_first(
    sqlite_engine: Engine, sink: AuditLogSink, http: FakeGoogleHTTP
) -> None:
    fill(sqlite_engine, 4)
    verify_and_witness(sqlite_engine, sink)
    fill(sqlite_engine, 3)
    verify_and_witness(sqlite_engine, sink, full=True)
    written = [e for e in http.entries if e.get("jsonPayload", {}).get("type") == CHECKPOINT]
    assert len(written) == 2
    assert written[0]["logName"] == f"projects/{PROJECT}/logs/{AUDIT_LOG}"
    assert written[0]["insertId"].startswith("checkpoint-4-")
    logged = sink.checkpoints()
    assert [c.head_id for c in logged] == [7, 4] and logged[0].full is True
    (listed,) = [r for r in http.requests if r.path.endswith("entries:list")]
    assert 'jsonPayload.type="audit_checkpoint"' in listed.body["filter"]
    assert "timestamp>=" in listed.body["filter"]  # else the library reads only 24 hours
    comparison = audit_chain.compare_with_log(sqlite_engine, logged)
    assert comparison.ok and comparison.compared == 2 and comparison.table_head == 7


def test_cut_and_reappended_rows_pass_the_chain_but_not_the_log(
    sqlite_engine: Engine, sink: AuditLogSink
) -> None:
    fill(sqlite_engine, 6)
    verify_and_witness(sqlite_engine, sink)  # the log now holds head row 6
    cut_newest(sqlite_engine, keep=3)
    fill(sqlite_engine, 3, actor="U0MALLORY")  # forged rows 4–6, chained properly
    inside = audit_chain.verify(sqlite_engine, from_checkpoint=False, record=False)
    assert inside.ok  # the chain alone cannot tell
    comparison = audit_chain.compare_with_log(sqlite_engine, sink.checkpoints())
    assert not comparison.ok and comparison.problem is not None
    assert (comparison.problem.kind, comparison.problem.row_id) == ("edited", 6)
    assert "in the log" in comparison.message()


def test_cut_rows_alone_are_found(sqlite_engine: Engine, sink: AuditLogSink) -> None:
    fill(sqlite_engine, 5)
    verify_and_witness(sqlite_engine, sink)
    cut_newest(sqlite_engine, keep=2)
    comparison = audit_chain.compare_with_log(sqlite_engine, sink.checkpoints())
    assert comparison.problem is not None
    assert (comparison.problem.kind, comparison.problem.row_id) == ("deleted", 5)
    assert "the table ends at row 2" in comparison.problem.detail


def test_the_cli_writes_the_checkpoint_and_compares_against_the_log(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sink: AuditLogSink,
) -> None:
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(compliance_cli, "_witness", lambda config: sink)  # the log's address
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    fill(engine, 4)
    assert cli.main(["audit", "verify", "--against-log"]) == 0
    out = capsys.readouterr().out
    assert "audit chain intact" in out and "matches the aiops-audit log" in out
    assert [c.head_id for c in sink.checkpoints()] == [4]

    cut_newest(engine, keep=2)
    fill(engine, 2, actor="U0MALLORY")
    assert cli.main(["audit", "verify", "--full", "--against-log"]) == 1
    captured = capsys.readouterr()
    assert "audit chain intact" in captured.out  # inside the database all looks well
    assert "does not match the aiops-audit log" in captured.err and "row 4" in captured.err
    engine.dispose()


def test_an_unreachable_log_is_said_and_is_not_a_pass(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sink: AuditLogSink,
    http: FakeGoogleHTTP,
) -> None:
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(compliance_cli, "_witness", lambda config: sink)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    fill(engine, 2)
    http.fail("entries:list", 403)
    assert cli.main(["audit", "verify", "--against-log"]) == 2
    assert "cannot read the aiops-audit log" in capsys.readouterr().err
    engine.dispose()


def test_heads_before_a_purge_anchor_are_skipped(sink: AuditLogSink, sqlite_engine: Engine) -> None:
    class Head:
        def __init__(self, head_id: int, head_hash: str) -> None:
            self.head_id, self.head_hash, self.at = head_id, head_hash, None

    long_ago = datetime(2015, 3, 1, tzinfo=UTC)
    Auditor(SqlStore(sqlite_engine), lambda: long_ago, retention=timedelta(days=30)).record(
        "command", "U0", "ok"
    )
    fill(sqlite_engine, 2)
    audit_chain.purge(sqlite_engine, now=datetime.now(UTC))
    row3 = next(e for e in SqlStore(sqlite_engine).audit(AuditQuery()) if e.id == 3)
    logged: list[Any] = [Head(1, "f" * 64), Head(3, row3.hash or "")]
    comparison = audit_chain.compare_with_log(sqlite_engine, logged)
    assert comparison.ok and comparison.skipped == 1 and comparison.compared == 1
