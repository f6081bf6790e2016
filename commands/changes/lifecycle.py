"""Opening a change: the one path every change takes from plan to running, whoever asks.

People's `/deploy`, `/promote` and `/rollback` and the bot's own canary steps and
rollbacks both call `open_change`: create (which takes the endpoint's lock) → audit the
plan → wait for approval, or approve by policy → post the card → start. What differs
between them (the approval rule, the channel, a note, a break-glass record) is an
argument, so a rule added here holds for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from commands.audit import AuditAction
from commands.changes.card import change_card
from commands.changes.execute import start
from commands.errors import Refusal
from commands.incidents import links
from commands.messages import Post, Reply
from commands.model import Change, ChangeState, EndpointHealth
from commands.ports import Delivery
from commands.runtime import Runtime


@dataclass(frozen=True)
class Opening:
    """How a change is opened.

    `decided_by` approves it by policy (`policy: …`, or the person who decided on the
    bot's request); None leaves it pending approval until `expires_at`, its card with
    Approve / Reject buttons in `channel`.
    """

    channel: str
    decided_by: str | None = None
    expires_at: datetime | None = None
    approval: dict[str, Any] = field(default_factory=dict)  # audited with the request
    note: str | None = None  # a line on the card (why it skipped an approval, …)
    health: EndpointHealth | None = None
    on_created: Callable[[Change], None] | None = None  # after the plan row, before approval
    # After approval, before the card; a text it returns replaces `note` on the card.
    on_approved: Callable[[Change], str | None] | None = None
    # The card did not reach `channel` (audited already): the requester's reply says so.
    on_undelivered: Callable[[Change, Delivery], None] | None = None


def open_change(
    rt: Runtime,
    change: Change,
    actor_id: str,
    opening: Opening,
    *,
    request_id: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> Change:
    """Create `change` (state `requested`), audit its plan, then approve it by policy and
    start it, or put it up for approval. Returns the change as stored.

    Raises `commands.ports.EndpointLocked` when another open change holds the endpoint
    (nothing is written then). A change requested while an incident is open on its
    endpoint is linked to it (`commands.incidents.links`).
    """
    incident = links.mark(rt, change)
    change = rt.store.create_change(change)
    rt.auditor.record(
        AuditAction.PLAN,
        actor_id,
        "planned",
        change=change,
        request_id=request_id,
        justification=change.reason,
        parameters={
            "kind": change.kind.value,
            "split_before": change.split_before,
            "split_after": change.split_after,
        }
        | (parameters or {}),
    )
    if incident is not None:
        links.linked(rt, change, incident, actor_id)
    if opening.on_created is not None:
        opening.on_created(change)
    if opening.decided_by is None:
        assert opening.expires_at is not None, "a change that waits for approval expires"
        moved = rt.store.transition(
            change.id,
            ChangeState.REQUESTED,
            ChangeState.PENDING_APPROVAL,
            expires_at=opening.expires_at,
        )
        if moved is None:
            raise _abandoned(change)
        card = change_card(moved, rt.config, health=opening.health, buttons=True)
        _undelivered(post_card(rt, moved, opening.channel, card, actor_id), moved, opening)
        # the approvers' Home tabs list it, with the card's buttons
        rt.notifier.refresh_home(rt.config.concerned(moved.environment, moved.requester_id))
        rt.auditor.record(
            AuditAction.APPROVAL_REQUESTED,
            actor_id,
            "pending_approval",
            change=moved,
            parameters=opening.approval | {"expires_at": opening.expires_at.isoformat()},
        )
        return moved
    moved = rt.store.transition(
        change.id,
        ChangeState.REQUESTED,
        ChangeState.APPROVED,
        decided_by=opening.decided_by,
        decided_at=rt.clock(),
    )
    if moved is None:
        raise _abandoned(change)
    note = opening.note
    if opening.on_approved is not None:
        note = opening.on_approved(moved) or note
    card = change_card(moved, rt.config, health=opening.health, note=note)
    _undelivered(post_card(rt, moved, opening.channel, card, actor_id), moved, opening)
    if moved.plan.run_at and moved.plan.run_at > rt.clock():  # started now, it says so itself
        rt.notifier.refresh_home(rt.config.concerned(moved.environment, moved.requester_id))
    start(rt, moved)  # not before its time, if scheduled
    return moved


def _abandoned(change: Change) -> Refusal:
    """Nobody else moves a change while it is `requested`, unless this process took so
    long (the runtime's approved settle: a minute by default) that the takeover sweep
    cancelled it as abandoned (`commands.changes.execute._abandon`)."""
    return Refusal(
        f"{change.id} was cancelled while it was being opened (this took too long);"
        " nothing was done",
        "Request it again.",
        code="abandoned",
    )


def _undelivered(delivery: Delivery, change: Change, opening: Opening) -> None:
    if delivery.error is not None and opening.on_undelivered is not None:
        opening.on_undelivered(change, delivery)


def post_card(rt: Runtime, change: Change, channel: str, card: Reply, actor_id: str) -> Delivery:
    """Post the change's one message and remember where, so it can be updated later.

    A card Slack refused (`not_in_channel`, `channel_not_found`, `is_archived`…) is audited
    as `card_undelivered`; the change itself goes on as if it were posted: it is listed by
    `/aiops changes` and decided with `/aiops approve|reject`, and nothing later refers to
    a message that does not exist (it has no `message_ts`)."""
    delivery = rt.notifier.deliver(Post(channel, card, change_id=change.id))
    if delivery.ref is not None:
        rt.store.update_change(change.id, channel=delivery.ref.channel, message_ts=delivery.ref.ts)
        change.channel, change.message_ts = delivery.ref.channel, delivery.ref.ts
    if delivery.error is not None:
        rt.auditor.record(
            AuditAction.CARD_UNDELIVERED,
            actor_id,
            f"card not delivered: {delivery.error}",
            change=change,
            parameters={"channel": channel, "error": delivery.error},
        )
    return delivery
