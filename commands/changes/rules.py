"""The rules a change must pass: who may request, approve or break glass (per
environment), data residency, change tickets, freeze windows, and the plan hash that
binds an approval to the plan that was shown."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from commands.audit import AuditAction
from commands.changes.tell import refresh_card, tell
from commands.config import Endpoint, Environment, user_groups
from commands.errors import Refusal
from commands.freezes import active_freeze
from commands.messages import escape, mention, split_text, when
from commands.model import Actor, Change, ChangeKind, ChangeState
from commands.models.gate import GATED_KINDS, recheck
from commands.parsing import TICKET_RE, Args, ParseError
from commands.ports import GroupResolver, PlatformError
from commands.runtime import Runtime


def _member(actor_id: str, allowed: tuple[str, ...], groups: GroupResolver | None) -> bool:
    if actor_id in allowed:
        return True
    return groups is not None and any(actor_id in groups(g) for g in user_groups(allowed))


def may_request(env: Environment, actor_id: str, groups: GroupResolver | None = None) -> bool:
    return not env.requesters or _member(actor_id, env.requesters, groups)


def may_approve(env: Environment, actor_id: str, groups: GroupResolver | None = None) -> bool:
    return _member(actor_id, env.approvers, groups)


def may_break_glass(env: Environment, actor_id: str, groups: GroupResolver | None = None) -> bool:
    return _member(actor_id, env.break_glass, groups)


# A freeze stops what takes a version live or removes one; rollback and scaling stay
# allowed (mitigation: capacity is how an overloaded endpoint is helped).
FROZEN_KINDS = (ChangeKind.DEPLOY, ChangeKind.PROMOTE, ChangeKind.UNDEPLOY)


@dataclass(frozen=True)
class BreakGlass:
    actor_id: str
    reason: str
    freeze: str | None = None  # the freeze it overrode, if any


def plan_hash(change: Change) -> str:
    """What an approver is shown, as a hash: the kind, the endpoint, the version and the
    traffic before → after (and what a rollback of it restores)."""
    body: dict[str, object] = {
        "kind": change.kind.value,
        "endpoint": change.endpoint,
        "environment": change.environment,
        "version": change.version,
        "canary_percent": change.canary_percent,
        "split_before": change.split_before,
        "split_after": change.split_after,
        "restore_split": change.restore_split,
        # as stored before the plan was typed: a comma list, absent when empty
        "undeploy": ",".join(change.plan.undeploy) or None,
        "redeploy_version": change.plan.redeploy_version,
    }
    # Added only when set, so the hash of a plan made before strategies and scaling (which
    # an approval may be bound to) stays what it was.
    extra = {
        "strategy": change.plan.strategy,
        "target_id": change.plan.target_id,
        "replicas_before": list(change.plan.replicas_before or ()) or None,
        "replicas_after": list(change.plan.replicas_after or ()) or None,
        "pipeline": change.plan.pipeline,  # a retrain: template, parameters, where
    }
    body |= {key: value for key, value in extra.items() if value is not None}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _region(env: Environment, ep: Endpoint) -> str:
    return ep.region or env.region


def _freeze_refusal(
    rt: Runtime, env: Environment, kind: ChangeKind, at: datetime | None = None
) -> Refusal | None:
    """A deploy or promote inside a change freeze: now, or at `at` when it is scheduled."""
    if kind not in FROZEN_KINDS:
        return None
    tz = rt.config.timezone
    freeze = active_freeze(rt.config.freezes, env.name, rt.clock(), tz)
    when_ = "is in"
    if freeze is None and at is not None:
        freeze = active_freeze(rt.config.freezes, env.name, at, tz)
        when_ = f"will be, at {when(at, tz)}, in"
    if freeze is None:
        return None
    return Refusal(
        f"`{env.name}` {when_} the change freeze `{escape(freeze.name)}`"
        f" ({freeze.describe(tz)}); {kind.value}s are refused until it ends",
        "Rollback is always allowed. For an emergency, a person on the break-glass list may"
        ' use `break_glass=true reason="…"`.',
        code="frozen",
    )


def frozen_now(rt: Runtime, change: Change) -> Refusal | None:
    """The freeze that stops `change` now: checked when it is requested, approved, and
    (scheduled with `at=`) started. A break-glass change was let through deliberately."""
    env = rt.config.environments.get(change.environment)
    if env is None or change.plan.break_glass:
        return None
    return _freeze_refusal(rt, env, change.kind)


def check_requester(
    rt: Runtime,
    env: Environment,
    kind: ChangeKind,
    args: Args,
    actor: Actor,
    channel_id: str | None,
) -> None:
    """Refuse a request of `kind` in `env` from someone who may not request there, from a
    channel requests may not come from, or without the change ticket (or with a malformed
    one) the environment requires: what every change, of an endpoint or a model, passes."""
    if not may_request(env, actor.id, rt.groups):
        raise Refusal(
            f"{mention(actor.id)} may not request changes in `{env.name}`",
            "Ask someone on the environment's requesters list, or the platform lead to add you.",
            code="not_allowed",
        )
    if env.request_channels and channel_id not in env.request_channels:
        where = ", ".join(f"<#{c}>" for c in env.request_channels)
        raise Refusal(
            f"changes in `{env.name}` are requested only from {where}",
            "Run the command there, so the people who watch that channel see it.",
            code="wrong_channel",
        )
    ticket = args.options.get("ticket")
    if ticket is not None and not TICKET_RE.match(ticket):
        raise Refusal(
            f"`ticket={escape(ticket)}` is not a ticket reference",
            "Write the change ticket's id, e.g. `ticket=CHG-1234`.",
            code="malformed",
        )
    if env.require_ticket and not ticket:
        raise Refusal(
            f"a {kind.value} in `{env.name}` needs a change ticket",
            "Add `ticket=CHG-1234` (the approved change request).",
            code="missing_ticket",
        )


def check_request(
    rt: Runtime,
    env: Environment,
    ep: Endpoint,
    kind: ChangeKind,
    args: Args,
    actor: Actor,
    channel_id: str | None,
    at: datetime | None = None,
) -> BreakGlass | None:
    """Refuse a request the environment's policy does not allow (`check_requester`,
    residency, freezes now or at the time `at=` schedules it); say whether it breaks
    glass."""
    check_requester(rt, env, kind, args, actor, channel_id)
    region = _region(env, ep)
    if region not in env.allowed_regions:
        raise Refusal(
            f"`{ep.slug}` is in `{escape(region)}`, outside the allowed regions of `{env.name}`"
            f" ({', '.join(env.allowed_regions)}); data must stay in approved regions",
            "Nothing was changed. The platform team must move the endpoint or the policy.",
            code="residency",
        )
    try:
        glass = args.flag("break_glass")
    except ParseError as exc:
        raise Refusal(str(exc), "Write `break_glass=true`.", code="malformed") from None
    if glass:
        if not may_break_glass(env, actor.id, rt.groups):
            raise Refusal(
                f"{mention(actor.id)} is not on the break-glass list of `{env.name}`",
                "Ask an approver, or someone on the list. Nothing was changed.",
                code="not_allowed",
            )
        needs = env.needs_approval and (
            kind is not ChangeKind.ROLLBACK or env.rollback_requires_approval
        )
        # the model-risk gate is glass too: break glass may take an unvalidated version in
        gated = kind in GATED_KINDS and env.require_validation
        if not (needs or gated):
            raise Refusal(
                f"a {kind.value} in `{env.name}` needs no approval; there is no glass to break",
                "Run it without `break_glass=`.",
                code="malformed",
            )
        reason = (args.options.get("reason") or "").strip()
        if not reason:
            raise Refusal(
                "break glass needs a reason",
                'Add `reason="…"`: what is on fire and why it cannot wait for an approval.',
                code="missing_reason",
            )
        frozen = (
            active_freeze(rt.config.freezes, env.name, rt.clock(), rt.config.timezone)
            if kind in FROZEN_KINDS
            else None
        )
        return BreakGlass(actor.id, reason, frozen.name if frozen else None)
    refusal = _freeze_refusal(rt, env, kind, at)
    if refusal:
        raise refusal
    return None


def closed(rt: Runtime, change: Change) -> Refusal:
    """The answer to a decision on a change that is no longer pending: who decided it, when."""
    state = change.state.value.replace("_", " ")
    by = ""
    if change.decided_by and not change.decided_by.startswith("policy:"):
        verb = {
            ChangeState.REJECTED: "rejected",
            ChangeState.CANCELLED: "cancelled",
            ChangeState.EXPIRED: "expired",
        }.get(change.state, "approved")
        who = (
            "unanswered"
            if change.state is ChangeState.EXPIRED
            else f"by {mention(change.decided_by)}"
        )
        by = f" ({verb} {who} at {when(change.decided_at, rt.config.timezone)})"
    return Refusal(f"{change.id} is already {state}{by}; nothing was done", code="already_decided")


def _void(rt: Runtime, change: Change, actor: Actor, why: str, request_id: str | None) -> Refusal:
    now = rt.clock()
    done = rt.store.transition(
        change.id,
        ChangeState.PENDING_APPROVAL,
        ChangeState.CANCELLED,
        decided_by="policy: approval void",  # the why is in the audit and the card
        decided_at=now,
        updated_at=now,
    )
    if done is None:
        # Someone decided first (the endpoint moved because the change ran): nothing was
        # voided, and the clicker hears who decided, as for any late click.
        return closed(rt, rt.store.get_change(change.id) or change)
    rt.auditor.record(
        AuditAction.APPROVAL_VOID,
        actor.id,
        f"void: {why}",
        change=done,
        request_id=request_id,
        parameters={"plan_hash": change.plan.plan_hash, "why": why},
    )
    note = f"Approval by {mention(actor.id)} void: {why}. Plan it again if still needed."
    refresh_card(rt, done, note=note)
    tell(
        rt,
        done.requester_id,
        f"{done.id} ({done.kind.value} {done.subject}) was closed: {why}. Plan it again.",
    )
    return Refusal(
        f"your approval of {change.id} is void: {why}",
        f"Nothing was run. The change is closed; plan it again with `/{change.kind.value}`.",
        code="plan_moved",
    )


def check_approval(
    rt: Runtime, change: Change, actor: Actor, request_id: str | None = None
) -> str | None:
    """Before an approval counts: no freeze now, the version still passes the model-risk
    gate it passed when requested, the plan is the one shown, the endpoint has not moved. Returns the plan hash the approval is bound to."""
    refusal = frozen_now(rt, change)
    if refusal:
        refusal.message = f"{change.id} cannot be approved now: {refusal.message}"
        raise refusal
    recheck(rt, change)  # a validation withdrawn since the request is not approved in
    shown = change.plan.plan_hash
    if shown is not None and shown != plan_hash(change):
        raise _void(rt, change, actor, "the plan was altered after it was shown", request_id)
    ep = rt.config.endpoints.get(change.endpoint)
    if ep is not None:
        try:
            state = rt.platform.endpoint_state(ep)
        except PlatformError as exc:
            raise Refusal(
                f"cannot confirm `{ep.slug}` is as planned ({exc}); the approval was not counted",
                "Try again in a moment.",
                code="platform",
            ) from None
        if dict(state.traffic) != change.split_before:
            labels = {d.id: d.version.version for d in state.deployed}
            labels |= change.labels
            why = (
                f"`{ep.slug}` changed since the request (planned from"
                f" {split_text(change.split_before, labels)}, now"
                f" {split_text(dict(state.traffic), labels)})"
            )
            raise _void(rt, change, actor, why, request_id)
    return shown or plan_hash(change)


def announce_break_glass(rt: Runtime, change: Change, glass: BreakGlass) -> str:
    """The note for the card posted in the approvals channel."""
    return (
        f":rotating_light: *Break glass* by {mention(glass.actor_id)} at"
        f" {when(rt.clock(), rt.config.timezone)}: ran without approval. Why: {escape(glass.reason)}"
    )
