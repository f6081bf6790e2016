"""Engines and migrations. SQLite when `DATABASE_URL` is absent; PostgreSQL when it says so."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
# What the migrations build on SQLite, as one script: a new SQLite database (the
# sandbox's first start) is created from it without importing Alembic (~0.3 s). A test
# holds it to the migrations; regenerate with `python -m bot.store.db sqlite-schema`.
SQLITE_SCHEMA = Path(__file__).parent / "sqlite_schema.sql"
_REVISION = re.compile(r"^revision\b[^=]*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\b[^=]*=(.*)$", re.M)


def default_sqlite_url(data_dir: Path | None = None) -> str:
    path = (data_dir or Path.cwd()) / "aiops-bot.db"
    return f"sqlite:///{path}"


def make_engine(url: str, **kw: Any) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # A file database keeps its connections: with none pooled, every session
            # paid a connect (WAL set-up) and, as the last one to close, a checkpoint.
            **({} if memory else {"pool_size": 8, "max_overflow": 32}),
            **kw,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transactions out of pysqlite's hands so BEGIN IMMEDIATE below works:
            # every transaction holds the write lock from its start, which makes the
            # compare-and-set updates and the audit chain's read-then-append safe.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kw)
    if os.environ.get("AIOPS_DB_IAM_AUTH") == "1":  # Cloud SQL IAM login (bot.store.iam_auth)
        from bot.store.iam_auth import attach

        attach(engine)
    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def model_metadata() -> Any:
    """Every table the bot defines (SQLModel's metadata, all table modules imported)."""
    from sqlmodel import SQLModel

    import bot.store.canary_tables
    import bot.store.compliance_tables
    import bot.store.incident_tables
    import bot.store.sandbox_tables
    import bot.store.schedule_tables
    import bot.store.tables  # noqa: F401

    return SQLModel.metadata


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Not procrastinate's tables (the job queue, migration 0009): its schema is its own."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not str(table or "").startswith("procrastinate_")


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the migrated schema in `engine` and the table models (Alembic's
    `compare_metadata`): empty when the migrations and the models agree. Column types are
    compared on PostgreSQL only: SQLite enforces no lengths, and 0003 widens
    `change.decided_by` only where they are enforced."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    opts = {"compare_type": engine.dialect.name == "postgresql", "include_object": _ours}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=opts)
        diff: list[Any] = compare_metadata(context, model_metadata())
    return diff


def head_revisions() -> set[str] | None:
    """The heads of `migrations/versions`, read from the files' `revision` and
    `down_revision` lines without importing Alembic (None when a file does not say)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(source), _DOWN.search(source)
        if rev is None or down is None:
            return None
        revisions.add(rev.group(1))
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads or None


@functools.cache
def _revisions() -> tuple[frozenset[str], frozenset[str]]:
    """Every revision of `migrations/versions` and the heads among them, read once."""
    heads = head_revisions()
    if heads is not None:
        known = {
            m.group(1)
            for path in (MIGRATIONS / "versions").glob("*.py")
            if (m := _REVISION.search(path.read_text(encoding="utf-8")))
        }
        return frozenset(known), frozenset(heads)
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(cfg)
    return (
        frozenset(r.revision for r in script.walk_revisions()),
        frozenset(script.get_heads()),
    )


def current_revisions(engine: Engine) -> set[str]:
    """The revisions `alembic_version` names; empty when the database was never migrated
    (no such table). Errors reaching the database are the driver's."""
    from sqlalchemy import inspect

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return {str(r[0]) for r in conn.execute(text("SELECT version_num FROM alembic_version"))}


class NotMigrated(RuntimeError):
    """The database is behind this release's migrations, or was never migrated. Its text
    is the one line an operator needs; `health` is what `/healthz` says (no URL there)."""

    health = "not migrated: run aiops-bot db upgrade"

    def __init__(self, engine: Engine, current: set[str], heads: frozenset[str]) -> None:
        url = engine.url.render_as_string(hide_password=True)
        at = ", ".join(sorted(current)) or "none"
        super().__init__(
            f"the database at {url} is not migrated (at {at}, needs {', '.join(sorted(heads))}):"
            " run `aiops-bot db upgrade`"
        )


def check_migrated(engine: Engine) -> None:
    """Raise `NotMigrated` unless the database is at this release's heads. A revision this
    release does not know is taken as ahead (a newer release migrated first, expand-only,
    while this one still serves) and passes; never migrated or at an older known revision
    does not. A database that cannot be reached raises the driver's error."""
    known, heads = _revisions()
    current = current_revisions(engine)
    if current == heads or (current - known):
        return
    raise NotMigrated(engine, current, heads)


def upgrade_if_behind(engine: Engine) -> bool:
    """`upgrade(engine)` unless `alembic_version` already names exactly the heads: a warm
    start then skips importing Alembic and its migration environment; a new SQLite
    database is made from `SQLITE_SCHEMA` when that is at the heads. True if it ran."""
    heads = head_revisions()
    if heads is not None:
        try:
            with engine.connect() as conn:
                current = {
                    str(r[0]) for r in conn.execute(text("SELECT version_num FROM alembic_version"))
                }
        except Exception:  # no such table yet: a new database
            current = set()
        if current == heads:
            return False
        if not current and engine.dialect.name == "sqlite" and _create_sqlite(engine, heads):
            return True
    upgrade(engine)
    return True


def sqlite_schema(engine: Engine) -> str:
    """A migrated SQLite database's schema as a script: its tables, indexes and triggers in
    the order they were made; the first line names the revisions it is at."""
    with engine.connect() as conn:
        statements = conn.execute(
            text(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"
                " AND name NOT LIKE 'sqlite%' ORDER BY rowid"
            )
        ).scalars()
        script = "".join(f"{sql};\n" for sql in statements)
        versions = sorted(
            str(v) for v in conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
        )
    return f"-- heads: {' '.join(versions)}\n{script}"


def _statements(script: str) -> list[str]:
    """The script's statements (a trigger's body holds semicolons of its own)."""
    import sqlite3

    out, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if not buffer and line.startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    return out


def _create_sqlite(engine: Engine, heads: set[str]) -> bool:
    """Make an empty SQLite database from `SQLITE_SCHEMA`, in one transaction. False (and
    nothing done) if the script is not at `heads` or the database is not empty."""
    try:
        script = SQLITE_SCHEMA.read_text(encoding="utf-8")
    except OSError:
        return False
    if set(script.partition("\n")[0].removeprefix("-- heads:").split()) != heads:
        return False
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                db.execute("ROLLBACK")
                return False  # not empty (another process made it first): Alembic decides
            for statement in _statements(script):
                db.execute(statement)
            for head in sorted(heads):
                db.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (head,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return True
    finally:
        raw.close()


if __name__ == "__main__":  # python -m bot.store.db sqlite-schema > bot/store/sqlite_schema.sql
    import sys
    import tempfile

    if sys.argv[1:] != ["sqlite-schema"]:
        sys.exit("usage: python -m bot.store.db sqlite-schema")
    with tempfile.TemporaryDirectory() as tmp:
        fresh = make_engine(f"sqlite:///{tmp}/schema.db")
        upgrade(fresh)
        sys.stdout.write(sqlite_schema(fresh))
        fresh.dispose()
