"""`/aiops changes`: open and recent changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from commands.config import Config
from commands.messages import (
    Block,
    Header,
    Reply,
    Text,
    escape,
    mention,
    when,
)
from commands.model import (
    OPEN_STATES,
    Change,
    ChangeKind,
    ChangeState,
    model_key,
    stranded_since,
)
from commands.runtime import Runtime

# Kinds whose line names the version they act on.
_VERSIONED = (ChangeKind.DEPLOY, ChangeKind.SCALE, ChangeKind.UNDEPLOY)


def changes_reply(
    changes: Sequence[Change],
    config: Config,
    stranded: Mapping[str, datetime] | None = None,
) -> Reply:
    """One line per change; `stranded` (change id → since when) marks the changes whose
    background work no live worker holds."""
    stranded = stranded or {}
    if not changes:
        return Reply.info("No changes yet. Start one with `/deploy`.")
    lines = [
        f"{c.state.mark} *{c.id}* {c.kind.value} `{c.subject}`"
        + (f" {escape(c.version)}" if c.version and c.kind in _VERSIONED else "")
        + (
            f" → registered {escape(c.plan.registered_version)}"
            if c.plan.registered_version
            else ""
        )
        + (f" {c.plan.strategy}" if c.plan.strategy and c.plan.strategy != "canary" else "")
        + (f" to {c.canary_percent}%" if c.kind is ChangeKind.PROMOTE else "")
        + (
            f" to min {c.plan.replicas_after[0]} · max {c.plan.replicas_after[1]}"
            if c.kind is ChangeKind.SCALE and c.plan.replicas_after
            else ""
        )
        + f" · {c.state.value.replace('_', ' ')} · by {mention(c.requester_id)} · {when(c.created_at, config.timezone)}"
        + (f" · :alarm_clock: at {when(c.plan.run_at, config.timezone)}" if c.plan.run_at else "")
        + (  # its card never reached Slack: the typed form is the only way to decide it
            f" · :warning: no card in Slack, decide with `/aiops approve {c.id}`"
            if c.state is ChangeState.PENDING_APPROVAL and not c.message_ts
            else ""
        )
        + (
            f" · :warning: stranded since {when(stranded[c.id], config.timezone)}, no live worker"
            if c.id in stranded
            else ""
        )
        for c in changes
    ]
    blocks: list[Block] = [Header("Changes")]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > 2900:
            blocks.append(Text("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(Text("\n".join(chunk)))
    return Reply(text=f"{len(changes)} change(s)", blocks=blocks[:50])


def changes(rt: Runtime, slug: str | None, limit: int) -> Reply:
    """Open changes first, then the most recent, at most `limit`: every change, an
    endpoint's, or a model's retrains (named by the model)."""
    key = slug
    if slug in rt.config.models and slug not in rt.config.endpoints:
        key = model_key(slug)
    elif slug:
        rt.endpoint(slug, "/aiops changes [endpoint|model] [limit=N]")
    found = rt.store.list_changes(endpoint=key, limit=limit)
    found.sort(key=lambda c: (c.state not in OPEN_STATES, -int(c.id.split("-")[1])))
    now = rt.clock()
    stranded = {
        c.id: since
        for c in found
        if (since := stranded_since(c, now, rt.approved_settle)) is not None
    }
    return changes_reply(found, rt.config, stranded)
