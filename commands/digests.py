"""The morning and end-of-day digests: the team's daily checklist as one message each.

Composed from a constant number of platform calls (health of every endpoint at once,
alerts, and — when the platform keeps them — metric history and daily costs), the store
and the audit table. The reply is renderer-neutral, reads well on a phone (a header, one
line per endpoint with a status mark, details in fields) and always fits Slack's limits:
at most 50 blocks, 3000 characters a section, 10 fields; with hundreds of endpoints the
breaching ones come first and the rest are summarised as "N healthy".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from commands.config import Config, Endpoint, Thresholds
from commands.digest_schedule import (
    DigestKind,
    DigestSchedule,
    DigestSettings,
    digest_settings,
    local_time,
)
from commands.errors import Refusal
from commands.messages import (
    Block,
    Button,
    Buttons,
    Context,
    Divider,
    Fields,
    Header,
    Post,
    Reply,
    Text,
    escape,
    mention,
)
from commands.model import OPEN_STATES, SCHEDULER, Actor, Change, ChangeState, EndpointHealth
from commands.platform import Alert, PlatformError
from commands.redaction import redact
from commands.runtime import Runtime
from commands.schedule import run_at
from commands.store import AuditEvent, AuditQuery
from commands.text import cut
from commands.views import breaches, when

MAX_BLOCKS = 50
SECTION_CHARS = 2900  # under Slack's 3000, with room for a "…and N more" line
MAX_FIELDS = 10
MAX_LINES = 12  # per list (alerts, approvals, …) before "…and N more"
MAX_BREACHING_LINES = 60
CHART_ENDPOINTS = 6
SYSTEM_ACTORS = {"scheduler", "bot"}


# --- what a platform may offer beyond the port (optional capabilities) ----------------


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime
    p95_latency_ms: float | None
    error_rate: float | None


@runtime_checkable
class MetricHistory(Protocol):
    def health_series(
        self, endpoints: Sequence[Endpoint], since: datetime, until: datetime, step: timedelta
    ) -> dict[str, list[SeriesPoint]]:
        """P95 latency and error rate per endpoint over time: one query per metric."""
        ...


@runtime_checkable
class CostHistory(Protocol):
    def daily_costs(self, endpoints: Sequence[Endpoint], days: int) -> dict[str, list[float]]:
        """Cost (USD) of each of the last `days` complete days in the config's zone,
        oldest first: the last value is yesterday's. One query for all endpoints."""
        ...


@dataclass(frozen=True)
class Chart:
    """A chart the edge draws (PNG) and attaches to the digest's thread."""

    title: str
    filename: str
    since: datetime
    until: datetime
    series: dict[str, list[SeriesPoint]]
    p95_threshold_ms: float
    error_threshold: float


@runtime_checkable
class ChartAttacher(Protocol):
    def attach_chart(self, channel: str, thread_ts: str, chart: Chart, comment: str) -> bool: ...


# --- gathering --------------------------------------------------------------------------


@dataclass
class DigestData:
    kind: DigestKind
    environment: str
    schedule: DigestSchedule
    now: datetime
    endpoints: list[Endpoint]
    health: dict[str, EndpointHealth]
    alerts: list[Alert]
    alerts_since: datetime
    open_changes: list[Change]
    scheduled: list[Change]
    scheduled_label: str
    costs: dict[str, list[float]] | None = None
    series: dict[str, list[SeriesPoint]] | None = None
    interventions: dict[str, list[str]] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Digest:
    kind: DigestKind
    environment: str
    reply: Reply
    chart: Chart | None
    channel: str
    late: bool
    scheduled_for: datetime | None
    counts: dict[str, int]


def _score(h: EndpointHealth, th: Thresholds) -> float:
    """How close to (or past) its worst threshold an endpoint is: > 1 breaches."""
    ratios = [0.0]
    if h.p95_latency_ms is not None:
        ratios.append(h.p95_latency_ms / th.p95_latency_ms)
    if h.error_rate is not None:
        ratios.append(h.error_rate / th.error_rate if th.error_rate else 0.0)
    if h.drift is not None:
        ratios.append(h.drift / th.drift if th.drift else 0.0)
    return max(ratios)


