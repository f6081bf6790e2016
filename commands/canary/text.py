"""What people see of a canary analysis: one line per check, the summary on the deploy's
card, the thread."""

from __future__ import annotations

from datetime import timedelta
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
from commands.formats import when
from commands.messages import (
    escape,
)
from commands.runtime import Runtime


def minutes(interval: timedelta) -> str:
    return f"{interval.total_seconds() / 60:g} min"


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
