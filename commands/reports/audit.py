"""`/aiops audit`: who did what, when and why."""

from __future__ import annotations

from collections.abc import Sequence

from commands.config import Config
from commands.formats import when
from commands.messages import (
    Block,
    Context,
    Header,
    Reply,
    Text,
    escape,
    mention,
)
from commands.ports import AuditEvent


def audit_reply(events: Sequence[AuditEvent], config: Config, title: str) -> Reply:
    if not events:
        return Reply.info(f"No audit events for {title}.")
    lines = []
    for e in events:
        who = mention(e.actor_id)
        what = (
            e.action
            + (f" {e.target}" if e.target else "")
            + (f" [{e.change_id}]" if e.change_id else "")
        )
        why = f" — _{escape(e.justification)}_" if e.justification else ""
        lines.append(f"`{when(e.at, config.timezone)}` {who} {what}: {escape(e.outcome)}{why}")
    blocks: list[Block] = [Header(f"Audit: {title}"[:150])]
    chunk: list[str] = []
    for line in lines:
        line = line[:2900]
        if sum(len(x) + 1 for x in chunk) + len(line) > 2900:
            blocks.append(Text("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(Text("\n".join(chunk)))
    if len(blocks) > 49:
        blocks = [
            *blocks[:48],
            Context(
                (
                    "More rows than fit; narrow with `since=` or export with `aiops-bot audit export`.",
                )
            ),
        ]
    return Reply(text=f"{len(events)} audit event(s)", blocks=blocks)
