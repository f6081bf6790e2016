"""Canary watches: one per canary, started when a deploy leaves a canary beside the
serving version, ended when the canary goes away."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.canary.alert import close_alert
from commands.canary.model import (
    Watch,
    WatchState,
    canary_settings,
    env_policy,
)
from commands.canary.records import store_of
from commands.canary.text import announce, minutes, post_thread
from commands.changes.plan import find_canary
from commands.config import Endpoint
from commands.messages import (
    escape,
)
from commands.model import SCHEDULER, ChangeKind, Strategy
from commands.runtime import Runtime

# --- watches -------------------------------------------------------------------------


def unsplit(strategy: str | None) -> bool:
    """A deploy strategy that never splits traffic (blue-green, replace): one model takes
    all of it, so there is nothing for the canary analysis to compare."""
    return strategy not in (None, Strategy.CANARY.value)


def update_watch(rt: Runtime, w: Watch, **fields: object) -> Watch:
    """Apply `fields` whatever else moved the watch meanwhile (re-read and retry)."""
    cs = store_of(rt)
    current = w
    for _ in range(20):
        moved = cs.update_watch(current.id, current.rev, **fields)
        if moved is not None:
            return moved
        fresh = cs.get_watch(w.id)
        assert fresh is not None
        current = fresh
    raise RuntimeError(f"{w.ref} keeps moving; gave up updating it")


def ensure_watch(rt: Runtime, ep: Endpoint) -> Watch | None:
    """The watch of the endpoint's current canary, started if the bot has not seen it yet.
    None without one: no deploy, or the last was a blue-green or replace, which never
    split traffic and so start no watch (their soak judges them; `last_deploy_unsplit`)."""
    cs = store_of(rt)
    deploy = rt.store.last_succeeded(ep.slug, kinds=[ChangeKind.DEPLOY.value])
    if deploy is None or not deploy.new_deployed_model_id or unsplit(deploy.plan.strategy):
        return None
    existing = cs.watch_for_change(deploy.id)
    if existing is not None:
        return existing
    state = rt.platform.endpoint_state(ep)
    pair = find_canary(state, deploy.new_deployed_model_id)
    settings = canary_settings(rt.config)
    started = deploy.updated_at or rt.clock()
    labels = {d.id: d.version.version for d in state.deployed}
    is_canary = pair is not None and pair[1] == deploy.new_deployed_model_id
    stable_id = pair[0] if pair and is_canary else ""
    watch = Watch(
        id=0,
        endpoint=ep.slug,
        environment=ep.environment,
        change_id=deploy.id,
        canary_id=deploy.new_deployed_model_id,
        stable_id=stable_id,
        canary_version=(deploy.version or "").split("@")[-1],
        stable_version=labels.get(stable_id, ""),
        state=WatchState.WATCHING if is_canary else WatchState.ENDED,
        started_at=started,
        next_check_at=started + settings.interval,
        note=None if is_canary else "it served alone (or was gone) when first seen",
        updated_at=rt.clock(),
    )
    created = cs.create_watch(watch)
    if created is None:  # another replica, or tick, started it first
        return cs.watch_for_change(deploy.id)
    if created.state is WatchState.WATCHING:
        policy = env_policy(rt.config, rt.config.environment_of(ep))
        rt.auditor.record(
            AuditAction.CANARY_WATCH,
            SCHEDULER.id,
            "watching",
            change=deploy,
            parameters={
                "canary": created.ref,
                "canary_version": created.canary_version,
                "stable_version": created.stable_version,
                "interval_s": int(settings.interval.total_seconds()),
                "min_requests": settings.min_requests,
                "confidence": settings.confidence,
                "max_undecided_s": int(settings.max_undecided.total_seconds()),
                "auto_rollback": policy.auto_rollback,
            },
        )
        post_thread(
            rt,
            created,
            f":mag: Canary analysis {created.ref}: {escape(created.canary_version)} against"
            f" {escape(created.stable_version)}, evidence added every {minutes(settings.interval)}"
            f" (each window once): regression = canary P95 above {settings.baseline_p95_ratio:g}×"
            f" stable or errors above stable + {settings.baseline_error_margin:.2%}, or beyond the"
            f" thresholds; no regression needs {settings.confidence:.0%} confidence; undecided for"
            f" more than {minutes(settings.max_undecided)} asks people; regression → "
            + {
                "yes": "the bot rolls back",
                "page": "the bot rolls back and pages the ops channel",
                "ask": "the bot asks for a decision",
            }[policy.auto_rollback]
            + ".",
        )
    return created


def end_watch(rt: Runtime, w: Watch, state: WatchState, why: str) -> Watch:
    """End an active watch in `state`, audited and said once: of any number of callers
    that see its end (the other replica's tick, a typed check), the one whose
    compare-and-set ends it announces; the others get the ended watch and say nothing."""
    cs = store_of(rt)
    current = w
    for _ in range(20):
        if not current.state.is_active:
            return current  # ended by another caller, who said so
        moved = cs.update_watch(
            current.id,
            current.rev,
            state=state,
            action=None,
            action_key=None,
            action_change_id=None,
            note=why,
            updated_at=rt.clock(),
        )
        if moved is not None:
            ended = moved
            break
        fresh = cs.get_watch(w.id)
        assert fresh is not None
        current = fresh
    else:
        raise RuntimeError(f"{w.ref} keeps moving; gave up ending it")
    announce(
        rt,
        ended,
        AuditAction.CANARY_WATCH_ENDED,
        SCHEDULER.id,
        state.value,
        line=f":checkered_flag: {w.ref} {state.value.replace('_', ' ')}: {why}",
        parameters={"canary": w.ref, "checks": ended.checks},
        justification=why,
    )
    if state is WatchState.ROLLED_BACK:
        close_alert(rt, ended, why)  # the `page` policy's alert, if it raised one
    return ended


def canary_gone(rt: Runtime, w: Watch) -> Watch | None:
    """End the watch if its canary serves alone or is no longer deployed."""
    ep = rt.config.endpoints[w.endpoint]
    state = rt.platform.endpoint_state(ep)
    if state.model(w.canary_id) is None:
        return end_watch(rt, w, WatchState.ROLLED_BACK, f"{w.canary_version} is no longer deployed")
    if state.model(w.stable_id) is None or len(state.deployed) == 1:
        return end_watch(rt, w, WatchState.PROMOTED, f"{w.canary_version} serves all traffic")
    return None
