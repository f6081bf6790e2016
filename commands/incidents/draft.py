"""The review draft in Slack: `/aiops incident review INC-N` and the Review button on a
resolved incident's card.

What Slack gets (chosen because a review is read in the incident's thread, and edited
elsewhere): the draft as a message in the incident's thread — times, the timeline with
the audit row of every event, changes, root cause, action items — drawn within Block
Kit's limits (sections of at most 3,000 characters, far fewer than 50 blocks; a long
timeline keeps its latest events and says how many earlier ones the file holds), and,
when the notifier can attach files (Slack: `files_upload_v2`, the `files:write` scope the
charts already use), the whole Markdown draft — the text `aiops-bot incident review INC-N`
prints — attached in the same thread as `INC-N-review.md`, to paste into the team's
review document. Whoever asked is answered with where it went. An incident whose card
never arrived has no thread: the draft is the answer itself.

Every text from the review is escaped here, as the alert's and the incident's messages
are: the review holds masked text from the audit, not Slack markup.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from commands.incidents.records import find_incident, store_of
from commands.incidents.review import render_review, review_for
from commands.messages import Block, Context, Fields, Header, Post, Reply, Text, escape, mention
from commands.model import Actor
from commands.ports import FileAttacher
from commands.runtime import Runtime
from commands.text import cut

log = logging.getLogger(__name__)

USAGE = "/aiops incident review INC-N"
SECTION = 2900  # characters of a section's text (Slack's limit is 3,000)
TIMELINE_LINES = 60  # the latest events shown; the file and the CLI have them all

_TIMES = (
    ("time_to_detect", "Time to detect"),
    ("time_to_acknowledge", "Time to acknowledge"),
    ("time_to_mitigate", "Time to mitigate"),
    ("time_to_resolve", "Time to resolve"),
)


def _who(p: Mapping[str, Any] | None) -> str:
    if not p:
        return "—"
    slack_id = str(p["id"])
    if slack_id[:1] in ("U", "W"):
        return mention(slack_id)
    return escape(slack_id.removeprefix("policy:").strip())


def _at(value: Mapping[str, str] | None, tz: ZoneInfo, with_date: bool) -> str:
    if not value:
        return "—"
    local = datetime.fromisoformat(value["utc"]).astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M %Z" if with_date else "%H:%M")


def _sections(lines: list[str]) -> list[Block]:
    """Lines packed into as few sections as fit (each within `SECTION` characters)."""
    blocks: list[Block] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        line = cut(line, SECTION)
        if chunk and size + len(line) + 1 > SECTION:
            blocks.append(Text("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        blocks.append(Text("\n".join(chunk)))
    return blocks


def review_message(review: Mapping[str, Any], *, attached: bool = False) -> Reply:
    """The draft as one Slack message (see the module). `attached`: the whole Markdown
    draft is attached beside it, so the message says where the rest is."""
    incident = review["incident"]
    state = review["state"]
    head = f":memo: Post-incident review (draft): {incident}"
    blocks: list[Block] = [Header(cut(head, 150))]
    where = f"`{escape(review['endpoint'])}`" if review.get("endpoint") else "no endpoint"
    if review.get("environment"):
        where += f" ({escape(review['environment'])})"
    intro = [
        f"> {escape(review['summary'] or '—')}",
        f"*{review['severity']}* · {state} · {where}"
        + (" · still open: a draft so far" if state != "resolved" else ""),
    ]
    runbook = review.get("runbook")
    intro.append(
        f"Runbook: <{runbook}|{escape(runbook)}>"
        if runbook and str(runbook).startswith("https://")
        else "Runbook: *none* (an action item below)"
    )
    blocks.append(Text(cut("\n".join(intro), SECTION)))
    times = review["times"]
    blocks.append(Fields(tuple((label, times[key]["text"]) for key, label in _TIMES)))

    timeline = list(review["timeline"])
    lines = ["*Timeline* (each event with its audit row)"]
    hidden = max(0, len(timeline) - TIMELINE_LINES)
    if hidden:
        lines.append(f"_… {hidden} earlier event(s) in the full draft_")
    tz = ZoneInfo(review["timezone"])
    day = ""
    for e in timeline[hidden:]:
        # the date on the first event and whenever it changes, the time alone otherwise
        with_date = e["at"]["local"][:10] != day
        day = e["at"]["local"][:10]
        lines.append(
            f"`{_at(e['at'], tz, with_date)}` {escape(e['text'])} — {_who(e['actor'])}"
            f" · row {e['row']}"
        )
    if not timeline:
        lines.append("no audit rows about this incident")
    blocks += _sections(lines)

    changes = [
        f"*{c['id']}* {c['kind']} `{escape(c['endpoint'])}` · {c['state'].replace('_', ' ')}"
        f" · {c['role']} · `{c['dossier']}`"
        for c in review["changes"]
    ]
    blocks += _sections(["*Changes involved*", *(changes or ["none recorded"])])
    cause = review.get("root_cause")
    actions = [f"• {escape(a['text'])}" for a in review["action_items"]]
    blocks += _sections(
        [
            f"*Root cause:* {escape(cause) if cause else '_not recorded yet_'}",
            "*Contributing factors:* _to be written at the review_",
            "*Action items:*",
            *(actions or ["_to be agreed at the review_"]),
        ]
    )
    notes = [
        f"Every event names its audit row (`aiops-bot audit verify` checks them)."
        f" The full draft: `aiops-bot incident review {incident}`"
        + (f", attached here as `{filename(incident)}`." if attached else ".")
    ]
    if review.get("untraced"):
        notes.append(f"{len(review['untraced'])} moment(s) without an audit row: see the draft.")
    blocks.append(Context(tuple(cut(n, 2000) for n in notes)))
    return Reply(text=f"Post-incident review (draft): {incident}", blocks=blocks, ephemeral=False)


def filename(incident_id: str) -> str:
    return f"{incident_id}-review.md"


def post_review(rt: Runtime, actor: Actor, ref: str | None) -> Reply:
    """`/aiops incident review INC-N` (and the Review button): the draft in the incident's
    thread, the Markdown attached beside it where the notifier can; the answer says
    where. Unknown ids are refused naming the closest."""
    incident = find_incident(rt, ref, USAGE)
    review = review_for(
        rt.store, store_of(rt), rt.config, incident.id, canary=rt.canary, people=rt.people
    )
    if not (incident.channel and incident.thread_ts):
        answer = review_message(review)
        answer.ephemeral = True
        return answer
    attached = can_attach = isinstance(rt.notifier, FileAttacher)
    if isinstance(rt.notifier, FileAttacher):
        try:
            attached = rt.notifier.attach_file(
                incident.channel,
                incident.thread_ts,
                filename(incident.id),
                render_review(review, "md"),
                f"Post-incident review (draft): {incident.id}",
                f"The review draft of {incident.id}, asked for by {mention(actor.id)}.",
            )
        except Exception:  # the attachment is extra: the draft still goes in the thread
            log.exception("%s: the review draft could not be attached", incident.id)
            attached = False
    delivered = rt.notifier.deliver(
        Post(
            incident.channel,
            review_message(review, attached=attached),
            thread_ts=incident.thread_ts,
        )
    )
    if not delivered.delivered and not attached:
        answer = review_message(review)
        answer.ephemeral = True
        answer.blocks.append(
            Context(
                (f"Slack refused it in the incident's thread ({delivered.error}): here it is.",)
            )
        )
        return answer
    what = "the draft" + (f" and `{filename(incident.id)}`" if attached else "")
    if not delivered.delivered:  # the file is there, the message is not
        what = f"`{filename(incident.id)}` (the message itself was refused: {delivered.error})"
    failed = ""
    if can_attach and not attached:
        failed = (
            f" The file `{filename(incident.id)}` could not be attached (Slack refused the"
            " upload; logged): print the Markdown with"
        )
    return Reply.info(
        f"Posted {what} in {incident.id}'s thread."
        + (failed or " The full draft anywhere:")
        + f" `aiops-bot incident review {incident.id}`."
    )
