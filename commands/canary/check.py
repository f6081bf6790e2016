"""One check: the complete windows not counted yet read from the platform, added to the
watch's evidence by the sequential judge, stored, audited and posted.

A check claims its slot by compare-and-set first, so two replicas (or a scheduled and a
typed check racing) record it once. A window is counted once however often `/aiops canary`
is typed: the evidence remembers every window it holds, and only windows that have closed
(and, on Vertex, whose metrics have arrived) are read.
"""

from __future__ import annotations

from commands.audit import AuditAction
from commands.canary import stats
from commands.canary.judge import figures_of, gathered, judge, verdict_of, windows_due
from commands.canary.model import (
    Check,
    Verdict,
    Watch,
    WatchState,
    canary_settings,
)
from commands.canary.records import store_of
from commands.canary.text import announce, attach_chart, check_line
from commands.canary.watch import canary_gone
from commands.runtime import Runtime

# The states in which a watch takes checks (a person's typed check included while paused).
CHECKED = frozenset({WatchState.WATCHING, WatchState.AWAITING_DECISION, WatchState.PAUSED})


def run_check(rt: Runtime, w: Watch, source: str) -> Check | None:
    """Judge the windows that have closed since the last check; None when someone else
    claimed this check, the canary is gone, or the watch takes no more checks (`CHECKED`:
    one being rolled back keeps the evidence its verdict was acted on). The claim is a
    compare-and-set on the watch's `rev`, so a state that moved since `w` was read fails it."""
    if w.state not in CHECKED:
        return None  # decided and acted on, or ended: its evidence is final
    cs = store_of(rt)
    settings = canary_settings(rt.config)
    now = rt.clock()
    claimed = cs.update_watch(
        w.id, w.rev, checks=w.checks + 1, next_check_at=now + settings.interval, updated_at=now
    )
    if claimed is None:
        return None
    seq = claimed.checks
    ep = rt.config.endpoints[w.endpoint]
    state = rt.platform.endpoint_state(ep)
    if state.model(w.canary_id) is None or state.model(w.stable_id) is None:
        canary_gone(rt, claimed)
        return None
    share = state.traffic.get(w.canary_id, 0)
    fetched: list[stats.CanaryWindow] = []
    for start, end in windows_due(gathered(claimed, share, now), settings.interval, now):
        window = rt.platform.canary_window(ep, w.canary_id, w.stable_id, start, end)
        if window is None:  # not complete in the platform's metrics yet
            break
        fetched.append(window)
    current = claimed
    for _ in range(20):
        # judged against the evidence as stored now: a racing check's windows are not lost,
        # and windows both read are counted once
        g, j = judge(settings, rt.config.thresholds, gathered(current, share, now), fetched)
        verdict = verdict_of(j)
        consecutive = {
            Verdict.REGRESSION: current.consecutive_breaches + 1,
            Verdict.NO_REGRESSION: 0,
            Verdict.UNDECIDED: current.consecutive_breaches,
        }[verdict]
        moved = cs.update_watch(
            current.id,
            current.rev,
            consecutive_breaches=consecutive,
            last_verdict=verdict,
            evidence=g.to_json(),
            share_since=g.since,
            updated_at=now,
        )
        if moved is not None:
            current = moved
            break
        fresh = cs.get_watch(w.id)
        assert fresh is not None
        current = fresh
    canary, stable = figures_of(j)
    check = Check(
        watch_id=w.id,
        seq=seq,
        at=now,
        window_seconds=int(settings.interval.total_seconds()),
        source=source,
        canary_share=share,
        canary=canary,
        stable=stable,
        verdict=verdict,
        reasons=j.reasons,
        consecutive_breaches=current.consecutive_breaches,
        windows=j.figures.windows,
        counted=j.counted,
    )
    cs.add_check(check)
    announce(
        rt,
        current,
        AuditAction.CANARY_CHECK,
        source,
        verdict.value,
        line=check_line(current, check, settings),
        parameters={
            "canary": w.ref,
            "seq": seq,
            "share": share,
            "window_s": check.window_seconds,
            "since": g.since.isoformat(),
            "windows": j.figures.windows,
            "windows_counted_now": j.counted,
            "canary_figures": {
                "p95_ms": canary.p95_latency_ms,
                "error_rate": canary.error_rate,
                "requests": canary.requests,
            },
            "stable_figures": {
                "p95_ms": stable.p95_latency_ms,
                "error_rate": stable.error_rate,
                "requests": stable.requests,
            },
            "p_worse": dict(j.evidence.p_worse),
            "p_within": dict(j.evidence.p_within),
            "reasons": j.reasons,
            "consecutive_breaches": check.consecutive_breaches,
        },
    )
    attach_chart(rt, current)
    return check
