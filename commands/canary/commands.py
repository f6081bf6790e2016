"""`/aiops canary | pause | resume | canary-rollback | canary-promote`."""

from __future__ import annotations

from typing import Any

from commands.audit import AuditAction
from commands.canary.act import act_on_breaches, breach_reason, fulfil, settle, start_rollback
from commands.canary.check import run_check
from commands.canary.loop import busy_with
from commands.canary.model import (
    Watch,
    WatchState,
    canary_settings,
)
from commands.canary.records import store_of
from commands.canary.steps import next_step, step_key
from commands.canary.text import (
    announce,
    check_line,
    minutes,
    summary,
)
from commands.canary.watch import ensure_watch, unsplit
from commands.changes.rules import may_approve, may_request
from commands.config import Environment
from commands.errors import Refusal
from commands.messages import (
    Block,
    Context,
    Header,
    Post,
    Reply,
    Text,
    escape,
    mention,
    when,
)
from commands.model import BOT, Actor, ChangeKind
from commands.parsing import whole_number
from commands.runtime import Runtime

# --- /aiops canary | pause | resume | canary-rollback | canary-promote -----------------------


def _watch_of(rt: Runtime, ref: str | None, usage: str) -> Watch:
    if not ref:
        raise Refusal("which canary?", f"Usage: `{usage}`", code="malformed")
    cs = store_of(rt)
    if ref.upper().startswith("CAN-") and whole_number(ref[4:]) is not None:
        found = cs.get_watch(int(ref[4:]))
        if found is None:
            raise Refusal(f"no canary `{escape(ref)}`", code="not_found")
        return found
    ep = rt.endpoint(ref, usage)
    found = ensure_watch(rt, ep)
    deploy = rt.store.last_succeeded(ep.slug, kinds=[ChangeKind.DEPLOY.value])
    if found is None and deploy is not None and unsplit(deploy.plan.strategy):
        earlier = cs.latest_watch(ep.slug)
        raise Refusal(
            f"`{ep.slug}`'s last deploy, {deploy.id} ({escape(deploy.version or '')}), was a"
            f" {deploy.plan.strategy}: traffic is never split, so there is no canary analysis"
            " (its soak judged the new version: see the change's thread)",
            f"`/aiops changes {ep.slug}` shows it"
            + (f"; the earlier canary is `/aiops canary {earlier.ref}`" if earlier else "")
            + ".",
            code="not_found",
        )
    found = found or cs.latest_watch(ep.slug)
    if found is None:
        raise Refusal(
            f"`{ep.slug}` has no canary",
            f"Deploy one: `/deploy {ep.slug} {ep.model}@<version> canary=10`.",
            code="not_found",
        )
    return found


def _analysis_reply(rt: Runtime, w: Watch, extra: str | None = None) -> Reply:
    settings = canary_settings(rt.config)
    checks = store_of(rt).checks(w.id, 500)
    blocks: list[Block] = [
        Header(f"Canary {w.ref} · {w.endpoint} · {w.versions}"[:150]),
        Text(summary(w, checks, settings, rt)[:2900]),
    ]
    recent = checks[-10:]
    if recent:
        blocks.append(Text("\n".join(check_line(w, c, settings) for c in recent)[:2900]))
    if w.state is WatchState.ROLLING_BACK:
        # no scheduled check is coming: its verdict is acted on (`check.CHECKED`)
        blocks.append(Context(("No more checks: the bot is rolling this canary back.",)))
    elif w.state.is_active:
        blocks.append(
            Context(
                (
                    f"Next scheduled check {when(w.next_check_at, rt.config.timezone)}"
                    + (" (paused)" if w.state is WatchState.PAUSED else "")
                    + f" · windows of {minutes(settings.interval)}; tolerance P95 ≤"
                    f" {settings.baseline_p95_ratio:g}× stable, errors ≤ stable +"
                    f" {settings.baseline_error_margin:.2%}; no regression at"
                    f" {settings.confidence:.0%} confidence",
                )
            )
        )
    if extra:
        blocks.append(Context((extra,)))
    return Reply(text=f"{w.ref}: {len(checks)} check(s)", blocks=blocks)


