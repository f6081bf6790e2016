"""DETECT: an alert's notices in, its one message in the ops channel out.

`receive_alert` is the one path every alert takes: Cloud Monitoring's webhook (parsed
into an `AlertNotice` at the edge) and the bot's own detections (the canary `page`
policy, the health watch). A notice is recorded under its key (deduplicated across
retries and replicas by the store); only the first posts the alert's message, with
Declare incident / Roll back / Acknowledge; the notice that closes it updates that same
message ("resolved at …"), once, whichever replica gets it; a repeat posts nothing. An
alert the bot paged for itself (`paged_at`: the canary `page` policy) is acknowledged and
resolved at the pager as it is acknowledged and closed here.

Posted exactly once, even when a worker dies between storing a new alert and posting it:
whoever posts takes a claim on the alert first (compare-and-set of `posting_by` /
`posting_until`, `POST_CLAIM`; the first claimant audits `alert_received`), and any later receiver of any notice of it (the retried
job, another replica, the closing notice) posts it when it has no message and no live
claim. A claim held by a live worker is left alone (`Received.busy`: the job is run again
later, when the message is there or the claim has expired)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from commands.audit import AuditAction
from commands.changes.lease import new_owner
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
POST_CLAIM = timedelta(seconds=30)
"""How long a claim on posting an alert's message holds: one `chat.postMessage` with
Slack's rate-limit retry takes seconds. A worker that died holding it delays the post by
at most this; one still posting after it may post a second message (logged)."""


@dataclass(frozen=True)
class Received:
    """What one notice did: the alert as stored after it; `duplicate` when the notice
    changed nothing that shows (known already, nothing posted, not closed by it), as the
    webhook reports it; `busy` when the alert has no message yet and another worker's
    live claim is posting it (run the notice again later: it will then be a duplicate, or
    post if that worker died)."""

    record: AlertRecord
    duplicate: bool
    busy: bool = False


class AlertBusy(RuntimeError):
    """Another worker is posting the alert's message (`Received.busy`): a job raises it to
    be run again later."""


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
    """Record one notice and tell the ops channel what is new (`receive_notice`); the
    alert as stored after it."""
    return receive_notice(rt, notice).record


def receive_notice(rt: Runtime, notice: AlertNotice) -> Received:
    """Record one notice and tell the ops channel what is new. Idempotent: the same notice
    again (a retry, another replica) changes nothing that shows (`duplicate`), except that
    an alert whose message was never posted (its poster died) is posted then. Raises only
    for the store (the webhook then answers 5xx and Cloud Monitoring retries)."""
    store = store_of(rt)
    now = rt.clock()
    notice = with_lineage(rt, notice)
    record, new = store.record_alert(notice, now)
    posted = busy = False
    if record.message_ts is None:
        record, posted, busy = _post_once(rt, record)
    closed = False
    if record.notice.state is AlertState.CLOSED and record.closed_at is None:
        record, closed = _close(rt, record)
    return Received(record, duplicate=not (new or posted or closed), busy=busy)


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


def _claim(rt: Runtime, record: AlertRecord, owner: str) -> tuple[AlertRecord, bool, bool]:
    """Take the claim on posting the alert's message: (the alert, taken, busy). Not taken
    when it has a message by now, or (busy) another worker's claim is still live."""
    store = store_of(rt)
    for _ in range(_TRIES):
        now = rt.clock()
        if record.message_ts is not None:
            return record, False, False
        if record.posting_until is not None and record.posting_until > now:
            return record, False, True  # a live worker is posting it
        if record.posting_by is not None:
            log.warning(
                "%s: %s claimed its message and did not post it by %s; posting it",
                record.id,
                record.posting_by,
                record.posting_until,
            )
        taken = store.update_alert(
            record.id, record.rev, posting_by=owner, posting_until=now + POST_CLAIM
        )
        if taken is not None:
            return taken, True, False
        fresh = store.get_alert(record.id)
        if fresh is None:
            return record, False, False
        record = fresh
    return record, False, True  # moved under us every time: try again later


def _post_once(rt: Runtime, record: AlertRecord) -> tuple[AlertRecord, bool, bool]:
    """Post the alert's one message under a claim (`_claim`) and remember where: (the
    alert, posted, busy). Then, if a closing notice was taken by another replica
    meanwhile, draw it closed (that replica found no message to update)."""
    store = store_of(rt)
    owner = new_owner()
    first = record.posting_by is None  # nobody took it before: `alert_received` is ours
    record, taken, busy = _claim(rt, record, owner)
    if not taken:
        return record, False, busy
    if first:
        severity, why = suggest_for_alert(rt.config, record.notice)
        rt.auditor.record(
            AuditAction.ALERT_RECEIVED,
            BOT.id,
            "received",
            environment=record.notice.environment,
            target=record.notice.endpoint,
            parameters=_params(record, suggested_severity=severity.value, rule=why),
        )
    ref = rt.notifier.post(Post(rt.config.channels.ops, alert_message(record, rt.config)))
    # Slack refused it (logged by the notifier): the claim is given up (expired, its
    # holder kept so that `alert_received` is not audited twice) and the next notice of
    # the alert tries again
    done: dict[str, Any] = {"posting_until": rt.clock()}
    if ref is not None:
        done = {"channel": ref.channel, "message_ts": ref.ts, "posting_until": None}
    for _ in range(_TRIES):
        moved = store.update_alert(record.id, record.rev, **done)
        if moved is not None:
            record = moved
            break
        fresh = store.get_alert(record.id)
        if fresh is None:
            return record, ref is not None, False
        record = fresh
    if ref is None:
        return record, False, False
    if record.closed_at is not None or record.incident_id or record.acknowledged_by:
        refresh_alert(rt, record)  # something happened to it while it was being posted
    return record, True, False


def _close(rt: Runtime, record: AlertRecord) -> tuple[AlertRecord, bool]:
    """Take the alert as closed, once across replicas (compare-and-set of `closed_at`):
    the winner audits `alert_closed` and updates the message; (the alert, closed here)."""
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
            return moved, True
        fresh = store.get_alert(record.id)
        if fresh is None or fresh.closed_at is not None:
            return fresh or record, False  # another replica took it closed
        record = fresh
    log.warning("%s: could not record it closed (busy); the next notice will", record.id)
    return record, False


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
