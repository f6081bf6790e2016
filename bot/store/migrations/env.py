"""Alembic environment: the engine comes from `bot.store.db.upgrade`, never from a file."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import bot.platforms.sandbox_tables
import bot.store.canary_tables
import bot.store.compliance_tables
import bot.store.schedule_tables
import bot.store.tables  # noqa: F401

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
