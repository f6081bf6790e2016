"""The sandbox's metric history, daily costs and yesterday's use per deployed model, for
the digests (one "query" each).

Figures are the same deterministic functions of (endpoint, version, 5-minute bucket) the
sandbox's `health` uses, so a chart agrees with the status it sits under. The chart's
history starts when each deployed model was deployed: before that, the models already
there share the traffic in today's proportions (a canary deployed a minute ago does not
paint the last 24 hours), and a moment when none of today's models was deployed has no
figures.

Costs and yesterday's use are read from what was deployed then (`_Timeline`): the sandbox
records every traffic move (a done `traffic` operation with the split it replaced), every
undeploy (with the model it removed) and every scale (with the replicas before), so a
deploy, switch, scale or undeploy made today leaves yesterday's replica-hours, requests
and cost as they were.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from commands.config import Config, Endpoint
from commands.model import ModelVersion
from commands.ports import DeployedModelCost, SeriesPoint

if TYPE_CHECKING:
    from bot.store.sandbox_tables import (
        SandboxDeployedModelRow,
        SandboxEndpointRow,
        SandboxOperationRow,
    )

# The kind of the sandbox's operation row recording a traffic move (`sandbox.py` writes it).
TRAFFIC_KIND = "traffic"
REPLICA_HOUR_USD = 1.31  # one replica-hour (machine + one L4) in the sandbox's estimate, USD


class SandboxPlatform(Protocol):
    """What the history reads of `bot.platforms.sandbox.SandboxPlatform`, which calls it
    (so this module does not import it back)."""

    calls: int
    config: Config
    clock: Callable[[], datetime]

    def rows_for(
        self, slugs: list[str]
    ) -> tuple[dict[str, SandboxEndpointRow], dict[str, list[SandboxDeployedModelRow]]]: ...

    def history_rows(self, slugs: list[str], since: datetime) -> list[SandboxOperationRow]: ...

    def _model_figures(
        self, slug: str, version: ModelVersion, bucket: int
    ) -> tuple[float, float, float]: ...


def health_series(
    platform: SandboxPlatform,
    endpoints: Sequence[Endpoint],
    since: datetime,
    until: datetime,
    step: timedelta,
) -> dict[str, list[SeriesPoint]]:
    platform.calls += 1
    rows, models = platform.rows_for([e.slug for e in endpoints])
    step_s = max(300, int(step.total_seconds()))
    out: dict[str, list[SeriesPoint]] = {}
    for ep in endpoints:
        row = rows.get(ep.slug)
        if row is None:
            continue
        deployed = [
            (m, _utc(m.deployed_at), row.traffic.get(m.id, 0)) for m in models.get(ep.slug, [])
        ]
        points = []
        for t in _times(since, until, step_s):
            at = datetime.fromtimestamp(t, tz=since.tzinfo)
            live = [(m, share) for m, deployed_at, share in deployed if deployed_at <= at]
            total = sum(share for _, share in live)
            p95 = 0.0
            err = 0.0
            for m, share in live:
                share_then = share * 100 / total
                mp95, merr, _ = platform._model_figures(
                    ep.slug, ModelVersion(m.model, m.version), t // 300
                )
                if share_then >= 5:
                    p95 = max(p95, mp95)
                err += merr * share_then / 100
            if total:
                points.append(SeriesPoint(at, round(p95, 1) if p95 else None, round(err, 5)))
            else:  # none of today's models served then
                points.append(SeriesPoint(at, None, None))
        out[ep.slug] = points
    return out


def _times(since: datetime, until: datetime, step_s: int) -> list[int]:
    """Every `step_s` from `since` (rounded down) and `until` itself, so the chart ends
    with what the status says now."""
    end = int(until.timestamp())
    out = list(range(int(since.timestamp()) // step_s * step_s, end + 1, step_s))
    if not out or out[-1] != end:
        out.append(end)
    return out


def _utc(value: datetime) -> datetime:
    """SQLite gives the stored UTC times back without their zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass
class _Held:
    """One deployed model over time: deployed at `since`, undeployed at `until` (None: it
    still is), with its replicas now and each change of them (when, the count before)."""

    id: str
    since: datetime
    until: datetime | None
    replicas_now: int
    scaled: list[tuple[datetime, int]] = field(default_factory=list)

    def held(self, at: datetime) -> bool:
        return self.since <= at and (self.until is None or at < self.until)

    def replicas(self, at: datetime) -> int:
        return next((before for when_, before in self.scaled if when_ > at), self.replicas_now)


@dataclass
class _Timeline:
    """An endpoint's deployed models and traffic split at any moment since the history
    read: the state now, walked back through what changed it."""

    models: list[_Held]
    traffic_now: dict[str, int]
    moves: list[tuple[datetime, dict[str, int]]]  # (when, the split before), oldest first

    def share(self, dm_id: str, at: datetime) -> int:
        split = next((before for when_, before in self.moves if when_ > at), self.traffic_now)
        return int(split.get(dm_id, 0))

    def changes(self, start: datetime, end: datetime) -> list[datetime]:
        """Every moment in (start, end) at which a share, a replica count or a deployed
        model changed: within the pieces between them the figures are constant."""
        found = {w for w, _ in self.moves}
        for m in self.models:
            found |= {m.since, *(w for w, _ in m.scaled)}
            if m.until is not None:
                found.add(m.until)
        return sorted(t for t in found if start < t < end)


def _applied(op: SandboxOperationRow) -> datetime:
    at = op.payload.get("applied_at")
    return datetime.fromisoformat(str(at)) if at else _utc(op.finishes_at)


