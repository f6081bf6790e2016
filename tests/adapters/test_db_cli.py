"""`aiops-bot db upgrade` brings an empty PostgreSQL schema to head; SQLite migrates on start."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from bot.store.db import (
    SQLITE_SCHEMA,
    make_engine,
    schema_drift,
    sqlite_schema,
    upgrade,
    upgrade_if_behind,
)
from tests.conftest import _PG_PROBLEM, PG_URL


def test_db_upgrade_on_postgres() -> None:
    if _PG_PROBLEM:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must be available in CI: {_PG_PROBLEM}")
        pytest.skip(f"needs PostgreSQL at 127.0.0.1:5432 ({_PG_PROBLEM})")
    schema = f"cli_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        env = dict(os.environ, DATABASE_URL=url)
        out = subprocess.run(
            [sys.executable, "-m", "bot.cli", "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert "postgresql" in out.stdout
        tables = set(inspect(admin).get_table_names(schema=schema))
        assert {"change", "approval", "audit_event", "endpoint_lock", "alembic_version"} <= tables
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_sqlite_is_migrated_on_start(tmp_path: Path) -> None:
    env = dict(os.environ, AIOPS_DATA_DIR=str(tmp_path))
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "-c", "/aiops changes"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "No changes yet" in out.stdout
    assert (tmp_path / "aiops-bot.db").exists()


def test_the_migrations_build_the_schema_the_models_describe(engine: Engine) -> None:
    """The migrations alone make the schema (a first start imports no table model); the
    models must agree with them, or a query would meet a column the database lacks."""
    assert schema_drift(engine) == []


def test_a_first_start_migrates_without_importing_the_models(tmp_path: Path) -> None:
    """A new SQLite database is made from `bot/store/sqlite_schema.sql`: no Alembic, no
    table model; an existing one at the heads is left alone."""
    code = (
        "import sys\n"
        "from bot.store.db import make_engine, upgrade_if_behind\n"
        f"engine = make_engine('sqlite:///{tmp_path / 'new.db'}')\n"
        "assert upgrade_if_behind(engine)\n"
        "assert not upgrade_if_behind(engine)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    loaded = set(out.stdout.split())
    assert not {"alembic", "sqlmodel", "bot.store.tables", "sqlalchemy.orm"} & loaded


def test_the_sqlite_schema_script_is_what_the_migrations_build(tmp_path: Path) -> None:
    """Regenerate with `python -m bot.store.db sqlite-schema > bot/store/sqlite_schema.sql`
    after adding a migration; until then a new database goes through Alembic."""
    migrated = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    upgrade(migrated)
    assert sqlite_schema(migrated) == SQLITE_SCHEMA.read_text(encoding="utf-8")

    scripted = make_engine(f"sqlite:///{tmp_path / 'scripted.db'}")
    assert upgrade_if_behind(scripted)
    assert sqlite_schema(scripted) == sqlite_schema(migrated)
    assert schema_drift(scripted) == []
    with scripted.begin() as conn:  # the audit table's append-only triggers came too
        conn.execute(
            text(
                "INSERT INTO audit_event (at, actor_id, action, parameters, outcome,"
                " prev_hash, hash) VALUES ('2026-11-27 00:00:00', 'u', 'a', '{}', 'ok',"
                " 'p', 'h')"
            )
        )
    with pytest.raises(Exception, match="append-only"), scripted.begin() as conn:
        conn.execute(text("UPDATE audit_event SET outcome = 'edited'"))
    migrated.dispose()
    scripted.dispose()


def test_a_database_that_is_not_empty_goes_through_alembic(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'odd.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE leftover (x INTEGER)"))
    assert upgrade_if_behind(engine)  # Alembic ran: the script is for empty files only
    tables = set(inspect(engine).get_table_names())
    assert {"leftover", "audit_event", "alembic_version"} <= tables
    assert [d[0] for d in schema_drift(engine)] == ["remove_table"]  # only `leftover`
    engine.dispose()


def test_the_canary_evidence_migration_renames_old_verdicts(tmp_path: Path) -> None:
    """0005: a stored per-window `pass` was not evidence of "no regression", so it reads as
    undecided; `breach` → regression; `not_enough_data` → undecided."""
    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    upgrade(engine, "0004")
    at = "2026-11-27 00:00:00"
    with engine.begin() as conn:
        for n, verdict in enumerate(("pass", "breach", "not_enough_data"), start=1):
            conn.execute(
                text(
                    "INSERT INTO canary_watch (id, endpoint, environment, change_id, canary_id,"
                    " stable_id, canary_version, stable_version, state, started_at,"
                    " next_check_at, checks, consecutive_breaches, last_verdict, steps,"
                    " step_index, rev) VALUES (:n, 'e', 'prod', :chg, 'c', 's', '1', '0',"
                    " 'watching', :at, :at, 1, 0, :v, '[]', -1, 0)"
                ),
                {"n": n, "chg": f"CHG-{n}", "at": at, "v": verdict},
            )
            conn.execute(
                text(
                    "INSERT INTO canary_check (watch_id, seq, at, window_seconds, source,"
                    " canary_share, verdict, consecutive_breaches, figures, reasons)"
                    " VALUES (:n, 1, :at, 300, 'scheduler', 10, :v, 0, '{}', '[]')"
                ),
                {"n": n, "at": at, "v": verdict},
            )
    upgrade(engine)
    with engine.connect() as conn:
        watches = conn.execute(text("SELECT last_verdict FROM canary_watch ORDER BY id")).all()
        checks = conn.execute(text("SELECT verdict FROM canary_check ORDER BY watch_id")).all()
        evidence = conn.execute(text("SELECT evidence, share_since FROM canary_watch")).all()
    assert [r[0] for r in watches] == ["undecided", "regression", "undecided"]
    assert [r[0] for r in checks] == ["undecided", "regression", "undecided"]
    assert all(r == (None, None) for r in evidence)  # evidence starts afresh at the next check
    engine.dispose()
