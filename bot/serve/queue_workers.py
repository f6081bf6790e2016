"""Command workers on the durable queue (PostgreSQL): N processes of one replica, each a
procrastinate worker taking jobs from the `commands` queue of the bot's database.

Why processes, as `bot/serve/workers.py`: a command's CPU stays off the event loop that
acks. Why procrastinate's worker instead of a pipe from the server: a job a server has
acked is in the database, so a dead server loses nothing, and a job is taken by a live
worker of any replica (`bot/serve/queue.py`).

Lifetimes: the server starts the workers and replaces one that dies (after a growing
pause when they die before starting, so a database that is down does not spin). A worker
dies with its server, however the server ends (`bot.serve.workers.die_with`). SIGTERM (the server stopping) lets a worker
finish the job it runs and the changes it polls (up to `STOP_TIMEOUT`), then exit.

Each worker also sweeps (every `SWEEP_EVERY` s): jobs of workers that stopped
heartbeating are failed and their requesters told (never run twice), stale workers are
pruned, and finished jobs past their retention are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.serve.queue import (
    ALERT_REFUSED_TASK,
    ALERT_TASK,
    HEARTBEAT,
    QUEUE,
    REFUSED_TASK,
    RETENTION,
    STALLED_AFTER,
    SWEEP_EVERY,
    TASK,
    from_job,
    queue_app,
    refusal_from_job,
)
from bot.serve.workers import NICE, STOP_TIMEOUT, WorkersError, child_service, context
from bot.settings import Settings

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.synchronize import Event

    import procrastinate
    from slack_sdk import WebClient

    from commands.service import Service

log = logging.getLogger(__name__)

# An alert job runs at most this many times: one that raised (its store failed) again
# after 2, 4, 8, 16 s; one whose worker died is put back by the sweep.
ALERT_ATTEMPTS = 5

# ---------------------------------------------------------------------- in a worker


def _respond(
    response_url: str | None,
    payload: dict[str, Any],
    what: str,
    dm: str | None = None,
    slack: WebClient | None = None,
) -> None:
    """Answer on the response URL; without one (a form's submission), in a direct
    message to `dm` through the bot's `slack` client."""
    if not response_url:
        if dm and slack is not None:
            from bot.slack.answer import direct_message

            direct_message(slack, dm, payload, what)
        return
    try:
        from bot.slack.clients import webhook_client

        resp = webhook_client(response_url).send_dict(payload)
    except Exception:
        log.exception("could not answer %s on its response_url", what)
        return
    if resp.status_code != 200:
        log.warning("response_url answered %s to %s", resp.status_code, what)


def register_tasks(
    app: procrastinate.App, service: Service, slack: WebClient | None = None
) -> None:
    """The tasks a worker runs, bound to its service; `slack` (the bot's Web API client)
    answers a command that came without a response URL."""
    import procrastinate

    from bot.slack.answer import answer, delivered
    from bot.slack.app import record_refusal

    @app.task(name=TASK, queue=QUEUE)
    def command(
        inv: dict[str, Any],
        click: bool,
        response_url: str | None,
        key: str,
        refusal: dict[str, Any] | None = None,
        dm: str | None = None,
    ) -> None:
        invocation = from_job(inv)
        refused = refusal_from_job(refusal)
        # the Home tab (its event or a click there): answered on it; a form's submission
        # (no response URL either) is answered in a DM
        home = not response_url and not dm
        if refused is not None:
            reply = service.refused(invocation, refused)
            out = delivered(service, invocation, reply, click, home=home)
        else:
            out = answer(service, invocation, click, home=home)
        if out is not None:
            _respond(response_url, out.payload, invocation.command, dm, slack)

    @app.task(name=REFUSED_TASK, queue=QUEUE)
    def workspace_refused(user: str, team: str | None, enterprise: str | None) -> None:
        record_refusal(service, user, team, enterprise)

    # A notice already answered 2xx is the bot's to finish: a store that failed is tried
    # again (receive_alert is idempotent: recorded once, posted once).
    retry = procrastinate.RetryStrategy(max_attempts=ALERT_ATTEMPTS - 1, exponential_wait=2)

    @app.task(name=ALERT_TASK, queue=QUEUE, retry=retry)
    def alert(notice: dict[str, Any], key: str) -> None:
        from bot.alerts.webhook import run_alert

        run_alert(service.rt, notice)

    @app.task(name=ALERT_REFUSED_TASK, queue=QUEUE)
    def alert_refused(report: dict[str, Any]) -> None:
        from bot.alerts.webhook import record_alert_refusal

        record_alert_refusal(service.rt, report)


def _stopped_answer(command: str) -> dict[str, Any]:
    from bot.slack.blocks import render_message
    from commands.messages import Reply

    reply = Reply.refusal(
        f"the worker running your `{command}` stopped before it answered;"
        " it may or may not have taken effect, and it will not be run again",
        hint="See `/aiops changes` (and `/aiops status`) before trying again.",
    )
    return {"response_type": "ephemeral", "replace_original": False, **render_message(reply)}


async def sweep(app: procrastinate.App, slack: WebClient | None = None) -> int:
    """One sweep: fail the jobs of workers that stopped heartbeating and tell their
    requesters (once: finishing a job is a compare-and-set on its status, so of two
    sweeps only one succeeds); prune those workers; delete finished jobs past retention.
    Returns the number of jobs failed."""
    from procrastinate.jobs import Status

    failed = 0
    manager = app.job_manager
    for job in await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED_AFTER):
        if job.task_name == ALERT_TASK and job.attempts + 1 < ALERT_ATTEMPTS:
            # Unlike a command, a notice may run again (receive_alert is idempotent), and
            # nobody else would: Cloud Monitoring was answered 2xx.
            try:
                await manager.retry_job(job)
            except Exception as exc:  # another sweep put it back first
                log.debug("stalled job %s was settled elsewhere: %s", job.id, exc)
            else:
                log.error("job %s (an alert notice) stalled: its worker stopped; run again", job.id)
            continue
        try:
            await manager.finish_job(job, status=Status.FAILED, delete_job=False)
        except Exception as exc:  # another sweep failed it first, or it finished meanwhile
            log.debug("stalled job %s was settled elsewhere: %s", job.id, exc)
            continue
        failed += 1
        args: dict[str, Any] = dict(job.task_kwargs)
        inv = args.get("inv")
        command = str(inv.get("command") if isinstance(inv, dict) else job.task_name)
        log.error("job %s (%s) stalled: its worker stopped; failed, not retried", job.id, command)
        url = args.get("response_url")
        dm = args.get("dm")
        if job.task_name == TASK and (isinstance(url, str) or isinstance(dm, str)):
            await asyncio.to_thread(
                _respond,
                url if isinstance(url, str) else None,
                _stopped_answer(command),
                command,
                dm if isinstance(dm, str) else None,
                slack,
            )
    await manager.prune_stalled_workers(seconds_since_heartbeat=STALLED_AFTER)
    await manager.delete_old_jobs(
        nb_hours=int(RETENTION.total_seconds() // 3600), queue=QUEUE, include_failed=True
    )
    return failed


async def _sweeping(app: procrastinate.App, slack: WebClient | None) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY)
        try:
            await sweep(app, slack)
        except Exception:
            log.exception("the queue sweep failed; trying again in %.0f s", SWEEP_EVERY)