def _timelines(
    platform: SandboxPlatform, endpoints: Sequence[Endpoint], since: datetime
) -> dict[str, _Timeline]:
    """Each endpoint's timeline from `since` to now (two queries and the history's one)."""
    slugs = [e.slug for e in endpoints]
    rows, models = platform.rows_for(slugs)
    out = {
        slug: _Timeline(
            [_Held(m.id, _utc(m.deployed_at), None, m.replicas) for m in models.get(slug, [])],
            dict(row.traffic),
            [],
        )
        for slug, row in rows.items()
    }
    history = platform.history_rows(slugs, since)
    # the models undeployed since first, so a scale of one before it went finds it
    for op in history:
        line = out.get(op.endpoint)
        removed = op.payload.get("removed")
        if line is not None and op.kind == "undeploy" and isinstance(removed, dict):
            line.models.append(
                _Held(
                    str(op.payload["deployed_model_id"]),
                    datetime.fromisoformat(str(removed["deployed_at"])),
                    _applied(op),
                    int(removed["replicas"]),
                )
            )
    for op in history:
        line = out.get(op.endpoint)
        if line is None:
            continue
        if op.kind == "mutate" and "replicas_before" in op.payload:
            at = _applied(op)
            for m in line.models:
                if m.id == str(op.payload["deployed_model_id"]) and m.held(at):
                    m.scaled.append((at, int(op.payload["replicas_before"])))
        elif op.kind == TRAFFIC_KIND and isinstance(before := op.payload.get("before"), dict):
            line.moves.append((_applied(op), {str(k): int(v) for k, v in before.items()}))
    for line in out.values():
        line.moves.sort(key=lambda move: move[0])
        for m in line.models:
            m.scaled.sort(key=lambda scale: scale[0])
    return out


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end


def daily_costs(
    platform: SandboxPlatform, endpoints: Sequence[Endpoint], days: int
) -> dict[str, list[float]]:
    """Each of the last `days` whole days (in the config's zone), oldest first: the
    replica-hours that day (of what was deployed then) × the replica-hour price, ±8 % a
    day as a bill varies."""
    platform.calls += 1
    tz = platform.config.timezone
    today = platform.clock().astimezone(tz).date()
    first, _ = _day_bounds(today - timedelta(days=days), tz)
    lines = _timelines(platform, endpoints, first)
    out: dict[str, list[float]] = {}
    for ep in endpoints:
        line = lines.get(ep.slug)
        if line is None:
            continue
        values = []
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            start, end = _day_bounds(day, tz)
            hours = sum(_replica_hours(line, m, start, end) for m in line.models)
            # ±8 % a day, deterministic (a CRC, not a seeded Random: 1,000s of endpoints)
            wobble = zlib.crc32(f"{ep.slug}|{day.isoformat()}|cost".encode()) / 0xFFFFFFFF
            values.append(round(hours * REPLICA_HOUR_USD * (0.92 + 0.16 * wobble), 2))
        out[ep.slug] = values
    return out


def _pieces(
    line: _Timeline, m: _Held, start: datetime, end: datetime, hourly: bool = False
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut where anything changed (and on the hour, `hourly`), keeping the
    pieces in which `m` was deployed."""
    cuts = set(line.changes(start, end))
    if hourly:
        t = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        while t < end:
            cuts.add(t)
            t += timedelta(hours=1)
    points = [start, *sorted(cuts), end]
    return [(a, b) for a, b in itertools.pairwise(points) if b > a and m.held(a)]


def _replica_hours(line: _Timeline, m: _Held, start: datetime, end: datetime) -> float:
    return sum(
        m.replicas(a) * (b - a).total_seconds() / 3600 for a, b in _pieces(line, m, start, end)
    )


def deployed_model_costs(
    platform: SandboxPlatform,
    endpoints: Sequence[Endpoint],
    rps: dict[str, float],
    shape: Callable[[float], float],
) -> dict[str, list[DeployedModelCost]]:
    """Yesterday (the last whole day in the config's zone) per deployed model deployed
    then (one undeployed since included, one deployed since absent): its replica-hours
    as they were hour by hour × the replica-hour price, and its requests: its share of
    the split then × the environment's `rps` × `shape(local hour)`, the curve the
    sandbox's health uses."""
    platform.calls += 1
    tz = platform.config.timezone
    today = platform.clock().astimezone(tz).date()
    start, end = _day_bounds(today - timedelta(days=1), tz)
    lines = _timelines(platform, endpoints, start)
    out: dict[str, list[DeployedModelCost]] = {}
    for ep in endpoints:
        line = lines.get(ep.slug)
        if line is None:
            continue
        found = []
        for m in line.models:
            pieces = _pieces(line, m, start, end, hourly=True)
            if not pieces:
                continue  # not deployed yesterday: nothing of yesterday to report
            replica_hours = requests = 0.0
            for a, b in pieces:
                span = (b - a).total_seconds()
                local = a.astimezone(tz)
                factor = shape(local.hour + local.minute / 60)
                share = line.share(m.id, a)
                requests += rps.get(ep.environment, 1.0) * factor * span * share / 100
                replica_hours += m.replicas(a) * span / 3600
            found.append(
                DeployedModelCost(
                    deployed_model_id=m.id,
                    requests=int(requests),
                    replica_hours=round(replica_hours, 2),
                    cost_usd=round(replica_hours * REPLICA_HOUR_USD, 2),
                )
            )
        out[ep.slug] = found
    return out
