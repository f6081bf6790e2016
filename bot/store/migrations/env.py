"""Alembic environment: the engine comes from `bot.store.db.upgrade`, never from a file.

Running migrations needs no models: each version says what it does. The table models are
the target only when comparing (`bot.store.db.schema_drift`), which passes them in, so a
first start does not import SQLModel and every table class just to create the schema."""

from __future__ import annotations

from alembic import context

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
