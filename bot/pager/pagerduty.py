"""The `Pager` port over PagerDuty's Events API v2.

Wire format, from PagerDuty's developer documentation (github.com/PagerDuty/developer-docs,
docs/events-API-v2/: 01-Overview.md "Response Codes & Retry Logic" and "Size Limits",
02-Trigger-Events.md "Send an Alert Event", 05-Rate-Limits.md; published at
https://developer.pagerduty.com/docs/events-api-v2/overview/):

    POST https://events.pagerduty.com/v2/enqueue          (JSON, at most 512 KB)
    routing_key     the integration key of a PagerDuty service (32 characters)
    event_action    trigger | acknowledge | resolve
    dedup_key       at most 255 characters; one key is one alert: a second trigger with it
                    adds to the open alert, acknowledge and resolve act on that alert only
    payload         trigger only: summary (at most 1,024 characters), source, severity
                    (critical | error | warning | info), component, group, custom_details
    links           [{href, text}]
    client          the sending tool's name

    202  {"status": "success", "message": "Event processed", "dedup_key": "…"}
    400  {"status": "invalid event", "message": "Event object is invalid", "errors": […]}
         — not retried: the same event would be refused again
    429  too many events (about 120 a minute per routing key) — retry after some time
    5xx and network errors — retry after some time

Retries here: 429, 5xx, a timeout or a dropped connection are tried again, at most
`RetryPolicy.max_attempts` times in all, after an exponential backoff with jitter (half the
delay fixed, half random, so that replicas paging together spread out) or, when the answer
carries `Retry-After`, after exactly that; the waits together stay within
`RetryPolicy.budget` seconds, because the page is sent from a worker that someone is waiting
on, and no attempt starts once the send has run `RetryPolicy.deadline` seconds (waits and
slow answers together: httpx's timeout is per phase, so attempts that stall in every phase
would otherwise add up to minutes). A send therefore ends within the deadline plus one
attempt (3 × `timeout`): 90 s by default, inside the 2 minutes after which the scheduler
treats a page nobody attempted as lost (`commands/incidents/paging.py: OWED_AFTER`). A
retried trigger cannot page twice: the dedup key makes it the same alert.

Routing keys: one PagerDuty service per environment, its key in the environment variable
`PAGERDUTY_ROUTING_KEY_<ENVIRONMENT>` (`prod` → `PAGERDUTY_ROUTING_KEY_PROD`; characters
other than letters and digits become `_`), or read from Secret Manager at start through
`PAGERDUTY_ROUTING_KEY_PROD_SECRET=<secret id>` (bot/secrets.py). A key is never logged,
never put in a `PageResult`, and is scrubbed from anything PagerDuty answers.

`AIOPS_PAGERDUTY_URL` (or the `url` argument) points the adapter elsewhere, e.g. at the
local fake of tests/support/fakes/pagerduty_server.py: a base (`http://127.0.0.1:8123`) or
the full `…/v2/enqueue` address.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

from commands.incidents.pager import Page, PageAction, PageResult

log = logging.getLogger(__name__)

EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"
ENQUEUE_PATH: Final = "/v2/enqueue"
SEVERITIES: Final = ("critical", "error", "warning", "info")
MAX_SUMMARY: Final = 1024
"""Characters of `payload.summary` (PagerDuty's limit); longer is cut, ending in `…`."""
MAX_DEDUP_KEY: Final = 255
KEY_PREFIX: Final = "PAGERDUTY_ROUTING_KEY_"
CLIENT: Final = "aiops-bot"
_DETAIL_CHARS: Final = 300  # of PagerDuty's own error text, in a one-line error


def routing_key_variable(environment: str) -> str:
    """`prod` → `PAGERDUTY_ROUTING_KEY_PROD`; `prod-au` → `PAGERDUTY_ROUTING_KEY_PROD_AU`."""
    return KEY_PREFIX + re.sub(r"[^A-Z0-9]", "_", environment.upper())


def events_url(base: str) -> str:
    """The enqueue address from a base URL or the full address."""
    base = base.rstrip("/")
    return base if base.endswith(ENQUEUE_PATH) else base + ENQUEUE_PATH


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a page is pushed. Times in seconds.

    Attempt n (n ≥ 2) waits `min(max_delay, base_delay × 2^(n-2))`, half of it fixed and
    half random, or the answer's `Retry-After`; the sum of the waits never exceeds `budget`
    (a `Retry-After` beyond what is left ends the retries at once)."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    budget: float = 30.0
    deadline: float = 60.0  # no attempt starts after this long since the first


@dataclass(frozen=True)
class _Answer:
    status: int | None  # None: no HTTP answer (timeout, connection failed)
    detail: str  # one line: "HTTP 503", "timed out", "invalid event: …"
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class PagerDuty:
    """Sends `Page`s to PagerDuty's Events API v2. `send` never raises.

    `env` is where routing keys are looked up at each send (default `os.environ`, filled
    from Secret Manager at start); `transport` and `sleep` exist for tests (an httpx
    transport, and the wait between attempts)."""

    name = "pagerduty"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self.url = events_url(url or self._env.get("AIOPS_PAGERDUTY_URL") or EVENTS_URL)
        self.retry = retry or RetryPolicy()
        self._client = httpx.Client(
            timeout=timeout, transport=transport, headers={"User-Agent": CLIENT}
        )
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # jitter only, nothing secret

    def close(self) -> None:
        self._client.close()

    def send(self, page: Page) -> PageResult:
        """Deliver one event (see the module's docstring for what is retried). A missing
        routing key or an event PagerDuty would refuse is reported without a request
        (`attempts` 0)."""
        try:
            return self._send(page)
        except Exception as exc:  # the port promises a result, never an exception
            log.error(
                "page %s %s for %s failed unexpectedly (%s)",
                page.action.value,
                page.dedup_key,
                page.environment,
                type(exc).__name__,
            )
            return PageResult(
                delivered=False,
                error=f"the page could not be sent: unexpected {type(exc).__name__}",
                attempts=0,
            )

    def _send(self, page: Page) -> PageResult:
        variable = routing_key_variable(page.environment)
        key = (self._env.get(variable) or "").strip()
        if not key:
            return PageResult(
                delivered=False,
                error=f"no PagerDuty routing key for {page.environment}: set {variable}"
                f" (or {variable}_SECRET to the Secret Manager secret that holds it)",
                attempts=0,
            )
        problem = _problem(page)
        if problem:
            return PageResult(delivered=False, error=problem, attempts=0)
        body = _event(page, key)
        what = f"{page.action.value} {page.dedup_key} ({page.environment})"
        waited = 0.0
        attempt = 0
        started = self._clock()
        while True:
            attempt += 1
            answer = self._post(body, key)
            if answer.status is not None and 200 <= answer.status < 300:
                log.info("PagerDuty took %s (attempt %d)", what, attempt)
                return PageResult(delivered=True, attempts=attempt)
            if not answer.retryable:
                log.warning("PagerDuty refused %s: %s; not retried", what, answer.detail)
                return PageResult(
                    delivered=False,
                    error=f"PagerDuty refused the {page.action.value} for {page.environment}"
                    f" ({answer.detail}); not retried: check {variable} and the event",
                    attempts=attempt,
                )
            if attempt >= self.retry.max_attempts:
                log.warning("PagerDuty did not take %s after %d attempts", what, attempt)
                return PageResult(
                    delivered=False,
                    error=f"PagerDuty did not take the {page.action.value} for"
                    f" {page.environment} after {attempt} attempts (last: {answer.detail});"
                    f" {_consequence(page.action)}",
                    attempts=attempt,
                )
            wait = answer.retry_after if answer.retry_after is not None else self._backoff(attempt)
            left = self.retry.budget - waited
            if wait > left:
                log.warning(
                    "PagerDuty asks to wait %.1f s for %s; %.1f s of the budget left",
                    wait,
                    what,
                    left,
                )
                return PageResult(
                    delivered=False,
                    error=f"PagerDuty did not take the {page.action.value} for"
                    f" {page.environment} ({answer.detail}, wait {wait:.0f} s asked, beyond the"
                    f" {self.retry.budget:.0f} s retry budget) after {attempt} attempt(s);"
                    f" {_consequence(page.action)}",
                    attempts=attempt,
                )
            spent = self._clock() - started
            if spent + wait >= self.retry.deadline:
                log.warning("PagerDuty did not take %s within %.0f s", what, self.retry.deadline)
                return PageResult(
                    delivered=False,
                    error=f"PagerDuty did not take the {page.action.value} for"
                    f" {page.environment} within {self.retry.deadline:.0f} s ({attempt}"
                    f" attempt(s), last: {answer.detail}); {_consequence(page.action)}",
                    attempts=attempt,
                )
            log.warning(
                "PagerDuty answered %s for %s; retrying in %.1f s (attempt %d of %d)",
                answer.detail,
                what,
                wait,
                attempt + 1,
                self.retry.max_attempts,
            )
            self._sleep(wait)
            waited += wait

    def _backoff(self, attempt: int) -> float:
        delay = min(self.retry.max_delay, self.retry.base_delay * 2.0 ** (attempt - 1))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    def _post(self, body: dict[str, Any], key: str) -> _Answer:
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            return _Answer(None, "timed out")
        except httpx.TransportError as exc:
            return _Answer(None, f"connection failed ({type(exc).__name__})")
        status = response.status_code
        if status == 400:
            return _Answer(status, "HTTP 400 " + _scrub(_errors(response), key))
        return _Answer(status, f"HTTP {status}", _retry_after(response.headers.get("retry-after")))


def _problem(page: Page) -> str | None:
    """What PagerDuty would refuse (400), said before sending."""
    if not page.dedup_key or len(page.dedup_key) > MAX_DEDUP_KEY:
        return (
            f"the page's dedup_key must be 1–{MAX_DEDUP_KEY} characters (got {len(page.dedup_key)})"
        )
    if page.action is PageAction.TRIGGER and page.severity not in SEVERITIES:
        return (
            f"the page's severity `{page.severity}` is not one of PagerDuty's"
            f" ({', '.join(SEVERITIES)})"
        )
    return None


def _event(page: Page, key: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": key,
        "event_action": page.action.value,
        "dedup_key": page.dedup_key,
    }
    if page.action is not PageAction.TRIGGER:
        return event  # acknowledge and resolve need nothing else
    summary = " ".join(page.summary.split()) or f"{page.dedup_key} in {page.environment}"
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    payload: dict[str, Any] = {
        "summary": summary,
        "source": page.source or CLIENT,
        "severity": page.severity,
        "group": page.environment,
    }
    if page.component:
        payload["component"] = page.component
    if page.custom_details:
        payload["custom_details"] = dict(page.custom_details)
    event["payload"] = payload
    event["client"] = CLIENT
    if page.links:
        event["links"] = [{"href": href, "text": text} for text, href in page.links]
    return event


def _consequence(action: PageAction) -> str:
    if action is PageAction.TRIGGER:
        return "the on-call was not paged"
    return f"the PagerDuty alert was not {'acknowledged' if action is PageAction.ACKNOWLEDGE else 'resolved'}"


def _errors(response: httpx.Response) -> str:
    """PagerDuty's reasons for a 400, in one line."""
    try:
        body = response.json()
    except ValueError:
        return "(no JSON answer)"
    if not isinstance(body, dict):
        return "(unexpected answer)"
    errors = body.get("errors")
    reasons = [str(e) for e in errors] if isinstance(errors, list) else []
    head = str(body.get("status") or body.get("message") or "invalid event")
    text = f"{head}: {'; '.join(reasons)}" if reasons else head
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "[routing key]") if key else text


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; None when absent or
    unreadable (the backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
