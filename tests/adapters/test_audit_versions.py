"""Chain versions and the standalone verifier.

Rows written before RFC 8785 hashing (version 1) keep verifying next to version-2 rows,
through the fast scan and the row-by-row walk, on SQLite (migrated from 0004) and
PostgreSQL. `tools/verify_audit.py`, which imports nothing of the bot, passes on a fresh
`aiops-bot audit export` and names an edited, deleted, reordered or cut-off row.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from sqlalchemy import Engine, text

from bot.cli import main as cli
from bot.store import audit_chain, audit_scan
from bot.store.audit_canon import chain_hash
from bot.store.db import make_engine, upgrade
from bot.store.sql_store import GENESIS, SqlStore
from commands.audit import Auditor
from commands.ports import AuditEvent, AuditQuery

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "tools" / "verify_audit.py"
NOW = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def golden_event() -> AuditEvent:
    return AuditEvent(
        "deploy_requested",
        "U0ALICE",
        'planned "canary" — é ✓',
        at=datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC),
        environment="prod",
        target="loan-assessor",
        parameters={"split": {"501": 90, "0": 10}, "ratio": 1.5, "n": 3},
        justification="CHG-42",
        change_id="CHG-1",
        request_id="r1",
        retain_until=datetime(2033, 3, 1, 9, 30, 0, 654321, tzinfo=UTC),
    )


def test_version_1_is_the_hash_the_previous_release_wrote() -> None:
    # Computed with the hashing code as it was before chain versions existed.
    old = "a559b9926f138ab0f7555e7fb289a4b44faa9338d694314c2134fbc69246ecc1"
    assert chain_hash(GENESIS, golden_event(), 1) == old
    assert chain_hash(GENESIS, golden_event(), 2) != old


def test_version_2_is_sha256_of_the_rfc8785_object() -> None:
    """The recipe of docs/audit-verification.md, spelled out here by hand."""
    event = golden_event()
    body = {
        "action": "deploy_requested",
        "actor_id": "U0ALICE",
        "at": "2026-03-01T09:30:00.123456+00:00",
        "chain_version": 2,
        "change_id": "CHG-1",
        "environment": "prod",
        "justification": "CHG-42",
        "outcome": 'planned "canary" — é ✓',
        "parameters": {"n": 3, "ratio": 1.5, "split": {"0": 10, "501": 90}},
        "prev_hash": GENESIS,
        "request_id": "r1",
        "retain_until": "2033-03-01T09:30:00.654321+00:00",
        "target": "loan-assessor",
    }
    jcs = rfc8785.dumps(body)
    assert jcs.startswith(b'{"action":"deploy_requested","actor_id":"U0ALICE","at":"2026-03-01T')
    assert '"outcome":"planned \\"canary\\" — é ✓"'.encode() in jcs  # UTF-8, not \u escapes
    assert chain_hash(GENESIS, event, 2) == hashlib.sha256(jcs).hexdigest()


def write_v1_rows(engine: Engine, n: int) -> None:
    """Rows as the previous release wrote them: version-1 hashes, no chain_version."""
    prev = GENESIS
    with engine.begin() as conn:
        last = conn.execute(text("SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1")).first()
        prev = last[0] if last else GENESIS
        for i in range(n):
            event = AuditEvent(
                "command",
                f"U{i}",
                "ok — ✓",
                at=NOW - timedelta(days=30, minutes=n - i),
                target="loan-assessor",
                parameters={"i": i, "f": 0.5, "s": "é"},
                retain_until=NOW + timedelta(days=2500, microseconds=123456),
            )
            digest = chain_hash(prev, event, 1)
            conn.execute(
                text(
                    "INSERT INTO audit_event (at, actor_id, action, target, parameters, outcome,"
                    " retain_until, prev_hash, hash) VALUES (:at, :actor, 'command', :target,"
                    " :params, :outcome, :ret, :prev, :hash)"
                ),
                {
                    "at": event.at if engine.dialect.name == "postgresql" else _naive(event.at),
                    "actor": event.actor_id,
                    "target": event.target,
                    "params": json.dumps(event.parameters),
                    "outcome": event.outcome,
                    "ret": event.retain_until
                    if engine.dialect.name == "postgresql"
                    else _naive(event.retain_until),
                    "prev": prev,
                    "hash": digest,
                },
            )
            prev = digest


def _naive(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if moment else None


def fill_v2(engine: Engine, n: int) -> None:
    auditor = Auditor(SqlStore(engine), lambda: NOW, retention=timedelta(days=2557))
    for i in range(n):
        auditor.record(
            "command", "U0BOB", "ok", target="loan-assessor", parameters={"i": i, "r": 0.1}
        )


def slow_walk_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fast scan prove nothing, so the row-by-row walk checks every row."""
    monkeypatch.setattr(
        audit_chain,
        "scan",
        lambda engine, raw, after, expected, workers=None: audit_scan.ScanResult(
            0, after, expected, True
        ),
    )


