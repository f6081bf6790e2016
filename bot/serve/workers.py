"""Commands in worker processes: `AIOPS_COMMAND_WORKERS=N`.

Why: acks run on the event loop, and a command costs several times the CPU of an ack
(ORM work, rendering, redaction). On threads of the same interpreter every command takes
the GIL from the loop that must ack; in another process it takes a core the operating
system shares fairly, and the workers run at idle priority (`nice`, and on Linux
SCHED_IDLE), so an ack never waits behind queued commands.

Each worker builds its own runtime and service once (the same settings and environment
as the server: config, database, platform, Slack notifier and user groups) and then runs
`bot.slack.answer.answer` for each command and posts the reply to the command's
`response_url` itself. SQLite (WAL, `BEGIN IMMEDIATE`, a busy timeout) and PostgreSQL are
shared safely between processes, and the sandbox platform keeps its state in the database.

The pool talks to each worker over its own pipe, from the event loop (`add_reader`): no
thread in the server, which `ProcessPoolExecutor`'s manager and feeder threads were (they
took the GIL from the loop several times a command; bench/README.md). A job goes to the
least busy worker, at most `DEPTH` at a time each; the rest wait in the server. A worker
that dies fails only the jobs it held (their users are told) and is replaced.

A change's background work (polling its operation) runs in the worker that accepted it;
a worker finishes that work before it exits when the pool closes. If a worker dies, a
change it was polling is picked up by `execution.resume` at the next start.

Workers ignore SIGINT / SIGTERM: the server closes the pool itself, after uvicorn has
stopped taking requests, and every command already acked is run first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncRespond

from bot.settings import Settings
from commands.messages import Reply
from commands.model import Invocation

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from bot.slack.answer import Answer
    from commands.service import Service

log = logging.getLogger(__name__)

ENV: str = "AIOPS_COMMAND_WORKERS"
# Imported once by the forkserver, before it forks any worker or the scheduler process:
# each starts with them loaded and shares their pages (bench ack: memory).
PRELOAD = (
    "bot.serve.server",
    "bot.serve.queue_workers",
    "bot.wiring",
    "bot.slack.answer",
    "bot.store.sql_store",
    "bot.store.canary_store",
    "bot.store.incident_store",
    "bot.store.people",
    "bot.platforms.sandbox",
    "bot.scheduler",
    "commands.service",
)
NICE: int = 10  # children yield the CPU to the server process, which acks (0: they do not)
DEPTH: int = 2  # jobs sent to a worker at a time: one running, one ready behind it
STOP_TIMEOUT: float = 120.0  # seconds for acked commands and changes' polling at shutdown

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


def die_with(server: int) -> None:
    """End this process when the `serve` process `server` ends, however it ends (kill -9
    included): a restarted server must never find the old one's workers still running.

    Not the parent-death signal: children are forked by multiprocessing's forkserver,
    which outlives a killed server for as long as any child holds its pipe. A pidfd
    (Linux ≥ 5.3) becomes readable when the server exits; elsewhere the server is polled
    each second."""
    try:
        fd: int | None = os.pidfd_open(server)
    except (AttributeError, OSError):
        fd = None
    try:
        os.kill(server, 0)
    except ProcessLookupError:
        os._exit(1)

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])
            os._exit(1)
        while True:
            time.sleep(1.0)
            try:
                os.kill(server, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, name="server-watchdog", daemon=True).start()


def name_process(title: str) -> None:
    """Name this process as `ps`, `top` and `/proc/PID/comm` show it (Linux, at most 15
    characters): a worker and the scheduler process are told apart from the forkserver
    they were forked from, whose command line they share. Elsewhere: nothing."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w", encoding="ascii") as comm:
        comm.write(title[:15])


