"""Replies the domain shows: plans, approval requests, change cards, status, audit, help."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from commands.catalog import AIOPS_SUBCOMMANDS, SLASH_COMMANDS, CommandSpec
from commands.config import Config, Thresholds
from commands.messages import (
    Block,
    Button,
    Buttons,
    Context,
    Divider,
    Fields,
    Header,
    Reply,
    Text,
    escape,
    mention,
)
from commands.model import Change, ChangeKind, ChangeState, EndpointHealth, EndpointState
from commands.planning import NEW, split_text
from commands.store import ApprovalRecord, AuditEvent
from commands.text import cut


def when(at: datetime | None, tz: ZoneInfo) -> str:
    if at is None:
        return "—"
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _labels(change: Change) -> dict[str, str]:
    return change.labels | ({NEW: change.version.split("@")[-1]} if change.version else {})


def traffic_line(change: Change) -> str:
    labels = _labels(change)
    return f"{split_text(change.split_before, labels)}  →  {split_text(change.split_after, labels)}"


def what_line(change: Change) -> str:
    if change.kind is ChangeKind.DEPLOY:
        return f"Deploy *{escape(change.version or '')}* to `{change.endpoint}` as a canary"
    if change.kind is ChangeKind.PROMOTE:
        return f"Promote the canary on `{change.endpoint}` to {change.canary_percent}%"
    return f"Roll back `{change.endpoint}`"


def health_line(h: EndpointHealth | None, th: Thresholds) -> str:
    if h is None:
        return "no figures yet"
    parts = []
    for label, value, limit, fmt in (
        ("P95", h.p95_latency_ms, th.p95_latency_ms, "{:.0f} ms"),
        ("errors", h.error_rate, th.error_rate, "{:.2%}"),
        ("drift", h.drift, th.drift, "{:.3f}"),
    ):
        if value is None:
            parts.append(f"{label} n/a")
        else:
            mark = " :warning:" if value > limit else ""
            parts.append(f"{label} {fmt.format(value)}{mark}")
    return " · ".join(parts)


def breaches(h: EndpointHealth, th: Thresholds) -> list[str]:
    out = []
    if h.p95_latency_ms is not None and h.p95_latency_ms > th.p95_latency_ms:
        out.append(f"P95 {h.p95_latency_ms:.0f} ms > {th.p95_latency_ms:.0f} ms")
    if h.error_rate is not None and h.error_rate > th.error_rate:
        out.append(f"error rate {h.error_rate:.2%} > {th.error_rate:.0%}")
    if h.drift is not None and h.drift > th.drift:
        out.append(f"drift {h.drift:.3f} > {th.drift}")
    return out


def change_card(
    change: Change,
    config: Config,
    *,
    health: EndpointHealth | None = None,
    approvals: Sequence[ApprovalRecord] = (),
    buttons: bool = False,
    note: str | None = None,
) -> Reply:
    """The change's one message: the plan answering the six questions, then its state."""
    env = config.environments[change.environment]
    th = config.thresholds
    title = (
        f"{change.state.mark} {change.id} · {change.kind.value} · {change.endpoint} ({env.name})"
    )
    approvers = ", ".join(mention(a) for a in env.approvers) or "no approval needed"
    rollback_to = _labels(change).get(change.extra.get("stable_id", ""), "")
    if change.kind is ChangeKind.ROLLBACK:
        how_back = "this is the rollback"
    elif change.kind is ChangeKind.DEPLOY:
        how_back = f"`/rollback {change.endpoint}`: {rollback_to or 'the serving version'} stays deployed and ready"
    else:
        how_back = f"`/rollback {change.endpoint}` restores {split_text(change.restore_split, _labels(change))}"
    blocks: list[Block] = [
        Header(title[:150]),
        Text(f"*What:* {what_line(change)}\n*Traffic:* {traffic_line(change)}"),
        Fields(
            (
                ("Who asked", mention(change.requester_id)),
                ("Who may approve", approvers if env.needs_approval else "no approval needed"),
                (
                    "How",
                    f"canary {change.canary_percent}%"
                    if change.kind is ChangeKind.DEPLOY
                    else change.extra.get("mode", "traffic shift"),
                ),
                (
                    "Could go wrong",
                    "health when planned: "
                    + (
                        health_line(health, th)
                        if health
                        else change.extra.get("health", "no figures")
                    ),
                ),
                (
                    "How we'll know",
                    f"P95 > {th.p95_latency_ms / 1000:g} s · errors > {th.error_rate:.0%} ·"
                    f" drift > {th.drift:g}",
                ),
                ("How we roll back", how_back),
            )
        ),
    ]
    if change.reason:
        blocks.append(Text(f"*Why:* {escape(change.reason)}"))
    state_line = f"*State:* {change.state.mark} {change.state.value.replace('_', ' ')}"
    if change.extra.get("run_at"):  # scheduled with `at=` (commands/schedule.py)
        state_line += f" · :alarm_clock: scheduled for {when(datetime.fromisoformat(change.extra['run_at']), config.timezone)}"
    if change.state is ChangeState.PENDING_APPROVAL and change.expires_at:
        state_line += f" · expires {when(change.expires_at, config.timezone)}"
    if change.decided_by:
        verb = {
            ChangeState.REJECTED: "rejected",
            ChangeState.EXPIRED: "expired",
            ChangeState.CANCELLED: "cancelled",
        }.get(change.state, "approved")
        if change.decided_by.startswith("policy:"):
            state_line += f" · {change.decided_by.removeprefix('policy:').strip()}"
        else:
            state_line += f" · {verb} by {mention(change.decided_by)} at {when(change.decided_at, config.timezone)}"
    if change.error:
        state_line += f"\n:x: {escape(change.error)}"
    blocks.append(Text(state_line))
    for a in approvals:
        if a.approver_id == change.decided_by and len(approvals) == 1:
            continue  # already said on the state line
        why = f": {escape(a.reason)}" if a.reason else ""
        blocks.append(
            Context(
                (
                    f"{a.decision}d by {mention(a.approver_id)} at {when(a.at, config.timezone)}{why}",
                )
            )
        )
    if change.extra.get("forced_promote"):
        blocks.append(
            Text(
                f":warning: *Forced promote* over the canary analysis: {change.extra['forced_promote']}"
            )
        )
    if change.extra.get("canary") and change.kind is ChangeKind.PROMOTE:
        blocks.append(Context((f"When requested: {change.extra['canary']}",)))
    if note:
        blocks.append(Context((note,)))
    if buttons and change.state is ChangeState.PENDING_APPROVAL:
        blocks.append(
            Buttons(
                (
                    Button(
                        "Approve", "approve", change.id, f"/aiops approve {change.id}", "primary"
                    ),
                    Button(
                        "Reject",
                        "reject",
                        change.id,
                        f'/aiops reject {change.id} reason="…"',
                        "danger",
                    ),
                )
            )
        )
    text = (
        f"{change.id} {change.kind.value} {change.endpoint}: {change.state.value.replace('_', ' ')}"
    )
    return Reply(text=text, blocks=blocks, ephemeral=False)


