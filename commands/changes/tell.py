"""How a change tells people: its one card (posted once, then updated), the Home tabs that
show it, the lines in its thread, a direct message to the requester, and `announce`, which
audits and tells in one call so that auditing without telling is a visible choice, not an
accident."""

from __future__ import annotations

from typing import Any

from commands.audit import AuditAction
from commands.changes.card import change_card
from commands.messages import Post, Reply, Text
from commands.model import Change, ChangeState
from commands.runtime import Runtime


def announce(
    rt: Runtime,
    change: Change,
    action: AuditAction,
    actor_id: str,
    outcome: str,
    *,
    line: str | None = None,
    note: str | None = None,
    refresh: bool = True,
    **audit: Any,
) -> None:
    """Audit `action` on `change`, then refresh its card (with `note`) and post `line` in
    its thread. `audit` goes to `Auditor.record` (parameters, justification, request id)."""
    rt.auditor.record(action, actor_id, outcome, change=change, **audit)
    if refresh:
        refresh_card(rt, change, note=note)
    if line:
        thread(rt, change, line)


def refresh_card(rt: Runtime, change: Change, note: str | None = None) -> None:
    """Re-render the change where it is shown: its message where it was posted (buttons go
    once it is decided), and the Home tabs of the people it concerns (its requester and
    its environment's approvers)."""
    rt.notifier.refresh_home(rt.config.concerned(change.environment, change.requester_id))
    if not (change.channel and change.message_ts):
        return
    reply = change_card(
        change,
        rt.config,
        approvals=rt.store.approvals(change.id),
        buttons=change.state is ChangeState.PENDING_APPROVAL,
        note=note,
    )
    rt.notifier.post(
        Post(change.channel, reply, change_id=change.id, update=True, ts=change.message_ts)
    )


def thread(rt: Runtime, change: Change, text: str) -> None:
    if change.channel and change.message_ts:
        rt.notifier.post(
            Post(
                change.channel,
                Reply(text=text, blocks=[Text(text)], ephemeral=False),
                change_id=change.id,
                thread_ts=change.message_ts,
            )
        )


def tell(rt: Runtime, user_id: str, text: str) -> None:
    """A direct message to a person (the requester, usually)."""
    if user_id.startswith(("U", "W")):
        rt.notifier.post(Post(user_id, Reply(text=text, blocks=[Text(text)], ephemeral=False)))
