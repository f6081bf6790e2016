"""The durable command queue on PostgreSQL: every acked slash command and click is a job
in the bot's own database before its ack leaves (procrastinate;
docs/decisions/0003-durable-command-queue.md says why
it and not another).

- The server (`CommandQueue.submit`) writes the job (procrastinate's
  `procrastinate_jobs`, which NOTIFYs the workers) with the Slack request's key; a unique
  index on that key (migration 0009) refuses a retry or replay of the same request in the
  same statement, so it is answered once and nothing runs again. Only then is the ack
  sent; if the database refuses, the ack says the command was not taken.
- What is stored is what the domain may see: the text is admitted at the edge (limits
  checked, PII masked: `commands.text.admit`) before it is written; a text the limits
  refuse is stored only in its shown form with the refusal, which the worker audits and
  answers as the service does. The actor's display name is not stored (the directory of
  people is the one place names live).
- Workers (`bot/serve/queue_workers.py`) of any replica take jobs (LISTEN/NOTIFY, row
  locks); procrastinate records each worker's heartbeat. A job whose worker stopped
  heartbeating (killed mid-command) is *not* run again — a command may have taken effect
  before its worker died — it is failed and its requester told so on the command's
  `response_url` (`sweep`), once, by whichever worker's sweep claims it first.

Job arguments: `{"inv": {...}, "click": bool, "response_url": str | None, "key": str,
"refusal": {...} | None, "dm": str | None}`: a request without a response URL (a form's
submission) is answered, and told if its worker stopped, in a direct message to `dm`, its
actor. Finished jobs (and with them their request keys) are deleted
after `RETENTION`: the keys must outlive Slack's 5-minute signature window.

Cloud Monitoring's webhook (`bot/alerts/webhook.py`) uses the same queue: a notice is a job
of `ALERT_TASK`, `{"notice": {...}, "key": "alert:<notice key>:<state>"}`, unique by its
key (migration 0012), locked per alert so that one alert's notices run in order; refused
webhook requests are reported as `ALERT_REFUSED_TASK` jobs, `{"report": {...}}`. Unlike a
command, an alert job whose worker died is run again (`queue_workers.sweep`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from commands.errors import Refusal
from commands.model import Actor, Invocation

if TYPE_CHECKING:
    import procrastinate

    from bot.settings import Settings

log = logging.getLogger(__name__)

TASK = "aiops.command"
REFUSED_TASK = "aiops.workspace_refused"
ALERT_TASK = "aiops.alert"  # a Cloud Monitoring notice (bot/alerts/webhook.py)
ALERT_REFUSED_TASK = "aiops.alert_refused"  # a report of refused webhook requests
QUEUE = "commands"
STALLED_AFTER = 30.0  # seconds without a worker heartbeat before its jobs are stalled
HEARTBEAT = 10.0  # seconds between a worker's heartbeats
SWEEP_EVERY = 10.0  # seconds between sweeps for stalled jobs, in every worker
RETENTION = dt.timedelta(days=1)


def uses_queue(db_url: str) -> bool:
    """The durable queue runs on PostgreSQL; SQLite serves one process (README)."""
    return db_url.startswith(("postgresql", "postgres"))


def conninfo(db_url: str) -> str:
    """libpq's form of the bot's SQLAlchemy URL (the driver name dropped, options kept)."""
    url = make_url(db_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _kwargs() -> dict[str, Any] | Callable[[], dict[str, Any]]:
    # Cloud SQL IAM: each new connection presents a fresh access token, as the store's
    # engine does (bot/store/db.py, bot/store/iam_auth.py).
    if os.environ.get("AIOPS_DB_IAM_AUTH") == "1":
        from bot.store.iam_auth import AccessTokens

        tokens = AccessTokens()
        return lambda: {"password": tokens()}
    return {}


def queue_app(settings: Settings, *, min_size: int = 1, max_size: int = 4) -> procrastinate.App:
    """A procrastinate app on the bot's database (opened by the caller)."""
    import procrastinate

    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(settings.db_url),
        kwargs=_kwargs(),
        min_size=min_size,
        max_size=max_size,
        # A worker waits this long for a connection before its call fails.
        timeout=2.5,
    )
    return procrastinate.App(connector=connector)


