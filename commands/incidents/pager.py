"""The paging port: who gets woken, and what became of the page.

The domain decides *when* to page (a P1 or P2 incident, the canary `page` policy) and
with what; an adapter decides *how*. `bot/pager/pagerduty.py` sends PagerDuty Events API
v2 events (https://developer.pagerduty.com/docs/events-api-v2/overview/); `NoPager`
(`[incidents] pager = "none"`) pages no one and the domain keeps its `@here`.

One incident is one alert at the pager: every event about it carries the same
`dedup_key` (the incident id, `INC-N`), so a trigger sent twice opens one alert, and an
acknowledge or resolve closes that alert and no other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class PageAction(StrEnum):
    """PagerDuty Events API v2 `event_action` values."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Page:
    """One event for the pager. Every text field is already masked (it leaves the bot).

    `environment` chooses the routing key (one PagerDuty service per environment);
    `severity` is PagerDuty's: critical | error | warning | info (the domain maps P1 →
    critical, P2 → error, P3 → warning); `links` are (text, href) pairs."""

    action: PageAction
    dedup_key: str  # the incident id, INC-N
    environment: str
    summary: str = ""  # ≤ 1,024 characters (PagerDuty truncates longer)
    source: str = ""  # the endpoint, or the bot
    severity: str = "error"
    component: str | None = None  # the deployed model or version
    custom_details: dict[str, str] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PageResult:
    """What the pager said. `delivered` False means no one was paged: `error` says why
    in one line fit for the incident thread (never a secret), after the adapter's own
    retries (429 and 5xx, with backoff) were spent, or at once for a 400 (a bad event or
    routing key: retrying will not help)."""

    delivered: bool
    error: str | None = None
    attempts: int = 1


class Pager(Protocol):
    name: str  # "pagerduty" | "none"

    def send(self, page: Page) -> PageResult:
        """Deliver one event, retrying what may pass on retry. Never raises: a pager that
        cannot be reached is a `PageResult` with `delivered` False."""
        ...


class NoPager:
    """`[incidents] pager = "none"`: pages no one; the incident thread's `@here` is the
    alarm."""

    name = "none"

    def send(self, page: Page) -> PageResult:
        return PageResult(
            delivered=False, error='paging is off ([incidents] pager = "none")', attempts=0
        )
