"""The App Home tab: what one person needs at a glance — the approvals waiting for them
(with the card's Approve / Reject buttons), their own open changes, every endpoint's
state and traffic, the canaries under analysis with their verdict, and the scheduled
changes.

Read-only, like the other reports. What every Home shows is read once (`board`) for all
the people refreshed together; only the approvals and "your changes" differ per person.
Each list is cut at a fixed length and says how many more there are, so a view stays far
inside Slack's 100 blocks whatever the size of the estate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from commands.canary.model import ACTIVE_STATES, Watch, WatchState
from commands.changes.card import decision_buttons, traffic_line, what_line
from commands.changes.rules import may_approve
from commands.messages import (
    Block,
    Buttons,
    Context,
    Divider,
    Header,
    Reply,
    Text,
    escape,
    mention,
    when,
)
from commands.model import OPEN_STATES, Change, ChangeState, EndpointState
from commands.ports import ApprovalRecord, PlatformError
from commands.runtime import Runtime
from commands.text import cut

MAX_APPROVALS = 8  # two blocks each (the plan, its buttons)
MAX_LINES = 15  # lines of the other lists
MAX_NOTE_BLOCKS = 12  # the answer to a click on the Home tab, shown on top
TEXT_LIMIT = 2900


@dataclass
class Board:
    """What every Home tab shows, read once for everyone refreshed together."""

    now: datetime
    open_changes: list[Change]  # newest first
    states: dict[str, EndpointState | str]  # endpoint → its state, or why it is unknown
    watches: list[Watch]
    approvals: Callable[[str], list[ApprovalRecord]]
    groups: Callable[[str], set[str]] | None = None
    _approvals: dict[str, list[ApprovalRecord]] = field(default_factory=dict)

    def decided(self, change: Change) -> set[str]:
        if change.id not in self._approvals:
            self._approvals[change.id] = self.approvals(change.id)
        return {a.approver_id for a in self._approvals[change.id]}


def board(rt: Runtime) -> Board:
    """The store's open changes and canaries, and the platform's state of every endpoint
    (one call each; an endpoint the platform cannot answer for says so)."""
    states: dict[str, EndpointState | str] = {}
    for slug, ep in rt.config.endpoints.items():
        try:
            states[slug] = rt.platform.endpoint_state(ep)
        except PlatformError as exc:
            states[slug] = f"unknown ({exc})"
    found = rt.store.list_changes(states=sorted(OPEN_STATES), limit=500)
    found.sort(key=lambda c: -int(c.id.split("-")[1]))
    watches = rt.canary.list_watches(ACTIVE_STATES) if rt.canary is not None else []
    members: dict[str, set[str]] = {}
    resolve = rt.groups

    def groups(group_id: str) -> set[str]:  # each user group read once per board
        if group_id not in members:
            members[group_id] = resolve(group_id) if resolve is not None else set()
        return members[group_id]

    return Board(
        now=rt.clock(),
        open_changes=found,
        states=states,
        watches=watches,
        approvals=rt.store.approvals,
        groups=groups if resolve is not None else None,
    )


def home_views(
    rt: Runtime, user_ids: Iterable[str], notes: Mapping[str, Reply] | None = None
) -> dict[str, Reply]:
    """The Home tab of each person, from one board; `notes`: the answer to a person's
    last click there, shown on top."""
    shared = board(rt)
    notes = notes or {}
    return {uid: home_view(rt, uid, shared, note=notes.get(uid)) for uid in dict.fromkeys(user_ids)}


def home_view(
    rt: Runtime, user_id: str, shared: Board | None = None, note: Reply | None = None
) -> Reply:
    """One person's Home tab; `note` (the answer to their last click there) on top."""
    b = shared or board(rt)
    tz = rt.config.timezone
    blocks: list[Block] = [
        Header("aiops-bot"),
        Context(
            (
                f"For {mention(user_id)} · as of {when(b.now, tz)} · refreshed when a change"
                " moves and each time you open this tab",
            )
        ),
    ]
    if note is not None:
        blocks += [Context(("Your last click here:",)), *_note(note), Divider()]
    blocks += _approvals(rt, b, user_id)
    blocks.append(Divider())
    mine = [c for c in b.open_changes if c.requester_id == user_id]
    blocks += _listed(
        f"Your open changes ({len(mine)})",
        [_change_line(rt, c) for c in mine],
        "You have no open change.",
        "`/aiops changes`",
    )
    blocks.append(Divider())
    blocks += _listed(
        "Endpoints",
        [_endpoint_line(rt, b, slug) for slug in b.states],
        "No endpoints are configured.",
        "`/aiops status`",
    )
    blocks.append(Divider())
    blocks += _listed(
        f"Canaries under analysis ({len(b.watches)})",
        [_canary_line(b, w) for w in b.watches],
        "No canary is being analysed.",
        "`/aiops canary <endpoint>`",
    )
    blocks.append(Divider())
    scheduled = sorted(
        (c for c in b.open_changes if c.plan.run_at and c.state is not ChangeState.RUNNING),
        key=lambda c: c.plan.run_at or b.now,
    )
    blocks += _listed(
        f"Scheduled changes ({len(scheduled)})",
        [
            f"{c.state.mark} *{c.id}* {c.kind.value} `{c.subject}` at"
            f" {when(c.plan.run_at, tz)} · {c.state.value.replace('_', ' ')}"
            for c in scheduled
        ],
        "Nothing is scheduled.",
        "`/aiops changes`",
    )
    waiting = len(_waiting(rt, b, user_id))
    text = f"aiops-bot: {waiting} approval(s) waiting for you, {len(mine)} open change(s) of yours"
    return Reply(text=text, blocks=blocks, ephemeral=True)


