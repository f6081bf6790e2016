"""`POST /alerts/cloud-monitoring`: Cloud Monitoring's webhook channel into the alert path.

The route runs on the server that only acks (`bot/serve/server.py`): it reads the request
(`bot.alerts.cloud_monitoring.read_notification`: size, credentials, payload, endpoint),
makes the notice durable through an `AlertSink`, and only then answers 2xx. The domain's
`commands.incidents.alerts.receive_alert` runs where commands run (`run_alert`, called by a
worker), never here: this module imports neither the store nor the domain's machinery.

Answers (Cloud Monitoring retries any non-2xx, so every refusal below is retried until it
gives up, and every 2xx is final):

- 200 `{"ok": true, "alert": key, "state": …, "duplicate": bool}`: the notice is durable —
  on PostgreSQL a job in the database (task `aiops.alert`, unique key
  `alert:<notice key>:<state>`: a retry, or the copy another replica got, is a duplicate,
  answered 200 and not run again); on SQLite recorded by a worker (the alert's row, its
  message posted) before the answer, a duplicate when it changed nothing that shows (the
  alert known, nothing posted, not closed by it).
- 400 with a one-line reason that quotes nothing of the body: a body over `MAX_BODY`
  (refused on its `Content-Length` before anything is read, or once the bytes read pass
  it), not JSON, not schema 1.2, required fields missing. Logged (the reason, never the
  payload). 400 rather than 413: issue 17 names 400 for oversized payloads, and to the
  channel both are a refusal it retries the same way.
- 415 `{"ok": false, "error": …}`: a `Content-Type` other than `application/json`
  (parameters such as `charset=utf-8` allowed; none at all is refused too). Cloud
  Monitoring's channel posts its JSON document as `application/json`; anything else is
  not its notification, and is refused before the body is read or credentials compared.
- 401 `{"ok": false, "error": "unauthorized"}` (with `WWW-Authenticate: Basic`): no
  webhook token configured, no credentials, or the wrong ones. Which of the three is
  logged and audited (`alert_refused`), never told to the caller. The audit is coalesced
  (`RefusalTally`): the first refusal is reported at once, the ones after it within a
  minute together in one report at the minute's end, so a flood of unauthenticated
  requests costs at most one audit job a minute per server, never one per request.
- 503 `{"ok": false, …}` with `Retry-After`: the notice could not be made durable (the
  database does not answer, a worker failed): Cloud Monitoring tries again.
- 500 only for a bug of ours, logged with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import typing
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.alerts.cloud_monitoring import (
    MAX_BODY,
    TOKEN_VAR,
    AlertAuthError,
    AlertPayloadError,
    read_notification,
)
from commands.config import Config
from commands.incidents.model import AlertNotice
from commands.text import visible

if TYPE_CHECKING:
    from commands.runtime import Runtime
    from commands.service import Service

log = logging.getLogger(__name__)

PATH: Final = "/alerts/cloud-monitoring"
REFUSAL_WINDOW: Final = 60.0  # seconds: refused requests are reported together per window
RETRY_AFTER: Final = "30"  # seconds a 503 asks the channel to wait
JSON_TYPE: Final = "application/json"
UNKNOWN_ACTOR: Final = "unknown"  # an unauthenticated caller has no identity to record


# ------------------------------------------------------------------------- the job's form


def notice_to_job(notice: AlertNotice) -> dict[str, Any]:
    """The notice as JSON for a job (the queue's arguments, a worker's pipe): every field
    of `AlertNotice` by name, datetimes as ISO 8601, enums by their value."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(AlertNotice):
        value = getattr(notice, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Enum):
            value = value.value
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


def _kind(hint: Any) -> Any:
    """`datetime | None` → `datetime`; anything else as it is."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is not dict and len(args) == 1 else hint


_HINTS: Final = {name: _kind(h) for name, h in typing.get_type_hints(AlertNotice).items()}


def notice_from_job(data: Mapping[str, Any]) -> AlertNotice:
    """`notice_to_job` read back. A field the job lacks (written by an older release)
    takes its default; a field it has that `AlertNotice` no longer knows is ignored."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(AlertNotice):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = _HINTS[f.name]
        if value is not None and kind is datetime:
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(kind, type) and issubclass(kind, Enum):
            value = kind(value)
        elif isinstance(value, dict):
            value = {str(k): str(v) for k, v in value.items()}
        kwargs[f.name] = value
    return AlertNotice(**kwargs)


