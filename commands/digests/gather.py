"""Gathering a digest: the figures, alerts, changes and audit rows it reports on."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from commands.audit import FOLLOW_ON, OVERRIDES, AuditAction
from commands.changes.schedule import run_at
from commands.config import Endpoint, Thresholds
from commands.cost.capacity import Capacity, find_capacity
from commands.cost.settings import cost_settings
from commands.digests.schedule import (
    DigestKind,
    DigestSchedule,
    DigestSettings,
    digest_settings,
    local_time,
)
from commands.errors import Refusal
from commands.incidents.metrics import IncidentTimes, incident_times
from commands.incidents.model import Handoff, Incident, IncidentState
from commands.incidents.ports import IncidentStore
from commands.messages import (
    Reply,
    breaches,
    did_you_mean,
    escape,
    health_score,
    mention,
)
from commands.model import OPEN_STATES, SCHEDULER, Change, EndpointHealth
from commands.models.lineage import ServingLineage, serving_lineage
from commands.ports import (
    Alert,
    AuditEvent,
    AuditQuery,
    Chart,
    CostHistory,
    MetricHistory,
    PlatformError,
    SeriesPoint,
)
from commands.redaction import redact
from commands.runtime import Runtime

MAX_BLOCKS = 50
SECTION_CHARS = 2900  # under Slack's 3000, with room for a "…and N more" line
MAX_FIELDS = 10
MAX_LINES = 12  # per list (alerts, approvals, …) before "…and N more"
MAX_BREACHING_LINES = 60
CHART_ENDPOINTS = 6
SYSTEM_ACTORS = {"scheduler", "bot"}


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
    capacity: Capacity | None = None  # idle endpoints and models at 0 % (morning)
    series: dict[str, list[SeriesPoint]] | None = None
    interventions: dict[str, list[str]] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    audit_checks: list[str] = field(default_factory=list)  # the scheduler's weekly verify
    # Respond (None when no incident store is wired): the morning's incidents declared
    # since `incidents_since` plus those still open; the end of day's incidents declared,
    # mitigated or resolved since local midnight plus those still open; newest first.
    incidents: list[Incident] | None = None
    incidents_since: datetime | None = None
    incident_times: dict[str, IncidentTimes] = field(default_factory=dict)
    # End of day: the on-call hand-off notes written since the last end-of-day digest.
    handoffs: list[Handoff] | None = None
    handoffs_since: datetime | None = None
    # Endpoints whose drift is above `[thresholds] drift`, worst first, each with what
    # trained the version it serves (IMPROVE: the digest offers to retrain its model).
    drift: list[DriftNote] = field(default_factory=list)


@dataclass(frozen=True)
class DriftNote:
    endpoint: str
    drift: float
    serving: ServingLineage


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
    return health_score(h, th)


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
        f"unknown environment `{escape(str(environment))}`"
        + did_you_mean(str(environment), rt.config.environments),
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
            try:
                usage = rt.platform.deployed_model_costs(endpoints)
                data.capacity = find_capacity(
                    rt.platform,
                    endpoints,
                    usage,
                    data.costs,
                    open_changes,
                    cost_settings(cfg).idle_requests_per_day,
                )
                problems += data.capacity.problems
            except PlatformError as exc:
                problems.append(f"idle capacity unavailable: {exc}")
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
    data.drift = _drifting(rt, endpoints, health, cfg.thresholds)
    data.flagged = [
        _flag_line(e, tz)
        for e in rt.store.audit(AuditQuery(since=since, environment=env, limit=5000))
        if e.action in FLAGGED_ACTIONS
    ]
    if kind is DigestKind.MORNING:
        data.audit_checks = [
            _audit_check_line(e, tz)
            for e in rt.store.audit(AuditQuery(since=since, actor_id=SCHEDULER.id, limit=5000))
            if e.action == AuditAction.AUDIT_VERIFIED
        ]
    if kind is DigestKind.EOD:
        day_start = local_time(local.date(), time(0, 0), tz)
        events = rt.store.audit(
            AuditQuery(since=day_start.astimezone(UTC), environment=env, limit=5000)
        )
        by_person: dict[str, list[str]] = defaultdict(list)
        for e in events:
            if e.actor_id in SYSTEM_ACTORS or e.action == AuditAction.COMMAND:
                continue
            if e.action in FOLLOW_ON:  # the bot's, after their action (listed itself)
                continue
            what = e.action.replace("_", " ")
            what += f" {e.target}" if e.target else ""
            what += f" [{e.change_id}]" if e.change_id else ""
            stamp = e.at.astimezone(tz).strftime("%H:%M")
            why = f" — _{escape(redact(e.justification))}_" if e.justification else ""
            by_person[e.actor_id].append(f"`{stamp}` {escape(what)}{why}")
        data.interventions = dict(by_person)
    if rt.incidents is not None:
        _gather_incidents(rt.incidents, data, {ep.slug for ep in endpoints})
    return data


MAX_DRIFT_LINES = 10  # each reads its endpoint's state and its version's registry entry


def _drifting(
    rt: Runtime, endpoints: list[Endpoint], health: dict[str, EndpointHealth], th: Thresholds
) -> list[DriftNote]:
    """Endpoints whose drift breaches `th.drift`, worst first (at most `MAX_DRIFT_LINES`),
    each with the lineage of the version it serves (`serving_lineage`: one endpoint read
    and one registry read each; what cannot be read is unknown)."""
    found = sorted(
        (
            (h.drift, ep)
            for ep in endpoints
            if (h := health.get(ep.slug)) is not None and h.drift is not None and h.drift > th.drift
        ),
        key=lambda pair: (-pair[0], pair[1].slug),
    )
    return [
        DriftNote(ep.slug, drift, serving_lineage(rt, ep)) for drift, ep in found[:MAX_DRIFT_LINES]
    ]


def _gather_incidents(incidents: IncidentStore, data: DigestData, slugs: set[str]) -> None:
    """The digest's incidents and hand-off notes. An incident belongs to the digest of its
    environment (or, without one, of its endpoint's); one that names neither is in every
    environment's digest, as is a hand-off note without an environment: shown twice
    rather than missed."""
    env, tz, now = data.environment, data.schedule.timezone, data.now
    day_start = local_time(now.astimezone(tz).date(), time(0, 0), tz)
    since = data.alerts_since if data.kind is DigestKind.MORNING else day_start

    def ours(i: Incident) -> bool:
        if i.environment is not None:
            return i.environment == env
        return i.endpoint is None or i.endpoint in slugs

    def counts(i: Incident) -> bool:
        if i.state.is_open or i.declared_at >= since:
            return True
        # end of day: one declared earlier that was mitigated or resolved today
        ended = [t for t in (i.mitigated_at, i.resolved_at) if t is not None]
        return data.kind is DigestKind.EOD and any(t >= since for t in ended)

    # End of day also looks back for incidents declared earlier and ended today.
    back = since - (INCIDENT_LOOKBACK if data.kind is DigestKind.EOD else timedelta(0))
    found = {i.id: i for i in incidents.list_incidents(since=back) if ours(i) and counts(i)}
    for i in incidents.list_incidents(states=OPEN_INCIDENT_STATES):
        if ours(i):
            found[i.id] = i
    data.incidents = sorted(found.values(), key=lambda i: (i.declared_at, i.id), reverse=True)
    data.incidents_since = since
    data.incident_times = {
        i.id: incident_times(i, incidents.get_alert(i.alert_id) if i.alert_id else None)
        for i in data.incidents
    }
    if data.kind is DigestKind.EOD:
        last = data.schedule.previous(DigestKind.EOD, day_start) or day_start
        data.handoffs = sorted(
            (n for n in incidents.handoffs(last) if n.at >= last and n.environment in (None, env)),
            key=lambda n: (n.at, n.id),
        )
        data.handoffs_since = last


OPEN_INCIDENT_STATES = frozenset(s for s in IncidentState if s.is_open)
INCIDENT_LOOKBACK = timedelta(days=14)  # an incident ended today was declared within this


# Actions that bypassed or overrode a control (`OVERRIDES`): every digest names them.
FLAGGED_ACTIONS: dict[str, str] = {
    AuditAction.BREAK_GLASS: ":rotating_light: break glass",
    AuditAction.FORCED_PROMOTE: ":warning: forced promote",
    AuditAction.CANARY_ROLLBACK: ":rewind: automatic rollback",
    AuditAction.APPROVAL_VOID: ":no_entry_sign: approval void",
    AuditAction.WORKSPACE_REFUSED: ":no_entry: request from another workspace",
    AuditAction.VALIDATION_OVERRIDE: ":rotating_light: unvalidated version past the model-risk gate",
}
assert set(FLAGGED_ACTIONS) == OVERRIDES, "every override has its digest wording"


def _audit_check_line(e: AuditEvent, tz: ZoneInfo) -> str:
    """The weekly full verify's result (`bot/audit_weekly.py`) as one digest line."""
    p = e.parameters
    stamp = e.at.astimezone(tz).strftime("%a %H:%M")
    if e.outcome == "intact":
        head = str(p.get("head_hash") or "")[:12]
        return (
            f":white_check_mark: Full verify {stamp}: chain intact, {p.get('checked', 0)} row(s),"
            f" head row {p.get('head_id')} `{head}…`"
        )
    return (
        f":red_circle: Full verify {stamp}: chain *broken* at row {p.get('problem_row')}"
        f" ({p.get('problem')}) — {escape(str(p.get('detail') or ''))[:300]}"
    )


def _flag_line(e: AuditEvent, tz: ZoneInfo) -> str:
    what = FLAGGED_ACTIONS[e.action]
    where = f" `{e.target}`" if e.target else ""
    ref = f" [{e.change_id}]" if e.change_id else ""
    why = f" — _{escape(redact(e.justification))}_" if e.justification else ""
    return f"`{e.at.astimezone(tz):%a %H:%M}` {what}{where}{ref} by {mention(e.actor_id)}{why}"


def _ranked_breaching(data: DigestData, th: Thresholds) -> list[str]:
    found = [(s, _score(h, th)) for s, h in data.health.items() if breaches(h, th)]
    return [s for s, _ in sorted(found, key=lambda x: (-x[1], x[0]))]
