"""DETECT: an alert's notices in, its one message in the ops channel out.

`receive_alert` is the one path every alert takes: Cloud Monitoring's webhook (parsed
into an `AlertNotice` at the edge) and the bot's own detections (the canary `page`
policy, the health watch). A notice is recorded under its key (deduplicated across
retries and replicas by the store); only the first posts the alert's message, with
Declare incident / Roll back / Acknowledge; the notice that closes it updates that same
message ("resolved at …"), once, whichever replica gets it; a repeat posts nothing. An
alert the bot paged for itself (`paged_at`: the canary `page` policy) is acknowledged and
resolved at the pager as it is acknowledged and closed here."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from commands.audit import AuditAction
from commands.incidents.cards import LINEAGE_MODEL, alert_message
from commands.incidents.model import AlertNotice, AlertRecord, AlertState
from commands.incidents.pager import PageAction
from commands.incidents.paging import page_alert
from commands.incidents.records import store_of
from commands.incidents.severity import suggest_for_alert
from commands.incidents.thread import refresh_alert
from commands.messages import Post
from commands.model import BOT
from commands.models.lineage import serving_lineage
from commands.models.model import UNKNOWN
from commands.runtime import Runtime

log = logging.getLogger(__name__)

_TRIES = 5  # compare-and-set attempts against other writers of one alert


def _params(record: AlertRecord, **extra: Any) -> dict[str, Any]:
    n = record.notice
    return {
        "incident": record.incident_id,
        "alert": record.id,
        "key": n.key,
        "source": n.source.value,
        "policy": n.policy,
        "condition": n.condition,
        "state": n.state.value,
        "started_at": n.started_at.isoformat() if n.started_at else None,
        "ended_at": n.ended_at.isoformat() if n.ended_at else None,
    } | extra


def receive_alert(rt: Runtime, notice: AlertNotice) -> AlertRecord:
    """Record one notice and tell the ops channel what is new. Returns the alert as stored
    after it. Idempotent: the same notice again (a retry, another replica) changes nothing
    that shows. Raises only for the store (the webhook then answers 5xx and Cloud
    Monitoring retries)."""
    store = store_of(rt)
    now = rt.clock()
    notice = with_lineage(rt, notice)
    record, new = store.record_alert(notice, now)
    if new:
        severity, why = suggest_for_alert(rt.config, record.notice)
        rt.auditor.record(
            AuditAction.ALERT_RECEIVED,
            BOT.id,
            "received",
            environment=record.notice.environment,
            target=record.notice.endpoint,
            parameters=_params(record, suggested_severity=severity.value, rule=why),
        )
        record = _post(rt, record)
    if record.notice.state is AlertState.CLOSED and record.closed_at is None:
        record = _close(rt, record)
    return record


def is_drift(notice: AlertNotice) -> bool:
    """A drift alert: the health watch's drift metric, or a policy that names drift (Cloud
    Monitoring's, the sandbox's `Drift > 0.1`)."""
    return notice.labels.get("metric") == "drift" or "drift" in notice.policy.lower()


def with_lineage(rt: Runtime, notice: AlertNotice) -> AlertNotice:
    """An open drift alert on a known endpoint carries what trained the version it serves
    (labels `aiops_model`, `aiops_serving_version`, `aiops_training_pipeline`,
    `aiops_dataset`, "unknown" where the registry does not say), so its message can name
    the pipeline and offer the retrain (`commands.incidents.cards.alert_message`). Any
    other notice is returned as it is."""
    ep = rt.config.endpoints.get(notice.endpoint or "")
    if ep is None or notice.state is not AlertState.OPEN or not is_drift(notice):
        return notice
    found = serving_lineage(rt, ep)
    return replace(
        notice,
        labels=notice.labels
        | {
            LINEAGE_MODEL: found.model,
            "aiops_serving_version": found.version or UNKNOWN,
            "aiops_training_pipeline": found.lineage.pipeline_run or UNKNOWN,
            "aiops_dataset": found.lineage.dataset or UNKNOWN,
        },
    )


def _post(rt: Runtime, record: AlertRecord) -> AlertRecord:
    """Post the alert's one message and remember where; then, if a closing notice was
    taken by another replica meanwhile, draw it closed (that replica found no message
    to update)."""
    store = store_of(rt)
    ref = rt.notifier.post(Post(rt.config.channels.ops, alert_message(record, rt.config)))
    if ref is None:  # Slack refused it: logged by the notifier; nothing refers to it
        return record
    for _ in range(_TRIES):
        moved = store.update_alert(record.id, record.rev, channel=ref.channel, message_ts=ref.ts)
        if moved is not None:
            record = moved
            break
        fresh = store.get_alert(record.id)
        if fresh is None:
            return record
        record = fresh
    if record.closed_at is not None or record.incident_id or record.acknowledged_by:
        refresh_alert(rt, record)  # something happened to it while it was being posted
    return record


def _close(rt: Runtime, record: AlertRecord) -> AlertRecord:
    """Take the alert as closed, once across replicas (compare-and-set of `closed_at`):
    the winner audits `alert_closed` and updates the message."""
    store = store_of(rt)
    now = rt.clock()
    for _ in range(_TRIES):
        moved = store.update_alert(record.id, record.rev, closed_at=now)
        if moved is not None:
            rt.auditor.record(
                AuditAction.ALERT_CLOSED,
                BOT.id,
                "closed",
                environment=moved.notice.environment,
                target=moved.notice.endpoint,
                parameters=_params(moved),
            )
            refresh_alert(rt, moved)
            page_alert(rt, moved, PageAction.RESOLVE, BOT.id)  # if the bot paged for it
            return moved
        fresh = store.get_alert(record.id)
        if fresh is None or fresh.closed_at is not None:
            return fresh or record  # another replica took it closed
        record = fresh
    log.warning("%s: could not record it closed (busy); the next notice will", record.id)
    return record


def acknowledge_alert(rt: Runtime, record: AlertRecord, actor_id: str) -> AlertRecord | None:
    """Mark the alert acknowledged by `actor_id`, audit it and update its message; None
    when someone acknowledged it first (it is left as they left it)."""
    store = store_of(rt)
    for _ in range(_TRIES):
        if record.acknowledged_by is not None:
            return None
        moved = store.update_alert(
            record.id, record.rev, acknowledged_by=actor_id, acknowledged_at=rt.clock()
        )
        if moved is not None:
            rt.auditor.record(
                AuditAction.ALERT_ACKNOWLEDGED,
                actor_id,
                "acknowledged",
                environment=moved.notice.environment,
                target=moved.notice.endpoint,
                parameters=_params(moved),
            )
            refresh_alert(rt, moved)
            page_alert(rt, moved, PageAction.ACKNOWLEDGE, actor_id)  # if the bot paged for it
            return moved
        fresh = store.get_alert(record.id)
        if fresh is None:
            return None
        record = fresh
    return None


def attach_incident(rt: Runtime, record: AlertRecord, incident_id: str) -> AlertRecord:
    """Name the incident declared from the alert on it, and update its message."""
    store = store_of(rt)
    for _ in range(_TRIES):
        moved = store.update_alert(record.id, record.rev, incident_id=incident_id)
        if moved is not None:
            refresh_alert(rt, moved)
            return moved
        fresh = store.get_alert(record.id)
        if fresh is None:
            break
        record = fresh
    return replace(record, incident_id=incident_id)