def job_key(job: Mapping[str, Any]) -> str:
    """`alert:<notice key>:<state>`: the same for a retry of a notice and for the copy
    another replica got; different for the notice that closes the alert."""
    return f"alert:{job['key']}:{job['state']}"


# ----------------------------------------------------------------------- where it goes


class AlertNotTaken(RuntimeError):
    """The notice could not be made durable (the database does not answer, a worker
    failed): answered 503, and Cloud Monitoring sends it again."""


class AlertSink(Protocol):
    """Where the server puts a notice: `CommandQueue` (PostgreSQL: a job), `CommandPool`
    (SQLite: a worker runs it), `InProcessAlerts` (no worker processes)."""

    async def take_alert(self, job: dict[str, Any]) -> bool:
        """Make the notice (`notice_to_job`) durable; False when it was taken before (a
        duplicate). Raises `AlertNotTaken` when it cannot."""
        ...

    async def alert_refused(self, report: dict[str, Any]) -> None:
        """Have a worker audit a `RefusalTally` report (best effort: a failure is logged)."""
        ...


# ----------------------------------------------------------------- in a worker (domain)


def run_alert(rt: Runtime, job: Mapping[str, Any]) -> bool:
    """In a worker: the notice through `receive_notice` (recorded once, posted once, its
    message updated when it closes); True when it was new to the bot (not a duplicate:
    it made the alert, posted its message or closed it). Raises for the store, and
    `AlertBusy` while another worker's live claim is posting the alert's message (the job
    is run again later)."""
    from commands.incidents.alerts import AlertBusy, receive_notice

    received = receive_notice(rt, notice_from_job(job))
    if received.busy:
        raise AlertBusy(f"{received.record.id}: another worker is posting its message")
    return not received.duplicate


def record_alert_refusal(rt: Runtime, report: Mapping[str, Any]) -> None:
    """In a worker: the `alert_refused` audit row of a `RefusalTally` report."""
    from commands.audit import AuditAction

    count = int(report.get("count") or 1)
    rt.auditor.record(
        AuditAction.ALERT_REFUSED,
        UNKNOWN_ACTOR,
        f"refused: {count} request(s) to {PATH} without valid credentials",
        parameters={
            "count": count,
            "reasons": dict(report.get("reasons") or {}),
            "first_at": report.get("first_at"),
            "last_at": report.get("last_at"),
            "window_seconds": report.get("window_seconds"),
        },
    )


class InProcessAlerts:
    """`AlertSink` on threads of this process (`AIOPS_COMMAND_WORKERS=0`, tests): the
    notice is recorded before the answer, as a worker would."""

    def __init__(self, service: Service) -> None:
        self.rt = service.rt

    async def take_alert(self, job: dict[str, Any]) -> bool:
        try:
            return await asyncio.to_thread(run_alert, self.rt, job)
        except Exception as exc:
            log.exception("an alert notice could not be recorded")
            raise AlertNotTaken(type(exc).__name__) from None

    async def alert_refused(self, report: dict[str, Any]) -> None:
        await asyncio.to_thread(record_alert_refusal, self.rt, report)


# --------------------------------------------------------------------- refused requests


class RefusalTally:
    """Refused requests, reported to `send` (an audit job) at most once a window: the
    first at once, the rest of its window together when the window ends, and so on while
    they keep coming. Used from the event loop."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        window: float = REFUSAL_WINDOW,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.send = send
        self.window = window
        self.now = now
        self._held: Counter[str] = Counter()
        self._first: datetime | None = None
        self._last: datetime | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def refused(self, reason: str) -> None:
        """One refused request; `reason` is a short code (`wrong_credentials`, …)."""
        at = self.now()
        self._held[reason] += 1
        self._first = self._first or at
        self._last = at
        if self._timer is None:  # nothing reported in this window yet
            self._report()
            self._timer = asyncio.get_running_loop().call_later(self.window, self._tick)

    def _tick(self) -> None:
        if self._held:
            self._report()
            self._timer = asyncio.get_running_loop().call_later(self.window, self._tick)
        else:
            self._timer = None

    def _take(self) -> dict[str, Any] | None:
        if not self._held:
            return None
        reasons = dict(self._held)
        report: dict[str, Any] = {
            "count": sum(reasons.values()),
            "reasons": reasons,
            "first_at": self._first.isoformat() if self._first else None,
            "last_at": self._last.isoformat() if self._last else None,
            "window_seconds": self.window,
        }
        self._held.clear()
        self._first = self._last = None
        log.warning(
            "alert webhook: refused %d request(s) without valid credentials (%s); audited",
            report["count"],
            ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
        )
        return report

    def _report(self) -> None:
        report = self._take()
        if report is not None:
            task = asyncio.get_running_loop().create_task(self._send(report))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, report: dict[str, Any]) -> None:
        try:
            await self.send(report)
        except Exception:
            log.exception("could not audit %d refused alert webhook request(s)", report["count"])

    async def aclose(self) -> None:
        """Report what is held (the server is stopping) and wait for the reports sent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        report = self._take()
        if report is not None:
            await self._send(report)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


