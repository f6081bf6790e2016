"""Engines and migrations. SQLite when `DATABASE_URL` is absent; PostgreSQL when it says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event

MIGRATIONS = Path(__file__).parent / "migrations"


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
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **kw)


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
