"""One analysis window: figures read, judged, stored, audited and posted."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.canary.judge import figures_of, judge
from commands.canary.model import (
    Check,
    Verdict,
    Watch,
    canary_settings,
)
from commands.canary.records import store_of
from commands.canary.text import announce, check_line
from commands.canary.watch import canary_gone
from commands.runtime import Runtime

# --- one check -------------------------------------------------------------------------


def run_check(rt: Runtime, w: Watch, source: str) -> Check | None:
    """Judge one window now. The slot is claimed by compare-and-set, so two replicas (or a
    scheduled and a typed check racing) record it once; None when someone else did."""
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
    health = rt.platform.health([ep], window=settings.interval).get(ep.slug)
    by_model = health.by_model if health else {}
    canary, stable = figures_of(by_model.get(w.canary_id)), figures_of(by_model.get(w.stable_id))
    verdict, reasons = judge(canary, stable, rt.config.thresholds, settings)
    current = claimed
    for _ in range(20):
        consecutive = {
            Verdict.BREACH: current.consecutive_breaches + 1,
            Verdict.PASS: 0,
            Verdict.NOT_ENOUGH_DATA: current.consecutive_breaches,  # neither a pass nor a breach
        }[verdict]
        moved = cs.update_watch(
            current.id,
            current.rev,
            consecutive_breaches=consecutive,
            last_verdict=verdict,
            updated_at=now,
        )
        if moved is not None:
            current = moved
            break
        fresh = cs.get_watch(w.id)
        assert fresh is not None
        current = fresh
    check = Check(
        watch_id=w.id,
        seq=seq,
        at=now,
        window_seconds=int(settings.interval.total_seconds()),
        source=source,
        canary_share=state.traffic.get(w.canary_id, 0),
        canary=canary,
        stable=stable,
        verdict=verdict,
        reasons=reasons,
        consecutive_breaches=current.consecutive_breaches,
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
            "share": check.canary_share,
            "window_s": check.window_seconds,
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
            "reasons": reasons,
            "consecutive_breaches": check.consecutive_breaches,
        },
    )
    return check
