"""Canary analysis: every canary is watched, judged against its baseline, promoted in steps
or rolled back.

- A *watch* starts for every deploy that leaves a canary next to the serving (stable)
  version. Every `[canary] interval` (default 5 min) the bot compares the canary with the
  stable version over that same window, per deployed model (`EndpointHealth.by_model`):
  P95 latency, error rate, request count — against the absolute thresholds and against
  the baseline (canary P95 ≤ `baseline_p95_ratio` × stable; canary errors ≤ stable +
  `baseline_error_margin`). Fewer than `min_requests` canary requests is *not enough
  data*, never a pass.
- Each check is recorded (time, figures, verdict, consecutive breaches), audited, and
  posted as one line in the deploy change's thread; the change's message carries the
  summary of all checks.
- `consecutive_breaches` breaches in a row: the bot rolls back where the environment's
  `canary_auto_rollback` allows (`yes`, or `page` to also page the ops channel), with the
  bot as the actor and the figures as the reason; with `ask` it posts Rollback and
  Promote-anyway buttons and waits.
- A step plan moves the canary one step after each passing window (`commands.steps`).

`check_due(rt)` is the timed entry point (the scheduler calls it); `/aiops canary`
runs the same check now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from commands import approvals, execution, steps
from commands.canary_model import (
    ACTIVE_STATES,
    CanarySettings,
    CanaryStore,
    Check,
    EnvCanaryPolicy,
    Figures,
    Verdict,
    Watch,
    WatchState,
    canary_settings,
    env_policy,
)
from commands.config import Endpoint, Environment, Thresholds
from commands.errors import Refusal
from commands.messages import (
    Block,
    Button,
    Buttons,
    Context,
    Header,
    Post,
    Reply,
    Text,
    escape,
    mention,
)
from commands.model import BOT, SCHEDULER, Actor, Change, ChangeKind, ChangeState, ModelHealth
from commands.parsing import Args, ParseError
from commands.planning import find_canary
from commands.platform import PlatformError
from commands.policy import may_approve, may_request
from commands.runtime import Runtime
from commands.text import cut
from commands.views import when

log = logging.getLogger(__name__)

FORCED_PROMOTE = "forced_promote"  # the audit action a digest looks for


def _store(rt: Runtime) -> CanaryStore:
    if rt.canary is None:
        raise Refusal("canary analysis has no store in this runtime", code="unavailable")
    return rt.canary


def _minutes(interval: timedelta) -> str:
    return f"{interval.total_seconds() / 60:g} min"


# --- judging -------------------------------------------------------------------------


def _figures(health: ModelHealth | None) -> Figures:
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


# --- what people see -----------------------------------------------------------------


def check_line(w: Watch, c: Check, settings: CanarySettings) -> str:
    line = (
        f"{c.verdict.mark} check {c.seq} · {escape(w.canary_version)} at {c.canary_share}%:"
        f" {c.canary.text()} · baseline {escape(w.stable_version)}: {c.stable.text()}"
        f" · *{c.verdict.words}*"
    )
    if c.reasons:
        line += f" ({'; '.join(c.reasons)})"
    if c.verdict is Verdict.BREACH:
        line += f" · {c.consecutive_breaches}/{settings.consecutive_breaches} in a row"
    return line


def summary(w: Watch, checks: list[Check], settings: CanarySettings, rt: Runtime) -> str:
    """One line: everything the analysis of this canary found so far."""
    counts = {v: sum(1 for c in checks if c.verdict is v) for v in Verdict}
    text = (
        f"Canary analysis {w.ref} ({w.state.value.replace('_', ' ')}): {len(checks)} check(s)"
        f" — {counts[Verdict.PASS]} pass, {counts[Verdict.BREACH]} breach,"
        f" {counts[Verdict.NOT_ENOUGH_DATA]} not enough data"
        f" · {w.consecutive_breaches}/{settings.consecutive_breaches} breaches in a row"
    )
    if checks:
        last = checks[-1]
        text += (
            f" · last {when(last.at, rt.config.timezone)}: {last.verdict.words}"
            f" at {last.canary_share}% ({last.canary.text()})"
        )
    if w.steps:
        reached = w.steps[w.step_index] if 0 <= w.step_index < len(w.steps) else None
        text += f" · plan {steps.plan_text(w.steps, reached)}"
    if w.note:
        text += f" · {escape(w.note)}"
    return text


def _refresh(rt: Runtime, w: Watch) -> None:
    deploy = rt.store.get_change(w.change_id)
    if deploy is not None:
        settings = canary_settings(rt.config)
        execution.refresh_card(
            rt, deploy, note=summary(w, _store(rt).checks(w.id, 500), settings, rt)
        )


def _thread(rt: Runtime, w: Watch, text: str) -> None:
    deploy = rt.store.get_change(w.change_id)
    if deploy is not None:
        execution.thread(rt, deploy, text)


# --- watches -------------------------------------------------------------------------


def _update(rt: Runtime, w: Watch, **fields: object) -> Watch:
    """Apply `fields` whatever else moved the watch meanwhile (re-read and retry)."""
    cs = _store(rt)
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
    """The watch of the endpoint's current canary, started if the bot has not seen it yet."""
    cs = _store(rt)
    deploy = rt.store.last_succeeded(ep.slug, kinds=[ChangeKind.DEPLOY.value])
    if deploy is None or not deploy.new_deployed_model_id:
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
            "canary_watch",
            SCHEDULER.id,
            "watching",
            change=deploy,
            parameters={
                "canary": created.ref,
                "canary_version": created.canary_version,
                "stable_version": created.stable_version,
                "interval_s": int(settings.interval.total_seconds()),
                "min_requests": settings.min_requests,
                "consecutive_breaches": settings.consecutive_breaches,
                "auto_rollback": policy.auto_rollback,
            },
        )
        _thread(
            rt,
            created,
            f":mag: Canary analysis {created.ref}: {escape(created.canary_version)} against"
            f" {escape(created.stable_version)} every {_minutes(settings.interval)}; fewer than"
            f" {settings.min_requests:,} requests is not enough data;"
            f" {settings.consecutive_breaches} breaches in a row → "
            + {
                "yes": "the bot rolls back",
                "page": "the bot rolls back and pages the ops channel",
                "ask": "the bot asks for a decision",
            }[policy.auto_rollback]
            + ".",
        )
    return created