# ------------------------------------------------------------------------ job payloads


def to_job(inv: Invocation) -> dict[str, Any]:
    return {
        "actor": inv.actor.id,
        "command": inv.command,
        "text": inv.text,
        "channel_id": inv.channel_id,
        "request_id": inv.request_id,
    }


def from_job(data: dict[str, Any]) -> Invocation:
    return Invocation(
        actor=Actor(str(data["actor"])),
        command=str(data["command"]),
        text=str(data["text"]),
        channel_id=data.get("channel_id"),
        request_id=data.get("request_id"),
    )


@dataclass(frozen=True)
class Admitted:
    """What may be stored of an invocation: admitted, or shown with its refusal."""

    inv: Invocation
    refusal: Refusal | None = None


def admitted(inv: Invocation) -> Admitted:
    """The edge's admission: the text the domain would see (limits checked, PII masked),
    or, for a text the limits refuse, its visible form (control characters shown as
    `[U+…]`, invisible ones dropped, masked) with the refusal, so that nothing stored
    holds what the masking could not see."""
    from dataclasses import replace

    from commands.redaction import redact
    from commands.text import admit, visible

    try:
        return Admitted(admit(inv))
    except Refusal as refusal:
        shown = redact(visible(inv.text))[:4000]
        return Admitted(replace(inv, text=shown, command=visible(inv.command)[:64]), refusal)


def refusal_to_job(refusal: Refusal | None) -> dict[str, Any] | None:
    if refusal is None:
        return None
    return {"message": refusal.message, "hint": refusal.hint, "code": refusal.code}


def refusal_from_job(data: dict[str, Any] | None) -> Refusal | None:
    if not data:
        return None
    return Refusal(str(data["message"]), data.get("hint"), code=str(data.get("code") or ""))


# ---------------------------------------------------------------------- the server side


REQUEST_KEY_INDEX = "aiops_jobs_request_key"  # migration 0009
ALERT_KEY_INDEX = "aiops_jobs_alert_key"  # migration 0012
KEY_INDEXES = frozenset({REQUEST_KEY_INDEX, ALERT_KEY_INDEX})


def _broken(exc: BaseException) -> bool:
    import psycopg

    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, psycopg.OperationalError)


class Duplicate(Exception):
    """The request was taken before (a Slack retry or a replay): answered once."""


BATCH = 100  # jobs in one statement at most


def _duplicate(exc: Exception, key: str) -> Exception:
    from procrastinate import exceptions

    if isinstance(exc, exceptions.UniqueViolation) and exc.constraint_name in KEY_INDEXES:
        return Duplicate(key)
    return exc


def _settle(future: asyncio.Future[int], job_id: int = 0, exc: Exception | None = None) -> None:
    if future.done():  # its request went away (the client hung up)
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(job_id)


async def _autocommit(conn: Any) -> None:
    """The server's connections run in autocommit: everything it writes is one statement
    (a job, or a batch of them, inserted by one call of procrastinate's defer function),
    which PostgreSQL commits as it ends. Without it psycopg wraps each statement in BEGIN
    and COMMIT of their own: three round trips to the database inside every ack for one."""
    await conn.set_autocommit(True)


