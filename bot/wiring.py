"""Assembles a runtime from settings: config, database (migrated), platform, audit.

The store, the platform and the audit machinery are imported by `build_runtime` only: the
server that acks needs the checked config and a migrated database, nothing more."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from bot.settings import Settings
from bot.store.db import make_engine, upgrade_if_behind
from commands.canary.model import validate
from commands.config import Config, load_config
from commands.digests.schedule import digest_settings

if TYPE_CHECKING:
    from commands.ports import AuditSink, Notifier
    from commands.runtime import Runtime

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_database(settings: Settings, *, migrate: bool | None = None) -> Engine:
    engine = make_engine(settings.db_url)
    # SQLite is the embedded default: bring it up to date on start. PostgreSQL is
    # migrated deliberately (`aiops-bot db upgrade`) by whoever owns the schema.
    # A warm start finds the database at head and skips Alembic altogether.
    if migrate if migrate is not None else engine.dialect.name == "sqlite":
        upgrade_if_behind(engine)
    return engine


def checked_config(settings: Settings, config: Config | None = None) -> Config:
    """The config (read from the settings unless given), with the tables that are read
    later checked now: a bad `[canary]` or `[digests]` table stops the bot at start, not
    at its first canary or digest."""
    config = config or load_config(settings.config_path)
    validate(config)
    digest_settings(config)
    return config


def audit_sinks(config: Config) -> list[AuditSink]:
    """On Google Cloud every audit row is also written to the `aiops-audit` log, which the
    Terraform sink keeps in a locked seven-year bucket."""
    if config.platform != "vertex":
        return []
    from bot.gcp_logging import AuditLogSink, setup_cloud_logging

    bot_project = config.raw.get("vertex", {}).get("logging_project")
    project = str(
        bot_project
        or os.environ.get("GOOGLE_CLOUD_PROJECT")
        or next(
            (e.project for e in config.environments.values() if e.name == "prod"),
            next(iter(config.environments.values())).project,
        )
    )
    setup_cloud_logging(project)
    return [AuditLogSink(project=project)]


def build_runtime(
    settings: Settings,
    notifier: Notifier | None = None,
    *,
    config: Config | None = None,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Runtime:
    from bot.platforms import make_platform
    from bot.store.canary_store import SqlCanaryStore
    from bot.store.people import PersonDirectory
    from bot.store.sql_store import SqlStore
    from commands.audit import Auditor
    from commands.runtime import NullNotifier, Runtime

    config = checked_config(settings, config)
    engine = engine or open_database(settings)
    store = SqlStore(engine)
    platform = make_platform(config, engine, clock)
    return Runtime(
        config=config,
        store=store,
        platform=platform,
        auditor=Auditor(store, clock, retention=config.audit_retention, sinks=audit_sinks(config)),
        notifier=notifier or NullNotifier(),
        clock=clock,
        poll_seconds=settings.poll_seconds,
        canary=SqlCanaryStore(engine),
        people=PersonDirectory(engine),
    )