def canary_command(rt: Runtime, actor: Actor, ref: str | None) -> Reply:
    """`/aiops canary <endpoint>`: the analysis so far, after one check run now."""
    w = _watch_of(rt, ref, "/aiops canary <endpoint>")
    env = rt.config.environments[w.environment]
    extra = None
    if w.action is not None:  # book an action that finished (the console has no scheduler)
        w = settle(rt, w)
    if not w.state.is_active:
        extra = "This canary is no longer watched."
    elif w.state is WatchState.ROLLING_BACK:
        # its verdict is acted on: a check now would judge the rollback's own traffic (the
        # canary at 0 % before it is undeployed) and show "undecided" over the regression
        extra = "No check now: the bot is rolling this canary back" + (
            f" ({w.action_change_id})." if w.action_change_id else "."
        )
    elif not may_request(env, actor.id, rt.groups):
        extra = f"View only: {mention(actor.id)} may not run checks in `{env.name}`."
    elif (busy := busy_with(rt, w)) is not None:
        extra = f"No check now: {busy}."
    else:
        check = run_check(rt, w, actor.id)
        fresh = store_of(rt).get_watch(w.id)
        assert fresh is not None
        w = fresh
        if check is None:
            extra = "Another check was running at the same moment; its result is above."
        if w.state in (WatchState.WATCHING, WatchState.AWAITING_DECISION):
            act_on_breaches(rt, w)
            fresh = store_of(rt).get_watch(w.id)
            assert fresh is not None
            w = fresh
    return _analysis_reply(rt, w, extra)


def _require_requester(rt: Runtime, actor: Actor, w: Watch, verb: str) -> Environment:
    env = rt.config.environments[w.environment]
    if not may_request(env, actor.id, rt.groups):
        raise Refusal(
            f"{mention(actor.id)} may not {verb} canaries in `{env.name}`",
            "Ask someone on the environment's requesters list.",
            code="not_allowed",
        )
    return env


def _set_by_person(
    rt: Runtime,
    actor: Actor,
    w: Watch,
    action: AuditAction,
    outcome: str,
    reason: str | None,
    line: str,
    **fields: Any,
) -> Watch:
    """A person pauses or resumes a watch: compare-and-set, audit, thread line, card."""
    moved = store_of(rt).update_watch(w.id, w.rev, updated_at=rt.clock(), **fields)
    if moved is None:
        raise Refusal(f"{w.ref} moved just now; look again with `/aiops canary {w.endpoint}`")
    announce(
        rt,
        moved,
        action,
        actor.id,
        outcome,
        line=line,
        justification=reason,
        parameters={"canary": w.ref},
    )
    return moved


def pause(rt: Runtime, actor: Actor, ref: str | None, reason: str | None) -> Reply:
    w = _watch_of(rt, ref, '/aiops pause <endpoint> [reason="…"]')
    _require_requester(rt, actor, w, "pause")
    if w.state not in (WatchState.WATCHING, WatchState.AWAITING_DECISION):
        raise Refusal(
            f"{w.ref} on `{w.endpoint}` is {w.state.value.replace('_', ' ')}; nothing to pause",
            code="already_decided",
        )
    moved = _set_by_person(
        rt,
        actor,
        w,
        AuditAction.CANARY_PAUSE,
        "paused",
        reason,
        f":double_vertical_bar: {w.ref} paused by {mention(actor.id)}: no scheduled checks, steps or automatic rollback until resumed.",
        state=WatchState.PAUSED,
    )
    return _analysis_reply(rt, moved, f"Paused. Resume with `/aiops resume {w.endpoint}`.")


def resume(rt: Runtime, actor: Actor, ref: str | None, reason: str | None) -> Reply:
    w = _watch_of(rt, ref, '/aiops resume <endpoint> [reason="…"]')
    _require_requester(rt, actor, w, "resume")
    if w.state is not WatchState.PAUSED:
        raise Refusal(
            f"{w.ref} on `{w.endpoint}` is not paused ({w.state.value.replace('_', ' ')})",
            code="already_decided",
        )
    settings = canary_settings(rt.config)
    moved = _set_by_person(
        rt,
        actor,
        w,
        AuditAction.CANARY_RESUME,
        "watching",
        reason,
        f":arrow_forward: {w.ref} resumed by {mention(actor.id)}.",
        state=WatchState.WATCHING,
        next_check_at=rt.clock() + settings.interval,
    )
    return _analysis_reply(
        rt, moved, "Resumed: the next window is judged in " + minutes(settings.interval) + "."
    )


def _close_decision(rt: Runtime, w: Watch, text: str) -> None:
    if w.decision_channel and w.decision_ts:
        rt.notifier.post(
            Post(
                w.decision_channel,
                Reply(text=text, blocks=[Text(text)], ephemeral=False),
                change_id=w.change_id,
                update=True,
                ts=w.decision_ts,
            )
        )


