"""`/aiops incident <verb> …`: one subcommand, one verb table. Each verb says which
options and how many words it takes, so a stray `cause=` on `declare` is refused with
that verb's usage rather than ignored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from commands.errors import Refusal
from commands.incidents import declare as declaring
from commands.incidents import draft, mitigate, progress
from commands.incidents.cards import incident_card
from commands.incidents.model import Incident, IncidentState
from commands.incidents.records import find_incident, store_of
from commands.messages import (
    Block,
    Context,
    Header,
    Reply,
    Text,
    did_you_mean,
    escape,
    mention,
    when,
)
from commands.model import Invocation
from commands.parsing import Args
from commands.runtime import Runtime

RECENT = timedelta(days=7)  # `list all`: resolved ones this recent too


@dataclass(frozen=True)
class Verb:
    usage: str
    options: frozenset[str]
    words: int  # positionals after the verb, at most
    run: Callable[[Runtime, Invocation, Args], Reply]


def _word(args: Args, n: int) -> str | None:
    return args.positionals[n] if len(args.positionals) > n else None


VERBS: dict[str, Verb] = {
    "declare": Verb(
        declaring.USAGE,
        frozenset({"sev", "summary", "commander", "oncall", "alert"}),
        1,
        lambda rt, inv, a: declaring.declare(rt, inv, a),
    ),
    "update": Verb(
        '/aiops incident update INC-N "what changed"',
        frozenset(),
        2,
        lambda rt, inv, a: progress.update(rt, inv.actor, _word(a, 1), _word(a, 2), inv.request_id),
    ),
    "severity": Verb(
        '/aiops incident severity INC-N P1|P2|P3 [reason="…"]',
        frozenset({"reason"}),
        2,
        lambda rt, inv, a: progress.change_severity(
            rt, inv.actor, _word(a, 1), _word(a, 2), a.options.get("reason"), inv.request_id
        ),
    ),
    "ack": Verb(
        "/aiops incident ack <INC-N|ALERT-N>",
        frozenset(),
        1,
        lambda rt, inv, a: progress.acknowledge(rt, inv.actor, _word(a, 1), inv.request_id),
    ),
    "mitigated": Verb(
        "/aiops incident mitigated INC-N",
        frozenset(),
        1,
        lambda rt, inv, a: progress.mitigated(rt, inv.actor, _word(a, 1), inv.request_id),
    ),
    "resolve": Verb(
        '/aiops incident resolve INC-N cause="the root cause"',
        frozenset({"cause"}),
        1,
        lambda rt, inv, a: progress.resolve(
            rt, inv.actor, _word(a, 1), a.options.get("cause"), inv.request_id
        ),
    ),
    "rollback": Verb(
        mitigate.ROLLBACK_USAGE,
        frozenset({"reason"}),
        1,
        lambda rt, inv, a: mitigate.rollback(rt, inv, _word(a, 1), a.options.get("reason")),
    ),
    "pause": Verb(
        mitigate.PAUSE_USAGE,
        frozenset(),
        1,
        lambda rt, inv, a: mitigate.pause_canary(rt, inv, _word(a, 1)),
    ),
    "scale": Verb(
        mitigate.SCALE_USAGE,
        frozenset({"reason"}),
        1,
        lambda rt, inv, a: mitigate.scale_up(rt, inv, _word(a, 1), a.options.get("reason")),
    ),
    "review": Verb(
        draft.USAGE,
        frozenset(),
        1,
        lambda rt, inv, a: draft.post_review(rt, inv.actor, _word(a, 1)),
    ),
    "list": Verb(
        "/aiops incident list [all]",
        frozenset(),
        1,
        lambda rt, inv, a: incidents_list(rt, _word(a, 1) == "all"),
    ),
    "show": Verb(
        "/aiops incident show INC-N",
        frozenset(),
        1,
        lambda rt, inv, a: show(rt, _word(a, 1)),
    ),
}


def incident_command(rt: Runtime, inv: Invocation, args: Args) -> Reply:
    """Dispatch `/aiops incident <verb>`; a bare `/aiops incident` lists the open ones."""
    verb_name = args.positionals[0].lower() if args.positionals else "list"
    verb = VERBS.get(verb_name)
    if verb is None:
        raise Refusal(
            f"unknown incident verb `{escape(verb_name)}`{did_you_mean(verb_name, VERBS)}",
            "One of: " + ", ".join(f"`{v}`" for v in VERBS) + ". See `/aiops help incident`.",
            code="unknown_command",
        )
    stray = sorted(set(args.options) - verb.options)
    if stray:
        takes = ", ".join(f"`{o}=`" for o in sorted(verb.options)) or "no options"
        raise Refusal(
            f"`incident {verb_name}` takes {takes}, not `{escape(stray[0])}=`",
            f"Usage: `{verb.usage}`",
            code="malformed",
        )
    if len(args.positionals) - 1 > verb.words:
        extra = " ".join(args.positionals[1 + verb.words :])
        raise Refusal(
            f"unexpected `{escape(extra[:40])}`; quote text with spaces",
            f"Usage: `{verb.usage}`",
            code="malformed",
        )
    return verb.run(rt, inv, args)


def _line(rt: Runtime, i: Incident) -> str:
    where = f"`{i.endpoint}`" if i.endpoint else "no endpoint"
    return (
        f"*{i.id}* {i.severity.value} · {i.state.value} · {where} — {escape(i.summary)}"
        f" (declared {when(i.declared_at, rt.config.timezone)} by {mention(i.declared_by)})"
    )


def incidents_list(rt: Runtime, everything: bool) -> Reply:
    store = store_of(rt)
    open_states = frozenset(s for s in IncidentState if s.is_open)
    found = (
        store.list_incidents(since=rt.clock() - RECENT)
        if everything
        else store.list_incidents(states=open_states)
    )
    title = "Incidents: open, and resolved in the last 7 days" if everything else "Open incidents"
    blocks: list[Block] = [Header(title)]
    shown = found[:20]
    if not shown:
        blocks.append(Text("None." if everything else "None open."))
    else:
        blocks.append(Text("\n".join(_line(rt, i) for i in shown)))
    hints = ["`/aiops incident show INC-N` for one; `/aiops incident declare …` for a new one."]
    if len(found) > len(shown):
        hints.insert(0, f"and {len(found) - len(shown)} more.")
    if not everything:
        hints.append("`/aiops incident list all` adds the recently resolved.")
    blocks.append(Context(tuple(hints)))
    return Reply(text=f"{len(found)} incident(s)", blocks=blocks)


def show(rt: Runtime, ref: str | None) -> Reply:
    incident = find_incident(rt, ref, "/aiops incident show INC-N")
    card = incident_card(incident, rt.config)
    lines = []
    if incident.endpoint:
        for change in rt.store.list_changes(endpoint=incident.endpoint, limit=50):
            if change.plan.incident == incident.id:
                lines.append(
                    f"{change.state.mark} {change.id} {change.kind.value} by"
                    f" {mention(change.requester_id)}: {change.state.value}"
                )
    blocks: list[Block] = list(card.blocks)
    blocks.append(Text("*Linked changes*\n" + ("\n".join(reversed(lines)) or "none")))
    if incident.channel and incident.thread_ts:
        blocks.append(Context((f"Its thread is in <#{incident.channel}>.",)))
    card.blocks = blocks
    card.ephemeral = True
    return card