def schedule_for(
    rt: Runtime, environment: str | None, settings: DigestSettings | None = None
) -> DigestSchedule:
    settings = settings or digest_settings(rt.config)
    if environment is None:
        if len(settings.schedules) == 1:
            return next(iter(settings.schedules.values()))
        environment = next(iter(settings.schedules), None)
    if environment in settings.schedules:
        return settings.schedules[environment]
    if environment in rt.config.environments:  # digests off for it: still composable on demand
        return DigestSchedule(
            environment, rt.config.channels.ops, rt.config.timezone, tuple(range(5)), None, None
        )
    known = ", ".join(f"`{e}`" for e in rt.config.environments)
    raise Refusal(
        f"unknown environment `{escape(str(environment))}`",
        f"Environments: {known}.",
        code="unknown_environment",
    )


def gather(
    rt: Runtime,
    kind: DigestKind,
    schedule: DigestSchedule,
    *,
    now: datetime | None = None,
    settings: DigestSettings | None = None,
) -> DigestData:
    settings = settings or digest_settings(rt.config)
    cfg = rt.config
    now = now or rt.clock()
    env = schedule.environment
    tz = schedule.timezone
    endpoints = [ep for ep in cfg.endpoints.values() if ep.environment == env]
    problems: list[str] = []
    local = now.astimezone(tz)

    # Alerts since the last end-of-day digest (morning) or since this morning (EOD).
    if kind is DigestKind.MORNING:
        since = schedule.previous(DigestKind.EOD, now) or (now - timedelta(hours=24))
    else:
        since = schedule.previous(DigestKind.MORNING, now) or local_time(
            local.date(), schedule.morning or time(0, 0), tz
        )
        since = min(since, now)
    health: dict[str, EndpointHealth] = {}
    alerts: list[Alert] = []
    try:
        health = rt.platform.health(endpoints, timedelta(hours=24)) if endpoints else {}
    except PlatformError as exc:
        problems.append(f"health figures unavailable: {exc}")
    try:
        slugs = {ep.slug for ep in endpoints}
        alerts = [a for a in rt.platform.alerts(since) if a.endpoint is None or a.endpoint in slugs]
    except PlatformError as exc:
        problems.append(f"alerts unavailable: {exc}")

    open_changes = [
        c
        for c in rt.store.list_changes(states=sorted(OPEN_STATES), limit=1000)
        if c.environment == env
    ]
    # Scheduled changes: today's (morning), the next digest day's (EOD).
    if kind is DigestKind.MORNING:
        day = local.date()
        label = "Changes scheduled today"
    else:
        day = schedule.next_day(local.date())
        label = (
            "Changes scheduled tomorrow"
            if day == local.date() + timedelta(days=1)
            else f"Changes scheduled {day:%a %d %b}"
        )
    start = local_time(day, time(0, 0), tz)
    end = local_time(day + timedelta(days=1), time(0, 0), tz)
    if kind is DigestKind.MORNING:
        start = min(start, now)
    scheduled = sorted(
        (c for c in open_changes if (at := run_at(c)) is not None and start <= at < end),
        key=lambda c: run_at(c) or c.created_at,
    )

    data = DigestData(
        kind=kind,
        environment=env,
        schedule=schedule,
        now=now,
        endpoints=endpoints,
        health=health,
        alerts=alerts,
        alerts_since=since,
        open_changes=open_changes,
        scheduled=scheduled,
        scheduled_label=label,
        problems=problems,
    )
    if kind is DigestKind.MORNING and endpoints:
        if isinstance(rt.platform, CostHistory):
            try:
                data.costs = rt.platform.daily_costs(endpoints, 8)
            except PlatformError as exc:
                problems.append(f"costs unavailable: {exc}")
        breaching = _ranked_breaching(data, cfg.thresholds)[:CHART_ENDPOINTS]
        if settings.chart and breaching and isinstance(rt.platform, MetricHistory):
            try:
                data.series = rt.platform.health_series(
                    [cfg.endpoints[s] for s in breaching],
                    now - timedelta(hours=24),
                    now,
                    timedelta(minutes=15),
                )
            except PlatformError as exc:
                problems.append(f"metric history unavailable: {exc}")
    data.flagged = [
        _flag_line(e, tz)
        for e in rt.store.audit(AuditQuery(since=since, environment=env, limit=5000))
        if e.action in FLAGGED_ACTIONS
    ]
    if kind is DigestKind.EOD:
        day_start = local_time(local.date(), time(0, 0), tz)
        events = rt.store.audit(
            AuditQuery(since=day_start.astimezone(UTC), environment=env, limit=5000)
        )
        by_person: dict[str, list[str]] = defaultdict(list)
        for e in events:
            if e.actor_id in SYSTEM_ACTORS or e.action == "command":
                continue
            what = e.action.replace("_", " ")
            what += f" {e.target}" if e.target else ""
            what += f" [{e.change_id}]" if e.change_id else ""
            stamp = e.at.astimezone(tz).strftime("%H:%M")
            why = f" — _{escape(redact(e.justification))}_" if e.justification else ""
            by_person[e.actor_id].append(f"`{stamp}` {escape(what)}{why}")
        data.interventions = dict(by_person)
    return data


