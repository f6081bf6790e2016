"""Decisions on a pending change: approve, reject, cancel, expire, supersede."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.changes.card import change_card
from commands.changes.execute import start
from commands.changes.rules import check_approval, closed, may_approve
from commands.changes.tell import announce, tell
from commands.errors import Refusal
from commands.messages import Reply, escape, mention, when
from commands.model import SCHEDULER, Actor, Change, ChangeState
from commands.ports import ApprovalRecord
from commands.runtime import Runtime


def expire_if_due(rt: Runtime, change: Change) -> Change:
    if (
        change.state is ChangeState.PENDING_APPROVAL
        and change.expires_at is not None
        and rt.clock() >= change.expires_at
    ):
        expired = rt.store.transition(
            change.id,
            ChangeState.PENDING_APPROVAL,
            ChangeState.EXPIRED,
            decided_by=SCHEDULER.id,
            decided_at=rt.clock(),
            updated_at=rt.clock(),
        )
        if expired is not None:
            announce(
                rt,
                expired,
                AuditAction.EXPIRED,
                SCHEDULER.id,
                "expired",
                note="Unanswered: this request expired. Plan it again if it is still needed.",
                parameters={"expires_at": change.expires_at.isoformat()},
            )
            tell(
                rt,
                expired.requester_id,
                f"{expired.id} ({expired.kind.value} {expired.endpoint}) expired without a decision.",
            )
            return expired
        return rt.store.get_change(change.id) or change
    return change


def expire_due(rt: Runtime) -> list[Change]:
    """Expire every pending request past its time (the scheduler calls this)."""
    out = []
    for change in rt.store.list_changes(states=[ChangeState.PENDING_APPROVAL], limit=1000):
        after = expire_if_due(rt, change)
        if after.state is ChangeState.EXPIRED and change.state is not ChangeState.EXPIRED:
            out.append(after)
    return out


def decide(
    rt: Runtime,
    actor: Actor,
    ref: str | None,
    decision: str,
    reason: str | None = None,
    request_id: str | None = None,
) -> Reply:
    usage = f"/aiops {decision} <change|endpoint>"
    change = expire_if_due(rt, rt.find_change(ref, usage))
    env = rt.config.environments[change.environment]
    params = {"decision": decision}
    action = AuditAction(decision)  # approve | reject
    if change.state is not ChangeState.PENDING_APPROVAL:
        refusal = closed(rt, change)
        rt.auditor.record(
            action,
            actor.id,
            f"refused: {refusal.message}",
            change=change,
            request_id=request_id,
            parameters=params,
        )
        raise refusal
    if actor.id == change.requester_id:
        rt.auditor.record(
            action,
            actor.id,
            "refused: requester may not decide own change",
            change=change,
            request_id=request_id,
            parameters=params,
        )
        raise Refusal(
            f"you requested {change.id}; someone else must {decision} it",
            f"Ask one of: {', '.join(mention(a) for a in env.approvers)}.",
            code="self_approval",
        )
    if not may_approve(env, actor.id, rt.groups):
        rt.auditor.record(
            action,
            actor.id,
            "refused: not an approver",
            change=change,
            request_id=request_id,
            parameters=params,
        )
        raise Refusal(
            f"{mention(actor.id)} may not {decision} changes in `{env.name}`",
            f"Approvers: {', '.join(mention(a) for a in env.approvers)}.",
            code="not_allowed",
        )
    # An approval counts only for the plan that was shown, on the endpoint as it was then.
    bound = (
        check_approval(rt, change, actor, request_id)
        if decision == "approve"
        else change.plan.plan_hash
    )
    if bound:
        params["plan_hash"] = bound
    if not rt.store.add_approval(
        ApprovalRecord(change.id, actor.id, decision, rt.clock(), reason, plan_hash=bound)
    ):
        raise Refusal(f"you already decided on {change.id}; nothing was done", code="duplicate")
    now = rt.clock()
    if decision == "reject":
        done = _decided(rt, change, ChangeState.REJECTED, actor.id)
        announce(
            rt,
            done,
            AuditAction.REJECT,
            actor.id,
            "rejected",
            justification=reason,
            request_id=request_id,
            parameters=params,
        )
        tell(
            rt,
            done.requester_id,
            f"{done.id} ({done.kind.value} {done.endpoint}) was rejected by {mention(actor.id)}"
            + (f": {escape(reason)}" if reason else "."),
        )
        return _ack(rt, done, f"Rejected {done.id}.")
    approvers = {a.approver_id for a in rt.store.approvals(change.id) if a.decision == "approve"}
    approvers.discard(change.requester_id)
    if len(approvers) < env.approvals_required:
        announce(
            rt,
            change,
            AuditAction.APPROVE,
            actor.id,
            f"approval {len(approvers)} of {env.approvals_required}",
            request_id=request_id,
            parameters=params,
        )
        return _ack(
            rt, change, f"Approval recorded ({len(approvers)} of {env.approvals_required})."
        )
    done = _decided(rt, change, ChangeState.APPROVED, actor.id)
    announce(
        rt,
        done,
        AuditAction.APPROVE,
        actor.id,
        "approved",
        justification=reason,
        request_id=request_id,
        parameters=params | {"approvers": sorted(approvers)},
    )
    scheduled = done.plan.run_at  # a scheduled change runs at its time, not now
    then = (
        f"it runs at {when(scheduled, rt.config.timezone)}"
        if scheduled and scheduled > now
        else "running now"
    )
    tell(
        rt,
        done.requester_id,
        f"{done.id} ({done.kind.value} {done.endpoint}) was approved by {mention(actor.id)}; {then}.",
    )
    start(rt, done)
    return _ack(rt, done, f"Approved {done.id}; {then}.")


def _decided(rt: Runtime, change: Change, new: ChangeState, actor_id: str) -> Change:
    """Compare-and-set a pending change to `new`, decided by `actor_id`; a change someone
    decided first raises the `closed` refusal that says who and when."""
    now = rt.clock()
    done = rt.store.transition(
        change.id,
        ChangeState.PENDING_APPROVAL,
        new,
        decided_by=actor_id,
        decided_at=now,
        updated_at=now,
    )
    if done is None:
        raise closed(rt, rt.store.get_change(change.id) or change)
    return done


def cancel(
    rt: Runtime, actor: Actor, ref: str | None, reason: str | None, request_id: str | None = None
) -> Reply:
    change = expire_if_due(rt, rt.find_change(ref, "/aiops cancel <change|endpoint>"))
    env = rt.config.environments[change.environment]
    if actor.id != change.requester_id and not may_approve(env, actor.id, rt.groups):
        raise Refusal("only the requester or an approver may cancel a change", code="not_allowed")
    done = _cancel_unstarted(rt, change, actor.id)
    if done is None:
        raise closed(rt, rt.store.get_change(change.id) or change)
    announce(
        rt,
        done,
        AuditAction.CANCEL,
        actor.id,
        "cancelled",
        justification=reason,
        request_id=request_id,
    )
    return _ack(rt, done, f"Cancelled {done.id}.")


def _cancel_unstarted(rt: Runtime, change: Change, actor_id: str) -> Change | None:
    """Compare-and-set a change that has not started into `cancelled`; None if it had."""
    for old in (ChangeState.PENDING_APPROVAL, ChangeState.REQUESTED, ChangeState.APPROVED):
        now = rt.clock()
        done = rt.store.transition(
            change.id,
            old,
            ChangeState.CANCELLED,
            decided_by=actor_id,
            decided_at=now,
            updated_at=now,
        )
        if done is not None:
            return done
    return None


def supersede(rt: Runtime, holder: Change, actor_id: str, why: str) -> Change | None:
    """Mitigation first: a change that has not started yet gives way to a rollback."""
    done = _cancel_unstarted(rt, holder, actor_id)
    if done is not None:
        announce(
            rt,
            done,
            AuditAction.CANCEL,
            actor_id,
            "cancelled",
            note=f"Cancelled: {why}.",
            justification=why,
        )
        tell(
            rt,
            done.requester_id,
            f"{done.id} ({done.kind.value} {done.endpoint}) was cancelled: {why}.",
        )
    return done


def _ack(rt: Runtime, change: Change, text: str) -> Reply:
    reply = change_card(change, rt.config, approvals=rt.store.approvals(change.id))
    reply.text = text
    reply.ephemeral = True
    return reply
