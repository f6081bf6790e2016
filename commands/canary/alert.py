"""The canary `page` policy as an alert (DETECT, issue 17): a regression the bot rolls back
under `canary_auto_rollback = "page"` is an alert like Cloud Monitoring's and the health
watch's — one message in the ops channel through `receive_alert`, with Declare incident /
Roll back / Acknowledge and the figures that breached — and it pages the on-call through
`rt.pager` when one is configured (`commands.incidents.paging.page_alert`: `dedup_key`
the alert id, severity by the suggested-severity rule). With `[incidents] pager = "none"`
the ops channel's `@here` is the alarm, as before.

Its key is `canary:<CAN-N>`: one alert per canary analysis. It closes (its message
updated, the page resolved) when the watch ends rolled back; a rollback that fails leaves
it open while people decide.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from commands.canary.model import Check, Watch
from commands.canary.records import store_of as canary_store
from commands.incidents.alerts import receive_alert
from commands.incidents.model import AlertNotice, AlertRecord, AlertSource, AlertState
from commands.incidents.pager import PageAction
from commands.incidents.paging import page_alert
from commands.incidents.records import store_of
from commands.messages import Post, Reply, Text, escape
from commands.model import BOT, Change
from commands.runtime import Runtime

log = logging.getLogger(__name__)

POLICY = "canary regression"  # what `[runbooks.policies]` keys these alerts by
_ERRORS_TEST = "canary errors"  # how the judge's reasons name the error-rate tests


def alert_key(w: Watch) -> str:
    return f"{AlertSource.CANARY.value}:{w.ref}"


def regression_notice(w: Watch, last: Check | None, rollback: Change | None) -> AlertNotice:
    """The alert of a regression verdict, from the last check's figures and reasons."""
    summary = f"{w.endpoint}: canary {w.canary_version} regressed against {w.stable_version}"
    if last is not None:
        summary += f" at {last.canary_share}% ({last.canary.text()} vs {last.stable.text()})"
    reasons = list(last.reasons) if last else []
    # The severity rule reads a metric label for "errors": say which test found it.
    metric = "error_rate" if any(r.startswith(_ERRORS_TEST) for r in reasons) else "p95_latency_ms"
    running = f"{rollback.id}, " if rollback is not None else ""
    doc = (
        f"The bot is already rolling this canary back ({running}policy"
        f' `canary_auto_rollback = "page"` in {w.environment}): Roll back is needed only if'
        " that rollback fails. Declare an incident if customers were affected."
    )
    return AlertNotice(
        key=alert_key(w),
        source=AlertSource.CANARY,
        state=AlertState.OPEN,
        policy=POLICY,
        condition=(
            f"canary {w.canary_version} worse than {w.stable_version} (canary analysis"
            f" {w.ref}, `[canary]`)"
        ),
        started_at=w.share_since or w.started_at,
        endpoint=w.endpoint,
        environment=w.environment,
        summary=summary,
        observed="; ".join(reasons),
        documentation=doc,
        labels={"metric": metric, "canary": w.ref, "change": w.change_id},
    )


def raise_alert(rt: Runtime, w: Watch, reason: str, rollback: Change | None) -> AlertRecord | None:
    """Post the regression's alert (once: its key) and page the on-call for it, or, with
    no pager, `@here` the ops channel with `reason`. None when the runtime keeps no
    alerts or could not record this one (the `@here` is the alarm then)."""
    record = None
    if rt.incidents is not None:
        found = canary_store(rt).checks(w.id, 1)
        try:
            record = receive_alert(rt, regression_notice(w, found[-1] if found else None, rollback))
        except Exception:  # the store failed: the alarm below must still go out
            log.exception("canary %s: its alert could not be recorded", w.ref)
    result = None
    if record is not None and record.paged_at is None:
        result = page_alert(rt, record, PageAction.TRIGGER, BOT.id)
        if result is not None and result.delivered:
            record = _paged(rt, record)
    if result is None:  # no pager: the ops channel's @here is the alarm
        alert = f" ({record.id})" if record is not None else ""
        text = (
            f"<!here> :rotating_light: The bot is rolling back the canary on `{w.endpoint}`"
            f" ({w.environment}){alert}: {escape(reason)}"
        )
        rt.notifier.post(
            Post(
                rt.config.channels.ops,
                Reply(text=text, blocks=[Text(text)], ephemeral=False),
                change_id=w.change_id,
            )
        )
    return record


def close_alert(rt: Runtime, w: Watch, why: str) -> AlertRecord | None:
    """The canary is gone (rolled back): its alert, if it has one still open, closes — its
    message updated, its page resolved (`receive_alert` with the closing notice)."""
    if rt.incidents is None:
        return None
    record = store_of(rt).get_alert(alert_key(w))
    if record is None or record.closed_at is not None:
        return record
    now = rt.clock()
    closing = replace(
        record.notice,
        state=AlertState.CLOSED,
        ended_at=now,
        summary=f"{w.endpoint}: canary {w.canary_version} is gone ({why});"
        f" {w.stable_version} serves its traffic again",
        documentation="",
    )
    return receive_alert(rt, closing)


# --- helpers ----------------------------------------------------------------------------


def _paged(rt: Runtime, record: AlertRecord) -> AlertRecord:
    now = rt.clock()
    for _ in range(5):
        moved = store_of(rt).update_alert(record.id, record.rev, paged_at=now)
        if moved is not None:
            return moved
        fresh = store_of(rt).get_alert(record.id)
        if fresh is None or fresh.paged_at is not None:
            return fresh or record
        record = fresh
    return record
