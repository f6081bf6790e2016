"""`aiops-bot serve`: HTTP (`POST /slack/events`, `POST /alerts/cloud-monitoring` for Cloud
Monitoring's webhook channel (`bot/alerts/webhook.py`), `GET /healthz` for readiness,
`GET /livez` for liveness) under uvicorn, or Socket Mode when an app token is set (Slack
only: the webhook needs HTTP mode).

With command workers (`AIOPS_COMMAND_WORKERS`, default 2) the bot is three kinds of
process: this server, which only acks (it holds the config, the Bolt app and a database
connection for `/healthz`, and never imports the domain's machinery or the store); the
command workers (`bot/serve/workers.py`); and one scheduler process
(`bot/serve/scheduler_process.py`). With `AIOPS_COMMAND_WORKERS=0` all of it runs in this
process, on threads.

What can wait for the first ack does: the scheduler (and resuming the changes a stop left
running) starts once the server answers, and `/healthz` reports how that went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp, AsyncRespond
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.alerts.webhook import PATH as ALERTS_PATH
from bot.alerts.webhook import AlertSink, AlertWebhook, InProcessAlerts
from bot.settings import Settings
from bot.wiring import ServeError, make_scheduler, make_service, require_token, resume_then_schedule
from commands.model import Invocation

if TYPE_CHECKING:
    from bot.scheduler import Scheduler
    from bot.serve.queue import CommandQueue
    from commands.service import Service

log = logging.getLogger(__name__)


POOL_WARMUP_DELAY = 1.0  # seconds after start-up


class Background(Protocol):
    """What starts after the server answers: `start` blocks until it runs (raises if it
    cannot), `alive` says it still does, `stop` ends it."""

    def start(self) -> None: ...

    def alive(self) -> bool: ...

    def stop(self) -> None: ...


class Workers(Protocol):
    """The command worker processes a server starts and stops: `CommandPool` (fed over
    pipes, SQLite) or `QueueWorkers` (taking jobs from the durable queue, PostgreSQL)."""

    workers: int

    def attach(self, loop: asyncio.AbstractEventLoop) -> None: ...

    def start(self) -> None: ...

    def wait_ready(self, timeout: float = 60.0) -> set[int]: ...

    def alive(self) -> int: ...

    async def aclose(self, timeout: float = ...) -> None: ...


class InProcessScheduler:
    """`Background` on threads of this process: resume, then the scheduler."""

    def __init__(self, service: Service, make: Callable[[], Scheduler | None] | None) -> None:
        self.service = service
        self.make = make
        self.scheduler: Scheduler | None = None

    def start(self) -> None:
        self.scheduler = resume_then_schedule(self.service, self.make)

    def alive(self) -> bool:
        return self.scheduler is None or self.scheduler.aps is not None

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()


class StartUp:
    """Runs a `Background`'s start on a thread once the server answers; its state is
    `starting`, `done`, `failed: <error>` or `stopped` (it ended on its own). `/healthz`
    fails on the last two, so a broken start is still seen and the instance replaced."""

    def __init__(self, background: Background | None) -> None:
        self.background = background
        self._state = "starting" if background else "done"
        self._done = threading.Event()
        if background is None:
            self._done.set()

    @property
    def state(self) -> str:
        if self._state == "done" and self.background and not self.background.alive():
            return "stopped"
        return self._state

    def run(self) -> None:
        if self.background is None:
            return
        try:
            self.background.start()
            self._state = "done"
        except Exception as exc:
            log.exception("start-up work failed")
            # the error's name, or the `reason` a scheduler process reported
            self._state = f"failed: {getattr(exc, 'reason', None) or type(exc).__name__}"
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def shutdown(self) -> None:
        """After the server stops taking requests: let a start in progress finish (a
        half-started scheduler would run on), then stop it."""
        self._done.wait()
        if self.background is not None:
            self.background.stop()


def stranded_changes(engine: Engine, lease_ttl: timedelta | None = None) -> list[str]:
    """Ids of the changes whose background work has no live worker (`Store.stranded`,
    with the settle time of the lease, `AIOPS_LEASE_SECONDS`, default 30 s)."""
    from bot.store.sql_store import SqlStore
    from commands.runtime import LEASE_TTL

    settle = 2 * (lease_ttl or LEASE_TTL)
    return [c.id for c in SqlStore(engine).stranded(datetime.now(UTC), settle)]


def asgi(
    bolt: AsyncApp,
    *,
    engine: Engine | None,
    platform: str,
    startup: StartUp,
    pool: Workers | None = None,
    queue: CommandQueue | None = None,
    lease_ttl: timedelta | None = None,
    alerts: AlertWebhook | None = None,
) -> Starlette:
    """The HTTP app. `engine`: the database `/healthz` checks; `pool`: the command worker
    processes, started and shut down with the app; `queue`: the durable queue the Bolt
    app submits to, opened before the first request and closed after the last;
    `lease_ttl`: the changes' lease, by which `/healthz` tells stranded changes; `alerts`:
    the alert webhook (`POST /alerts/cloud-monitoring`), none without it."""
    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def livez(_: Request) -> Response:
        # Liveness: the process answers. No database, no scheduler: a Cloud SQL failover
        # must make the instance unready (`/healthz`), never get it restarted.
        return JSONResponse({"ok": True})

    async def healthz(_: Request) -> Response:
        def probe() -> list[str]:
            if engine is None:
                return []
            from bot.store.db import check_migrated

            # Reachable is not enough: a database behind this release (never migrated,
            # or its migration job not run) raises NotMigrated, said as such below.
            check_migrated(engine)
            return stranded_changes(engine, lease_ttl)

        try:
            stranded = await asyncio.to_thread(probe)
        except Exception as exc:
            database = getattr(exc, "health", None) or type(exc).__name__
            return JSONResponse({"ok": False, "database": database}, status_code=503)
        state = startup.state
        ok = not (state.startswith("failed") or state == "stopped")
        body: dict[str, Any] = {"ok": ok, "platform": platform, "startup": state}
        if pool is not None:
            body["workers"] = f"{pool.alive()}/{pool.workers}"
        if stranded:
            # Seen, not failed on: any replica's takeover sweep picks these up, and
            # restarting this instance would not help them.
            body["stranded"] = stranded
        return JSONResponse(body, status_code=200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # uvicorn takes requests once this yields: the work that can wait starts after.
        loop = asyncio.get_running_loop()
        if queue is not None:
            await queue.open()
        started = loop.run_in_executor(None, startup.run)
        if pool is not None:
            pool.attach(loop)
            # Warm the workers once the server answers: spawning them during start-up would
            # take the cores the server needs to get ready. A command before then starts
            # them on demand.
            loop.call_later(POOL_WARMUP_DELAY, pool.start)
        try:
            yield
        finally:
            if alerts is not None:  # its last refusal report, while workers still run
                await alerts.aclose()
            await started
            await asyncio.to_thread(startup.shutdown)
            if pool is not None:
                await pool.aclose()
            if queue is not None:
                await queue.close()

    routes = [
        Route("/slack/events", events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/livez", livez, methods=["GET"]),
    ]
    if alerts is not None:
        routes.append(Route(ALERTS_PATH, alerts.handle, methods=["POST"]))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.startup = startup
    return app


def make_asgi(
    service: Service,
    bolt: AsyncApp,
    *,
    scheduler: Callable[[], Scheduler | None] | None = None,
    pool: Workers | None = None,
    alerts: AlertSink | None = None,
) -> Starlette:
    """The HTTP app over a service in this process; `scheduler` builds the scheduler on
    the start-up thread; `alerts` records the webhook's notices (default: on a thread of
    this process)."""
    return asgi(
        bolt,
        engine=getattr(service.rt.store, "engine", None),
        platform=service.rt.platform.name,
        startup=StartUp(InProcessScheduler(service, scheduler)),
        pool=pool,
        lease_ttl=service.rt.lease_ttl,
        alerts=AlertWebhook(service.rt.config, alerts or InProcessAlerts(service)),
    )


# Commands run in worker processes unless AIOPS_COMMAND_WORKERS says otherwise (0 =
# threads of the server process). Measured with `python -m bench ack` (bench/README.md):
# on threads each command's CPU (~3 ms) takes the GIL from the event loop that acks.
DEFAULT_COMMAND_WORKERS = 2


def command_pool(settings: Settings) -> Workers | None:
    """The worker processes: on PostgreSQL they take jobs from the durable queue, on
    SQLite the server feeds them over pipes; none (threads) with 0."""
    from bot.serve.queue import uses_queue
    from bot.serve.workers import CommandPool, WorkersError, workers_from_env

    try:
        n = workers_from_env(default=DEFAULT_COMMAND_WORKERS)
    except WorkersError as exc:
        raise ServeError(str(exc)) from None
    if not n:
        return None
    if uses_queue(settings.db_url):
        from bot.serve.queue_workers import QueueWorkers

        return QueueWorkers(settings, n)
    return CommandPool(settings, n)


@dataclass
class Server:
    """What `serve` runs: the Bolt app, the database `/healthz` checks, the platform's name,
    the start-up work and the command workers."""

    settings: Settings
    bolt: AsyncApp
    engine: Engine | None
    platform: str
    startup: StartUp
    pool: Workers | None
    queue: CommandQueue | None = None
    alerts: AlertWebhook | None = None

    def asgi(self) -> Starlette:
        return asgi(
            self.bolt,
            engine=self.engine,
            platform=self.platform,
            startup=self.startup,
            pool=self.pool,
            queue=self.queue,
            lease_ttl=timedelta(seconds=self.settings.lease_seconds),
            alerts=self.alerts,
        )


def build_server(settings: Settings) -> Server:
    token = require_token(settings)
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise ServeError(
            "SLACK_SIGNING_SECRET is not set; HTTP mode cannot verify Slack's requests."
        )
    signing_secret = settings.slack_signing_secret or "unused-in-socket-mode"
    pool = command_pool(settings)
    if pool is None:
        from bot.slack.app import build_app

        service = make_service(settings)
        bolt = build_app(
            service,
            bot_token=token,
            signing_secret=signing_secret,
            api_base_url=settings.slack_api_base_url,
        )
        background = InProcessScheduler(service, lambda: make_scheduler(service))
        engine = getattr(service.rt.store, "engine", None)
        alerts = AlertWebhook(service.rt.config, InProcessAlerts(service))
        return Server(
            settings,
            bolt,
            engine,
            service.rt.platform.name,
            StartUp(background),
            None,
            alerts=alerts,
        )
    from bot.serve.scheduler_process import SchedulerProcess
    from bot.serve.workers import CommandPool
    from bot.slack.app import build_bolt
    from bot.wiring import checked_config, open_database

    config = checked_config(settings)
    engine = open_database(settings)  # migrated before any worker starts
    startup = StartUp(SchedulerProcess(settings))
    if isinstance(pool, CommandPool):
        bolt = build_bolt(
            config,
            bot_token=token,
            signing_secret=signing_secret,
            api_base_url=settings.slack_api_base_url,
            runner=pool.run,
            refused=pool.refused,
        )
        return Server(
            settings,
            bolt,
            engine,
            config.platform,
            startup,
            pool,
            alerts=AlertWebhook(config, pool),
        )
    from bot.serve.queue import CommandQueue

    queue = CommandQueue(settings)

    async def not_here(inv: Invocation, click: bool, respond: AsyncRespond) -> None:
        raise RuntimeError("commands go to the durable queue")  # submit is always given

    bolt = build_bolt(
        config,
        bot_token=token,
        signing_secret=signing_secret,
        api_base_url=settings.slack_api_base_url,
        runner=not_here,
        refused=queue.refused,
        submit=queue.take,
    )
    alerts = AlertWebhook(config, queue)
    return Server(settings, bolt, engine, config.platform, startup, pool, queue, alerts)


def serve(settings: Settings) -> None:
    import gc
    import signal
    import sys

    import uvicorn

    # Acks run on the event loop while start-up work (and, without worker processes,
    # commands) run on threads. With the default 5 ms switch interval the loop, which gives
    # up the GIL at every socket call, waits up to 5 ms to get it back each time.
    sys.setswitchinterval(0.0005)
    server = build_server(settings)
    if settings.slack_app_token:
        asyncio.run(_socket_mode(server))
        return
    log.info(
        "serving HTTP on %s:%d (platform %s, commands on %s)",
        settings.host,
        settings.port,
        server.platform,
        f"{server.pool.workers} worker process(es)" if server.pool else "threads",
    )
    app = server.asgi()
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the
    # handler it found: a clean exit (0, finalizers run) rather than death by signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Everything built so far (modules, config, metadata) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it, which otherwise
    # stalls the event loop for tens of milliseconds now and then under load.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


def socket_mode_handler(bolt: AsyncApp, app_token: str) -> Any:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    return AsyncSocketModeHandler(bolt, app_token)


async def _socket_mode(server: Server) -> None:
    if server.queue is not None:
        await server.queue.open()
    started = asyncio.get_running_loop().run_in_executor(None, server.startup.run)
    if server.pool is not None:
        server.pool.start()
    log.info("connecting to Slack in Socket Mode (platform %s)", server.platform)
    try:
        await socket_mode_handler(server.bolt, server.settings.slack_app_token or "").start_async()
    finally:
        await started
        await asyncio.to_thread(server.startup.shutdown)
        if server.pool is not None:
            await server.pool.aclose()
        if server.queue is not None:
            await server.queue.close()
