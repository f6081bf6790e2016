"""`aiops-bot serve`: HTTP (`POST /slack/events`, `GET /healthz`) under uvicorn, or Socket
Mode when an app token is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk import WebClient
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.settings import Settings
from bot.slack.app import build_app
from bot.slack.notifier import SlackNotifier
from bot.wiring import build_runtime
from commands import execution
from commands.service import Service

if TYPE_CHECKING:
    from bot.scheduler import Scheduler
    from bot.workers import CommandPool

log = logging.getLogger(__name__)


POOL_WARMUP_DELAY = 1.0  # seconds after start-up


class ServeError(RuntimeError):
    pass


def make_service(settings: Settings, **kw: Any) -> Service:
    if not settings.slack_bot_token:
        raise ServeError(
            "SLACK_BOT_TOKEN is not set. `aiops-bot serve` talks to Slack; to try the bot"
            " without Slack, run `aiops-bot console`."
        )
    client = WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_base_url or WebClient.BASE_URL,
    )
    rt = build_runtime(settings, SlackNotifier(client), **kw)
    return Service(rt)


def make_scheduler(service: Service) -> Scheduler:
    """Digests, approval expiry and scheduled changes, once across replicas (bot/scheduler.py)."""
    from bot.scheduler import Scheduler

    engine = getattr(service.rt.store, "engine", None)
    if engine is None:
        raise ServeError("the scheduler needs the SQL store (its run keys live in the database)")
    from commands import canary

    scheduler = Scheduler(service.rt, engine)
    # The canary watch: every 30 s it runs the checks that are due; each canary is judged
    # every `[canary] interval` (default 5 min), claimed by compare-and-set in its watch row.
    scheduler.add_interval("canary", 30, canary.check_due)
    return scheduler


def make_asgi(
    service: Service,
    bolt: AsyncApp,
    *,
    scheduler: Scheduler | None = None,
    pool: CommandPool | None = None,
) -> Starlette:
    """`pool`: the command worker processes, started and shut down with the app."""
    handler = AsyncSlackRequestHandler(bolt)
    rt = service.rt

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_: Request) -> Response:
        def probe() -> None:
            engine = getattr(rt.store, "engine", None)
            if engine is not None:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))

        try:
            await asyncio.to_thread(probe)
        except Exception as exc:
            return JSONResponse({"ok": False, "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"ok": True, "platform": rt.platform.name})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        resumed = await asyncio.to_thread(execution.resume, rt)
        if resumed:
            log.info("resumed %d change(s) left running or approved", resumed)
        if scheduler is not None:
            await asyncio.to_thread(scheduler.start)
        if pool is not None:
            # Warm the workers once the server answers: spawning them during start-up would
            # take the cores the server needs to get ready. A command before then starts
            # them on demand.
            asyncio.get_running_loop().call_later(POOL_WARMUP_DELAY, pool.start)
        try:
            yield
        finally:
            if scheduler is not None:
                await asyncio.to_thread(scheduler.shutdown)
            if pool is not None:
                await asyncio.to_thread(pool.shutdown)

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


# Commands run in worker processes unless AIOPS_COMMAND_WORKERS says otherwise (0 =
# threads of the server process). Measured with `python -m bench ack` (bench/README.md):
# on threads each command's CPU (~3 ms) takes the GIL from the event loop that acks.
DEFAULT_COMMAND_WORKERS = 2


def command_pool(settings: Settings) -> CommandPool | None:
    from bot.workers import CommandPool, WorkersError, workers_from_env

    try:
        n = workers_from_env(default=DEFAULT_COMMAND_WORKERS)
    except WorkersError as exc:
        raise ServeError(str(exc)) from None
    return CommandPool(settings, n) if n else None


def serve(settings: Settings) -> None:
    import gc
    import sys

    import uvicorn

    # Acks run on the event loop while commands run on worker threads. With the default
    # 5 ms switch interval the loop, which gives up the GIL at every socket call, waits up
    # to 5 ms to get it back from a busy worker each time: acks queue behind commands.
    sys.setswitchinterval(0.0005)
    service = make_service(settings)
    socket_mode = bool(settings.slack_app_token)
    if not socket_mode and not settings.slack_signing_secret:
        raise ServeError(
            "SLACK_SIGNING_SECRET is not set; HTTP mode cannot verify Slack's requests."
        )
    pool = command_pool(settings)
    bolt = build_app(
        service,
        bot_token=settings.slack_bot_token or "",
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        api_base_url=settings.slack_api_base_url,
        socket_mode=socket_mode,
        runner=pool.run if pool else None,
    )
    scheduler = make_scheduler(service)
    if socket_mode:
        asyncio.run(_socket_mode(service, bolt, settings, scheduler, pool))
        return
    asgi = make_asgi(service, bolt, scheduler=scheduler, pool=pool)
    log.info(
        "serving HTTP on %s:%d (platform %s, commands on %s)",
        settings.host,
        settings.port,
        service.rt.platform.name,
        f"{pool.workers} worker process(es)" if pool else "threads",
    )
    # Everything built so far (modules, ORM metadata, config) lives as long as the process:
    # out of the collector's sight, a full collection no longer walks it, which otherwise
    # stalls the event loop for tens of milliseconds now and then under load.
    gc.collect()
    gc.freeze()
    uvicorn.run(asgi, host=settings.host, port=settings.port, log_level="warning", access_log=False)


def socket_mode_handler(bolt: AsyncApp, app_token: str) -> Any:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    return AsyncSocketModeHandler(bolt, app_token)


async def _socket_mode(
    service: Service,
    bolt: AsyncApp,
    settings: Settings,
    scheduler: Scheduler | None = None,
    pool: CommandPool | None = None,
) -> None:
    await asyncio.to_thread(execution.resume, service.rt)
    if scheduler is not None:
        await asyncio.to_thread(scheduler.start)
    if pool is not None:
        pool.start()
    log.info("connecting to Slack in Socket Mode (platform %s)", service.rt.platform.name)
    try:
        await socket_mode_handler(bolt, settings.slack_app_token or "").start_async()
    finally:
        if scheduler is not None:
            await asyncio.to_thread(scheduler.shutdown)
        if pool is not None:
            await asyncio.to_thread(pool.shutdown)
