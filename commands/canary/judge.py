"""The canary judge: a pure function of one window's figures and the settings."""

from __future__ import annotations

from commands.canary.model import (
    CanarySettings,
    Figures,
    Verdict,
)
from commands.config import Thresholds
from commands.model import ModelHealth

# --- judging -------------------------------------------------------------------------


def figures_of(health: ModelHealth | None) -> Figures:
    if health is None:
        return Figures(None, None, 0)
    return Figures(health.p95_latency_ms, health.error_rate, health.request_count)


def judge(
    canary: Figures, stable: Figures, th: Thresholds, settings: CanarySettings
) -> tuple[Verdict, list[str]]:
    """The verdict of one window, with the reasons for anything but a pass."""
    if canary.requests < settings.min_requests:
        return Verdict.NOT_ENOUGH_DATA, [
            f"{canary.requests:,} canary requests < {settings.min_requests:,}"
        ]
    if canary.p95_latency_ms is None or canary.error_rate is None:
        return Verdict.NOT_ENOUGH_DATA, ["no latency or error figures for the canary"]
    reasons = []
    if canary.p95_latency_ms > th.p95_latency_ms:
        reasons.append(f"P95 {canary.p95_latency_ms:.0f} ms > {th.p95_latency_ms:.0f} ms")
    if canary.error_rate > th.error_rate:
        reasons.append(f"errors {canary.error_rate:.2%} > {th.error_rate:.2%}")
    baseline = stable.requests >= settings.min_requests
    if baseline and stable.p95_latency_ms is not None:
        limit = settings.baseline_p95_ratio * stable.p95_latency_ms
        if canary.p95_latency_ms > limit:
            reasons.append(
                f"P95 {canary.p95_latency_ms:.0f} ms > {settings.baseline_p95_ratio:g}×"
                f" baseline {stable.p95_latency_ms:.0f} ms"
            )
    if baseline and stable.error_rate is not None:
        limit = stable.error_rate + settings.baseline_error_margin
        if canary.error_rate > limit:
            reasons.append(
                f"errors {canary.error_rate:.2%} > baseline {stable.error_rate:.2%}"
                f" + {settings.baseline_error_margin:.2%}"
            )
    return (Verdict.BREACH if reasons else Verdict.PASS), reasons
