"""The sandbox's metric history and daily costs, for the digests (one "query" each).

Figures are the same deterministic functions of (endpoint, version, 5-minute bucket) the
sandbox's `health` uses, so a chart agrees with the status it sits under. Replica counts
and versions are today's: the sandbox keeps no history of past deployments.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from commands.config import Config, Endpoint
from commands.model import ModelVersion
from commands.ports import SeriesPoint

if TYPE_CHECKING:
    from bot.store.sandbox_tables import SandboxDeployedModelRow, SandboxEndpointRow

REPLICA_HOUR_USD = 1.31


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
        points = []
        t = int(since.timestamp()) // step_s * step_s
        while t <= until.timestamp():
            bucket = t // 300
            p95 = 0.0
            err = 0.0
            for m in models.get(ep.slug, []):
                share = row.traffic.get(m.id, 0)
                mp95, merr, _ = platform._model_figures(
                    ep.slug, ModelVersion(m.model, m.version), bucket
                )
                if share >= 5:
                    p95 = max(p95, mp95)
                err += merr * share / 100
            at = datetime.fromtimestamp(t, tz=since.tzinfo)
            points.append(SeriesPoint(at, round(p95, 1) if p95 else None, round(err, 5)))
            t += step_s
        out[ep.slug] = points
    return out


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
