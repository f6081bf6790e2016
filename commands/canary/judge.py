"""The canary judge as a watch uses it: the configured tolerances turned into the
sequential judge's settings (`commands.canary.stats`), the evidence kept on the watch, and
the verdict in the watch's words. Pure: no I/O, no clock.

Evidence is gathered at one traffic share: when the canary's share changes, the evidence
starts again (`since` the moment the new share took effect), so a step, the promote gate and
a verdict always rest on traffic at the share being judged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commands.canary import stats
from commands.canary.model import CanarySettings, Figures, Verdict, Watch
from commands.config import Thresholds

# Stable requests a comparison needs at least (the stable P95's own sampling error).
MIN_STABLE = 100
# How many windows one check reads at most (a bot that was down catches up over checks).
MAX_WINDOWS_PER_CHECK = 24


def judge_settings(settings: CanarySettings, th: Thresholds) -> stats.JudgeSettings:
    """`[canary]` and `[thresholds]` as the sequential judge's tolerances and guards."""
    return stats.JudgeSettings(
        baseline_p95_ratio=settings.baseline_p95_ratio,
        baseline_error_margin=settings.baseline_error_margin,
        max_p95_ms=th.p95_latency_ms,
        max_error_rate=th.error_rate,
        alpha_pass=round(1 - settings.confidence, 10),
        min_canary=settings.min_requests,
        min_stable=max(settings.min_requests, MIN_STABLE),
    )


@dataclass(frozen=True)
class Gathered:
    """The evidence of a watch at one share, and when that share took effect."""

    share: int
    since: datetime
    evidence: stats.Evidence

    def to_json(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "since": self.since.isoformat(),
            "evidence": self.evidence.to_json(),
        }

    def next_start(self) -> datetime:
        """Where the next uncounted window starts: after the last counted one."""
        return max((e for _, e in self.evidence.windows), default=self.since)


def gathered(w: Watch, share: int, now: datetime) -> Gathered:
    """The watch's evidence if it was gathered at `share`; otherwise a fresh start: from the
    moment the share took effect when the bot knows it (`share_since`, set when a step or
    promote finished), else from `now` (a share moved outside the bot)."""
    raw = w.evidence
    if raw is not None and int(raw.get("share", -1)) == share:
        return Gathered(
            share,
            datetime.fromisoformat(str(raw["since"])),
            stats.Evidence.from_json(raw["evidence"]),
        )
    # no evidence yet: from the deploy or the bot's last step; a share moved without the
    # bot: only what comes after now
    since = (w.share_since or w.started_at) if raw is None else now
    return Gathered(share, since, stats.Evidence())


def windows_due(g: Gathered, interval: timedelta, now: datetime) -> list[tuple[datetime, datetime]]:
    """The complete windows not counted yet, oldest first, at most `MAX_WINDOWS_PER_CHECK`."""
    out: list[tuple[datetime, datetime]] = []
    start = g.next_start()
    while start + interval <= now and len(out) < MAX_WINDOWS_PER_CHECK:
        out.append((start, start + interval))
        start += interval
    return out


def judge(
    settings: CanarySettings,
    th: Thresholds,
    g: Gathered,
    windows: Iterable[stats.CanaryWindow],
) -> tuple[Gathered, stats.Judgement]:
    """The new evidence and the judgement after adding `windows` (a window already counted
    is ignored, so a repeated look changes nothing)."""
    j = stats.judge(judge_settings(settings, th), g.evidence, windows)
    return Gathered(g.share, g.since, j.evidence), j


def verdict_of(j: stats.Judgement) -> Verdict:
    return Verdict(j.verdict.value)


def figures_of(j: stats.Judgement) -> tuple[Figures, Figures]:
    """The canary's and the stable version's figures over the evidence so far."""
    f = j.figures
    return (
        Figures(f.canary_p95_ms, f.canary_error_rate, f.canary_requests),
        Figures(f.stable_p95_ms, f.stable_error_rate, f.stable_requests),
    )