# Actions that bypassed or overrode a control: every digest names them for review.
FLAGGED_ACTIONS = {
    "break_glass": ":rotating_light: break glass",
    "forced_promote": ":warning: forced promote",
    "canary_rollback": ":rewind: automatic rollback",
    "approval_void": ":no_entry_sign: approval void",
    "workspace_refused": ":no_entry: request from another workspace",
}


def _flag_line(e: AuditEvent, tz: ZoneInfo) -> str:
    what = FLAGGED_ACTIONS[e.action]
    where = f" `{e.target}`" if e.target else ""
    ref = f" [{e.change_id}]" if e.change_id else ""
    why = f" — _{escape(redact(e.justification))}_" if e.justification else ""
    return f"`{e.at.astimezone(tz):%a %H:%M}` {what}{where}{ref} by {mention(e.actor_id)}{why}"


def _ranked_breaching(data: DigestData, th: Thresholds) -> list[str]:
    found = [(s, _score(h, th)) for s, h in data.health.items() if breaches(h, th)]
    return [s for s, _ in sorted(found, key=lambda x: (-x[1], x[0]))]


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
    """(the Cost field's value, detail lines)."""
    th = cfg.thresholds
    lines: list[str] = []
    if data.costs:
        yesterday = {s: v[-1] for s, v in data.costs.items() if v}
        total = sum(yesterday.values())
        over = total > th.daily_budget_usd
        summary = f"{_money(total)} yesterday / {_money(th.daily_budget_usd)} budget" + (
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
                f":warning: over the daily budget by {_money(total - th.daily_budget_usd)} — tell finance"
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
    idle = [
        (h.replicas, slug)
        for slug, h in data.health.items()
        if h.replicas > 0 and h.request_count == 0
    ]
    if idle:
        idle.sort(reverse=True)
        lines += _capped(
            [
                f":zzz: *{slug}* idle: {n} replica(s) up, no traffic in 24 h — a saving"
                + (
                    f" of ~{_money(data.costs[slug][-1])}/day"
                    if data.costs and data.costs.get(slug)
                    else ""
                )
                for n, slug in idle
            ]
        )
    return summary, lines


def _change_line(c: Change, tz: ZoneInfo) -> str:
    at = run_at(c)
    when_ = f" at {at.astimezone(tz):%a %H:%M}" if at else ""
    what = (
        c.kind.value
        + (f" {escape(c.version)}" if c.version else "")
        + (f" to {c.canary_percent}%" if c.kind.value == "promote" else "")
    )
    return (
        f"{c.state.mark} *{c.id}* {what} `{c.endpoint}`{when_} · {c.state.value.replace('_', ' ')}"
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

    if kind is DigestKind.MORNING and cost_lines:
        sections.append(("Cost", cost_lines))
    if data.flagged:
        sections.append(("Flagged for review", _capped(data.flagged, 10)))
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
                f" · drift {th.drift:g} · budget {_money(th.daily_budget_usd)}/day",
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
        blocks.append(Divider())
        blocks.extend(_chunks(title, lines, min(room - 1, 4)))
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
        "blocks": len(blocks),
    }
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
            title=f"{schedule.environment}: last 24 h of P95 latency and error rate (breaching endpoints)",
            filename=f"digest-{schedule.environment}-{data.now.astimezone(schedule.timezone):%Y%m%d}.png",
            since=data.now - timedelta(hours=24),
            until=data.now,
            series=data.series,
            p95_threshold_ms=rt.config.thresholds.p95_latency_ms,
            error_threshold=rt.config.thresholds.error_rate,
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


CHART_COLOURS = ("blue", "orange", "green", "purple", "yellow", "brown")


def chart_comment(chart: Chart) -> str:
    legend = ", ".join(
        f":large_{colour}_square: {slug}"
        for colour, slug in zip(CHART_COLOURS, chart.series, strict=False)
    )
    return (
        f"Last 24 h, breaching endpoints: P95 latency (top, dashed red = {chart.p95_threshold_ms / 1000:g} s)"
        f" and error rate (bottom, dashed red = {chart.error_threshold:.0%}). {legend}"
    )


def post(
    rt: Runtime,
    kind: DigestKind,
    environment: str | None = None,
    *,
    actor: Actor = SCHEDULER,
    scheduled_for: datetime | None = None,
    late: bool = False,
    request_id: str | None = None,
    settings: DigestSettings | None = None,
) -> Digest:
    """Compose, post to the environment's digest channel, attach the chart, audit."""
    digest = compose(
        rt, kind, environment, scheduled_for=scheduled_for, late=late, settings=settings
    )
    ref = rt.notifier.post(Post(digest.channel, digest.reply))
    attached = False
    if ref is not None and digest.chart is not None and isinstance(rt.notifier, ChartAttacher):
        try:
            attached = rt.notifier.attach_chart(
                ref.channel, ref.ts, digest.chart, chart_comment(digest.chart)
            )
        except Exception:  # a lost chart never loses the digest
            attached = False
    outcome = ("posted late" if late else "posted") if ref is not None else "post failed"
    rt.auditor.record(
        "digest_posted",
        actor.id,
        outcome,
        environment=digest.environment,
        request_id=request_id,
        parameters={
            "kind": kind.value,
            "channel": digest.channel,
            "ts": ref.ts if ref else None,
            "scheduled_for": scheduled_for.isoformat() if scheduled_for else None,
            "late": late,
            "chart": attached,
            **{k: v for k, v in digest.counts.items() if k != "blocks"},
        },
    )
    return digest


def environments(rt: Runtime, settings: DigestSettings | None = None) -> list[str]:
    return list((settings or digest_settings(rt.config)).schedules)


def on_demand(
    rt: Runtime, actor: Actor, words: Sequence[str], request_id: str | None = None
) -> Reply:
    """`/aiops digest morning|eod [environment]`: post it now, to the digest channel."""
    usage = "/aiops digest <morning|eod> [environment]"
    kind_word = words[0].lower() if words else ""
    aliases = {"morning": DigestKind.MORNING, "eod": DigestKind.EOD, "evening": DigestKind.EOD}
    if kind_word not in aliases:
        raise Refusal(
            f"which digest? `{escape(kind_word)}` is not one" if kind_word else "which digest?",
            f"Usage: `{usage}` — `morning` or `eod`.",
            code="malformed",
        )
    settings = digest_settings(rt.config)
    envs = (
        [words[1]]
        if len(words) > 1
        else (environments(rt, settings) or list(rt.config.environments)[:1])
    )
    posted = []
    for env in envs:
        digest = post(
            rt, aliases[kind_word], env, actor=actor, request_id=request_id, settings=settings
        )
        posted.append(f"{digest.environment} in <#{digest.channel}>")
    heading = aliases[kind_word].heading
    return Reply.info(f"Posted the {heading.lower()} for " + ", ".join(posted) + ".")
