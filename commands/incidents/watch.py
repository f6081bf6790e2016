"""The scheduled health watch (DETECT, issue 17): every `[alerts] watch_interval` the
scheduler reads each endpoint's health from the platform — the figures `/aiops status`
shows, in one call for every endpoint — judges the window that just ended with
`commands.incidents.health_watch.judge` against the state kept from the last run, and
hands each notice it emits to `receive_alert`, the path Cloud Monitoring's alerts take
(one message in the ops channel with Declare incident / Roll back / Acknowledge, updated
when the alert closes).

Once across replicas: the scheduler runs the job once per slot (its run keys), and each
endpoint's state moves by compare-and-set (`HealthWatchStore.save_watch_state`), so a
window judged by two processes at once is applied — and its notices emitted — by the one
whose state was stored. The state is stored before the notices are emitted: a process
that dies between the two loses those notices (the alert of that breach is not posted,
or an open one is not closed), as a digest claimed and not posted is lost (NOTES.md).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from commands.errors import Refusal
from commands.incidents.alerts import receive_alert
from commands.incidents.health_watch import judge, watch_settings
from commands.incidents.model import AlertState
from commands.incidents.ports import HealthWatchStore
from commands.ports import PlatformError
from commands.runtime import Runtime

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_end(now: datetime, interval: timedelta) -> datetime:
    """The end of the last whole window at `now`: `now` floored to a multiple of
    `interval` since the Unix epoch (UTC), so every replica names a window alike."""
    step = int(interval.total_seconds())
    seconds = int((now.astimezone(UTC) - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)


def _store(rt: Runtime) -> HealthWatchStore:
    if rt.health_watch is None:
        raise Refusal("the health watch has no store in this runtime", code="unavailable")
    return rt.health_watch


def watch_health(rt: Runtime, end: datetime | None = None) -> str:
    """Judge every configured endpoint's window ending at `end` (default: the last whole
    `[alerts] watch_interval` window at `rt.clock()`), store each judgement, and send the
    notices of those stored to `receive_alert`. Returns one line for the scheduler's run
    record: how many endpoints were judged and alerts opened and closed. A platform that
    cannot be read judges nothing (logged; the next run reads a later window)."""
    settings = watch_settings(rt.config)
    if not settings.enabled:  # a scheduler built before the config said so
        return "off ([alerts] watch = false: Cloud Monitoring watches)"
    store = _store(rt)
    end = end or window_end(rt.clock(), settings.interval)
    endpoints = list(rt.config.endpoints.values())
    try:
        health = rt.platform.health(endpoints, settings.interval)
    except PlatformError as exc:
        log.warning("health watch: the platform's figures could not be read: %s", exc)
        return f"platform unavailable ({exc.kind})"
    judged = opened = closed = 0
    for ep in endpoints:
        kept = store.watch_state(ep.slug)
        if kept.window_end is not None and end <= kept.window_end:
            continue  # judged already (another replica, or a run late for its slot)
        judgement = judge(
            ep.slug,
            health.get(ep.slug),
            rt.config.thresholds,
            kept.state or None,
            window_end=end,
            settings=settings,
            environment=ep.environment,
        )
        if store.save_watch_state(ep.slug, kept.rev, judgement.state, end, rt.clock()) is None:
            continue  # another process stored its judgement of this window first
        judged += 1
        for notice in judgement.notices:
            receive_alert(rt, notice)
            if notice.state is AlertState.OPEN:
                opened += 1
            else:
                closed += 1
    return f"{judged} endpoint(s) judged; {opened} alert(s) opened, {closed} closed"
