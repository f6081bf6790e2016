"""Rendering a digest as Block Kit that reads well on a phone and fits Slack's limits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from commands.changes.schedule import run_at
from commands.config import Config, Thresholds
from commands.cost.capacity import daily_saving, scale_down_value, undeploy_value
from commands.digests.gather import (
    MAX_BLOCKS,
    MAX_BREACHING_LINES,
    MAX_FIELDS,
    MAX_LINES,
    SECTION_CHARS,
    Digest,
    DigestData,
    DriftNote,
    _ranked_breaching,
    _score,
    gather,
    schedule_for,
)
from commands.digests.schedule import (
    DigestKind,
    DigestSettings,
    digest_settings,
)
from commands.incidents.metrics import IncidentTimes, span_text
from commands.incidents.model import Handoff, Incident, IncidentState
from commands.messages import (
    Block,
    Button,
    Buttons,
    Confirm,
    Context,
    Divider,
    Fields,
    Header,
    Reply,
    Text,
    breaches,
    escape,
    mention,
    when,
)
from commands.model import Change, ChangeState, EndpointHealth
from commands.models.lineage import retrain_command
from commands.ports import Alert, Chart
from commands.redaction import redact
from commands.runtime import Runtime
from commands.text import cut, outbound

CAPACITY_TITLE = "Idle and unused capacity"
DRIFT_TITLE = "Drift: retrain?"
MAX_CAPACITY_BUTTONS = 10  # of Slack's 25 an actions block holds: a list, not a wall

# --- rendering --------------------------------------------------------------------------


def _chunks(title: str, lines: Sequence[str], limit_blocks: int) -> list[Block]:
    """`lines` under a bold title, in sections of at most SECTION_CHARS, at most
    `limit_blocks` of them; what does not fit becomes "…and N more"."""
    blocks: list[Block] = []
    chunk: list[str] = [f"*{title}*"] if title else []
    size = sum(len(x) + 1 for x in chunk)
    for i, raw in enumerate(lines):
        line = cut(raw, 500)  # never inside an entity or a mention
        if size + len(line) + 1 > SECTION_CHARS:
            if len(blocks) + 1 >= limit_blocks:
                chunk.append(f"…and {len(lines) - i} more")
                break
            blocks.append(Text("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        blocks.append(Text("\n".join(chunk)))
    return blocks[:limit_blocks]


def _capped(lines: list[str], limit: int = MAX_LINES, more: str = "") -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"…and {len(lines) - limit} more{more}"]


def _alert_line(a: Alert, tz: ZoneInfo) -> str:
    mark = {"P1": ":red_circle:", "P2": ":large_orange_circle:"}.get(a.severity, ":white_circle:")
    if a.state == "open":
        state = "*open*"
    else:
        state = f"resolved {a.closed_at.astimezone(tz):%a %H:%M}" if a.closed_at else "resolved"
    where = f" `{a.endpoint}`" if a.endpoint else ""
    opened = a.opened_at.astimezone(tz).strftime("%a %H:%M")
    return f"{mark} {a.severity}{where} {escape(redact(a.policy))}: {escape(redact(a.summary))} · {state} · since {opened}"


_SEVERITY_MARKS = {"P1": ":red_circle:", "P2": ":large_orange_circle:", "P3": ":white_circle:"}


def _one_line(text: str) -> str:
    """Free text as one masked mrkdwn line (`outbound`, then escaped)."""
    return escape(" ".join(outbound(text).split()))


def _incident_line(i: Incident, times: IncidentTimes | None, tz: ZoneInfo, *, eod: bool) -> str:
    """`:red_circle: *INC-4* P1 `loan-assessor` summary · declared Tue 03:12 · *open*,
    acknowledged · commander @alice`; the end of day adds the times to mitigate and
    resolve."""
    where = f" `{i.endpoint}`" if i.endpoint else ""
    if i.state is IncidentState.DECLARED:
        state = "*open*, not acknowledged"
    elif i.state.is_open:
        state = f"*open*, {i.state.value}"
    elif i.resolved_at is not None:
        state = f"resolved {i.resolved_at.astimezone(tz):%a %H:%M}"
    else:
        state = i.state.value
    parts = [
        f"{_SEVERITY_MARKS.get(i.severity.value, ':white_circle:')} *{i.id}*"
        f" {i.severity.value}{where} {_one_line(i.summary)}",
        f"declared {i.declared_at.astimezone(tz):%a %H:%M}",
        state,
    ]
    if i.commander:
        parts.append(f"commander {mention(i.commander)}")
    if eod and times is not None:
        parts.append(f"mitigated in {span_text(times.time_to_mitigate)}")
        parts.append(f"resolved in {span_text(times.time_to_resolve)}")
    return " · ".join(parts)


def _handoff_line(n: Handoff, tz: ZoneInfo) -> str:
    return f"`{n.at.astimezone(tz):%a %H:%M}` {mention(n.author)}: {_one_line(n.text)}"


def _flag(bad: bool) -> str:
    return " :warning:" if bad else ""


def _endpoint_line(slug: str, h: EndpointHealth, th: Thresholds) -> str:
    found = breaches(h, th)
    mark = ":red_circle:" if found else ":large_green_circle:"
    p95 = f"{h.p95_latency_ms:,.0f} ms" if h.p95_latency_ms is not None else "n/a"
    err = f"{h.error_rate:.2%}" if h.error_rate is not None else "n/a"
    drift = f"{h.drift:.3f}" if h.drift is not None else "n/a"
    parts = [
        f"P95 {p95}{_flag(h.p95_latency_ms is not None and h.p95_latency_ms > th.p95_latency_ms)}",
        f"err {err}{_flag(h.error_rate is not None and h.error_rate > th.error_rate)}",
        f"drift {drift}{_flag(h.drift is not None and h.drift > th.drift)}",
        f"{h.request_count:,} req/24 h",
    ]
    return f"{mark} *{slug}* " + " · ".join(parts)


def _money(x: float) -> str:
    return f"${x:,.2f}"


def _cost_section(data: DigestData, cfg: Config, settings: DigestSettings) -> tuple[str, list[str]]:
    """(the Cost field's value, detail lines): yesterday's cost against the environment's
    own budget, spikes against the week, the costliest endpoints."""
    budget = _budget(data, cfg)
    lines: list[str] = []
    if data.costs:
        yesterday = {s: v[-1] for s, v in data.costs.items() if v}
        total = sum(yesterday.values())
        over = total > budget
        summary = f"{_money(total)} yesterday / {_money(budget)} budget" + (
            " :warning:" if over else ""
        )
        spikes = []
        for slug, values in data.costs.items():
            prior = values[:-1][-7:]
            if len(prior) >= 3 and values:
                avg = sum(prior) / len(prior)
                if avg > 0 and values[-1] > settings.spike_factor * avg:
                    spikes.append((values[-1] / avg, slug, values[-1], avg))
        spikes.sort(reverse=True)
        if over:
            lines.append(
                f":warning: over the daily budget by {_money(total - budget)} — tell finance"
            )
        lines += _capped(
            [
                f":chart_with_upwards_trend: *{s}* {_money(v)} vs 7-day average {_money(a)} ({r:.1f}×)"
                for r, s, v, a in spikes
            ]
        )
        top = sorted(yesterday.items(), key=lambda kv: -kv[1])[:3]
        if top and len(yesterday) > 1:
            lines.append("Top: " + ", ".join(f"{s} {_money(v)}" for s, v in top))
    else:
        today = [h.cost_today_usd for h in data.health.values() if h.cost_today_usd is not None]
        summary = f"{_money(sum(today))} today so far (estimate)" if today else "n/a"
    return summary, lines


def _budget(data: DigestData, cfg: Config) -> float:
    """The digest's environment's own daily budget (`[environments.X] daily_budget_usd`)."""
    env = cfg.environments.get(data.environment)
    return env.daily_budget_usd if env is not None else cfg.thresholds.daily_budget_usd


def _cost_of(cost: float | None, billed: bool = False) -> str:
    if cost is None:
        return "cost unknown (no price)"
    return f"{_money(cost)} yesterday" + (" (billed)" if billed else " (est.)")


def _capacity_section(data: DigestData) -> tuple[list[str], list[Button]]:
    """Idle endpoints and models at 0 % (`commands.cost.capacity`): one line each with
    yesterday's cost and the typed request, and the same requests as buttons (at most
    MAX_CAPACITY_BUTTONS; the lines keep the typed form of every one)."""
    cap = data.capacity
    if cap is None:
        return [], []
    lines: list[str] = []
    buttons: list[Button] = []
    for idle in cap.idle[:MAX_LINES]:
        where = f":zzz: *{idle.endpoint}* idle: {idle.requests:,} request(s) yesterday"
        replicas = sum(m.replicas for m in idle.serving)
        where += f", {replicas} replica(s) up · {_cost_of(idle.cost_usd, idle.billed)}"
        if idle.held_by:
            lines.append(f"{where} · held by {idle.held_by}: nothing proposed until it ends")
            continue
        if not idle.serving:
            lines.append(f"{where} · no model takes traffic: see the models at 0 % below")
            continue
        if not idle.scalable:
            lines.append(f"{where} · already at one replica per model: nothing to scale down")
            continue
        asks = []
        for model in idle.scalable:
            value = scale_down_value(idle, model)
            saving = daily_saving(model)
            asks.append(
                f"`/aiops scale {escape(value)}`"
                + (f" saves ~{_money(saving)}/day" if saving is not None else "")
            )
            buttons.append(
                Button(
                    f"Scale down {idle.endpoint} {model.version}",
                    "scale",
                    scale_down_value(idle, model, with_reason=True),
                    f"/aiops scale {value}",
                    confirm=Confirm(
                        f"Request a scale-down of {idle.endpoint}?",
                        f"Opens a change: {idle.endpoint} {model.version} from {model.replicas}"
                        f" to min 1, max {max(1, idle.max_replicas)} replicas. It runs once"
                        " approved where the environment requires approval.",
                        "Request it",
                    ),
                )
            )
        lines.append(f"{where} · " + "; ".join(asks))
    for model in cap.unused[:MAX_LINES]:
        where = (
            f":ghost: *{model.endpoint}* {escape(model.version)} at 0 % of traffic:"
            f" {model.replicas} replica(s) · {_cost_of(model.cost_usd)}"
        )
        held = cap.held.get(model.endpoint)
        if held:
            lines.append(f"{where} · held by {held} (it may be the rollback target)")
            continue
        value = undeploy_value(model)
        lines.append(f"{where} · `/aiops undeploy {escape(value)}`")
        buttons.append(
            Button(
                f"Undeploy {model.endpoint} {model.version}",
                "undeploy",
                undeploy_value(model, with_reason=True),
                f"/aiops undeploy {value}",
                style="danger",
                confirm=Confirm(
                    f"Request an undeploy from {model.endpoint}?",
                    f"Opens a change: undeploy {model.version} (0 % of traffic) from"
                    f" {model.endpoint}. It runs once approved where the environment requires"
                    " approval; a rollback to it would then need a redeploy.",
                    "Request it",
                ),
            )
        )
    more = max(0, len(cap.idle) - MAX_LINES) + max(0, len(cap.unused) - MAX_LINES)
    if more or cap.not_read:
        lines.append(
            f"…and {more + cap.not_read} more endpoint(s) or model(s) not listed — see"
            " `/aiops status`"
        )
    if len(buttons) > MAX_CAPACITY_BUTTONS:
        lines.append(
            f"Buttons for the first {MAX_CAPACITY_BUTTONS}; type the others' commands above."
        )
    if lines:
        lines.append(
            f"_Idle: fewer than {cap.idle_requests_per_day:,} requests yesterday. Buttons"
            " request a change; the usual approval applies._"
        )
    return lines, buttons[:MAX_CAPACITY_BUTTONS]


def retrain_reason(note: DriftNote, th: Thresholds, kind: DigestKind) -> str:
    """The reason a retrain button carries (prod requires one; a click cannot type it):
    the figure that prompted it, in words without markup."""
    digest = "morning" if kind is DigestKind.MORNING else "end-of-day"
    return f"drift {note.drift:.3f} above {th.drift:g} on {note.endpoint} ({digest} digest)"


def _drift_section(data: DigestData, th: Thresholds) -> tuple[list[str], list[Button]]:
    """One line per drifting endpoint: the figure, the version it serves and the training
    pipeline run (and dataset) it came from, and the typed retrain of its model; one
    Retrain button per model that has a pipeline and no retrain open (a request: the
    usual approval applies)."""
    lines: list[str] = []
    buttons: list[Button] = []
    offered: set[str] = set()
    for note in data.drift:
        s = note.serving
        serves = (
            f"serves {escape(s.version)}, from its {escape(s.pipeline_text)}"
            if s.version
            else "what it serves could not be read"
        )
        line = f":ocean: *{note.endpoint}* drift {note.drift:.3f} > {th.drift:g} · {serves}"
        if s.retraining:
            lines.append(f"{line} · `{escape(s.model)}` is being retrained: {s.retraining}")
            continue
        if not s.retrainable:
            lines.append(
                f"{line} · no training pipeline for `{escape(s.model)}`"
                f" (`[models.{escape(s.model)}] retrain_template`)"
            )
            continue
        reason = retrain_reason(note, th, data.kind)
        lines.append(f"{line} · `{escape(retrain_command(s.model))}`")
        if s.model in offered:
            continue
        offered.add(s.model)
        buttons.append(
            Button(
                f"Retrain {s.model}",
                "retrain",
                f'{s.model} reason="{reason}"',
                retrain_command(s.model, reason),
                confirm=Confirm(
                    f"Request a retrain of {s.model}?",
                    f"Opens a change that runs {s.model}'s training pipeline. It runs once"
                    " approved where its environment requires approval; the version it"
                    " registers is deployed only by a change of its own.",
                    "Request it",
                ),
            )
        )
    return lines, buttons[:MAX_CAPACITY_BUTTONS]


def _change_line(c: Change, tz: ZoneInfo) -> str:
    at = run_at(c)
    when_ = f" at {at.astimezone(tz):%a %H:%M}" if at else ""
    what = (
        c.kind.value
        + (f" {escape(c.version)}" if c.version else "")
        + (f" to {c.canary_percent}%" if c.kind.value == "promote" else "")
    )
    return (
        f"{c.state.mark} *{c.id}* {what} `{c.subject}`{when_} · {c.state.value.replace('_', ' ')}"
        f" · by {mention(c.requester_id)}"
    )


def render(
    data: DigestData,
    cfg: Config,
    settings: DigestSettings,
    *,
    scheduled_for: datetime | None = None,
    late: bool = False,
) -> tuple[Reply, dict[str, int]]:
    th = cfg.thresholds
    tz = data.schedule.timezone
    tz_now = data.now.astimezone(tz)
    kind = data.kind
    icon = ":sunrise:" if kind is DigestKind.MORNING else ":city_sunset:"
    header = f"{icon} {kind.heading} · {data.environment} · {tz_now:%a %d %b}" + (
        " · late" if late else ""
    )
    breaching = _ranked_breaching(data, th)
    healthy = [s for s in data.health if s not in set(breaching)]
    healthy.sort(key=lambda s: (-_score(data.health[s], th), s))
    no_figures = [ep.slug for ep in data.endpoints if ep.slug not in data.health]
    severe = [a for a in data.alerts if a.severity in ("P1", "P2")]
    open_alerts = [a for a in data.alerts if a.state == "open"]
    pending = [c for c in data.open_changes if c.state is ChangeState.PENDING_APPROVAL]
    canaries = sorted(
        s
        for s, h in data.health.items()
        if sum(1 for m in h.by_model.values() if m.request_count > 0) > 1
    )
    at_max = sorted(
        s for s, h in data.health.items() if h.max_replicas and h.replicas >= h.max_replicas
    )
    hot = sorted(
        (h.duty_cycle, s)
        for s, h in data.health.items()
        if h.duty_cycle is not None and h.duty_cycle > 0.8
    )[::-1]
    replicas = sum(h.replicas for h in data.health.values())
    max_replicas = sum(h.max_replicas for h in data.health.values())
    duty = [h.duty_cycle for h in data.health.values() if h.duty_cycle is not None]
    cost_summary, cost_lines = _cost_section(data, cfg, settings)
    capacity_lines, capacity_buttons = _capacity_section(data)

    blocks: list[Block] = [Header(header[:150])]
    verdict = (
        f":red_circle: *{len(breaching)} of {len(data.endpoints)} endpoints breaching*"
        if breaching
        else f":large_green_circle: *all {len(data.health)} endpoints healthy*"
        if data.health
        else "*no endpoint figures*"
    )
    alert_word = (
        f"{len(severe)} P1/P2 alert(s)"
        + (f", {sum(1 for a in severe if a.state == 'open')} open" if severe else "")
        if kind is DigestKind.MORNING
        else f"{len(open_alerts)} alert(s) still open"
    )
    summary = f"{verdict} · {alert_word} · {len(pending)} approval(s) waiting"
    incidents = data.incidents or []
    open_incidents = [i for i in incidents if i.state.is_open]
    if open_incidents:
        summary += f" · :rotating_light: {len(open_incidents)} incident(s) open"
    env = cfg.environments.get(data.environment)
    if env is not None and env.dashboard_url:
        summary += f" · <{env.dashboard_url}|dashboard>"
    blocks.append(Text(summary))
    if late and scheduled_for is not None:
        blocks.append(
            Context(
                (
                    f":alarm_clock: Posted late: due {when(scheduled_for, data.schedule.timezone)},"
                    f" posted {when(data.now, data.schedule.timezone)} (the bot was not running).",
                )
            )
        )

    alert_since = data.alerts_since.astimezone(data.schedule.timezone).strftime("%a %H:%M")
    pairs: list[tuple[str, str]] = [
        (
            "Alerts" + (f" since {alert_since}" if kind is DigestKind.MORNING else " open"),
            (
                f"{len(data.alerts)} · P1 {sum(a.severity == 'P1' for a in data.alerts)}"
                f" · P2 {sum(a.severity == 'P2' for a in data.alerts)} · open {len(open_alerts)}"
            )
            if data.alerts
            else "none",
        ),
        ("Approvals waiting", str(len(pending))),
        ("Canaries in flight", str(len(canaries))),
        (data.scheduled_label, str(len(data.scheduled))),
    ]
    since = data.incidents_since or data.alerts_since
    overnight = [i for i in incidents if i.declared_at >= since]
    if data.incidents is not None and kind is DigestKind.MORNING:
        pairs.append(
            (
                "Incidents",
                f"{len(overnight)} new overnight · {len(open_incidents)} open"
                if incidents
                else "none",
            )
        )
    elif data.incidents is not None:
        pairs.append(
            (
                "Incidents today",
                f"{len(incidents)} · {len(open_incidents)} open" if incidents else "none",
            )
        )
    if data.handoffs is not None:
        pairs.append(("Hand-off notes", str(len(data.handoffs)) if data.handoffs else "none"))
    if kind is DigestKind.MORNING:
        pairs += [
            ("Cost", cost_summary),
            (
                "Capacity",
                f"{replicas} / {max_replicas} replicas"
                + (f" · duty {sum(duty) / len(duty):.0%} avg" if duty else ""),
            ),
        ]
    else:
        people = len(data.interventions)
        actions = sum(len(v) for v in data.interventions.values())
        pairs.append(
            ("Manual interventions", f"{actions} by {people} person(s)" if actions else "none")
        )
    blocks.append(Fields(tuple(pairs[:MAX_FIELDS])))

    # Sections in order of importance; each gets what room is left (always ≥ 1 block
    # kept back for the thresholds line and the buttons).
    sections: list[tuple[str, list[str]]] = []
    alerts_sorted = sorted(
        data.alerts if kind is DigestKind.MORNING else open_alerts,
        key=lambda a: (a.severity, a.state != "open", a.opened_at),
    )
    alert_lines = _capped([_alert_line(a, tz) for a in alerts_sorted], 15)
    sections.append(
        (
            "Overnight alerts" if kind is DigestKind.MORNING else "Alerts still open",
            alert_lines or ["none :tada:"],
        )
    )

    if kind is DigestKind.MORNING and incidents:
        earlier = [i for i in open_incidents if i.declared_at < since]
        if overnight:
            sections.append(
                (
                    "Incidents opened overnight",
                    _capped([_incident_line(i, None, tz, eod=False) for i in overnight]),
                )
            )
        if earlier:
            sections.append(
                (
                    "Incidents still open",
                    _capped([_incident_line(i, None, tz, eod=False) for i in earlier]),
                )
            )
    elif kind is DigestKind.EOD and incidents:
        ordered = sorted(incidents, key=lambda i: (not i.state.is_open, i.severity.value))
        sections.append(
            (
                "Incidents today",
                _capped(
                    [
                        _incident_line(i, data.incident_times.get(i.id), tz, eod=True)
                        for i in ordered
                    ]
                ),
            )
        )
    if data.handoffs is not None:
        sections.append(
            (
                "Hand-off notes for the next on-call",
                _capped([_handoff_line(n, tz) for n in data.handoffs], 15)
                or ['none yet — write one with `/aiops handoff "…"`'],
            )
        )

    health_lines = [_endpoint_line(s, data.health[s], th) for s in breaching[:MAX_BREACHING_LINES]]
    if len(breaching) > MAX_BREACHING_LINES:
        health_lines.append(
            f"…and {len(breaching) - MAX_BREACHING_LINES} more breaching — see `/aiops status`"
        )
    if len(data.health) <= 10:
        health_lines += [_endpoint_line(s, data.health[s], th) for s in healthy]
    elif healthy:
        health_lines.append(
            f":large_green_circle: *{len(healthy)} healthy* (within every threshold)"
        )
    if no_figures:
        health_lines.append(
            f":white_circle: {len(no_figures)} without figures: "
            + ", ".join(no_figures[:10])
            + ("…" if len(no_figures) > 10 else "")
        )
    if kind is DigestKind.MORNING or breaching:
        sections.append(("Model health (worst first)", health_lines or ["no endpoints"]))

    # Blocks that follow a section's lines when there is room for them (else the lines,
    # which carry the typed commands, stand alone).
    trailing: dict[str, list[Block]] = {}
    drift_lines, drift_buttons = _drift_section(data, th)
    if drift_lines:
        sections.append((DRIFT_TITLE, drift_lines))
        if drift_buttons:
            trailing[DRIFT_TITLE] = [Buttons(tuple(drift_buttons))]
    if kind is DigestKind.MORNING and cost_lines:
        sections.append(("Cost", cost_lines))
    if kind is DigestKind.MORNING and capacity_lines:
        sections.append((CAPACITY_TITLE, capacity_lines))
        if capacity_buttons:
            trailing[CAPACITY_TITLE] = [Buttons(tuple(capacity_buttons))]
    if data.flagged:
        sections.append(("Flagged for review", _capped(data.flagged, 10)))
    if data.audit_checks:
        sections.append(("Audit trail", _capped(data.audit_checks, 4)))
    pending_lines = _capped([_change_line(c, tz) for c in pending])
    if pending_lines:
        sections.append(
            (
                "Waiting for approval"
                + (" — decide before you leave" if kind is DigestKind.EOD else ""),
                pending_lines,
            )
        )
    if canaries:
        sections.append(
            (
                "Canaries in flight"
                + (" — promote or roll back?" if kind is DigestKind.EOD else ""),
                _capped(
                    [
                        f":hatching_chick: `{s}` — `/promote {s}` or `/rollback {s}`"
                        for s in canaries
                    ]
                ),
            )
        )
    sections.append(
        (
            data.scheduled_label,
            _capped([_change_line(c, tz) for c in data.scheduled]) or ["none"],
        )
    )
    if kind is DigestKind.MORNING and (at_max or hot):
        sections.append(
            (
                "Capacity",
                _capped([f":arrow_up: `{s}` at its max replicas" for s in at_max], 8)
                + _capped([f":fire: `{s}` accelerator duty {d:.0%}" for d, s in hot], 8),
            )
        )
    if kind is DigestKind.EOD:
        people_lines = []
        for actor, items in sorted(data.interventions.items(), key=lambda kv: -len(kv[1])):
            people_lines.append(
                f"{mention(actor)} ({len(items)}): "
                + "; ".join(items[:6])
                + (f"; …{len(items) - 6} more" if len(items) > 6 else "")
            )
        sections.append(("Manual interventions today", _capped(people_lines) or ["none"]))
    if data.problems:
        sections.append(("Could not check", [escape(p) for p in data.problems]))

    tail: list[Block] = [
        Context(
            (
                f"Thresholds: P95 {th.p95_latency_ms / 1000:g} s · errors {th.error_rate:.0%}"
                f" · drift {th.drift:g} · budget {_money(_budget(data, cfg))}/day",
            )
        ),
        Buttons(
            (
                Button("Open status", "status", "all", "/aiops status"),
                Button("Open changes", "changes", "all", "/aiops changes"),
            )
        ),
    ]
    for i, (title, lines) in enumerate(sections):
        room = MAX_BLOCKS - len(blocks) - len(tail) - (len(sections) - i - 1) * 2
        if room < 2:
            blocks.append(
                Context((f"{title}: {len(lines)} line(s) left out to fit Slack's limit.",))
            )
            continue
        extra = trailing.get(title, [])
        if room - 1 - len(extra) < 1:
            extra = []
        blocks.append(Divider())
        blocks.extend(_chunks(title, lines, min(room - 1 - len(extra), 4)))
        blocks.extend(extra)
    blocks.extend(tail)
    blocks = blocks[:MAX_BLOCKS]
    text = f"{kind.heading} · {data.environment}: {summary}".replace("*", "")
    counts = {
        "endpoints": len(data.endpoints),
        "breaching": len(breaching),
        "healthy": len(healthy),
        "alerts": len(data.alerts),
        "p1_p2": len(severe),
        "pending_approvals": len(pending),
        "canaries": len(canaries),
        "scheduled": len(data.scheduled),
        "idle": len(data.capacity.idle) if data.capacity else 0,
        "unused": len(data.capacity.unused) if data.capacity else 0,
        "drifting": len(data.drift),
        "blocks": len(blocks),
    }
    if data.incidents is not None:
        counts["incidents"] = len(incidents)
        counts["incidents_open"] = len(open_incidents)
    if data.handoffs is not None:
        counts["handoffs"] = len(data.handoffs)
    return Reply(text=text, blocks=blocks, ephemeral=False), counts


def compose(
    rt: Runtime,
    kind: DigestKind,
    environment: str | None = None,
    *,
    now: datetime | None = None,
    scheduled_for: datetime | None = None,
    late: bool = False,
    settings: DigestSettings | None = None,
) -> Digest:
    settings = settings or digest_settings(rt.config)
    schedule = schedule_for(rt, environment, settings)
    data = gather(rt, kind, schedule, now=now, settings=settings)
    reply, counts = render(data, rt.config, settings, scheduled_for=scheduled_for, late=late)
    chart = None
    if data.series:
        chart = Chart(
            title=f"{schedule.environment}: breaching endpoints, last 24 h",
            filename=f"digest-{schedule.environment}-{data.now.astimezone(schedule.timezone):%Y%m%d}.png",
            since=data.now - timedelta(hours=24),
            until=data.now,
            series=data.series,
            p95_threshold_ms=rt.config.thresholds.p95_latency_ms,
            error_threshold=rt.config.thresholds.error_rate,
            timezone=schedule.timezone,
        )
    return Digest(
        kind=kind,
        environment=schedule.environment,
        reply=reply,
        chart=chart,
        channel=schedule.channel,
        late=late,
        scheduled_for=scheduled_for,
        counts=counts,
    )


def chart_comment(chart: Chart) -> str:
    """The upload's comment: what the picture shows, for those who cannot see it."""
    names = ", ".join(chart.series)
    return (
        f"Last 24 h of P95 latency (top) and error rate (bottom) for {names}, against the"
        f" thresholds ({chart.p95_threshold_ms / 1000:g} s, {chart.error_threshold:.0%};"
        " dashed red)."
    )
