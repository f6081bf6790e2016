"""`/aiops audit`: who did what, when and why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from commands.config import Config
from commands.durations import FORMS as DURATION_FORMS
from commands.durations import DurationError, parse_duration
from commands.errors import Refusal
from commands.messages import (
    Block,
    Context,
    Header,
    Reply,
    Text,
    escape,
    mention,
    when,
)
from commands.ports import AuditEvent, AuditQuery
from commands.runtime import Runtime
from commands.text import cut


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
    blocks: list[Block] = [Header(cut(f"Audit: {title}", 150))]
    chunk: list[str] = []
    for line in lines:
        line = cut(line, 2900)  # never inside an entity or a mention
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


def parse_since(text: str) -> timedelta:
    """`since=` of `/aiops audit`: the one duration grammar (`commands.durations`)."""
    try:
        return parse_duration(text)
    except DurationError:
        raise Refusal(
            f"`since={escape(text)}` is not a duration",
            f"Write e.g. {DURATION_FORMS}.",
            code="malformed",
        ) from None


def audit(rt: Runtime, slug: str | None, since: str, change_id: str | None, limit: int) -> Reply:
    """The audit rows of the last `since` (all rows of a change when `change_id` is given),
    newest first, at most `limit`."""
    if slug:
        rt.endpoint(slug, "/aiops audit [endpoint] [since=24h]")
    start = rt.clock() - parse_since(since)
    events = rt.store.audit(
        AuditQuery(
            since=None if change_id else start, endpoint=slug, change_id=change_id, limit=limit
        )
    )
    title = escape(change_id or slug or "all endpoints") + (
        "" if change_id else f", last {escape(since)}"
    )
    return audit_reply(events, rt.config, title)
