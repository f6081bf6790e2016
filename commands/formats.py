"""How times and health figures are written, wherever they appear (cards, status,
digests, canary lines)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from commands.config import Thresholds
from commands.model import EndpointHealth


def when(at: datetime | None, tz: ZoneInfo) -> str:
    if at is None:
        return "—"
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


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
