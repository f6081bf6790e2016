"""HAND-OFF: `/aiops handoff "…" [environment=prod]`: the on-call's notes for the next
shift, stored and audited (masked, like every free text), listed by the end-of-day
digest."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.errors import Refusal
from commands.incidents.model import Handoff, IncidentState
from commands.incidents.people import require_responder
from commands.incidents.records import store_of
from commands.messages import Reply, Text, did_you_mean, escape, mention
from commands.model import Actor
from commands.runtime import Runtime

USAGE = '/aiops handoff "what the next on-call needs to know" [environment=prod]'
MAX = 2000


def handoff(
    rt: Runtime, actor: Actor, text: str | None, environment: str | None, request_id: str | None
) -> Reply:
    if environment is not None and environment not in rt.config.environments:
        raise Refusal(
            f"unknown environment `{escape(environment)}`"
            f"{did_you_mean(environment, rt.config.environments)}",
            f"Known: {', '.join(f'`{e}`' for e in rt.config.environments)}.",
            code="unknown_environment",
        )
    require_responder(rt, actor, environment, "write hand-off notes on")
    text = (text or "").strip()
    if not text:
        raise Refusal("a hand-off needs its notes", f"Usage: `{USAGE}`", code="malformed")
    if len(text) > MAX:
        raise Refusal(
            f"the notes are {len(text):,} characters long; the limit is {MAX:,}",
            "Keep to what the next shift must act on; link the rest.",
            code="too_long",
        )
    store = store_of(rt)
    note = store.add_handoff(
        Handoff(id=0, author=actor.id, at=rt.clock(), text=text, environment=environment)
    )
    open_now = [
        i.id
        for i in store.list_incidents(states=frozenset(s for s in IncidentState if s.is_open))
        if environment is None or i.environment in (None, environment)
    ]
    rt.auditor.record(
        AuditAction.HANDOFF,
        actor.id,
        "hand-off notes",
        environment=environment,
        request_id=request_id,
        justification=note.text,
        parameters={"incident": None, "handoff": note.id, "open_incidents": open_now},
    )
    where = f" for `{environment}`" if environment else ""
    still = ", ".join(open_now) if open_now else "none"
    body = (
        f"Hand-off notes{where} stored by {mention(actor.id)}; the end-of-day digest carries"
        f" them.\n>{escape(note.text)}\nOpen incidents: {still}."
    )
    return Reply(text="hand-off notes stored", blocks=[Text(body)])