def versions(engine: Engine) -> list[int]:
    return [e.chain_version or 0 for e in SqlStore(engine).audit(AuditQuery())]


def test_sqlite_rows_from_before_the_migration_keep_verifying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0004")  # the schema the previous release ran on
    write_v1_rows(engine, 5)
    upgrade(engine)  # 0005 adds chain_version: the old rows are version 1
    fill_v2(engine, 4)
    assert versions(engine) == [1] * 5 + [2] * 4
    fast = audit_chain.verify(engine, from_checkpoint=False, record=False)
    assert fast.ok and fast.checked == 9, fast.message()
    # SQLite's append-only triggers survived the migration.
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET outcome = 'x' WHERE id = 2"))
    with monkeypatch.context() as m:
        slow_walk_only(m)
        slow = audit_chain.verify(engine, from_checkpoint=False, record=False)
    assert slow.ok and slow.checked == 9 and slow.head_hash == fast.head_hash
    engine.dispose()


def test_an_edited_version_1_row_is_still_found(engine: Engine) -> None:
    write_v1_rows(engine, 4)  # a previous release writing next to us
    fill_v2(engine, 2)
    write_v1_rows(engine, 2)
    assert versions(engine) == [1, 1, 1, 1, 2, 2, 1, 1]
    assert audit_chain.verify(engine, from_checkpoint=False, record=False).checked == 8
    if engine.dialect.name == "postgresql":
        statements = [
            "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only",
            "UPDATE audit_event SET outcome = 'changed' WHERE id = 3",
            "ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only",
        ]
    else:
        statements = [
            "DROP TRIGGER audit_event_no_update",
            "UPDATE audit_event SET outcome = 'changed' WHERE id = 3",
        ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    problem = audit_chain.verify(engine, from_checkpoint=False, record=False).problem
    assert problem is not None and (problem.kind, problem.row_id) == ("edited", 3)


def test_postgres_mixed_versions_verify_in_the_slow_walk_too(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_v1_rows(pg_engine, 3)
    fill_v2(pg_engine, 3)
    slow_walk_only(monkeypatch)
    result = audit_chain.verify(pg_engine, from_checkpoint=False, record=False)
    assert result.ok and result.checked == 6, result.message()


# -- the standalone verifier ----------------------------------------------------------


def run_verifier(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode; neither the working directory nor PYTHONPATH is on the path,
    # so the verifier could not import the bot's code even if it tried.
    return subprocess.run(
        [sys.executable, "-I", str(VERIFIER), str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> list[str]:
    """A fresh `aiops-bot audit export --format jsonl` of a chain with both versions."""
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    write_v1_rows(engine, 3)
    store = SqlStore(engine)
    odd = AuditEvent(
        "decision",
        "U0JOSÉ",
        'refused: "quoted" \\ back\nslash\t\x01 — é ✓ 𝄞',
        at=NOW,
        environment="prod",
        parameters={
            "z": {"y": "ü", "x": True},
            "big": 10**20,
            "f": 1e21,
            "g": 1e-7,
            "l": [1, None],
        },
        justification=None,
        retain_until=None,
    )
    store.append_audit(odd)
    fill_v2(engine, 4)
    engine.dispose()
    capsys.readouterr()
    assert cli.main(["audit", "export", "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8
    return lines


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_verifier_imports_nothing_of_the_bot() -> None:
    source = VERIFIER.read_text()
    imports = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= {"argparse", "hashlib", "json", "sys", "rfc8785"}, imports


def test_the_verifier_passes_a_fresh_export(tmp_path: Path, export: list[str]) -> None:
    rows = [json.loads(line) for line in export]
    assert [r["chain_version"] for r in rows] == [1, 1, 1, 2, 2, 2, 2, 2]
    done = run_verifier(write(tmp_path, export), "--start", GENESIS, "--head", rows[-1]["hash"])
    assert done.returncode == 0, done.stderr
    assert "OK: 8 row(s) (version 1: 3, version 2: 5)" in done.stdout
    assert f"head id {rows[-1]['id']} hash {rows[-1]['hash']}" in done.stdout


@pytest.mark.parametrize("line", [1, 3, 6])
def test_the_verifier_finds_an_edited_row(tmp_path: Path, export: list[str], line: int) -> None:
    row = json.loads(export[line])
    row["outcome"] = row["outcome"] + " (amended)"
    export[line] = json.dumps(row)
    done = run_verifier(write(tmp_path, export))
    assert done.returncode == 1
    assert f"line {line + 1} (id {row['id']}): edited" in done.stderr


def test_the_verifier_finds_a_rehashed_row_by_its_successor(
    tmp_path: Path, export: list[str]
) -> None:
    """Edited and its own hash recomputed by the recipe: the next row's link breaks."""
    sys.path.insert(0, str(VERIFIER.parent))
    try:
        import verify_audit  # the standalone file, as an auditor's script would use it
    finally:
        sys.path.pop(0)
    row = json.loads(export[4])
    row["justification"] = "nothing to see"
    row["hash"] = verify_audit.row_hash(row)
    export[4] = json.dumps(row)
    done = run_verifier(write(tmp_path, export))
    assert done.returncode == 1 and "line 6" in done.stderr and "deleted" in done.stderr


def test_the_verifier_finds_a_deleted_row(tmp_path: Path, export: list[str]) -> None:
    del export[2]
    done = run_verifier(write(tmp_path, export))
    assert done.returncode == 1 and "line 3" in done.stderr and "deleted" in done.stderr


def test_the_verifier_finds_reordered_rows(tmp_path: Path, export: list[str]) -> None:
    export[4], export[5] = export[5], export[4]
    done = run_verifier(write(tmp_path, export))
    assert done.returncode == 1 and "line 5" in done.stderr and "reordered" in done.stderr


def test_the_verifier_finds_cut_off_newest_rows_against_the_logged_head(
    tmp_path: Path, export: list[str]
) -> None:
    head = json.loads(export[-1])["hash"]
    done = run_verifier(write(tmp_path, export[:-2]), "--head", head)
    assert done.returncode == 1 and "expected head" in done.stderr
    assert run_verifier(write(tmp_path, export[:-2])).returncode == 0  # alone it cannot tell


def test_the_verifier_says_when_an_export_starts_after_the_beginning(
    tmp_path: Path, export: list[str]
) -> None:
    """A file whose first rows were cut still links together, but the verifier says it does
    not start at the beginning of the chain, and `--start GENESIS` makes it a failure."""
    cut = write(tmp_path, export[3:])
    done = run_verifier(cut)
    assert done.returncode == 0
    assert "starts AFTER the beginning of the chain" in done.stdout
    assert run_verifier(cut, "--start", GENESIS).returncode == 1
    bad = write(tmp_path, [*export[:4], "{not json", *export[4:]])
    broken = run_verifier(bad)
    assert broken.returncode == 1 and "line 5 is not JSON" in broken.stderr