def status_reply(
    config: Config,
    states: dict[str, EndpointState],
    health: dict[str, EndpointHealth],
    open_changes: dict[str, Change],
) -> Reply:
    th = config.thresholds
    blocks: list[Block] = [Header("Endpoint status")]
    flagged = 0
    for slug, state in states.items():
        ep = config.endpoints[slug]
        h = health.get(slug)
        found = breaches(h, th) if h else []
        flagged += bool(found)
        mark = ":red_circle:" if found else ":large_green_circle:"
        lines = [f"{mark} *{slug}* ({ep.environment}) — {state.describe()}"]
        if found:
            lines.append(":warning: " + "; ".join(found))
        change = open_changes.get(slug)
        if change:
            lines.append(
                f"open change: {change.state.mark} {change.id} {change.kind.value} ({change.state.value.replace('_', ' ')})"
            )
        blocks.append(Text("\n".join(lines)))
        if h:
            pairs = [
                (
                    "P95 latency",
                    f"{h.p95_latency_ms:.0f} ms" if h.p95_latency_ms is not None else "n/a",
                ),
                ("Error rate", f"{h.error_rate:.2%}" if h.error_rate is not None else "n/a"),
                ("Drift", f"{h.drift:.3f}" if h.drift is not None else "not monitored"),
                ("Replicas", f"{h.replicas} / {h.max_replicas}"),
                (
                    # a billed (non-estimate) figure is yesterday's: the export lags by hours
                    "Cost today" if h.cost_is_estimate else "Cost yesterday (billed)",
                    (f"${h.cost_today_usd:,.2f}" + (" (estimate)" if h.cost_is_estimate else ""))
                    if h.cost_today_usd is not None
                    else "n/a",
                ),
                ("Requests (1 h)", f"{h.request_count:,}"),
            ]
            blocks.append(Fields(tuple(pairs)))
            labels = {d.id: d.version.version for d in state.deployed}
            per_model = [
                f"{labels.get(dm, dm)}: "
                f"P95 {m.p95_latency_ms:.0f} ms, errors {m.error_rate:.2%}, {m.request_count:,} req"
                for dm, m in h.by_model.items()
                if m.p95_latency_ms is not None and m.error_rate is not None and len(h.by_model) > 1
            ]
            if per_model:
                blocks.append(Context(tuple(per_model[:10])))
        blocks.append(Divider())
    summary = f"{len(states)} endpoint(s), {flagged} breaching"
    blocks.append(
        Context(
            (
                summary
                + f" · thresholds P95 {th.p95_latency_ms:.0f} ms, errors {th.error_rate:.0%}, drift {th.drift:g}",
            )
        )
    )
    return Reply(text=f"Status: {summary}", blocks=blocks[:50])


