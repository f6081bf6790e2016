"""Assembles a runtime from settings: config, database (migrated), platform, audit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine

from bot.platforms import make_platform
from bot.settings import Settings
from bot.store.db import make_engine, upgrade
from bot.store.sql_store import SqlStore
from commands.audit import Auditor
from commands.config import Config, load_config
from commands.runtime import Notifier, NullNotifier, Runtime

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_database(settings: Settings, *, migrate: bool | None = None) -> Engine:
    engine = make_engine(settings.db_url)
    # SQLite is the embedded default: bring it up to date on start. PostgreSQL is
    # migrated deliberately (`aiops-bot db upgrade`) by whoever owns the schema.
    if migrate if migrate is not None else engine.dialect.name == "sqlite":
        upgrade(engine)
    return engine


def build_runtime(
    settings: Settings,
    notifier: Notifier | None = None,
    *,
    config: Config | None = None,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Runtime:
    config = config or load_config(settings.config_path)
    engine = engine or open_database(settings)
    store = SqlStore(engine)
    platform = make_platform(config, engine, clock)
    return Runtime(
        config=config,
        store=store,
        platform=platform,
        auditor=Auditor(store, clock),
        notifier=notifier or NullNotifier(),
        clock=clock,
        poll_seconds=settings.poll_seconds,
    )
