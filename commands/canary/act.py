"""Acting on the analysis: rolling back, asking people, taking the next step of a plan."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.canary.alert import raise_alert
from commands.canary.model import (
    CanarySettings,
    Verdict,
    Watch,
    WatchState,
    canary_settings,
    env_policy,
)
from commands.canary.records import store_of
from commands.canary.steps import make_change, next_step, plan_text, rollback_key, step_key
from commands.canary.text import announce, minutes, post_thread, refresh_summary
from commands.canary.watch import canary_gone, end_watch, update_watch
from commands.changes.approve import supersede
from commands.changes.tell import tell
from commands.config import Environment
from commands.freezes import active_freeze
from commands.messages import (
    Block,
    Button,
    Buttons,
    Confirm,
    Context,
    Header,
    Post,
    Reply,
    Text,
    escape,
    mention,
)
from commands.model import BOT, SCHEDULER, Actor, Change, ChangeKind, ChangeState
from commands.runtime import Runtime
from commands.text import cut

# --- acting on the analysis -----------------------------------------------------------


def _cancel_for_rollback(rt: Runtime, holder: Change, w: Watch) -> bool:
    why = f"superseded by the rollback of canary {w.canary_version} ({w.ref})"
    return supersede(rt, holder, BOT.id, why) is not None


def breach_reason(rt: Runtime, w: Watch, settings: CanarySettings) -> str:
    """Why the analysis wants a decision: the last check's verdict and figures."""
    found = store_of(rt).checks(w.id, 1)
    if not found:
        return f"canary {w.canary_version}: no analysis window judged yet"
    last = found[-1]
    figures = (
        f"check {last.seq} at {last.canary_share}% over {last.windows}"
        f" window{'s' if last.windows != 1 else ''}:"
        f" {last.canary.text()} vs {w.stable_version} {last.stable.text()}"
        + (f" ({'; '.join(last.reasons)})" if last.reasons else "")
    )
    if last.verdict is Verdict.REGRESSION:
        return f"canary {w.canary_version} shows a regression against {w.stable_version}: {figures}"
    return f"canary {w.canary_version} is {last.verdict.words}: {figures}"


def start_rollback(
    rt: Runtime, w: Watch, *, actor: Actor, decided_by: str, reason: str, page: bool
) -> Change | None:
    """Claim the watch for a rollback, then make (or find) the rollback change."""
    claimed = store_of(rt).update_watch(
        w.id,
        w.rev,
        state=WatchState.ROLLING_BACK,
        action="rollback",
        action_key=rollback_key(w),
        action_change_id=None,
        note=None,
        updated_at=rt.clock(),
    )
    if claimed is None:
        return None
    rt.auditor.record(
        AuditAction.CANARY_ROLLBACK,
        actor.id,
        "rolling back",
        environment=w.environment,
        target=w.endpoint,
        change_id=w.change_id,
        justification=reason,
        parameters={"canary": w.ref, "decided_by": decided_by, "page": page},
    )
    post_thread(rt, claimed, f":rewind: {w.ref}: rolling back — {escape(reason)}")
    deploy = rt.store.get_change(w.change_id)
    if deploy is not None:
        tell(
            rt,
            deploy.requester_id,
            f"Your canary {w.canary_version} on {w.endpoint} is being rolled back: {reason}",
        )
    # Mitigation first: the rollback is under way before anyone is paged.
    rollback = fulfil(rt, claimed, actor=actor, decided_by=decided_by, reason=reason)
    if page:  # an alert (the ops channel, the pager) with the figures
        raise_alert(rt, claimed, reason, rollback)
    return rollback