def changes_reply(changes: Sequence[Change], config: Config) -> Reply:
    if not changes:
        return Reply.info("No changes yet. Start one with `/deploy`.")
    lines = [
        f"{c.state.mark} *{c.id}* {c.kind.value} `{c.endpoint}`"
        + (f" {escape(c.version)}" if c.version and c.kind is ChangeKind.DEPLOY else "")
        + (f" to {c.canary_percent}%" if c.kind is ChangeKind.PROMOTE else "")
        + f" · {c.state.value.replace('_', ' ')} · by {mention(c.requester_id)} · {when(c.created_at, config.timezone)}"
        + (
            f" · :alarm_clock: at {when(datetime.fromisoformat(c.extra['run_at']), config.timezone)}"
            if c.extra.get("run_at")
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


def _spec_block(spec: CommandSpec) -> Text:
    text = f"*{spec.usage}*\n{spec.summary}."
    if spec.details:
        text += f"\n{spec.details}"
    if spec.examples:
        text += "\n" + "\n".join(f"`{e}`" for e in spec.examples)
    return Text(text)


def help_reply(topic: str | None = None) -> Reply:
    if topic:
        key = topic if topic.startswith("/") else f"/{topic}"
        if key in SLASH_COMMANDS and key != "/aiops":
            return Reply(text=SLASH_COMMANDS[key].usage, blocks=[_spec_block(SLASH_COMMANDS[key])])
        if topic in AIOPS_SUBCOMMANDS:
            return Reply(
                text=AIOPS_SUBCOMMANDS[topic].usage, blocks=[_spec_block(AIOPS_SUBCOMMANDS[topic])]
            )
        return Reply.refusal(f"no help for `{escape(topic)}`", hint="Try `/aiops help`.")
    blocks: list[Block] = [Header("aiops-bot commands")]
    for name, spec in SLASH_COMMANDS.items():
        if name != "/aiops":
            blocks.append(_spec_block(spec))
    blocks.append(Divider())
    blocks.append(Text("\n".join(f"`{s.usage}` — {s.summary}" for s in AIOPS_SUBCOMMANDS.values())))
    blocks.append(
        Context(("Production changes need a reason and an approval; every action is audited.",))
    )
    return Reply(text="aiops-bot help", blocks=blocks)