def child_service(
    settings: Settings,
    nice: int,
    *,
    idle: bool = False,
    server: int | None = None,
    title: str = "aiops-worker",
) -> Service:
    """In a worker or the scheduler process: name the process (`title`), die with the
    `serve` process `server`, ignore the signals the server handles (it stops its
    children itself), lower the priority (`idle`: Linux's SCHED_IDLE, CPU only when
    nothing else wants it), log as the server does (JSON lines, PII masked), and build
    the service with its Slack clients."""
    name_process(title)
    if server is not None:
        die_with(server)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if nice:
        with contextlib.suppress(OSError):  # not permitted: run at the server's priority
            os.nice(nice)
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    from bot.logs import setup_logging
    from bot.slack.answer import attach_groups
    from bot.wiring import make_service

    setup_logging(settings.log_level)
    service = make_service(settings)
    attach_groups(service, settings.slack_bot_token or "", settings.slack_api_base_url)
    return service


def _init(settings: Settings, nice: int, server: int | None = None) -> None:
    """Runs once in each worker: build the service the commands will use."""
    global _service
    # Commands wait for idle CPU: an ack has Slack's 3 s, a command's reply 30 minutes
    # (its response_url), and on two cores a busy worker slowed the acks by a third
    # (bench ack: p99 / floor 1.57–1.62 at 128 clients at nice 10, 0.80–1.11 idle).
    _service = child_service(settings, nice, idle=bool(nice), server=server)


def run_command(
    inv: Invocation, click: bool, response_url: str | None, home: bool = False
) -> Answer | None:
    """In a worker: one command, its reply rendered and posted to `response_url` from
    here, so the server process only acks. Without a URL the answer goes back (a form's
    submission: the server sends it as a DM), or `home`: it is shown on the Home tab."""
    from bot.slack.answer import answer

    assert _service is not None, "the worker's initializer did not run"
    out = answer(_service, inv, click, home=home)
    if out is None or not response_url:
        return out
    try:
        from bot.slack.clients import webhook_client

        resp = webhook_client(response_url).send_dict(out.payload)
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


def receive_alert_job(job: dict[str, Any]) -> bool:
    """In a worker: one Cloud Monitoring notice (`bot.alerts.webhook.run_alert`); True
    when it was new to the bot."""
    from bot.alerts.webhook import run_alert

    assert _service is not None, "the worker's initializer did not run"
    return run_alert(_service.rt, job)


def record_alert_refusal(report: dict[str, Any]) -> None:
    """In a worker: audit refused alert webhook requests."""
    from bot.alerts.webhook import record_alert_refusal as record

    assert _service is not None, "the worker's initializer did not run"
    record(_service.rt, report)


def _ready() -> int:
    return os.getpid()


def _worker_main(conn: Connection, settings: Settings, nice: int, server: int) -> None:
    """A worker: build the service, then run jobs from the pipe until told to stop."""
    _init(settings, nice, server)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server is gone
            break
        if message is None:
            break
        job_id, fn, args = message
        try:
            reply = (job_id, True, fn(*args))
        except Exception as exc:
            log.exception("job %s failed in a worker", getattr(fn, "__name__", fn))
            reply = (job_id, False, f"{type(exc).__name__}: {exc}"[:300])
        try:
            conn.send(reply)
        except OSError:
            break
        except Exception as exc:  # a result that does not pickle
            conn.send((job_id, False, f"unsendable result: {type(exc).__name__}"))
    if _service is not None:  # a change this worker started finishes polling first
        try:
            _service.rt.background.wait_idle(STOP_TIMEOUT)
        except Exception:
            log.exception("background work failed while a worker stopped")


