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

log = logging.getLogger(__name__)


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


def make_asgi(service: Service, bolt: AsyncApp, *, scheduler: Scheduler | None = None) -> Starlette:
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
        try:
            yield
        finally:
            if scheduler is not None:
                await asyncio.to_thread(scheduler.shutdown)

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def serve(settings: Settings) -> None:
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
    bolt = build_app(
        service,
        bot_token=settings.slack_bot_token or "",
        signing_secret=settings.slack_signing_secret or "unused-in-socket-mode",
        api_base_url=settings.slack_api_base_url,
        socket_mode=socket_mode,
    )
    scheduler = make_scheduler(service)
    if socket_mode:
        asyncio.run(_socket_mode(service, bolt, settings, scheduler))
        return
    asgi = make_asgi(service, bolt, scheduler=scheduler)
    log.info(
        "serving HTTP on %s:%d (platform %s)",
        settings.host,
        settings.port,
        service.rt.platform.name,
    )
    uvicorn.run(asgi, host=settings.host, port=settings.port, log_level="warning", access_log=False)


def socket_mode_handler(bolt: AsyncApp, app_token: str) -> Any:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    return AsyncSocketModeHandler(bolt, app_token)


async def _socket_mode(
    service: Service, bolt: AsyncApp, settings: Settings, scheduler: Scheduler | None = None
) -> None:
    await asyncio.to_thread(execution.resume, service.rt)
    if scheduler is not None:
        await asyncio.to_thread(scheduler.start)
    log.info("connecting to Slack in Socket Mode (platform %s)", service.rt.platform.name)
    try:
        await socket_mode_handler(bolt, settings.slack_app_token or "").start_async()
    finally:
        if scheduler is not None:
            await asyncio.to_thread(scheduler.shutdown)