async def _serve_queue(
    app: procrastinate.App, ready: Event | None, slack: WebClient | None = None
) -> None:
    async with app.open_async():
        sweeper = asyncio.create_task(_sweeping(app, slack))
        if ready is not None:
            ready.set()
        try:
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=1,
                name=f"aiops-worker-{os.getpid()}",
                install_signal_handlers=True,  # SIGTERM: finish the job in hand, then stop
                update_heartbeat_interval=HEARTBEAT,
                stalled_worker_timeout=STALLED_AFTER,
                delete_jobs="never",  # kept for RETENTION: they hold the request keys
            )
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper


def worker_main(
    settings: Settings, nice: int, ready: Event | None = None, server: int | None = None
) -> None:
    """A worker process: build the service, take jobs until SIGTERM, then let the changes
    it started finish polling. It dies with the `serve` process `server`."""
    service = child_service(settings, nice, idle=bool(nice), server=server)
    from bot.slack.clients import web_client

    app = queue_app(settings, min_size=2, max_size=4)
    slack = web_client(settings.slack_bot_token or "", settings.slack_api_base_url)
    register_tasks(app, service, slack)
    try:
        asyncio.run(_serve_queue(app, ready, slack))
    finally:
        try:
            service.rt.background.wait_idle(STOP_TIMEOUT)
        except Exception:
            log.exception("background work failed while a worker stopped")