def context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """How the workers and the scheduler process start. forkserver: they fork from a clean
    server process (no threads, no event loop, no open connections inherited), which is
    cheaper than spawn; spawn where absent."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


class WorkerDied(RuntimeError):
    pass


class WorkerFailed(RuntimeError):
    pass


@dataclass
class _Job:
    id: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


@dataclass
class _Worker:
    proc: BaseProcess
    conn: Connection
    held: dict[int, _Job] = field(default_factory=dict)
    alive: bool = True
    done: int = 0


class CommandPool:
    """N worker processes running commands; `run` is the Bolt app's runner, `refused` its
    workspace refusal. Used from the event loop it is attached to."""

    def __init__(self, settings: Settings, workers: int, *, nice: int = NICE) -> None:
        if workers < 1:
            raise WorkersError("a command pool needs at least one process")
        self.settings = settings
        self.workers = workers
        self.nice = nice
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: list[_Worker] = []
        self._waiting: deque[_Job] = deque()
        self._ids = itertools.count(1)
        self._closed = False
        self._failures = 0  # workers in a row that died before finishing a job

    # life -------------------------------------------------------------------------------

    def alive(self) -> int:
        return sum(1 for w in self._slots if w.alive)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def start(self) -> None:
        """Start the workers now (each builds its service) rather than at the first job."""
        if self._closed:  # e.g. the warm-up timer of a server stopped within a second
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while len(self._slots) < self.workers:
            self._slots.append(self._spawn())

    def _spawn(self) -> _Worker:
        assert self._loop is not None
        ctx = context()
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(child, self.settings, self.nice, os.getpid()),
            name="aiops-worker",
        )
        proc.start()
        child.close()
        worker = _Worker(proc, parent)
        self._loop.add_reader(parent.fileno(), self._readable, worker)
        self._loop.add_reader(proc.sentinel, self._died, worker)
        return worker

    async def aclose(self, timeout: float = STOP_TIMEOUT) -> None:
        """Take no more jobs; run those already taken (their commands were acked), then
        stop the workers, which finish their background work first."""
        self._closed = True
        pending = [j.future for j in self._waiting]
        pending += [j.future for w in self._slots for j in w.held.values()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for w in self._slots:
            if w.alive:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
                self._forget(w)  # its exit is expected now
        for w in self._slots:
            await asyncio.to_thread(w.proc.join, timeout)
            if w.proc.is_alive():
                log.error("a command worker did not stop in %.0f s; killing it", timeout)
                w.proc.kill()
        for job in self._waiting:
            if not job.future.done():
                job.future.set_exception(WorkerDied("the bot stopped before it ran"))
        self._waiting.clear()

    def wait_ready(self, timeout: float = 60.0) -> set[int]:
        """From another thread: block until every worker has answered once; their ids."""
        if self._loop is None:
            raise RuntimeError("the command pool is not attached to an event loop")
        return asyncio.run_coroutine_threadsafe(self.ready(), self._loop).result(timeout)

    async def ready(self) -> set[int]:
        self._started()
        asked = [self._send_to(w, _ready, ()) for w in self._slots if w.alive]
        return set(await asyncio.gather(*asked))

    # jobs -------------------------------------------------------------------------------

    async def run(self, inv: Invocation, click: bool, respond: AsyncRespond) -> None:
        """The Bolt app's runner: the worker runs the command and responds itself."""
        try:
            from bot.slack.app import on_home

            out = await self.call(run_command, inv, click, respond.response_url, on_home(respond))
        except (WorkerDied, WorkerFailed) as exc:
            # The command may or may not have run, so it is not retried.
            log.error("a command worker failed running %s: %s", inv.command, exc)
            out = _went_wrong()
        if out is not None:
            from bot.slack.app import answer_on

            await answer_on(respond, out.payload)

    async def refused(self, user: str, team: str | None, enterprise: str | None) -> None:
        """The Bolt app's `refused`: the audit row is written by a worker."""
        try:
            await self.call(record_refusal, user, team, enterprise)
        except (WorkerDied, WorkerFailed) as exc:  # still refused; the row is missing
            log.error("could not audit a refused workspace (%s, %s): %s", team, enterprise, exc)

    async def take_alert(self, job: dict[str, Any]) -> bool:
        """`AlertSink.take_alert`: a worker records the notice (and posts or updates its
        message) before this returns, so the webhook's 2xx follows a stored row; a
        repeat is recognised there, by the store. Raises `AlertNotTaken` when the worker
        failed or died (the webhook answers 503 and the notice comes again). False when the
        notice changed nothing that shows (a duplicate)."""
        from bot.alerts.webhook import AlertNotTaken

        try:
            return bool(await self.call(receive_alert_job, job))
        except (WorkerDied, WorkerFailed) as exc:
            raise AlertNotTaken(str(exc)) from None

    async def alert_refused(self, report: dict[str, Any]) -> None:
        """`AlertSink.alert_refused`: the audit row is written by a worker."""
        try:
            await self.call(record_alert_refusal, report)
        except (WorkerDied, WorkerFailed) as exc:
            log.error("could not audit %s refused alert request(s): %s", report.get("count"), exc)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` (a module-level function) in a worker."""
        if self._closed:
            raise WorkerDied("the bot is stopping")
        self._started()
        assert self._loop is not None
        job = _Job(next(self._ids), fn, args, self._loop.create_future())
        self._waiting.append(job)
        self._pump()
        return await job.future

    def _started(self) -> None:
        if not self._slots:
            self.start()

    async def _send_to(self, w: _Worker, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        assert self._loop is not None
        job = _Job(next(self._ids), fn, args, self._loop.create_future())
        self._send(w, job)
        return await job.future

    def _send(self, w: _Worker, job: _Job) -> None:
        w.held[job.id] = job
        w.conn.send((job.id, job.fn, job.args))

    def _pump(self) -> None:
        """Hand waiting jobs to the least busy workers, up to DEPTH each."""
        while self._waiting:
            live = [w for w in self._slots if w.alive and len(w.held) < DEPTH]
            if not live:
                return
            w = min(live, key=lambda x: len(x.held))
            job = self._waiting.popleft()
            if job.future.done():  # its caller went away
                continue
            try:
                self._send(w, job)
            except OSError:  # the worker is gone: fail what it held, replace it
                w.held.pop(job.id, None)
                self._waiting.appendleft(job)
                self._died(w)

    def _readable(self, w: _Worker) -> None:
        try:
            while w.alive and w.conn.poll():
                job_id, ok, value = w.conn.recv()
                job = w.held.pop(job_id, None)
                w.done += 1
                self._failures = 0
                if job is None or job.future.done():
                    continue
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(WorkerFailed(value))
        except (EOFError, OSError):  # it is exiting: its sentinel calls _died
            assert self._loop is not None
            self._loop.remove_reader(w.conn.fileno())
            return
        self._pump()

    def _died(self, w: _Worker) -> None:
        if not w.alive:
            return
        self._forget(w)
        w.proc.join(0)  # its sentinel fired: it has exited
        log.error(
            "a command worker (pid %s) died with exit code %s holding %d job(s)",
            w.proc.pid,
            w.proc.exitcode,
            len(w.held),
        )
        for job in w.held.values():
            if not job.future.done():
                job.future.set_exception(WorkerDied(f"exit code {w.proc.exitcode}"))
        w.held.clear()
        if self._closed:
            return
        if not w.done:
            self._failures += 1
        # One that dies before finishing anything (a database down at start, say) is
        # replaced after a growing pause, not in a tight loop.
        delay = 0.0 if not self._failures else min(30.0, 0.5 * 2 ** (self._failures - 1))
        assert self._loop is not None
        self._loop.call_later(delay, self._replace, w)

    def _replace(self, old: _Worker) -> None:
        if self._closed or old not in self._slots:
            return
        self._slots[self._slots.index(old)] = self._spawn()
        self._pump()

    def _forget(self, w: _Worker) -> None:
        w.alive = False
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(w.conn.fileno())
            with contextlib.suppress(Exception):
                self._loop.remove_reader(w.proc.sentinel)
        with contextlib.suppress(OSError):
            w.conn.close()


def _went_wrong() -> Answer:
    from bot.slack.answer import Answer
    from bot.slack.blocks import render_message

    reply = Reply.refusal(
        "something went wrong on our side; the command may not have finished",
        hint="See `/aiops changes` before trying again; the error is logged.",
    )
    return Answer({"response_type": "ephemeral", **render_message(reply)})
