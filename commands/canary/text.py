"""What people see of a canary analysis: one line per check, the summary on the deploy's
card, the thread."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from commands.audit import AuditAction
from commands.canary.model import (
    CanarySettings,
    Check,
    Watch,
    canary_settings,
)
from commands.canary.records import store_of
from commands.canary.steps import plan_text
from commands.changes.tell import refresh_card, thread
from commands.messages import (
    escape,
    when,
)
from commands.ports import CanaryChart, CanaryChartPoint, ChartAttacher
from commands.runtime import Runtime

log = logging.getLogger(__name__)


def minutes(interval: timedelta) -> str:
    """`5 min`, `0.5 min`, `60 min`: to a tenth of a minute, never `60.0095 min`."""
    return f"{round(interval.total_seconds() / 60, 1):g} min"


# --- what people see -----------------------------------------------------------------


def check_line(w: Watch, c: Check, settings: CanarySettings) -> str:
    """`:white_circle: check 3 · 1.3.0-rc1 at 10% · *undecided* · canary P95 … · 120 canary /
    1,080 stable requests in 3 windows (1 new)`."""
    line = (
        f"{c.verdict.mark} check {c.seq} · {escape(w.canary_version)} at {c.canary_share}%"
        f" vs {escape(w.stable_version)} · *{c.verdict.words}*"
    )
    if c.reasons:
        line += f" · {'; '.join(escape(r) for r in c.reasons)}"
    line += (
        f" · {c.canary.requests:,} canary / {c.stable.requests:,} stable requests"
        f" in {c.windows} window{'s' if c.windows != 1 else ''} ({c.counted} new)"
    )
    return line


def summary(w: Watch, checks: list[Check], settings: CanarySettings, rt: Runtime) -> str:
    """One line: everything the analysis of this canary found so far."""
    text = f"Canary analysis {w.ref} ({w.state.value.replace('_', ' ')}): {len(checks)} check(s)"
    if w.last_verdict is not None:
        text += f" · now *{w.last_verdict.words}*"
    if checks:
        last = checks[-1]
        text += (
            f" · last {when(last.at, rt.config.timezone)} at {last.canary_share}%:"
            f" {last.canary.text()} vs stable {last.stable.text()}"
            f" ({last.windows} window{'s' if last.windows != 1 else ''})"
        )
        if last.reasons:
            text += f" — {'; '.join(escape(r) for r in last.reasons)}"
    if w.steps:
        reached = w.steps[w.step_index] if 0 <= w.step_index < len(w.steps) else None
        text += f" · plan {plan_text(w.steps, reached)}"
    if w.note:
        text += f" · {escape(w.note)}"
    return text


def chart_of(rt: Runtime, w: Watch, checks: list[Check]) -> CanaryChart:
    """The analysis so far as a chart: both versions' figures at each check, the
    thresholds, and the moments the canary's share changed."""
    th = rt.config.thresholds
    changes: list[tuple[datetime, int]] = []
    share: int | None = None
    for c in checks:
        if share is not None and c.canary_share != share:
            changes.append((c.at, c.canary_share))
        share = c.canary_share
    if w.share_since is not None and changes:
        # the last change is known to the second: when the bot's step or promote finished
        changes[-1] = (w.share_since, changes[-1][1])
    return CanaryChart(
        title=(
            f"{w.ref} · {w.endpoint}: canary {w.versions}"
            f" ({w.last_verdict.words if w.last_verdict else 'no verdict yet'})"
        ),
        filename=f"{w.ref.lower()}-{len(checks)}.png",
        canary_label=w.canary_version,
        stable_label=w.stable_version,
        points=tuple(
            CanaryChartPoint(
                at=c.at,
                share=c.canary_share,
                canary_p95_ms=c.canary.p95_latency_ms,
                stable_p95_ms=c.stable.p95_latency_ms,
                canary_error_rate=c.canary.error_rate,
                stable_error_rate=c.stable.error_rate,
            )
            for c in checks
        ),
        share_changes=tuple(changes),
        p95_threshold_ms=th.p95_latency_ms,
        error_threshold=th.error_rate,
    )


def attach_chart(rt: Runtime, w: Watch) -> bool:
    """After a check: the chart of the analysis so far in the deploy's thread, where the
    notifier can attach files (Slack); a lost chart never loses the check."""
    if not isinstance(rt.notifier, ChartAttacher):
        return False
    deploy = rt.store.get_change(w.change_id)
    if deploy is None or not deploy.channel or not deploy.message_ts:
        return False
    checks = store_of(rt).checks(w.id, 500)
    if not checks:
        return False
    try:
        return rt.notifier.attach_chart(
            deploy.channel,
            deploy.message_ts,
            chart_of(rt, w, checks),
            f"{w.ref}: P95 (top) and error rate (bottom) of canary {w.canary_version} (orange)"
            f" and stable {w.stable_version} (blue) over all windows at each check;"
            " dashed red: the paging thresholds; dotted: the canary's share changed.",
        )
    except Exception:
        log.exception("%s: the chart was not attached", w.ref)
        return False


def refresh_summary(rt: Runtime, w: Watch) -> None:
    deploy = rt.store.get_change(w.change_id)
    if deploy is not None:
        settings = canary_settings(rt.config)
        refresh_card(rt, deploy, note=summary(w, store_of(rt).checks(w.id, 500), settings, rt))


def post_thread(rt: Runtime, w: Watch, text: str) -> None:
    deploy = rt.store.get_change(w.change_id)
    if deploy is not None:
        thread(rt, deploy, text)


def announce(
    rt: Runtime,
    w: Watch,
    action: AuditAction,
    actor_id: str,
    outcome: str,
    *,
    line: str | None = None,
    refresh: bool = True,
    **audit: Any,
) -> None:
    """Audit `action` on the watch's canary, post `line` in the deploy's thread and refresh
    the summary on its card: one call, so auditing without telling is a visible choice.
    `audit` goes to `Auditor.record` (parameters, justification, request id)."""
    rt.auditor.record(
        action,
        actor_id,
        outcome,
        environment=w.environment,
        target=w.endpoint,
        change_id=w.change_id,
        **audit,
    )
    if line:
        post_thread(rt, w, line)
    if refresh:
        refresh_summary(rt, w)
