"""What every command needs at hand: config, store, platform, audit, clock, notifier and
a place to run work after Slack has been acknowledged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from commands.audit import Auditor
from commands.config import Config, Endpoint
from commands.errors import Refusal
from commands.incidents.pager import NoPager, Pager
from commands.incidents.ports import HealthWatchStore, IncidentStore
from commands.messages import Post, code, did_you_mean, escape
from commands.model import Change
from commands.models.ports import ModelRegistry
from commands.ports import (
    CanaryStore,
    Delivery,
    GroupResolver,
    MessageRef,
    Notifier,
    People,
    Platform,
    Store,
)

log = logging.getLogger(__name__)

# How long a change's lease on its background work lives without a heartbeat: a worker
# renews it every third of this, so a dead one is noticed this long after its last beat
# (plus the takeover sweep's interval, `commands.changes.execute.TAKEOVER_SECONDS`).
LEASE_TTL = timedelta(seconds=30)


class NullNotifier:
    """Keeps the posts in memory (tests, and commands run without Slack)."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.homes: list[tuple[str, ...]] = []  # each `refresh_home` asked for

    def deliver(self, post: Post) -> Delivery:
        self.posts.append(post)
        return Delivery(MessageRef(post.channel, f"{len(self.posts)}.000"))

    def post(self, post: Post) -> MessageRef | None:
        return self.deliver(post).ref

    def refresh_home(self, people: Sequence[str]) -> None:
        self.homes.append(tuple(people))


class Background:
    """Runs work after the ack; `wait_idle` lets the console and tests wait for it."""

    def __init__(self, workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aiops-work")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("background work failed")

        future = self._pool.submit(run)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait_idle(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return True
            for f in pending:
                f.result(timeout=max(0.0, deadline - time.monotonic()))
        return False

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


@dataclass
class Runtime:
    config: Config
    store: Store
    platform: Platform
    auditor: Auditor
    notifier: Notifier
    clock: Callable[[], datetime]
    background: Background = field(default_factory=Background)
    poll_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    groups: GroupResolver | None = None  # Slack user-group members, resolved at click time
    people: People | None = None  # Slack id → name, erasable (the audit keeps only ids)
    canary: CanaryStore | None = None  # canary analysis records (commands/canary.py)
    incidents: IncidentStore | None = None  # alerts, incidents, hand-off notes (respond)
    health_watch: HealthWatchStore | None = None  # the health watch's state per endpoint
    pager: Pager = field(default_factory=NoPager)  # who is woken for a P1 / P2
    lease_ttl: timedelta = LEASE_TTL  # a change's lease on its background work
    registry: ModelRegistry | None = None  # versions, cards, validation, aliases

    @property
    def approved_settle(self) -> timedelta:
        """How long an approved, due change may wait to start before it counts as
        stranded: a change starts moments after approval, a scheduled one within a
        housekeeping interval (30 s) of its time."""
        return 2 * self.lease_ttl

    def stranded(self, now: datetime | None = None) -> list[Change]:
        """Changes whose background work has no live worker (RUNNING with its lease
        missing or expired; APPROVED, due and not started): what the takeover sweep picks
        up, `/aiops changes` marks and a health check may report."""
        return self.store.stranded(now or self.clock(), self.approved_settle)

    def endpoint(self, slug: str | None, usage: str) -> Endpoint:
        """The endpoint a command names; a refusal naming the closest and the known ones
        otherwise."""
        if not slug:
            raise Refusal("which endpoint?", f"Usage: `{usage}`", code="malformed")
        ep = self.config.endpoints.get(slug)
        if ep is None:
            raise unknown_endpoint(self.config, slug)
        return ep

    def find_change(self, ref: str | None, usage: str) -> Change:
        """The change a command names, by its id (`CHG-12`) or by its endpoint's open one."""
        if not ref:
            raise Refusal(
                "which change?",
                f"Usage: `{usage}` — a change id like `CHG-12`, or an endpoint.",
                code="malformed",
            )
        change = self.store.get_change(ref)
        if change is None and ref in self.config.endpoints:
            change = self.store.open_change(ref)
            if change is None:
                raise Refusal(
                    f"`{ref}` has no open change", "See `/aiops changes`.", code="not_found"
                )
        if change is None:
            looks_like_id = ref.upper().startswith("CHG-")
            raise Refusal(
                f"no change `{escape(ref)}`"
                + ("" if looks_like_id else did_you_mean(ref, self.config.endpoints)),
                "See `/aiops changes` for change ids.",
                code="not_found",
            )
        return change


def unknown_endpoint(config: Config, slug: str) -> Refusal:
    """The refusal of an endpoint the config does not name: the closest names first."""
    known = ", ".join(f"`{s}`" for s in config.endpoints) or "none"
    return Refusal(
        f"unknown endpoint {code(slug)}{did_you_mean(slug, config.endpoints)}",
        f"Known endpoints: {known}.",
        code="unknown_endpoint",
    )