# ---------------------------------------------------------------------- in the server


@dataclass
class _Slot:
    proc: BaseProcess
    ready: Event
    started: float = field(default_factory=time.monotonic)


class QueueWorkers:
    """The server's side of the workers: start N, replace one that dies, stop them with
    the server. The Bolt app submits commands to the queue itself (`CommandQueue`)."""

    def __init__(self, settings: Settings, workers: int, *, nice: int = NICE) -> None:
        if workers < 1:
            raise WorkersError("a command pool needs at least one process")
        self.settings = settings
        self.workers = workers
        self.nice = nice
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: list[_Slot] = []
        self._closed = False
        self._failures = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def start(self) -> None:
        if self._closed:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while len(self._slots) < self.workers:
            self._slots.append(self._spawn())

    def _spawn(self) -> _Slot:
        assert self._loop is not None
        ctx = context()
        ready = ctx.Event()
        proc = ctx.Process(
            target=worker_main,
            args=(self.settings, self.nice, ready, os.getpid()),
            name="aiops-worker",
        )
        proc.start()
        slot = _Slot(proc, ready)
        self._loop.add_reader(proc.sentinel, self._died, slot)
        return slot

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self._slots if s.proc.pid is not None]

    def alive(self) -> int:
        return sum(1 for s in self._slots if s.proc.is_alive())

    def wait_ready(self, timeout: float = 60.0) -> set[int]:
        """From any thread: block until every worker listens for jobs; their pids."""
        deadline = time.monotonic() + timeout
        while not self._slots and time.monotonic() < deadline:
            time.sleep(0.05)
        for slot in list(self._slots):
            if not slot.ready.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("the command workers did not start in time")
        return set(self.pids())

    def _died(self, slot: _Slot) -> None:
        assert self._loop is not None
        with contextlib.suppress(Exception):
            self._loop.remove_reader(slot.proc.sentinel)
        slot.proc.join(0)
        if self._closed or slot not in self._slots:
            return
        log.error(
            "a command worker (pid %s) died with exit code %s; its job, if any, is failed"
            " by the next sweep and its requester told",
            slot.proc.pid,
            slot.proc.exitcode,
        )
        self._failures = self._failures + 1 if not slot.ready.is_set() else 0
        delay = 0.0 if not self._failures else min(30.0, 0.5 * 2 ** (self._failures - 1))
        self._loop.call_later(delay, self._replace, slot)

    def _replace(self, old: _Slot) -> None:
        if self._closed or old not in self._slots:
            return
        self._slots[self._slots.index(old)] = self._spawn()

    async def aclose(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM each worker (it finishes its job and its changes' polling), wait, then
        kill what is left."""
        self._closed = True
        for slot in self._slots:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(slot.proc.sentinel)
            if slot.proc.is_alive() and slot.proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.proc.pid, signal.SIGTERM)
        for slot in self._slots:
            await asyncio.to_thread(slot.proc.join, timeout)
            if slot.proc.is_alive():
                log.error("a command worker did not stop in %.0f s; killing it", timeout)
                slot.proc.kill()