def _end(rt: Runtime, w: Watch, state: WatchState, why: str) -> Watch:
    ended = _update(
        rt,
        w,
        state=state,
        action=None,
        action_key=None,
        action_change_id=None,
        note=why,
        updated_at=rt.clock(),
    )
    rt.auditor.record(
        "canary_watch_ended",
        SCHEDULER.id,
        state.value,
        environment=w.environment,
        target=w.endpoint,
        change_id=w.change_id,
        parameters={"canary": w.ref, "checks": ended.checks},
        justification=why,
    )
    _thread(rt, ended, f":checkered_flag: {w.ref} {state.value.replace('_', ' ')}: {why}")
    _refresh(rt, ended)
    return ended


def _canary_gone(rt: Runtime, w: Watch) -> Watch | None:
    """End the watch if its canary serves alone or is no longer deployed."""
    ep = rt.config.endpoints[w.endpoint]
    state = rt.platform.endpoint_state(ep)
    if state.model(w.canary_id) is None:
        return _end(rt, w, WatchState.ROLLED_BACK, f"{w.canary_version} is no longer deployed")
    if state.model(w.stable_id) is None or len(state.deployed) == 1:
        return _end(rt, w, WatchState.PROMOTED, f"{w.canary_version} serves all traffic")
    return None


# --- one check -------------------------------------------------------------------------