def fulfil(
    rt: Runtime,
    w: Watch,
    *,
    actor: Actor = BOT,
    decided_by: str | None = None,
    reason: str | None = None,
    forced_promote: str | None = None,
) -> Change | None:
    """Make (or find) the change for the watch's claimed action; record its id."""
    assert w.action and w.action_key
    if w.action == "rollback":
        holder = rt.store.open_change(w.endpoint)
        if (
            holder is not None
            and holder.plan.canary_key != w.action_key
            and (holder.state is ChangeState.RUNNING or not _cancel_for_rollback(rt, holder, w))
        ):
            return None  # a change is running: roll back once it has finished
        made = make_change(
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
        made = make_change(
            rt,
            w,
            kind=ChangeKind.PROMOTE,
            key=w.action_key,
            requester=actor,
            decided_by=decided_by
            or f"policy: {position} of the plan approved in {w.plan_change_id or 'its promote'}",
            reason=reason or f"canary {w.ref}: no regression at its current share; {position}",
            target=target,
            note=f'Canary {w.ref}: {position}, after a "no regression" verdict at its share.',
            forced_promote=forced_promote,
        )
    if made.nothing_to_do:
        update_watch(rt, w, action=None, action_key=None, action_change_id=None)
        return None
    if made.change is None:
        return None  # blocked by another open change; tried again on the next tick
    update_watch(rt, w, action_change_id=made.change.id)
    return made.change


def _book(rt: Runtime, w: Watch, **fields: object) -> Watch | None:
    """Book a finished action on the watch as read: one compare-and-set on its `rev`; None
    when another caller (the other replica's tick, a typed `/aiops canary`) moved it
    first — that one books it and says so, this one says nothing."""
    return store_of(rt).update_watch(w.id, w.rev, **fields)


def settle(rt: Runtime, w: Watch) -> Watch:
    """See the watch's action through: make its change if it is missing (a restart between
    the claim and the change), and book the result once the change has finished — once,
    however many callers see it finished (`_book`, `end_watch`)."""
    if w.action is None:
        return w
    if w.action_change_id is None:
        fulfil(rt, w)
        fresh = store_of(rt).get_watch(w.id)
        assert fresh is not None
        return fresh
    change = rt.store.get_change(w.action_change_id)
    if change is None or change.state.is_open:
        return w
    settings = canary_settings(rt.config)
    finished = change.updated_at or rt.clock()
    if w.action == "rollback":
        if change.state is ChangeState.SUCCEEDED:
            return end_watch(rt, w, WatchState.ROLLED_BACK, f"rolled back by {change.id}")
        booked = _book(
            rt,
            w,
            state=WatchState.AWAITING_DECISION,
            action=None,
            action_key=None,
            action_change_id=None,
            note=f"the rollback {change.id} {change.state.value}: {change.error or 'see its thread'}",
        )
        if booked is None:
            return _fresh(rt, w)
        _ask(rt, booked, settings, already_claimed=True)
        return booked
    target = change.canary_percent or 0
    if change.state is ChangeState.SUCCEEDED:
        index = w.steps.index(target) if target in w.steps else w.step_index
        booked = _book(
            rt,
            w,
            action=None,
            action_key=None,
            action_change_id=None,
            step_index=index,
            # the next step needs evidence gathered entirely at this share: start again
            last_verdict=None,
            consecutive_breaches=0,
            evidence=None,
            share_since=finished,
            next_check_at=finished + settings.interval,
            note=None,
            updated_at=rt.clock(),
        )
        if booked is None:
            return _fresh(rt, w)
        w = booked
        rt.auditor.record(
            AuditAction.CANARY_STEP,
            SCHEDULER.id,
            f"canary at {target}%",
            environment=w.environment,
            target=w.endpoint,
            change_id=change.id,
            parameters={"canary": w.ref, "share": target, "plan": w.steps, "step": index + 1},
        )
        post_thread(
            rt,
            w,
            f":arrow_up: {w.ref}: canary now at {target}% ({change.id})"
            + (f" · plan {plan_text(w.steps, target)}" if w.steps else ""),
        )
        if target >= 100:
            return canary_gone(rt, w) or w
        refresh_summary(rt, w)
        return w
    booked = _book(
        rt,
        w,
        action=None,
        action_key=None,
        action_change_id=None,
        steps=[],
        note=("plan stopped: " if w.steps else "")
        + f"{change.id} {change.state.value.replace('_', ' ')}",
    )
    if booked is None:
        return _fresh(rt, w)
    w = booked
    post_thread(rt, w, f":octagonal_sign: {w.ref}: {w.note}")
    refresh_summary(rt, w)
    return w


def _fresh(rt: Runtime, w: Watch) -> Watch:
    fresh = store_of(rt).get_watch(w.id)
    assert fresh is not None
    return fresh


def _split(w: Watch, canary_share: int) -> str:
    if canary_share >= 100:
        return f"{w.canary_version} 100%"
    if canary_share <= 0:
        return f"{w.stable_version} 100%"
    return f"{w.stable_version} {100 - canary_share}% · {w.canary_version} {canary_share}%"


def decision_confirms(w: Watch, share: int | None) -> tuple[Confirm, Confirm]:
    """The dialogs before Roll back and Promote anyway: the canary and the traffic each
    moves, from the share of the last check (the share now, while the canary waits)."""
    now = _split(w, share) if share is not None else "its current split"
    target = (next_step(w.steps, share or 0) if w.steps else None) or 100
    rollback = Confirm(
        f"Roll back {w.ref} on {w.endpoint}?",
        f"{w.endpoint}: {now} → {_split(w, 0)}; the canary {w.canary_version} is undeployed.",
        "Roll back",
    )
    promote = Confirm(
        f"Promote {w.ref} anyway?",
        f"{w.endpoint}: {now} → {_split(w, target)}"
        + (f"; {w.stable_version} is undeployed" if target >= 100 else "")
        + ". Against the canary analysis: audited as a forced promote.",
        "Promote anyway",
    )
    return rollback, promote


def _ask(
    rt: Runtime,
    w: Watch,
    settings: CanarySettings,
    *,
    already_claimed: bool = False,
    why: str | None = None,
) -> None:
    """Post Rollback and Promote-anyway buttons where the environment's approvers look."""
    undecided = bool(why and why.startswith("undecided"))
    if not already_claimed:
        claimed = store_of(rt).update_watch(
            w.id,
            w.rev,
            state=WatchState.AWAITING_DECISION,
            updated_at=rt.clock(),
            **({"note": f"{UNDECIDED_ASK}: {why}"} if undecided else {}),
        )
        if claimed is None:
            return
        w = claimed
    env = rt.config.environments[w.environment]
    reason = breach_reason(rt, w, settings)
    if w.note and not undecided:
        reason = f"{w.note}. {reason}"
    deciders = ", ".join(mention(a) for a in env.approvers) or "anyone who may change it"
    last = store_of(rt).checks(w.id, 1)
    confirm_rollback, confirm_promote = decision_confirms(
        w, last[-1].canary_share if last else None
    )
    blocks: list[Block] = [
        Header(f":warning: {w.ref} · canary on {w.endpoint} needs a decision"[:150]),
        Text(cut(escape(reason), 2900)),
        Context(
            (
                (
                    f"Undecided for longer than `[canary] max_undecided`"
                    f" ({minutes(settings.max_undecided)})."
                    if undecided
                    else f'Policy in `{env.name}`: ask (`canary_auto_rollback = "ask"`).'
                )
                + f" Decide: {deciders}. Promote anyway is audited as a forced promote.",
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
                    confirm_rollback,
                ),
                Button(
                    "Promote anyway",
                    "canary-promote",
                    w.ref,
                    f'/aiops canary-promote {w.endpoint} reason="…"',
                    "primary",
                    confirm_promote,
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
        w = update_watch(rt, w, decision_channel=ref.channel, decision_ts=ref.ts)
    announce(
        rt,
        w,
        AuditAction.CANARY_DECISION_REQUESTED,
        BOT.id,
        "awaiting decision",
        line=f":raised_hand: {w.ref}: {why or 'regression'}; asked for a decision in <#{channel}>.",
        justification=reason,
        parameters={"canary": w.ref, "channel": channel},
    )


def act_on_breaches(rt: Runtime, w: Watch) -> None:
    """After a check (or on any tick): roll back or ask on a regression (a sequentially
    confirmed verdict: acted on at once), ask when undecided for longer than
    `max_undecided`, or move one step on "no regression" (held during a change freeze)."""
    settings = canary_settings(rt.config)
    env = rt.config.environments[w.environment]
    policy = env_policy(rt.config, env)
    asked_undecided = (
        w.state is WatchState.AWAITING_DECISION
        and w.action is None
        and bool(w.note and w.note.startswith(UNDECIDED_ASK))
    )
    if w.state is not WatchState.WATCHING and not asked_undecided:
        return
    if w.last_verdict is Verdict.REGRESSION and asked_undecided and policy.auto_rollback == "ask":
        return  # people were asked already; the thread shows the regression
    if w.last_verdict is Verdict.REGRESSION:  # also while people decide on an undecided one
        if policy.auto_rollback == "ask":
            _ask(rt, w, settings, why="regression")
            return
        start_rollback(
            rt,
            w,
            actor=BOT,
            decided_by=(
                f"policy: canary_auto_rollback = {policy.auto_rollback} in {env.name}"
                " after a regression verdict"
            ),
            reason=breach_reason(rt, w, settings),
            page=policy.auto_rollback == "page",
        )
        return
    if asked_undecided:
        return  # waiting for people: no step, no second ask
    since = w.share_since or w.started_at
    if (
        w.last_verdict is Verdict.UNDECIDED
        and w.action is None
        and rt.clock() - since >= settings.max_undecided
    ):
        _ask(rt, w, settings, why=f"undecided for {minutes(rt.clock() - since)}")
        return
    if w.action is None and w.steps and w.last_verdict is Verdict.NO_REGRESSION:
        state = rt.platform.endpoint_state(rt.config.endpoints[w.endpoint])
        target = next_step(w.steps, state.traffic.get(w.canary_id, 0))
        if target is None:
            return
        if _held_by_freeze(rt, w, env, target):
            return
        claimed = store_of(rt).update_watch(
            w.id,
            w.rev,
            action="step",
            action_key=step_key(w, target),
            action_change_id=None,
            updated_at=rt.clock(),
        )
        if claimed is not None:
            fulfil(rt, claimed)


_HELD = "step held by the change freeze"
UNDECIDED_ASK = "undecided too long"


def _held_by_freeze(rt: Runtime, w: Watch, env: Environment, target: int) -> bool:
    """A bot step obeys change freezes as a person's promote does: held (announced once in
    the deploy's thread) while one is active, resumed by the first tick after it ends, on
    the evidence at the current share (a regression meanwhile rolls back instead)."""
    freeze = active_freeze(rt.config.freezes, env.name, rt.clock(), rt.config.timezone)
    if freeze is None:
        if w.note and w.note.startswith(_HELD):
            w = update_watch(rt, w, note=None)
            post_thread(
                rt,
                w,
                f":arrow_forward: {w.ref}: the change freeze is over; the step to {target}% resumes.",
            )
        return False
    note = f"{_HELD} `{freeze.name}` ({freeze.describe(rt.config.timezone)})"
    if w.note != note:
        w = update_watch(rt, w, note=note)
        rt.auditor.record(
            AuditAction.CANARY_STEP,
            BOT.id,
            "held by a change freeze",
            environment=w.environment,
            target=w.endpoint,
            change_id=w.change_id,
            parameters={"canary": w.ref, "to": target, "freeze": freeze.name},
        )
        post_thread(
            rt,
            w,
            f":snowflake: {w.ref}: the step to {target}% is held: `{env.name}` is in the change"
            f" freeze `{escape(freeze.name)}` ({freeze.describe(rt.config.timezone)}). It resumes"
            " when the freeze ends, if the analysis still says no regression.",
        )
        refresh_summary(rt, w)
    return True
