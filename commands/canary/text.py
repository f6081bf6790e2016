"""What people see of a canary analysis: one line per check, the summary on the deploy's
card, the thread."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.audit import AuditAction
from commands.canary.model import (
    CanarySettings,
    Check,
    Verdict,
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
from commands.runtime import Runtime


def minutes(interval: timedelta) -> str:
    return f"{interval.total_seconds() / 60:g} min"


# --- what people see -----------------------------------------------------------------


def check_line(w: Watch, c: Check, settings: CanarySettings) -> str:
    line = (
        f"{c.verdict.mark} check {c.seq} · {escape(w.canary_version)} at {c.canary_share}%:"
        f" {c.canary.text()} · baseline {escape(w.stable_version)}: {c.stable.text()}"
        f" · *{c.verdict.words}*"
    )
    if c.reasons:
        line += f" ({'; '.join(c.reasons)})"
    if c.verdict is Verdict.BREACH:
        line += f" · {c.consecutive_breaches}/{settings.consecutive_breaches} in a row"
    return line


def summary(w: Watch, checks: list[Check], settings: CanarySettings, rt: Runtime) -> str:
    """One line: everything the analysis of this canary found so far."""
    counts = {v: sum(1 for c in checks if c.verdict is v) for v in Verdict}
    text = (
        f"Canary analysis {w.ref} ({w.state.value.replace('_', ' ')}): {len(checks)} check(s)"
        f" — {counts[Verdict.PASS]} pass, {counts[Verdict.BREACH]} breach,"
        f" {counts[Verdict.NOT_ENOUGH_DATA]} not enough data"
        f" · {w.consecutive_breaches}/{settings.consecutive_breaches} breaches in a row"
    )
    if checks:
        last = checks[-1]
        text += (
            f" · last {when(last.at, rt.config.timezone)}: {last.verdict.words}"
            f" at {last.canary_share}% ({last.canary.text()})"
        )
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
