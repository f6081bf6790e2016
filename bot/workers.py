"""Commands in worker processes: `AIOPS_COMMAND_WORKERS=N`.

Why: acks run on the event loop, and a command costs several times the CPU of an ack
(ORM work, rendering, redaction). On threads of the same interpreter every command takes
the GIL from the loop that must ack; in another process it takes a core the operating
system shares fairly, and the workers run at a lower priority (`nice`), so an ack never
waits behind queued commands.

Each worker builds its own runtime and service once (the same settings and environment
as the server: config, database, platform, Slack notifier and user groups) and then runs
`bot.slack.app.answer` for each command: the reply comes back rendered, as a pickled
`Answer`. SQLite (WAL, `BEGIN IMMEDIATE`, a busy timeout) and PostgreSQL are shared
safely between processes, and the sandbox platform keeps its state in the database.

What stays in the server process: resuming changes left running at start
(`execution.resume`), the scheduler (digests, expiry, canary watch), `/healthz` and the
workspace check. A change's background work (polling its operation) runs in the worker
that accepted it; a worker finishes that work before it exits when the pool shuts down
(its executor threads are joined on the way out). If a worker dies, a change it was
polling is picked up by `execution.resume` at the next start, as after any crash.

Workers ignore SIGINT / SIGTERM: the server shuts the pool down itself, after uvicorn has
stopped taking requests, so a Ctrl-C does not kill a command half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncRespond
from slack_sdk.webhook import WebhookClient

from bot.settings import Settings
from commands.messages import Reply
from commands.model import Invocation

if TYPE_CHECKING:
    from bot.slack.answer import Answer
    from commands.service import Service

log = logging.getLogger(__name__)

ENV: str = "AIOPS_COMMAND_WORKERS"
# Imported once by the forkserver, before it forks any worker or the scheduler process:
# each starts with them loaded and shares their pages (bench ack: memory).
PRELOAD = (
    "bot.server",
    "bot.wiring",
    "bot.slack.answer",
    "bot.store.sql_store",
    "bot.store.canary_store",
    "bot.store.people",
    "bot.platforms.sandbox",
    "bot.scheduler",
    "commands.service",
)
NICE: int = 10  # workers yield the CPU to the server process, which acks

_service: Service | None = None


class WorkersError(ValueError):
    pass


def workers_from_env(env: dict[str, str] | None = None, default: int = 0) -> int:
    """`AIOPS_COMMAND_WORKERS`: N worker processes, 0 for threads in the server process."""
    raw = (os.environ if env is None else env).get(ENV, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise WorkersError(f"{ENV}={raw!r} is not a number of processes (0 = threads)") from None
    if not 0 <= n <= 64:
        raise WorkersError(f"{ENV}={n} is out of range (0 = threads, at most 64 processes)")
    return n


def _init(settings: Settings, nice: int) -> None:
    """Runs once in each worker: build the service the commands will use."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if nice:
        with contextlib.suppress(OSError):  # not permitted: run at the server's priority
            os.nice(nice)
    # The server's logging (JSON lines, PII masked), not the default handler.
    from bot.logs import setup_logging
    from bot.server import make_service
    from bot.slack.answer import attach_groups

    setup_logging(settings.log_level)
    global _service
    _service = make_service(settings)
    attach_groups(_service, settings.slack_bot_token or "", settings.slack_api_base_url)


def run_command(inv: Invocation, click: bool, response_url: str | None) -> Answer | None:
    """In a worker: one command, its reply rendered and posted to `response_url` from
    here, so the server process only acks. Without a URL the answer goes back."""
    from bot.slack.answer import answer

    assert _service is not None, "the worker's initializer did not run"
    out = answer(_service, inv, click)
    if not response_url:
        return out
    try:
        resp = WebhookClient(response_url).send_dict(out.payload)
    except Exception:
        log.exception("could not answer %s on its response_url", inv.command)
        return None
    if resp.status_code != 200:
        log.warning("response_url answered %s to %s", resp.status_code, inv.command)
    return None


def record_refusal(user: str, team: str | None, enterprise: str | None) -> None:
    """In a worker: audit a request from another workspace."""
    from bot.slack.app import record_refusal as record

    assert _service is not None, "the worker's initializer did not run"
    record(_service, user, team, enterprise)


def _ready() -> int:
    return os.getpid()


def context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """How the workers and the scheduler process start. forkserver: they fork from a clean
    server process (no threads, no event loop, no open connections inherited), which is
    cheaper than spawn; spawn where absent."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


class CommandPool:
    """N worker processes running commands; `run` is the Bolt app's runner."""

    def __init__(self, settings: Settings, workers: int, *, nice: int = NICE) -> None:
        if workers < 1:
            raise WorkersError("a command pool needs at least one process")
        self.settings = settings
        self.workers = workers
        self.nice = nice
        self._lock = threading.Lock()
        # Made on first use: even an idle pool starts multiprocessing's resource tracker
        # (another interpreter), which would slow the server's start-up.
        self._made: ProcessPoolExecutor | None = None

    @property
    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._made is None:
                self._made = self._new_pool()
            return self._made

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context(),
            initializer=_init,
            initargs=(self.settings, self.nice),
        )

    def start(self) -> None:
        """Start the workers now (each builds its service) rather than at the first command."""
        for _ in range(self.workers):
            self._pool.submit(_ready)

    def wait_ready(self, timeout: float = 60.0) -> set[int]:
        """Block until every worker has answered once; their process ids."""
        futures = [self._pool.submit(_ready) for _ in range(self.workers * 2)]
        return {f.result(timeout=timeout) for f in futures}

    async def run(self, inv: Invocation, click: bool, respond: AsyncRespond) -> None:
        """The Bolt app's runner: the worker runs the command and responds itself."""
        out = await self._call(inv, click, respond.response_url)
        if out is not None:
            await respond(**out.payload)

    async def refused(self, user: str, team: str | None, enterprise: str | None) -> None:
        """The Bolt app's `refused`: the audit row is written by a worker."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, record_refusal, user, team, enterprise)

    async def _call(self, inv: Invocation, click: bool, url: str | None) -> Answer | None:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(pool, run_command, inv, click, url)
        except BrokenProcessPool:
            # A worker died (killed, out of memory). The command may or may not have run,
            # so it is not retried; later commands get a fresh pool.
            log.error("a command worker died running %s; restarting the pool", inv.command)
            with self._lock:
                if self._made is pool:
                    self._made = self._new_pool()
            reply = Reply.refusal(
                "something went wrong on our side; the command may not have finished",
                hint="See `/aiops changes` before trying again; the error is logged.",
            )
            from bot.slack.answer import Answer
            from bot.slack.blocks import render_message

            return Answer({"response_type": "ephemeral", **render_message(reply)})

    def shutdown(self) -> None:
        """Stop taking commands; wait for those running and each worker's background work."""
        with self._lock:
            made = self._made
        if made is not None:
            made.shutdown(wait=True, cancel_futures=True)
