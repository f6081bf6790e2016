"""Alembic environment: the engine comes from `bot.store.db.upgrade`, never from a file.

Running migrations needs no models: each version says what it does. The table models are
the target only when comparing (`bot.store.db.schema_drift`), which passes them in, so a
first start does not import SQLModel and every table class just to create the schema."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

MIGRATION_LOCK = 72010002  # the audit chain's appends use 72010001

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata"),
        render_as_batch=connection.dialect.name == "sqlite",
        # One transaction for the whole upgrade on SQLite too (Alembic would commit after
        # each version there): with pysqlite's own transaction handling off
        # (bot.store.db.make_engine) SQLite's DDL is transactional, and the transaction is
        # BEGIN IMMEDIATE, so a second process upgrading at once waits for the first.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes upgrading at once (two replicas, or the migration job run
            # twice) take turns: the second reads the version the first committed and has
            # nothing left to do. Held until this transaction ends.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        context.run_migrations()
    connection.commit()
