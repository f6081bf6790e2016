"""Decisions on a pending change: approve, reject, cancel, expire, supersede."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.changes.card import change_card
from commands.changes.execute import start
from commands.changes.rules import check_approval, closed, may_approve
from commands.changes.tell import announce, tell
from commands.errors import Refusal
from commands.messages import Reply, Text, escape, mention, when
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
                f"{expired.id} ({expired.kind.value} {expired.subject}) expired without a decision.",
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
    """Approve or reject a pending change. The decision is stored (an approval row, and the
    change's move once enough people agree) only if it took effect; a click that a rule or
    a race refused is audited as `decision_refused` and its author is told nothing was done.

    `ref` is a change id (the buttons, `/aiops approve CHG-N`): that change is decided only
    while it is still its endpoint's pending change. An endpoint (`/aiops approve
    loan-assessor`) decides nothing: the answer is the card of the plan it names and the
    typed form with its id, so nobody approves a plan they did not see."""
    usage = f"/aiops {decision} <CHG-N|endpoint>"
    change = expire_if_due(rt, rt.find_change(ref, usage))
    env = rt.config.environments[change.environment]
    params = {"decision": decision}
    if change.state is not ChangeState.PENDING_APPROVAL:
        raise _refused(rt, actor, change, closed(rt, change), params, request_id)
    holder = rt.store.open_change(change.endpoint)
    if holder is None or holder.id != change.id:  # the endpoint's lock says otherwise
        fresh = rt.store.get_change(change.id) or change
        if fresh.state is not ChangeState.PENDING_APPROVAL:  # decided meanwhile: say by whom
            raise _refused(rt, actor, fresh, closed(rt, fresh), params, request_id)
        raise _refused(
            rt,
            actor,
            change,
            Refusal(
                f"{change.id} is no longer the pending change of `{change.endpoint}`;"
                " nothing was done",
                "See `/aiops changes " + change.endpoint + "`.",
                code="already_decided",
            ),
            params,
            request_id,
        )
    if actor.id == change.requester_id:
        raise _refused(
            rt,
            actor,
            change,
            Refusal(
                f"you requested {change.id}; someone else must {decision} it",
                f"Ask one of: {', '.join(mention(a) for a in env.approvers)}.",
                code="self_approval",
            ),
            params,
            request_id,
        )
    if not may_approve(env, actor.id, rt.groups):
        raise _refused(
            rt,
            actor,
            change,
            Refusal(
                f"{mention(actor.id)} may not {decision} changes in `{env.name}`",
                f"Approvers: {', '.join(mention(a) for a in env.approvers)}.",
                code="not_allowed",
            ),
            params,
            request_id,
        )
    if ref in rt.config.endpoints:
        # Typed with the endpoint, not the change: the plan it names may be one this
        # person never saw (a newer request on the same endpoint). Show it; decide nothing.
        return _preview(rt, change, decision, ref)
    # An approval counts only for the plan that was shown, on the endpoint as it was then.
    try:
        bound = (
            check_approval(rt, change, actor, request_id)
            if decision == "approve"
            else change.plan.plan_hash
        )
    except Refusal as refusal:
        if refusal.code == "plan_moved":  # it voided the change: audited as approval_void
            raise
        raise _refused(rt, actor, change, refusal, params, request_id) from None
    if bound:
        params["plan_hash"] = bound
    now = rt.clock()
    rejecting = decision == "reject"
    outcome = rt.store.decide(
        ApprovalRecord(change.id, actor.id, decision, now, reason, plan_hash=bound),
        ChangeState.REJECTED if rejecting else ChangeState.APPROVED,
        1 if rejecting else max(1, env.approvals_required),
        decided_by=actor.id,
        decided_at=now,
        updated_at=now,
    )
    if outcome.duplicate:
        raise _refused(
            rt,
            actor,
            change,
            Refusal(f"you already decided on {change.id}; nothing was done", code="duplicate"),
            params,
            request_id,
        )
    if not outcome.stored:  # someone decided first (or it expired) while this click ran
        raise _refused(rt, actor, outcome.change, closed(rt, outcome.change), params, request_id)
    done = outcome.change
    if rejecting:
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
            f"{done.id} ({done.kind.value} {done.subject}) was rejected by {mention(actor.id)}"
            + (f": {escape(reason)}" if reason else "."),
        )
        return _ack(rt, done, f"Rejected {done.id}.")
    approvers = outcome.deciders
    if done.state is ChangeState.PENDING_APPROVAL:
        announce(
            rt,
            done,
            AuditAction.APPROVE,
            actor.id,
            f"approval {len(approvers)} of {env.approvals_required}",
            request_id=request_id,
            parameters=params,
        )
        return _ack(rt, done, f"Approval recorded ({len(approvers)} of {env.approvals_required}).")
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
        f"{done.id} ({done.kind.value} {done.subject}) was approved by {mention(actor.id)}; {then}.",
    )
    start(rt, done)
    return _ack(rt, done, f"Approved {done.id}; {then}.")


def _preview(rt: Runtime, change: Change, decision: str, endpoint: str) -> Reply:
    """`/aiops approve|reject <endpoint>`: the card of the change it would decide and the
    typed form that decides exactly that change."""
    typed = f"/aiops {decision} {change.id}" + (' reason="…"' if decision == "reject" else "")
    reply = change_card(change, rt.config, approvals=rt.store.approvals(change.id))
    reply.blocks.append(
        Text(
            f":point_up: This is the plan `/aiops {decision} {endpoint}` names; nothing was"
            f" {decision}d. To {decision} this plan, type `{typed}`: it counts only while"
            f" {change.id} is still the pending change of `{endpoint}`."
        )
    )
    reply.text = f"Nothing was {decision}d: to {decision} {change.id}, type `{typed}`."
    reply.ephemeral = True
    return reply


def _refused(
    rt: Runtime,
    actor: Actor,
    change: Change,
    refusal: Refusal,
    params: dict[str, str],
    request_id: str | None,
) -> Refusal:
    """Audit a decision that did not take effect under its own action (never `approve` or
    `reject`, which mean a decision that counted), and hand back the refusal to raise."""
    rt.auditor.record(
        AuditAction.DECISION_REFUSED,
        actor.id,
        f"refused: {refusal.message}",
        change=change,
        request_id=request_id,
        parameters=params | {"code": refusal.code},
    )
    return refusal


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
            f"{done.id} ({done.kind.value} {done.subject}) was cancelled: {why}.",
        )
    return done


def _ack(rt: Runtime, change: Change, text: str) -> Reply:
    reply = change_card(change, rt.config, approvals=rt.store.approvals(change.id))
    reply.text = text
    reply.ephemeral = True
    return reply
