"""The sandbox's metric history, daily costs and yesterday's use per deployed model, for
the digests (one "query" each).

Figures are the same deterministic functions of (endpoint, version, 5-minute bucket) the
sandbox's `health` uses, so a chart agrees with the status it sits under. The sandbox keeps
no history of past deployments, but a deployed model's history starts when it was
deployed: before that, the models already there share the traffic in today's proportions
(a canary deployed a minute ago does not paint the last 24 hours), and a moment when none
of today's models was deployed has no figures. Replica counts are today's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol

from commands.config import Config, Endpoint
from commands.model import ModelVersion
from commands.ports import DeployedModelCost, SeriesPoint

if TYPE_CHECKING:
    from bot.store.sandbox_tables import SandboxDeployedModelRow, SandboxEndpointRow

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


def daily_costs(
    platform: SandboxPlatform, endpoints: Sequence[Endpoint], days: int
) -> dict[str, list[float]]:
    """Each of the last `days` whole days (in the config's zone), oldest first."""
    platform.calls += 1
    _, models = platform.rows_for([e.slug for e in endpoints])
    today = platform.clock().astimezone(platform.config.timezone).date()
    out: dict[str, list[float]] = {}
    for ep in endpoints:
        replicas = sum(m.replicas for m in models.get(ep.slug, []))
        values = []
        for back in range(days, 0, -1):
            day = today - timedelta(days=back)
            # ±8 % a day, deterministic (a CRC, not a seeded Random: 1,000s of endpoints)
            wobble = zlib.crc32(f"{ep.slug}|{day.isoformat()}|cost".encode()) / 0xFFFFFFFF
            values.append(round(replicas * REPLICA_HOUR_USD * 24 * (0.92 + 0.16 * wobble), 2))
        out[ep.slug] = values
    return out


def deployed_model_costs(
    platform: SandboxPlatform,
    endpoints: Sequence[Endpoint],
    rps: dict[str, float],
    shape: Callable[[float], float],
) -> dict[str, list[DeployedModelCost]]:
    """Yesterday (the last whole day in the config's zone) per deployed model: the hours
    it was deployed × its replicas (today's count: no history is kept) × the replica-hour
    price, and its share (today's) of the environment's traffic: `rps` by environment ×
    `shape(local hour)`, the curve the sandbox's health uses."""
    platform.calls += 1
    rows, models = platform.rows_for([e.slug for e in endpoints])
    tz = platform.config.timezone
    now = platform.clock()
    today = now.astimezone(tz).date()
    start = datetime.combine(today - timedelta(days=1), time(0), tz).astimezone(UTC)
    end = datetime.combine(today, time(0), tz).astimezone(UTC)
    out: dict[str, list[DeployedModelCost]] = {}
    for ep in endpoints:
        row = rows.get(ep.slug)
        if row is None:
            continue
        found = []
        for m in models.get(ep.slug, []):
            share = row.traffic.get(m.id, 0)
            held_from = max(start, _utc(m.deployed_at))
            hours = 0.0
            requests = 0.0
            t = held_from
            while t < end:  # hour by hour: the traffic's shape changes through the day
                step = min(end, t + timedelta(hours=1))
                span = (step - t).total_seconds()
                local = t.astimezone(tz)
                factor = shape(local.hour + local.minute / 60)
                requests += rps.get(ep.environment, 1.0) * factor * span * share / 100
                hours += span / 3600
                t = step
            if hours <= 0:
                continue  # deployed today: nothing of yesterday to report
            found.append(
                DeployedModelCost(
                    deployed_model_id=m.id,
                    requests=int(requests),
                    replica_hours=round(m.replicas * hours, 2),
                    cost_usd=round(m.replicas * hours * REPLICA_HOUR_USD, 2),
                )
            )
        out[ep.slug] = found
    return out
