"""The composition root: settings → config and database (migrated) → runtime (store,
platform, audit) → service → scheduler, for every process (`serve`'s server, command
workers and scheduler process, the console and the other CLI subcommands).

The store, the platform, the audit machinery and the scheduler are imported by the
functions that build them only: the server that acks needs the checked config and a
migrated database, nothing more."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from bot.settings import Settings
from bot.store.db import check_migrated, make_engine, upgrade_if_behind
from commands.canary.model import validate
from commands.config import Config, load_config
from commands.digests.schedule import digest_settings
from commands.incidents.settings import incident_settings

if TYPE_CHECKING:
    from bot.scheduler import Scheduler
    from commands.incidents.pager import Pager
    from commands.ports import AuditSink, Notifier
    from commands.runtime import Runtime
    from commands.service import Service

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_database(settings: Settings, *, migrate: bool | None = None) -> Engine:
    """The database every process uses, at this release's migrations.

    SQLite is the embedded default: it is brought up to date here. PostgreSQL is
    migrated deliberately (`aiops-bot db upgrade`, the release's migration job, run as the
    schema's owner; the bot's own login may not run DDL) and never on start: a database
    behind this release raises `bot.store.db.NotMigrated` (one line, the CLI's exit 2)
    before anything reads it. A warm start finds the database at head and skips Alembic."""
    engine = make_engine(settings.db_url)
    try:
        if migrate if migrate is not None else engine.dialect.name == "sqlite":
            upgrade_if_behind(engine)
        else:
            check_migrated(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def checked_config(settings: Settings, config: Config | None = None) -> Config:
    """The config (read from the settings unless given), with the tables that are read
    later checked now: a bad `[canary]` or `[digests]` table stops the bot at start, not
    at its first canary or digest."""
    config = config or load_config(settings.config_path)
    validate(config)
    digest_settings(config)
    incident_settings(config)
    return config


def make_pager(config: Config) -> Pager:
    """`[incidents] pager`: `pagerduty` pages through PagerDuty's Events API v2
    (`bot/pager/pagerduty.py`: a routing key per environment, `PAGERDUTY_ROUTING_KEY_<ENV>`,
    from the environment or Secret Manager, read at each page); `none` pages no one and the
    incident thread's `@here` is the alarm."""
    from commands.incidents.pager import NoPager

    settings = incident_settings(config)
    if settings.pager == "pagerduty":
        from bot.pager.pagerduty import PagerDuty

        return PagerDuty()
    return NoPager()


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
    from bot.platforms import make_platform, make_registry
    from bot.store.canary_store import SqlCanaryStore
    from bot.store.incident_store import SqlHealthWatchStore, SqlIncidentStore
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
        lease_ttl=timedelta(seconds=settings.lease_seconds),
        canary=SqlCanaryStore(engine),
        people=PersonDirectory(engine),
        incidents=SqlIncidentStore(engine),
        health_watch=SqlHealthWatchStore(engine),
        pager=make_pager(config),
        registry=make_registry(config, engine, platform, clock),
    )


class ServeError(RuntimeError):
    """`serve` cannot run as configured (a Slack credential missing, say)."""


def require_token(settings: Settings) -> str:
    if not settings.slack_bot_token:
        raise ServeError(
            "SLACK_BOT_TOKEN is not set. `aiops-bot serve` talks to Slack; to try the bot"
            " without Slack, run `aiops-bot console`."
        )
    return settings.slack_bot_token


def make_service(settings: Settings, **kw: Any) -> Service:
    """The whole runtime (store, platform, Slack notifier): where commands and jobs run."""
    from bot.slack.clients import web_client
    from bot.slack.notifier import SlackNotifier
    from commands.service import Service

    client = web_client(require_token(settings), settings.slack_api_base_url)
    rt = build_runtime(settings, SlackNotifier(client), **kw)
    return Service(rt)


def make_scheduler(service: Service) -> Scheduler:
    """Digests, approval expiry and scheduled changes, the canary and health watches, once
    across replicas (bot/scheduler.py)."""
    from bot.scheduler import Scheduler

    engine = getattr(service.rt.store, "engine", None)
    if engine is None:
        raise ServeError("the scheduler needs the SQL store (its run keys live in the database)")
    from commands.canary.loop import check_due

    scheduler = Scheduler(service.rt, engine)
    # The canary watch: every 30 s it runs the checks that are due; each canary is judged
    # every `[canary] interval` (default 5 min), claimed by compare-and-set in its watch row.
    scheduler.add_interval("canary", 30, check_due)
    from commands.models.alias import RETRY_SECONDS, retry_pending

    # Serving-alias moves that failed after their change: tried again until they land.
    scheduler.add_interval("serving-alias", RETRY_SECONDS, retry_pending)
    from commands.incidents.health_watch import watch_settings
    from commands.incidents.watch import watch_health

    # The health watch: each endpoint's P95, error rate and drift against [thresholds],
    # one window every `[alerts] watch_interval`, its alerts through the alert path.
    # `[alerts] watch = false`: Cloud Monitoring's policies watch the same thresholds and
    # post through the webhook; a second watcher would post each breach twice.
    watching = watch_settings(service.rt.config)
    if watching.enabled:
        scheduler.add_interval("health-watch", watching.interval.total_seconds(), watch_health)
    from bot.audit_weekly import add_weekly_verify

    add_weekly_verify(scheduler)  # the whole audit chain, Sundays 03:00, once across replicas
    return scheduler


def resume_then_schedule(
    service: Service, make: Callable[[], Scheduler | None] | None
) -> Scheduler | None:
    """Take over the changes no live worker holds (left running or approved by a stop),
    then build (`make`) and start the scheduler, whose catch-up may post a late digest and
    whose `takeover` job does the same sweep every few seconds from then on."""
    from commands.changes.execute import resume

    resumed = resume(service.rt)
    if resumed:
        log.info("took over %d change(s) no live worker held", resumed)
    scheduler = make() if make is not None else None
    if scheduler is not None:
        scheduler.start()
    return scheduler