# --------------------------------------------------------------------------- the route


def _answer(status: int, headers: dict[str, str] | None = None, **body: Any) -> Response:
    return JSONResponse({"ok": 200 <= status < 300, **body}, status_code=status, headers=headers)


def _too_large(size: int | None) -> Response:
    said = f"{size:,} bytes" if size is not None else f"more than {MAX_BODY:,} bytes"
    error = f"the body is {said}; a Cloud Monitoring notification is at most {MAX_BODY:,} here"
    log.warning("alert webhook: refused a notification (400): %s", error)
    return _answer(400, error=error)


async def _read(request: Request, limit: int) -> bytes | None:
    """The body, or None once more than `limit` bytes have come (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class AlertWebhook:
    """The route's handler over `config` (the endpoints notices are mapped to), `sink`
    and `env` (where the webhook's token is read at each request, normally `os.environ`,
    which `bot/secrets.py` fills from Secret Manager at start)."""

    def __init__(
        self,
        config: Config,
        sink: AlertSink,
        env: Mapping[str, str] | None = None,
        window: float = REFUSAL_WINDOW,
    ) -> None:
        self.config = config
        self.sink = sink
        self.env: Mapping[str, str] = os.environ if env is None else env
        self.tally = RefusalTally(sink.alert_refused, window)

    async def handle(self, request: Request) -> Response:
        """The route's endpoint: never raises (a bug of ours is a logged 500)."""
        try:
            return await self._handle(request)
        except Exception:
            log.exception("alert webhook: failed on our side (500)")
            return _answer(500, error="the bot failed on its side; it is logged")

    async def _handle(self, request: Request) -> Response:
        kind = request.headers.get("content-type", "")
        if kind.partition(";")[0].strip().lower() != JSON_TYPE:
            said = visible(kind.partition(";")[0].strip()[:64]) or "none"
            error = f"the Content-Type is {said}; a Cloud Monitoring notification is {JSON_TYPE}"
            log.warning("alert webhook: refused a notification (415): %s", error)
            return _answer(415, error=error)
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                log.warning("alert webhook: refused a notification (400): bad Content-Length")
                return _answer(400, error="the Content-Length header is not a number")
            if int(declared) > MAX_BODY:
                return _too_large(int(declared))  # refused before a byte of it is read
        body = await _read(request, MAX_BODY)
        if body is None:
            return _too_large(None)
        query = {k: request.query_params.getlist(k) for k in request.query_params}
        try:
            notice = read_notification(body, request.headers, query, self.config, self.env)
        except AlertAuthError as exc:
            self.tally.refused(self._why(request, query))
            log.debug("alert webhook: 401: %s", exc)
            return _answer(
                401,
                {"WWW-Authenticate": 'Basic realm="aiops-bot alerts"'},
                error="unauthorized",
            )
        except AlertPayloadError as exc:
            log.warning("alert webhook: refused a notification (400): %s", exc)
            return _answer(400, error=str(exc))
        try:
            taken = await self.sink.take_alert(notice_to_job(notice))
        except AlertNotTaken as exc:
            log.error(
                "alert webhook: %s not taken (503, it will be sent again): %s", notice.key, exc
            )
            return _answer(
                503,
                {"Retry-After": RETRY_AFTER},
                error="the notification could not be stored; send it again",
            )
        log.info(
            "alert webhook: %s %s %s",
            notice.key,
            notice.state.value,
            "taken" if taken else "already taken (a duplicate)",
        )
        return _answer(200, alert=notice.key, state=notice.state.value, duplicate=not taken)

    def _why(self, request: Request, query: Mapping[str, Any]) -> str:
        """What was wrong, for the audit (never the credentials themselves)."""
        if not (self.env.get(TOKEN_VAR) or "").strip():
            return "not_configured"
        if "auth_token" in query or "authorization" in request.headers:
            return "wrong_credentials"
        return "no_credentials"

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.tally.aclose()