def _note(note: Reply) -> list[Block]:
    """A command's answer on the Home tab: its text first (a decision's answer is its line
    above the change's card), then its blocks, without their buttons (the lists below hold
    the ones that still apply)."""
    shown: list[Block] = [x for x in note.blocks if not isinstance(x, Buttons)]
    first = shown[0] if shown else None
    if not (isinstance(first, Text) and note.text in first.text):
        shown.insert(0, Text(note.text))
    return shown[:MAX_NOTE_BLOCKS]


def _waiting(rt: Runtime, b: Board, user_id: str) -> list[Change]:
    """Pending changes this person may decide and has not: not their own, in an
    environment they approve for, oldest expiry first."""
    out = []
    for c in b.open_changes:
        env = rt.config.environments.get(c.environment)
        if (
            c.state is ChangeState.PENDING_APPROVAL
            and env is not None
            and c.requester_id != user_id
            and may_approve(env, user_id, b.groups)
            and user_id not in b.decided(c)
        ):
            out.append(c)
    return sorted(out, key=lambda c: (c.expires_at or b.now, c.id))


def _approvals(rt: Runtime, b: Board, user_id: str) -> list[Block]:
    waiting = _waiting(rt, b, user_id)
    tz = rt.config.timezone
    blocks: list[Block] = [Header(f"Waiting for your approval ({len(waiting)})")]
    if not waiting:
        return [*blocks, Context(("Nothing waits for you.",))]
    for c in waiting[:MAX_APPROVALS]:
        env = rt.config.environments[c.environment]
        lines = [
            f"{c.state.mark} *{c.id}* · {what_line(c)} ({env.name})",
            f"*Traffic:* {traffic_line(c)}",
            f"Asked by {mention(c.requester_id)} at {when(c.created_at, tz)}"
            + (f" · expires {when(c.expires_at, tz)}" if c.expires_at else "")
            + (f" · :alarm_clock: runs at {when(c.plan.run_at, tz)}" if c.plan.run_at else ""),
        ]
        if c.reason:
            lines.append(f"*Why:* {cut(escape(c.reason), 500)}")
        if env.approvals_required > 1:
            lines.append(f"Needs {env.approvals_required} approvals.")
        blocks += [Text("\n".join(lines)), decision_buttons(c, env.name)]
    if len(waiting) > MAX_APPROVALS:
        blocks.append(Context((f"… and {len(waiting) - MAX_APPROVALS} more: `/aiops changes`",)))
    return blocks


def _listed(title: str, lines: Sequence[str], empty: str, more: str) -> list[Block]:
    """A header and up to `MAX_LINES` lines (in as few sections as fit), then how many
    more and where to see them."""
    blocks: list[Block] = [Header(title)]
    if not lines:
        return [*blocks, Context((empty,))]
    chunk: list[str] = []
    for line in lines[:MAX_LINES]:
        line = cut(line, TEXT_LIMIT)
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > TEXT_LIMIT:
            blocks.append(Text("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    blocks.append(Text("\n".join(chunk)))
    if len(lines) > MAX_LINES:
        blocks.append(Context((f"… and {len(lines) - MAX_LINES} more: {more}",)))
    return blocks


def _change_line(rt: Runtime, c: Change) -> str:
    return (
        f"{c.state.mark} *{c.id}* {c.kind.value} `{c.subject}` ·"
        f" {c.state.value.replace('_', ' ')} · {traffic_line(c)}"
        + (f" · :alarm_clock: {when(c.plan.run_at, rt.config.timezone)}" if c.plan.run_at else "")
    )


def _endpoint_line(rt: Runtime, b: Board, slug: str) -> str:
    ep = rt.config.endpoints[slug]
    state = b.states[slug]
    serves = state.describe() if isinstance(state, EndpointState) else escape(state)
    line = f"`{slug}` ({ep.environment}) · {serves}"
    change = next((c for c in b.open_changes if c.endpoint == slug), None)
    if change is not None:
        line += (
            f" · {change.state.mark} {change.id} {change.kind.value}"
            f" ({change.state.value.replace('_', ' ')})"
        )
    return line


def _canary_line(b: Board, w: Watch) -> str:
    state = b.states.get(w.endpoint)
    share = state.traffic.get(w.canary_id) if isinstance(state, EndpointState) else None
    at = f" at {share}%" if share is not None else ""
    verdict = (
        f"{w.last_verdict.mark} {w.last_verdict.words}"
        if w.last_verdict
        else ":white_circle: no verdict yet"
    )
    line = (
        f"*{w.ref}* `{w.endpoint}` · {w.canary_version}{at}"
        + (f" vs {w.stable_version}" if w.stable_version else "")
        + f" · {verdict}"
        f" after {w.checks} check(s)"
    )
    if w.state is not WatchState.WATCHING:
        line += f" · {w.state.value.replace('_', ' ')}"
    return line