def decide_rollback(
    rt: Runtime, actor: Actor, ref: str | None, reason: str | None, request_id: str | None
) -> Reply:
    """The Rollback button (or `/aiops canary-rollback <endpoint>`): mitigation first, so
    anyone who may request changes in the environment may press it."""
    w = _watch_of(rt, ref, '/aiops canary-rollback <endpoint> [reason="…"]')
    _require_requester(rt, actor, w, "roll back")
    if w.state not in (WatchState.WATCHING, WatchState.AWAITING_DECISION, WatchState.PAUSED):
        raise Refusal(
            f"{w.ref} on `{w.endpoint}` is {w.state.value.replace('_', ' ')}; nothing was done",
            code="already_decided",
        )
    settings = canary_settings(rt.config)
    why = reason or breach_reason(rt, w, settings)
    change = start_rollback(rt, w, actor=actor, decided_by=actor.id, reason=why, page=False)
    _close_decision(rt, w, f":rewind: {w.ref}: {mention(actor.id)} chose to roll back.")
    fresh = store_of(rt).get_watch(w.id)
    assert fresh is not None
    if change is None and fresh.state is not WatchState.ROLLING_BACK:
        raise Refusal(f"{w.ref} moved just now; look again with `/aiops canary {w.endpoint}`")
    note = f"Rolling back: {change.id}." if change else "Rolling back once the running change ends."
    return _analysis_reply(rt, fresh, note)


def decide_promote(
    rt: Runtime, actor: Actor, ref: str | None, reason: str | None, request_id: str | None
) -> Reply:
    """The Promote-anyway button: an approver overrides the analysis; audited as a forced
    promote. The canary moves to the plan's next step (or to 100 % without a plan)."""
    w = _watch_of(rt, ref, '/aiops canary-promote <endpoint> [reason="…"]')
    env = rt.config.environments[w.environment]
    allowed = (
        may_approve(env, actor.id, rt.groups)
        if env.approvers
        else may_request(env, actor.id, rt.groups)
    )
    if not allowed:
        raise Refusal(
            f"{mention(actor.id)} may not override the canary analysis in `{env.name}`",
            f"Approvers: {', '.join(mention(a) for a in env.approvers) or 'none'}.",
            code="not_allowed",
        )
    if w.state is not WatchState.AWAITING_DECISION:
        raise Refusal(
            f"{w.ref} on `{w.endpoint}` is not waiting for a decision"
            f" ({w.state.value.replace('_', ' ')})",
            f"To promote, use `/promote {w.endpoint}`.",
            code="already_decided",
        )
    state = rt.platform.endpoint_state(rt.config.endpoints[w.endpoint])
    share = state.traffic.get(w.canary_id, 0)
    target = next_step(w.steps, share) if w.steps else None
    target = target or 100
    why = (
        reason
        or f"promote anyway, decided by {rt.config.display_name(actor.id)} on the breach alert"
    )
    claimed = store_of(rt).update_watch(
        w.id,
        w.rev,
        state=WatchState.WATCHING,
        consecutive_breaches=0,
        last_verdict=None,
        action="step",
        action_key=step_key(w, target),
        action_change_id=None,
        note=None,
        updated_at=rt.clock(),
    )
    if claimed is None:
        raise Refusal(f"{w.ref} moved just now; look again with `/aiops canary {w.endpoint}`")
    overrode = breach_reason(rt, w, canary_settings(rt.config))
    change = fulfil(
        rt,
        claimed,
        actor=BOT,
        decided_by=actor.id,
        reason=why,
        forced_promote=overrode,
    )
    rt.auditor.record(
        AuditAction.FORCED_PROMOTE,
        actor.id,
        "promote despite the canary analysis",
        environment=w.environment,
        target=w.endpoint,
        change_id=change.id if change else w.change_id,
        request_id=request_id,
        justification=why,
        parameters={"overrode": overrode, "canary": w.ref, "to": target},
    )
    _close_decision(
        rt,
        w,
        f":fast_forward: {w.ref}: {mention(actor.id)} chose to promote anyway (to {target}%).",
    )
    fresh = store_of(rt).get_watch(w.id)
    assert fresh is not None
    note = (
        f"Promoting anyway to {target}%: {change.id}."
        if change
        else f"Promoting to {target}% once the endpoint is free."
    )
    return _analysis_reply(rt, fresh, note)