class CommandQueue:
    """The server's side: `submit` stores a command as a job (one transaction with its
    request key) and returns its job id; raises `Duplicate` for a request key seen
    before, and the database's error when it cannot store it (the caller says so in the
    ack: the command was not taken)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = queue_app(settings)
        self._pool: Any = None
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the pool without waiting for connections. (`serve` checks the database
        before it gets here and exits with one line if it does not answer.) While the
        database is down later, `/healthz` says so and each command is answered that it
        was not taken, within the pool's 1.5 s timeout, well inside Slack's 3 s."""
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            conninfo(self.settings.db_url),
            kwargs=_kwargs(),
            min_size=1,
            max_size=8,
            timeout=1.5,
            open=False,
            configure=_autocommit,
        )
        await self._pool.open(wait=False)
        await self.app.open_async(pool=self._pool)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await self.app.close_async()
            await pool.close()

    async def submit(self, inv: Invocation, click: bool, response_url: str | None, key: str) -> int:
        """Store the command as a job, unique by its request key, committed before this
        returns (the ack waits for it); its job id. Commands that arrive while a commit
        is in flight go together in the next one (`_flush`): one statement and one
        commit for all of them, so under load the acks share the commit's fsync and the
        server's CPU per ack falls, and a lone command costs what it did alone."""
        entry = admitted(inv)
        args: dict[str, Any] = {
            "inv": to_job(entry.inv),
            "click": click,
            "response_url": response_url,
            "key": key,
            "refusal": refusal_to_job(entry.refusal),
            "dm": None if response_url else entry.inv.actor.id,
        }
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def take(self, inv: Invocation, click: bool, response_url: str | None, key: str) -> bool:
        """`submit` as the Bolt app's `Submit`: False for a request taken before (a
        retry or a replay), which is acked and not run again."""
        try:
            await self.submit(inv, click, response_url, key)
        except Duplicate:
            return False
        return True

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            try:
                ids = await self._defer([args for args, _ in batch])
            except Exception as exc:
                if len(batch) == 1 or not isinstance(_duplicate(exc, ""), Duplicate):
                    for _, future in batch:  # the database failed them all
                        _settle(future, exc=_duplicate(exc, str(batch[0][0]["key"])))
                    continue
                # One of them is a replay (the unique key): each on its own, so each
                # hears its own outcome.
                for args, future in batch:
                    try:
                        [job_id] = await self._defer([args])
                    except Exception as exc:
                        _settle(future, exc=_duplicate(exc, str(args["key"])))
                    else:
                        _settle(future, job_id)
                continue
            for (_, future), job_id in zip(batch, ids, strict=True):
                _settle(future, job_id)

    async def _defer(
        self, jobs: list[dict[str, Any]], task: str = TASK, lock: str | None = None
    ) -> list[int]:
        """One statement; a connection the database dropped (a failover) is retried once
        on a new one."""
        from procrastinate import exceptions

        deferrer = self.app.configure_task(task, queue=QUEUE, lock=lock)
        for attempt in (1, 2):
            try:
                return await deferrer.batch_defer_async(*jobs)
            except exceptions.ConnectorException as exc:
                if attempt == 2 or not _broken(exc):
                    raise
                log.warning("a pooled database connection was gone; trying a new one")
        raise AssertionError("unreachable")

    async def refused(self, user: str, team: str | None, enterprise: str | None) -> None:
        """A request from another workspace, audited by a worker."""
        await self.app.configure_task(REFUSED_TASK, queue=QUEUE).defer_async(
            user=user, team=team, enterprise=enterprise
        )

    async def take_alert(self, job: dict[str, Any]) -> bool:
        """`AlertSink.take_alert`: the notice (`bot.alerts.webhook.notice_to_job`) as a job,
        committed before this returns, unique by `job_key` (migration 0012's index): False
        for a notice taken before (a retry, another replica's copy). One alert's notices
        run one at a time, in order (procrastinate's `lock`). Raises `AlertNotTaken` when
        the database does not answer."""
        import psycopg
        from procrastinate import exceptions

        from bot.alerts.webhook import AlertNotTaken, job_key

        key = job_key(job)
        try:
            await self._defer([{"notice": job, "key": key}], ALERT_TASK, f"alert:{job['key']}")
        except (exceptions.ConnectorException, psycopg.Error, OSError) as exc:
            # psycopg's own errors and OSError: a pool that timed out or a refused
            # connection, when procrastinate did not wrap them
            if isinstance(_duplicate(exc, key), Duplicate):
                return False
            raise AlertNotTaken(f"the database did not take it ({type(exc).__name__})") from None
        return True

    async def alert_refused(self, report: dict[str, Any]) -> None:
        """`AlertSink.alert_refused`: the report as a job a worker audits."""
        await self.app.configure_task(ALERT_REFUSED_TASK, queue=QUEUE).defer_async(report=report)