def run_check(rt: Runtime, w: Watch, source: str) -> Check | None:
    """Judge one window now. The slot is claimed by compare-and-set, so two replicas (or a
    scheduled and a typed check racing) record it once; None when someone else did."""
    cs = _store(rt)
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
        _canary_gone(rt, claimed)
        return None
    health = rt.platform.health([ep], window=settings.interval).get(ep.slug)
    by_model = health.by_model if health else {}
    canary, stable = _figures(by_model.get(w.canary_id)), _figures(by_model.get(w.stable_id))
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
    rt.auditor.record(
        "canary_check",
        source,
        verdict.value,
        environment=w.environment,
        target=w.endpoint,
        change_id=w.change_id,
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
    _thread(rt, current, check_line(current, check, settings))
    _refresh(rt, current)
    return check


# --- acting on the analysis -----------------------------------------------------------


def _cancel_for_rollback(rt: Runtime, holder: Change, w: Watch) -> bool:
    why = f"superseded by the rollback of canary {w.canary_version} ({w.ref})"
    return approvals.supersede(rt, holder, BOT.id, why) is not None


def _breach_reason(rt: Runtime, w: Watch, settings: CanarySettings) -> str:
    checks = [
        c for c in _store(rt).checks(w.id, settings.consecutive_breaches) if c.reasons
    ] or _store(rt).checks(w.id, 1)
    figures = "; ".join(
        f"check {c.seq} at {c.canary_share}%: {c.canary.text()} ({', '.join(c.reasons)})"
        for c in checks
    )
    return (
        f"canary {w.canary_version} breached {w.consecutive_breaches} analysis windows in a row"
        f" against {w.stable_version}: {figures}"
    )


def start_rollback(
    rt: Runtime, w: Watch, *, actor: Actor, decided_by: str, reason: str, page: bool
) -> Change | None:
    """Claim the watch for a rollback, then make (or find) the rollback change."""
    claimed = _store(rt).update_watch(
        w.id,
        w.rev,
        state=WatchState.ROLLING_BACK,
        action="rollback",
        action_key=steps.rollback_key(w),
        action_change_id=None,
        note=None,
        updated_at=rt.clock(),
    )
    if claimed is None:
        return None
    rt.auditor.record(
        "canary_rollback",
        actor.id,
        "rolling back",
        environment=w.environment,
        target=w.endpoint,
        change_id=w.change_id,
        justification=reason,
        parameters={"canary": w.ref, "decided_by": decided_by, "page": page},
    )
    _thread(rt, claimed, f":rewind: {w.ref}: rolling back — {escape(reason)}")
    if page:
        text = (
            f"<!here> :rotating_light: The bot is rolling back the canary on `{w.endpoint}`"
            f" ({w.environment}): {escape(reason)}"
        )
        rt.notifier.post(
            Post(
                rt.config.channels.ops,
                Reply(text=text, blocks=[Text(text)], ephemeral=False),
                change_id=w.change_id,
            )
        )
    deploy = rt.store.get_change(w.change_id)
    if deploy is not None:
        execution.tell(
            rt,
            deploy.requester_id,
            f"Your canary {w.canary_version} on {w.endpoint} is being rolled back: {reason}",
        )
    return _fulfil(rt, claimed, actor=actor, decided_by=decided_by, reason=reason)


def _fulfil(
    rt: Runtime,
    w: Watch,
    *,
    actor: Actor = BOT,
    decided_by: str | None = None,
    reason: str | None = None,
    extra: dict[str, str] | None = None,
) -> Change | None:
    """Make (or find) the change for the watch's claimed action; record its id."""
    assert w.action and w.action_key
    if w.action == "rollback":
        holder = rt.store.open_change(w.endpoint)
        if (
            holder is not None
            and holder.extra.get(steps.KEY) != w.action_key
            and (holder.state is ChangeState.RUNNING or not _cancel_for_rollback(rt, holder, w))
        ):
            return None  # a change is running: roll back once it has finished
        made = steps.make_change(
            rt,
            w,
            kind=ChangeKind.ROLLBACK,
            key=w.action_key,
            requester=actor,
            decided_by=decided_by or f"policy: canary {w.ref} rollback",
            reason=reason or f"canary {w.ref} rollback",
            note=f"Rollback of canary {w.ref} by {mention(actor.id)}.",
        )
    else:
        target = int(w.action_key.rsplit(":", 1)[1])
        position = f"step to {target}%"
        if target in w.steps:
            position = f"step {w.steps.index(target) + 1} of {len(w.steps)} ({target}%)"
        made = steps.make_change(
            rt,
            w,
            kind=ChangeKind.PROMOTE,
            key=w.action_key,
            requester=actor,
            decided_by=decided_by
            or f"policy: {position} of the plan approved in {w.plan_change_id or 'its promote'}",
            reason=reason or f"canary {w.ref} passed its analysis window; {position}",
            target=target,
            note=f"Canary {w.ref}: {position}, after a passing analysis window.",
            extra=extra,
        )
    if made.nothing_to_do:
        _update(rt, w, action=None, action_key=None, action_change_id=None)
        return None
    if made.change is None:
        return None  # blocked by another open change; tried again on the next tick
    _update(rt, w, action_change_id=made.change.id)
    return made.change


def _settle(rt: Runtime, w: Watch) -> Watch:
    """See the watch's action through: make its change if it is missing (a restart between
    the claim and the change), and book the result once the change has finished."""
    if w.action is None:
        return w
    if w.action_change_id is None:
        _fulfil(rt, w)
        fresh = _store(rt).get_watch(w.id)
        assert fresh is not None
        return fresh
    change = rt.store.get_change(w.action_change_id)
    if change is None or change.state.is_open:
        return w
    settings = canary_settings(rt.config)
    finished = change.updated_at or rt.clock()
    if w.action == "rollback":
        if change.state is ChangeState.SUCCEEDED:
            return _end(rt, w, WatchState.ROLLED_BACK, f"rolled back by {change.id}")
        w = _update(
            rt,
            w,
            state=WatchState.AWAITING_DECISION,
            action=None,
            action_key=None,
            action_change_id=None,
            note=f"the rollback {change.id} {change.state.value}: {change.error or 'see its thread'}",
        )
        _ask(rt, w, settings, already_claimed=True)
        return w
    target = change.canary_percent or 0
    if change.state is ChangeState.SUCCEEDED:
        index = w.steps.index(target) if target in w.steps else w.step_index
        w = _update(
            rt,
            w,
            action=None,
            action_key=None,
            action_change_id=None,
            step_index=index,
            last_verdict=None,  # the next step needs a passing window at this share
            next_check_at=finished + settings.interval,
            note=None,
            updated_at=rt.clock(),
        )
        rt.auditor.record(
            "canary_step",
            SCHEDULER.id,
            f"canary at {target}%",
            environment=w.environment,
            target=w.endpoint,
            change_id=change.id,
            parameters={"canary": w.ref, "share": target, "plan": w.steps, "step": index + 1},
        )
        _thread(
            rt,
            w,
            f":arrow_up: {w.ref}: canary now at {target}% ({change.id})"
            + (f" · plan {steps.plan_text(w.steps, target)}" if w.steps else ""),
        )
        if target >= 100:
            return _canary_gone(rt, w) or w
        _refresh(rt, w)
        return w
    w = _update(
        rt,
        w,
        action=None,
        action_key=None,
        action_change_id=None,
        steps=[],
        note=("plan stopped: " if w.steps else "")
        + f"{change.id} {change.state.value.replace('_', ' ')}",
    )
    _thread(rt, w, f":octagonal_sign: {w.ref}: {w.note}")
    _refresh(rt, w)
    return w


def _ask(rt: Runtime, w: Watch, settings: CanarySettings, *, already_claimed: bool = False) -> None:
    """Post Rollback and Promote-anyway buttons where the environment's approvers look."""
    if not already_claimed:
        claimed = _store(rt).update_watch(
            w.id, w.rev, state=WatchState.AWAITING_DECISION, updated_at=rt.clock()
        )
        if claimed is None:
            return
        w = claimed
    env = rt.config.environments[w.environment]
    reason = _breach_reason(rt, w, settings)
    if w.note:
        reason = f"{w.note}. {reason}"
    deciders = ", ".join(mention(a) for a in env.approvers) or "anyone who may change it"
    blocks: list[Block] = [
        Header(f":warning: {w.ref} · canary on {w.endpoint} needs a decision"[:150]),
        Text(cut(escape(reason), 2900)),
        Context(
            (
                f'Policy in `{env.name}`: ask (`canary_auto_rollback = "ask"`).'
                f" Decide: {deciders}. Promote anyway is audited as a forced promote.",
            )
        ),
        Buttons(
            (
                Button(
                    "Roll back",
                    "canary-rollback",
                    w.ref,
                    f"/aiops canary-rollback {w.endpoint}",
                    "danger",
                ),
                Button(
                    "Promote anyway",
                    "canary-promote",
                    w.ref,
                    f'/aiops canary-promote {w.endpoint} reason="…"',
                    "primary",
                ),
            )
        ),
    ]
    channel = rt.config.channels.approvals if env.needs_approval else rt.config.channels.ops
    ref = rt.notifier.post(
        Post(
            channel,
            Reply(text=f"{w.ref} needs a decision", blocks=blocks, ephemeral=False),
            change_id=w.change_id,
        )
    )
    if ref is not None:
        w = _update(rt, w, decision_channel=ref.channel, decision_ts=ref.ts)
    rt.auditor.record(
        "canary_decision_requested",
        BOT.id,
        "awaiting decision",
        environment=w.environment,
        target=w.endpoint,
        change_id=w.change_id,
        justification=reason,
        parameters={"canary": w.ref, "channel": channel},
    )
    _thread(
        rt,
        w,
        f":raised_hand: {w.ref}: {w.consecutive_breaches} breaches in a row; asked for a decision in <#{channel}>.",
    )
    _refresh(rt, w)


def _decide(rt: Runtime, w: Watch) -> None:
    """After a check (or on any tick): roll back, ask, or move one step."""
    if w.state is not WatchState.WATCHING:
        return
    settings = canary_settings(rt.config)
    env = rt.config.environments[w.environment]
    policy = env_policy(rt.config, env)
    if w.consecutive_breaches >= settings.consecutive_breaches:
        if policy.auto_rollback == "ask":
            _ask(rt, w, settings)
            return
        start_rollback(
            rt,
            w,
            actor=BOT,
            decided_by=(
                f"policy: canary_auto_rollback = {policy.auto_rollback} in {env.name}"
                f" after {w.consecutive_breaches} breaches in a row"
            ),
            reason=_breach_reason(rt, w, settings),
            page=policy.auto_rollback == "page",
        )
        return
    if w.action is None and w.steps and w.last_verdict is Verdict.PASS:
        state = rt.platform.endpoint_state(rt.config.endpoints[w.endpoint])
        target = steps.next_step(w.steps, state.traffic.get(w.canary_id, 0))
        if target is None:
            return
        claimed = _store(rt).update_watch(
            w.id,
            w.rev,
            action="step",
            action_key=steps.step_key(w, target),
            action_change_id=None,
            updated_at=rt.clock(),
        )
        if claimed is not None:
            _fulfil(rt, claimed)


def _busy(rt: Runtime, w: Watch) -> str | None:
    """What keeps the analysis from judging a window now: traffic is being moved."""
    if w.action is None:
        return None
    if w.action_change_id is None:
        return f"the bot is making its {w.action} change"
    change = rt.store.get_change(w.action_change_id)
    if change is not None and change.state is ChangeState.RUNNING:
        return f"{change.id} is moving traffic"
    return None  # e.g. a promote waiting for approval: the current share is still judged


def _tick(rt: Runtime, w: Watch) -> Check | None:
    w = _settle(rt, w)
    if not w.state.is_active:
        return None
    check = None
    if (
        w.state in (WatchState.WATCHING, WatchState.AWAITING_DECISION)
        and rt.clock() >= w.next_check_at
        and _busy(rt, w) is None
    ):
        check = run_check(rt, w, SCHEDULER.id)
        fresh = _store(rt).get_watch(w.id)
        assert fresh is not None
        w = fresh
    _decide(rt, w)
    return check


def check_due(rt: Runtime) -> list[Check]:
    """The timed entry point: start watches for new canaries, see actions through, and run
    every check that is due at `rt.clock()`. Safe to call as often as you like."""
    if rt.canary is None:
        return []
    done: list[Check] = []
    for ep in rt.config.endpoints.values():
        try:
            ensure_watch(rt, ep)
        except PlatformError as exc:
            log.warning("canary: cannot look at %s: %s", ep.slug, exc)
    for w in rt.canary.list_watches(ACTIVE_STATES):
        try:
            check = _tick(rt, w)
        except PlatformError as exc:
            log.warning("canary %s: platform error, tried again next time: %s", w.ref, exc)
            continue
        except Exception:
            log.exception("canary %s: check failed", w.ref)
            continue
        if check is not None:
            done.append(check)
    return done


# --- /promote ---------------------------------------------------------------------------


@dataclass
class PromoteGate:
    """What `/promote` learnt from the analysis before planning."""

    watch: Watch | None
    summary: str
    steps: tuple[int, ...] = ()
    overridden: str | None = None  # why the gate would have refused, when force=true overrode it
    extra: dict[str, str] = field(default_factory=dict)


def _failing(w: Watch | None, checks: list[Check]) -> str | None:
    """Why a canary may not be promoted in a gated environment, or None."""
    if w is None:
        return None
    if w.state is WatchState.ROLLING_BACK:
        return "the bot is rolling it back"
    if w.state is WatchState.AWAITING_DECISION:
        return f"it breached {w.consecutive_breaches} windows in a row and waits for a decision"
    if not checks:
        return "not enough data: no analysis window has been judged yet"
    if w.last_verdict is None:
        return "not enough data: no window judged since its last step"
    if w.last_verdict is Verdict.BREACH:
        return f"it is failing: {checks[-1].verdict.words} ({'; '.join(checks[-1].reasons)})"
    if w.last_verdict is Verdict.NOT_ENOUGH_DATA:
        return f"not enough data ({'; '.join(checks[-1].reasons)})"
    return None


def before_promote(
    rt: Runtime, ep: Endpoint, env: Environment, args: Args, actor: Actor
) -> PromoteGate:
    """Read the analysis, apply the gate (prod: passing analysis or `force=true`) and turn
    `steps=` into the first step's `to=`. Raises `Refusal`."""
    policy: EnvCanaryPolicy = env_policy(rt.config, env)
    try:
        forced = args.flag("force")
    except ParseError as exc:
        raise Refusal(
            str(exc), "Write `force=true` to override the analysis.", code="malformed"
        ) from None
    if forced and not args.options.get("reason"):
        raise Refusal(
            "`force=true` needs a reason",
            'Add `reason="…"`: a forced promote is audited and flagged in the next digest.',
            code="missing_reason",
        )
    plan: tuple[int, ...] = ()
    if "steps" in args.options:
        if "to" in args.options:
            raise Refusal(
                "give either `to=` or `steps=`, not both",
                "`steps=10,25,50,100` moves one step after each passing window; `to=N` moves once.",
                code="malformed",
            )
        plan = steps.parse_steps(args.options["steps"], policy)
    w = ensure_watch(rt, ep) if rt.canary is not None else None
    if w is not None:
        w = _settle(rt, w)  # book a finished step first: its share needs its own window
    if w is not None and not w.state.is_active:
        w = None
    settings = canary_settings(rt.config)
    checks = _store(rt).checks(w.id, 500) if w is not None else []
    text = summary(w, checks, settings, rt) if w is not None else "no canary analysis"
    gate = PromoteGate(w, text, plan)
    if w is not None and w.action is not None and w.action_change_id is None:
        raise Refusal(
            f"the bot is moving the canary on `{ep.slug}` right now ({w.action})",
            "Try again in a minute; see `/aiops canary " + ep.slug + "`.",
            code="locked",
        )
    if plan and w is not None:
        share = rt.platform.endpoint_state(ep).traffic.get(w.canary_id, 0)
        first = steps.next_step(plan, share)
        if first is None:
            raise Refusal(
                f"the canary on `{ep.slug}` already takes {share}%; no step of"
                f" {steps.plan_text(plan)} is ahead of it",
                "Promote with `to=100`, or give steps above its share.",
                code="malformed",
            )
        args.options["to"] = str(first)
        gate.extra["canary_steps"] = ",".join(map(str, plan))
        gate.extra[steps.KEY] = steps.step_key(w, first)
    why = _failing(w, checks) if policy.promote_gate else None
    if why is not None:
        if not forced:
            raise Refusal(
                f"the canary on `{ep.slug}` may not be promoted in `{env.name}`: {why}",
                f"Wait for a passing window (`/aiops canary {ep.slug}` runs a check now), or"
                ' override with `force=true reason="…"` (audited and flagged in the next digest).'
                f"\n{text}",
                code="canary_gate",
            )
        gate.overridden = why
        gate.extra["forced_promote"] = why
    if w is not None:
        gate.extra["canary"] = text
    return gate


def after_promote_created(
    rt: Runtime, change: Change, gate: PromoteGate, actor: Actor, request_id: str | None
) -> None:
    """Audit a forced promote; put a step plan on the watch (the change is its first step)."""
    w = gate.watch
    if gate.overridden is not None:
        rt.auditor.record(
            FORCED_PROMOTE,
            actor.id,
            "promote despite the canary analysis",
            change=change,
            request_id=request_id,
            justification=change.reason,
            parameters={
                "overrode": gate.overridden,
                "canary": w.ref if w else None,
                "last_verdict": w.last_verdict.value if w and w.last_verdict else None,
                "consecutive_breaches": w.consecutive_breaches if w else None,
                "to": change.canary_percent,
            },
        )
    if w is not None and gate.steps:
        _update(
            rt,
            w,
            steps=list(gate.steps),
            plan_change_id=change.id,
            action="step",
            action_key=change.extra.get(steps.KEY),
            action_change_id=change.id,
            note=None,
            updated_at=rt.clock(),
        )
    elif w is not None:
        # Any promote is an action the watch follows: the next window is judged at the new share.
        _update(
            rt,
            w,
            action="promote",
            action_key=f"{w.ref}:promote:{change.id}",
            action_change_id=change.id,
            updated_at=rt.clock(),
        )


# --- /aiops canary | pause | resume | canary-rollback | canary-promote -----------------------


def _watch_of(rt: Runtime, ref: str | None, usage: str) -> Watch:
    if not ref:
        raise Refusal("which canary?", f"Usage: `{usage}`", code="malformed")
    cs = _store(rt)
    if ref.upper().startswith("CAN-") and ref[4:].isdigit():
        found = cs.get_watch(int(ref[4:]))
        if found is None:
            raise Refusal(f"no canary `{escape(ref)}`", code="not_found")
        return found
    ep = rt.config.endpoints.get(ref)
    if ep is None:
        known = ", ".join(f"`{s}`" for s in rt.config.endpoints) or "none"
        raise Refusal(
            f"unknown endpoint `{escape(ref)}`",
            f"Known endpoints: {known}.",
            code="unknown_endpoint",
        )
    found = ensure_watch(rt, ep) or cs.latest_watch(ep.slug)
    if found is None:
        raise Refusal(
            f"`{ep.slug}` has no canary",
            f"Deploy one: `/deploy {ep.slug} {ep.model}@<version> canary=10`.",
            code="not_found",
        )
    return found


def _analysis_reply(rt: Runtime, w: Watch, extra: str | None = None) -> Reply:
    settings = canary_settings(rt.config)
    checks = _store(rt).checks(w.id, 500)
    blocks: list[Block] = [
        Header(f"Canary {w.ref} · {w.endpoint} · {w.canary_version} vs {w.stable_version}"[:150]),
        Text(summary(w, checks, settings, rt)[:2900]),
    ]
    recent = checks[-10:]
    if recent:
        blocks.append(Text("\n".join(check_line(w, c, settings) for c in recent)[:2900]))
    if w.state.is_active:
        blocks.append(
            Context(
                (
                    f"Next scheduled check {when(w.next_check_at, rt.config.timezone)}"
                    + (" (paused)" if w.state is WatchState.PAUSED else "")
                    + f" · every {_minutes(settings.interval)}, at least"
                    f" {settings.min_requests:,} requests, P95 ≤ {settings.baseline_p95_ratio:g}× baseline",
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
    if not w.state.is_active:
        extra = "This canary is no longer watched."
    elif not may_request(env, actor.id, rt.groups):
        extra = f"View only: {mention(actor.id)} may not run checks in `{env.name}`."
    elif (busy := _busy(rt, w)) is not None:
        extra = f"No check now: {busy}."
    else:
        check = run_check(rt, w, actor.id)
        fresh = _store(rt).get_watch(w.id)
        assert fresh is not None
        w = fresh
        if check is None:
            extra = "Another check was running at the same moment; its result is above."
        if w.state is WatchState.WATCHING:
            _decide(rt, w)
            fresh = _store(rt).get_watch(w.id)
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
    action: str,
    outcome: str,
    reason: str | None,
    line: str,
    **fields: Any,
) -> Watch:
    """A person pauses or resumes a watch: compare-and-set, audit, thread line, card."""
    moved = _store(rt).update_watch(w.id, w.rev, updated_at=rt.clock(), **fields)
    if moved is None:
        raise Refusal(f"{w.ref} moved just now; look again with `/aiops canary {w.endpoint}`")
    rt.auditor.record(
        action,
        actor.id,
        outcome,
        environment=w.environment,
        target=w.endpoint,
        change_id=w.change_id,
        justification=reason,
        parameters={"canary": w.ref},
    )
    _thread(rt, moved, line)
    _refresh(rt, moved)
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
        "canary_pause",
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
        "canary_resume",
        "watching",
        reason,
        f":arrow_forward: {w.ref} resumed by {mention(actor.id)}.",
        state=WatchState.WATCHING,
        next_check_at=rt.clock() + settings.interval,
    )
    return _analysis_reply(
        rt, moved, "Resumed: the next window is judged in " + _minutes(settings.interval) + "."
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
    why = reason or _breach_reason(rt, w, settings)
    change = start_rollback(rt, w, actor=actor, decided_by=actor.id, reason=why, page=False)
    _close_decision(rt, w, f":rewind: {w.ref}: {mention(actor.id)} chose to roll back.")
    fresh = _store(rt).get_watch(w.id)
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
    target = steps.next_step(w.steps, share) if w.steps else None
    target = target or 100
    why = (
        reason
        or f"promote anyway, decided by {rt.config.display_name(actor.id)} on the breach alert"
    )
    claimed = _store(rt).update_watch(
        w.id,
        w.rev,
        state=WatchState.WATCHING,
        consecutive_breaches=0,
        last_verdict=None,
        action="step",
        action_key=steps.step_key(w, target),
        action_change_id=None,
        note=None,
        updated_at=rt.clock(),
    )
    if claimed is None:
        raise Refusal(f"{w.ref} moved just now; look again with `/aiops canary {w.endpoint}`")
    overrode = _breach_reason(rt, w, canary_settings(rt.config))
    change = _fulfil(
        rt,
        claimed,
        actor=BOT,
        decided_by=actor.id,
        reason=why,
        extra={"forced_promote": overrode},
    )
    rt.auditor.record(
        FORCED_PROMOTE,
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
    fresh = _store(rt).get_watch(w.id)
    assert fresh is not None
    note = (
        f"Promoting anyway to {target}%: {change.id}."
        if change
        else f"Promoting to {target}% once the endpoint is free."
    )
    return _analysis_reply(rt, fresh, note)
