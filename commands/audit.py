"""Writes audit events: redacted, stamped in UTC, with their retention date; and the one
list of audit actions every writer and reader uses. Every text field goes through
`commands.text.outbound`: PII masked and invisible characters made visible, whatever the
caller passed (a refused command's raw text included)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from commands.model import Change
from commands.ports import AuditEvent, AuditSink, Store
from commands.text import outbound, outbound_value


class AuditAction(StrEnum):
    """Every action an audit row can record. Writers pass a member; readers (the digests'
    flags, the dossier, exports) match members, never bare strings. Stored as the value,
    so renaming a member is free and changing a value is a migration of meaning."""

    COMMAND = "command"
    PLAN = "plan"
    APPROVAL_REQUESTED = "approval_requested"
    CARD_UNDELIVERED = "card_undelivered"  # Slack refused a change's card (not_in_channel, …)
    APPROVE = "approve"
    REJECT = "reject"
    # An approve or reject that did not take effect (a rule or a race refused it): never
    # an `approve` / `reject` row, which mean a decision that counted.
    DECISION_REFUSED = "decision_refused"
    CANCEL = "cancel"
    EXPIRED = "expired"
    APPROVAL_VOID = "approval_void"
    BREAK_GLASS = "break_glass"
    EXECUTION_STARTED = "execution_started"
    EXECUTION_RESUMED = "execution_resumed"
    EXECUTION_FINISHED = "execution_finished"
    SOAK = "soak"  # a replace or blue-green deploy's soak ended: healthy, or not (rolled back)
    # A person's `/rollback` asked a change in its soak to stop and roll back (its worker
    # then records `soak` "stopped: …" and the rollback's moves under the change)
    STOP_REQUESTED = "stop_requested"
    # A retrain's training pipeline job submitted (or, taken over, found and adopted), and
    # the model version its run registered (commands/models/retrain.py)
    PIPELINE_SUBMITTED = "pipeline_submitted"
    MODEL_REGISTERED = "model_registered"
    SCHEDULED_RUN = "scheduled_run"
    CANARY_WATCH = "canary_watch"
    CANARY_WATCH_ENDED = "canary_watch_ended"
    CANARY_CHECK = "canary_check"
    CANARY_STEP = "canary_step"
    CANARY_ROLLBACK = "canary_rollback"
    CANARY_DECISION_REQUESTED = "canary_decision_requested"
    CANARY_PAUSE = "canary_pause"
    CANARY_RESUME = "canary_resume"
    FORCED_PROMOTE = "forced_promote"
    DIGEST_POSTED = "digest_posted"
    DIGEST_MISSED = "digest_missed"
    BUDGET_ALERT = "budget_alert"  # yesterday's billed cost reached a `[cost] budget_alerts` %
    JOB_MISSED = "job_missed"
    WORKSPACE_REFUSED = "workspace_refused"
    PERSON_ERASED = "person_erased"
    AUDIT_PURGE = "audit_purge"
    AUDIT_VERIFIED = "audit_verified"
    # A version brought into an environment that requires validation without an approved
    # one (break glass past the model-risk gate, commands/models/gate.py).
    VALIDATION_OVERRIDE = "validation_override"
    # The registry alias naming what prod serves, moved after a change (commands/models/alias.py)
    ALIAS_MOVED = "alias_moved"
    ALIAS_MOVE_FAILED = "alias_move_failed"
    # Respond (issue 17): rows carry `parameters={"incident": "INC-N"}` and, where an alert
    # is concerned, `"alert": "ALERT-N"`; the review reads them back by those ids.
    INCIDENT_DECLARED = "incident_declared"
    INCIDENT_UPDATED = "incident_updated"
    INCIDENT_SEVERITY = "incident_severity"
    INCIDENT_ACKNOWLEDGED = "incident_acknowledged"
    INCIDENT_MITIGATED = "incident_mitigated"
    INCIDENT_RESOLVED = "incident_resolved"
    ALERT_RECEIVED = "alert_received"
    ALERT_CLOSED = "alert_closed"
    ALERT_ACKNOWLEDGED = "alert_acknowledged"
    # Requests to the alert webhook without valid credentials, counted per window rather
    # than a row each (bot/alerts/webhook.py: a flood must not fill the queue or the audit).
    ALERT_REFUSED = "alert_refused"
    PAGE_SENT = "page_sent"
    PAGE_FAILED = "page_failed"
    # With no pager (`[incidents] pager = "none"`): the `@here` posted where a page would
    # have gone. Nobody was paged, so it is not `page_sent`.
    HERE_POSTED = "here_posted"
    HANDOFF = "handoff"
    INCIDENT_LINKED = "incident_linked"


# Actions that bypassed or overrode a control: the digests name them for review.
OVERRIDES = frozenset(
    {
        AuditAction.BREAK_GLASS,
        AuditAction.FORCED_PROMOTE,
        AuditAction.CANARY_ROLLBACK,
        AuditAction.APPROVAL_VOID,
        AuditAction.WORKSPACE_REFUSED,
        AuditAction.VALIDATION_OVERRIDE,
    }
)
# What the bot did on a person's behalf as a consequence of their action (the page of the
# incident they declared or raised): recorded under their name, but not an intervention
# of theirs (the end-of-day digest lists their action itself).
FOLLOW_ON = frozenset({AuditAction.PAGE_SENT, AuditAction.PAGE_FAILED, AuditAction.HERE_POSTED})
# Decisions on a change (the dossier's "approvals" section): those that took effect only.
DECISIONS = frozenset(
    {
        AuditAction.APPROVAL_REQUESTED,
        AuditAction.APPROVE,
        AuditAction.REJECT,
        AuditAction.CANCEL,
        AuditAction.EXPIRED,
        AuditAction.APPROVAL_VOID,
        AuditAction.BREAK_GLASS,
        AuditAction.VALIDATION_OVERRIDE,
    }
)
EXECUTION = frozenset(
    {
        AuditAction.EXECUTION_STARTED,
        AuditAction.EXECUTION_RESUMED,
        AuditAction.STOP_REQUESTED,
        AuditAction.SOAK,
        AuditAction.PIPELINE_SUBMITTED,
        AuditAction.MODEL_REGISTERED,
        AuditAction.EXECUTION_FINISHED,
    }
)


RETENTION = timedelta(days=7 * 365 + 2)  # seven years, leap days included


class Auditor:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        retention: timedelta = RETENTION,
        sinks: list[AuditSink] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention
        self.sinks = sinks or []

    def record(
        self,
        action: AuditAction,
        actor_id: str,
        outcome: str,
        *,
        environment: str | None = None,
        target: str | None = None,
        parameters: dict[str, Any] | None = None,
        justification: str | None = None,
        change: Change | None = None,
        change_id: str | None = None,
        request_id: str | None = None,
    ) -> AuditEvent:
        now = self.clock()
        if change is not None and change.plan.incident:
            # a change requested under an open incident: every row of it names the incident
            parameters = {"incident": change.plan.incident} | (parameters or {})
        event = AuditEvent(
            action=action,
            actor_id=actor_id,
            outcome=outbound(outcome),
            at=now,
            environment=environment or (change.environment if change else None),
            target=outbound(target) if target else (change.endpoint if change else None),
            parameters=outbound_value(parameters or {}),
            justification=outbound(justification) if justification else None,
            change_id=change_id or (change.id if change else None),
            request_id=request_id,
            retain_until=now + self.retention,
        )
        stored = self.store.append_audit(event)
        for sink in self.sinks:
            try:
                sink.write(stored)
            except Exception:
                import logging

                logging.getLogger(__name__).exception("audit sink failed for row %s", stored.id)
        return stored
