"""`/deploy`, `/promote`, `/rollback`, `/aiops scale`, `/aiops undeploy`: parse → plan →
policy → open the change."""

from __future__ import annotations

from dataclasses import replace

from commands.audit import AuditAction
from commands.canary.gate import after_promote_created, before_promote
from commands.catalog import AIOPS_SUBCOMMANDS, SLASH_COMMANDS, CommandSpec
from commands.changes.approve import supersede
from commands.changes.card import change_card
from commands.changes.execute import STOP_POLL, soak_breach, takeover_seconds
from commands.changes.lease import new_owner, stoppable
from commands.changes.lifecycle import Opening, open_change
from commands.changes.plan import (
    Plan,
    find_target,
    plan_deploy,
    plan_promote,
    plan_rollback,
    plan_scale,
    plan_undeploy,
)
from commands.changes.rules import (
    BreakGlass,
    announce_break_glass,
    check_request,
    plan_hash,
)
from commands.changes.tell import announce, tell
from commands.config import Endpoint, Environment
from commands.errors import Refusal
from commands.incidents import links
from commands.incidents.thread import line as incident_line
from commands.messages import (
    Context,
    Reply,
    Text,
    did_you_mean,
    escape,
    health_line,
    mention,
    when,
)
from commands.model import (
    Change,
    ChangeKind,
    ChangeState,
    EndpointHealth,
    EndpointState,
    InvalidModelVersion,
    Invocation,
    ModelVersion,
    Strategy,
    change_deployed_model_id,
    stranded_since,
)
from commands.models import gate as model_gate
from commands.parsing import Args, ParseError, parse, parse_at
from commands.ports import (
    CHANNEL_NOT_FOUND,
    IS_ARCHIVED,
    NOT_IN_CHANNEL,
    Delivery,
    EndpointLocked,
    PlatformError,
    ReplicaPricing,
)
from commands.runtime import Runtime


def parse_for(command: str, text: str) -> Args:
    spec = SLASH_COMMANDS[command]
    try:
        return parse(text, set(spec.options), spec.positionals)
    except ParseError as exc:
        raise Refusal(str(exc), f"Usage: `{spec.usage}`", code="malformed") from None


# The `/aiops` subcommands that open a change (the rest are slash commands of their own).
SUBCOMMAND_KINDS = (ChangeKind.SCALE, ChangeKind.UNDEPLOY, ChangeKind.RETRAIN)


def spec_of(kind: ChangeKind) -> CommandSpec:
    """The catalog entry of the command that requests `kind`."""
    if kind in SUBCOMMAND_KINDS:
        return AIOPS_SUBCOMMANDS[kind.value]
    return SLASH_COMMANDS[f"/{kind.value}"]


def parse_strategy(raw: str | None) -> Strategy:
    """`strategy=` of `/deploy` (default canary); unknown words are refused with the three."""
    if raw is None:
        return Strategy.CANARY
    text = raw.strip().lower().replace("_", "-").replace("bluegreen", "blue-green")
    try:
        return Strategy(text)
    except ValueError:
        names = [s.value for s in Strategy]
        raise Refusal(
            f"`strategy={escape(raw)}` is not a deployment strategy" + did_you_mean(text, names),
            "Write `strategy=canary` (the default: a share of traffic, judged by the canary"
            " analysis), `strategy=blue-green` (deploy at 0 %, switch 100 % once ready, the old"
            " version kept until promoted) or `strategy=replace` (deploy at 100 %, the old one"
            " undeployed after the soak).",
            code="malformed",
        ) from None


def _replica_day_usd(rt: Runtime, ep: Endpoint) -> float | None:
    """USD one replica of `ep` costs a day, by the platform's estimate (`ReplicaPricing`:
    `[vertex.prices]`, the sandbox's own price); None when it prices nothing. What a plan's
    cost a day is made of (`Plan.recorded`)."""
    if not isinstance(rt.platform, ReplicaPricing):
        return None
    try:
        hourly = rt.platform.replica_hour_usd(ep)
    except PlatformError:
        return None
    return None if hourly is None else hourly * 24


def _replica_count(args: Args, key: str) -> int | None:
    if key not in args.options:
        return None
    try:
        return args.integer(key, 0, 0, 1000)
    except ParseError as exc:
        raise Refusal(
            str(exc), f"`{key}=` is a whole number of replicas, 0–1000.", code="malformed"
        ) from None


def required_reason(
    args: Args, env: Environment, kind: str, required: bool | None = None
) -> str | None:
    """`reason=` of a request; a refusal where the environment requires one and none is
    given (`required` overrides the environment's rule)."""
    reason = args.options.get("reason") or None
    if (env.require_reason if required is None else required) and not reason:
        raise Refusal(
            f"a {kind} in `{env.name}` needs a reason",
            'Add `reason="…"`, e.g. `reason="fix tokenizer bug (CHG-1234)"`.',
            code="missing_reason",
        )
    return reason


def _health(rt: Runtime, ep: Endpoint) -> EndpointHealth | None:
    try:
        return rt.platform.health([ep]).get(ep.slug)
    except PlatformError:
        return None


def _canary_hint(rt: Runtime, state: EndpointState, holder: Change | None) -> str | None:
    """Which deployed model is the canary: the one a running change is bringing in (a
    stranded deploy's own model, found by the id it carries), else the model of the newest
    finished deploy that is still on the endpoint. A stranded deploy is never succeeded, so
    without this its model would count as the stable one and a rollback would keep it; a
    failed deploy whose model stayed (a blue-green whose switch failed leaves it at 0 %)
    is the newer model too, not the one serving beside it."""
    if holder is not None and holder.state is ChangeState.RUNNING:
        if holder.kind is ChangeKind.DEPLOY:
            mine = holder.new_deployed_model_id or change_deployed_model_id(holder.id)
        else:  # a promote or rollback: the model it was moving away from or to
            mine = holder.plan.canary_id
        if mine and state.model(mine) is not None:
            return mine
    for change in rt.store.list_changes(
        states=[ChangeState.SUCCEEDED, ChangeState.FAILED], endpoint=state.slug, limit=50
    ):
        mine = change.new_deployed_model_id
        if change.kind is ChangeKind.DEPLOY and mine and state.model(mine) is not None:
            return mine
    return None


def _previous_version(rt: Runtime, ep: Endpoint) -> ModelVersion | None:
    """The version a full promote replaced, for a rollback after the canary is gone."""
    for change in rt.store.list_changes(endpoint=ep.slug, limit=50):
        if change.state is ChangeState.SUCCEEDED and change.plan.replaced_version:
            return ModelVersion(ep.model, change.plan.replaced_version)
    return None


def _plan(
    rt: Runtime, kind: ChangeKind, ep: Endpoint, args: Args, holder: Change | None = None
) -> tuple[Plan, Change]:
    env = rt.config.environment_of(ep)
    state = rt.platform.endpoint_state(ep)
    version: str | None = None
    percent: int | None = None
    if kind is ChangeKind.DEPLOY:
        try:
            mv = ModelVersion.parse(args.positionals[1] if len(args.positionals) > 1 else "")
        except InvalidModelVersion as exc:
            raise Refusal(
                escape(str(exc)), f"Usage: `{SLASH_COMMANDS['/deploy'].usage}`", code="malformed"
            ) from None
        if mv.model != ep.model:
            raise Refusal(
                f"`{ep.slug}` serves `{ep.model}`, not `{escape(mv.model)}`",
                f"Deploy a version of `{ep.model}`, e.g. `{ep.model}@<version>`.",
                code="wrong_model",
            )
        known = rt.platform.model_versions(mv.model)
        if mv.version not in known:
            raise Refusal(
                f"`{escape(str(mv))}` is not in the model registry"
                + did_you_mean(mv.version, known),
                f"Known versions of `{mv.model}`: {', '.join(escape(v) for v in known)}.",
                code="unknown_version",
            )
        strategy = parse_strategy(args.options.get("strategy"))
        if strategy is not Strategy.CANARY and "canary" in args.options:
            raise Refusal(
                f"`canary=` is the share of a canary; `strategy={strategy.value}` takes the new"
                " version to 100 %",
                f"Drop `canary=`, or use `strategy=canary canary={args.options['canary']}`.",
                code="malformed",
            )
        try:
            percent = args.integer("canary", 10, 1, 100)
        except ParseError as exc:
            raise Refusal(
                str(exc),
                "The canary share is a whole percent, 1–100 (default 10).",
                code="malformed",
            ) from None
        if strategy is not Strategy.CANARY:
            percent = 100
        plan = plan_deploy(state, mv, percent, strategy)
        version = str(mv)
    elif kind is ChangeKind.PROMOTE:
        try:
            percent = args.integer("to", 100, 1, 100)
        except ParseError as exc:
            raise Refusal(
                str(exc), "`to=` is the canary's new share, 1–100 (default 100).", code="malformed"
            ) from None
        plan = plan_promote(state, _canary_hint(rt, state, holder), percent)
    elif kind is ChangeKind.SCALE:
        usage = spec_of(kind).usage
        target = find_target(
            state, ep.model, args.positionals[1] if len(args.positionals) > 1 else None, usage
        )
        plan = plan_scale(
            state,
            target,
            _replica_count(args, "min"),
            _replica_count(args, "max"),
            rt.platform.scale_limits(ep),
            ep.max_replicas,
        )
        version = str(target.version)
    elif kind is ChangeKind.UNDEPLOY:
        if len(args.positionals) < 2:
            idle = [d.version.version for d in state.deployed if not state.traffic.get(d.id)]
            raise Refusal(
                f"which version of `{ep.slug}` to undeploy?",
                f"Usage: `{spec_of(kind).usage}`; serving 0 % now: "
                + (", ".join(f"`{escape(v)}`" for v in idle) or "none")
                + ".",
                code="malformed",
            )
        target = find_target(state, ep.model, args.positionals[1], spec_of(kind).usage)
        plan = plan_undeploy(state, target, _canary_hint(rt, state, holder))
        version = str(target.version)
    else:
        plan = plan_rollback(state, _canary_hint(rt, state, holder), _previous_version(rt, ep))
    recorded = plan.recorded(
        full_promote=kind in (ChangeKind.PROMOTE, ChangeKind.DEPLOY)
        and percent == 100
        and plan.strategy is not Strategy.BLUE_GREEN,  # the old version stays deployed
        day=_replica_day_usd(rt, ep),
        new_replicas=ep.min_replicas,
    )
    recorded.ticket = args.options.get("ticket") or None
    change = Change(
        id="",
        kind=kind,
        endpoint=ep.slug,
        environment=env.name,
        requester_id="",
        state=ChangeState.REQUESTED,
        created_at=rt.clock(),
        version=(
            version
            if kind in (ChangeKind.DEPLOY, ChangeKind.SCALE, ChangeKind.UNDEPLOY)
            else plan.redeploy_version
        ),
        canary_percent=percent,
        split_before=plan.before,
        split_after=plan.after,
        restore_split=plan.restore,
        plan=recorded,
    )
    return plan, change


def _locked(rt: Runtime, ep: Endpoint, holder: Change) -> Refusal:
    state = holder.state.value.replace("_", " ")
    hint = (
        f"One open change per endpoint: wait for {holder.id}, or cancel it with"
        f" `/aiops cancel {holder.id}`."
    )
    if holder.state is ChangeState.RUNNING:
        since = stranded_since(holder, rt.clock(), rt.approved_settle)
        if since is None:
            beat = holder.lease_heartbeat_at
            state = "running now in a live worker" + (
                f", last heartbeat {when(beat, rt.config.timezone)}" if beat else ""
            )
            ttl = int(rt.lease_ttl.total_seconds())
            hint = (
                f"One open change per endpoint: wait for {holder.id} to finish; a running"
                f" change cannot be cancelled. Follow it with `/aiops changes {ep.slug}`."
                f" If its worker has stopped, it counts as stranded {ttl} s after its last"
                f" heartbeat, and `/rollback {ep.slug}` then ends it."
            )
        else:
            state = f"stranded since {when(since, rt.config.timezone)}, no live worker"
            hint = (
                f"A live worker takes {holder.id} over within a minute;"
                f" `/rollback {ep.slug}` ends it at once."
            )
    return Refusal(
        f"`{ep.slug}` is locked by {holder.id} ({holder.kind.value} by"
        f" {mention(holder.requester_id)}, {state})",
        hint,
        code="locked",
    )


def _end_stranded(rt: Runtime, holder: Change, actor_id: str) -> str | None:
    """A rollback over a change that no live worker runs: take its lease (so no takeover
    starts it meanwhile), mark it FAILED, cancel its operation in flight where the
    platform allows, audit and tell. Returns the line for the rollback's reply; None when
    a worker took it over first (the rollback then waits like behind any running change).
    A failure to cancel is reported, never raised: mitigation goes on."""
    now = rt.clock()
    since = stranded_since(holder, now, rt.approved_settle)
    owner = new_owner()
    taken = rt.store.take_lease(holder.id, owner, now, rt.lease_ttl) if since else None
    if taken is None or since is None:
        return None
    why = f"stranded: superseded by {mention(actor_id)}'s rollback"
    done = rt.store.transition(
        holder.id, ChangeState.RUNNING, ChangeState.FAILED, holder=owner, error=why, updated_at=now
    )
    if done is None:
        rt.store.release_lease(holder.id, owner)
        return None
    cancel = _cancel_in_flight(rt, done.operation)
    announce(
        rt,
        done,
        AuditAction.EXECUTION_FINISHED,
        actor_id,
        f"failed: {why}",
        note=f"Stopped: {why}; {cancel}.",
        justification=why,
        parameters={
            "stranded_since": since.isoformat(),
            "previous_worker": holder.lease_owner,
            "operation": done.operation,
            "phase": done.plan.phase,
            "operation_cancel": cancel,
        },
    )
    tell(rt, done.requester_id, f"{done.id} ({done.kind.value} {done.endpoint}) {why}; {cancel}.")
    return (
        f":warning: {done.id} was stranded since {when(since, rt.config.timezone)} (no live"
        f" worker): marked failed, superseded by this rollback; {cancel}."
    )


# The phases in which a live worker honours a person's stop request: a replace or
# blue-green's soak (the new version serves 100 %), and a deploy whose operation is still
# running (10–30 minutes on Vertex AI; nothing serves from it yet).
STOPPABLE = ("soak", "deploy")


def _already_stopping(holder: Change) -> Reply:
    """A second `/rollback` over a change a person already asked to stop."""
    text = (
        f":rewind: {holder.id} is already rolling back at"
        f" {mention(holder.stop_requested_by or '')}'s request; its thread says when it"
        " is done."
    )
    return Reply(text=text, blocks=[Text(text)])


def _stop_running(
    rt: Runtime,
    ep: Endpoint,
    holder: Change,
    inv: Invocation,
    reason: str | None,
    glass: BreakGlass | None,
    ticket: str | None,
) -> Reply:
    """`/rollback` over a change a live worker runs in a `STOPPABLE` phase. In a replace or
    blue-green's soak the new version already serves 100 %, so waiting for the soak to end
    (10 minutes by default) would block mitigation; a deploy still running (minutes on
    Vertex AI) would land first. Ask the worker to stop (`Store.request_stop`, which wins
    only while the change is still in that phase): in a soak, within `STOP_POLL`, it puts
    traffic back on the old version in one update and undeploys the new one
    (`execute._stopped`); in a deploy, at its next poll, it cancels the operation and, if
    the model landed anyway, puts traffic back and undeploys it (`execute._abort_deploy`).
    Either way the change fails naming who stopped it. No second change is opened: the
    running change is the one that knows what it deployed. Audited under the
    person's name with their reason and ticket; a stop by break glass (an environment
    whose rollbacks need approval) is audited and announced as break glass too. With an
    incident open on the endpoint the stop is part of it, as a rollback change would be
    (`commands.incidents.links`): its rows name the incident, an `incident_linked` row
    links the stopped change, and the incident's thread says so."""
    actor_id = inv.actor.id
    phase = holder.plan.phase or ""
    asked = rt.store.request_stop(holder.id, actor_id, reason, phase=phase)
    if asked is None:
        current = rt.store.get_change(holder.id)
        if current is not None and current.stop_requested_by:
            return _already_stopping(current)
        # it left that phase meanwhile (passed, landed, failed): as behind any change
        raise _locked(rt, ep, rt.store.open_change(ep.slug) or holder)
    version = (asked.version or "").rpartition("@")[2] or "the new version"
    new = asked.labels.get(asked.new_deployed_model_id or "", version)
    old = asked.labels.get(asked.plan.stable_id or "", "the old version")
    soak = phase == "soak"
    seconds = int(STOP_POLL.total_seconds() if soak else rt.poll_seconds)
    incident = links.open_incident(rt, ep.slug)
    under = {"incident": incident.id} if incident is not None else {}
    what = (
        f"traffic goes back on {old} and {new} is undeployed"
        if soak
        else f"the deploy of {new} is cancelled (and {new} undeployed if it lands anyway)"
    )
    during = "during the soak" if soak else f"while {new} was still deploying"
    line = f":octagonal_sign: {mention(actor_id)} asked to roll back {during}: {what}."
    if glass is not None:
        # as `_break_glass` does for a change it opens: the row the digest and the
        # incident review look for, and the announcement approvers see
        rt.auditor.record(
            AuditAction.BREAK_GLASS,
            actor_id,
            f"rolled back {during} without approval",
            change=asked,
            request_id=inv.request_id,
            justification=glass.reason,
            parameters={"break_glass": True, "freeze_overridden": glass.freeze, "stop": True},
        )
        line += "\n" + announce_break_glass(rt, asked, glass)
    announce(
        rt,
        asked,
        AuditAction.STOP_REQUESTED,
        actor_id,
        f"asked: the {phase} stops and is rolled back",
        line=line,
        refresh=False,
        justification=reason,
        request_id=inv.request_id,
        parameters={
            "phase": phase,
            "strategy": asked.plan.strategy,
            "serving": new,
            "ticket": ticket,
            "break_glass": glass is not None,
        }
        | under,
    )
    if incident is not None:
        if asked.plan.incident != incident.id:
            rt.auditor.record(
                AuditAction.INCIDENT_LINKED,
                actor_id,
                f"{asked.id} linked to {incident.id}: its {phase} stopped under it",
                change=asked,
                request_id=inv.request_id,
                parameters={
                    "incident": incident.id,
                    "alert": incident.alert_id,
                    "change": asked.id,
                    "kind": asked.kind.value,
                    "action": "stop",
                },
            )
        incident_line(
            rt,
            incident,
            f":rewind: {mention(actor_id)} stopped {asked.id}'s {phase} for {incident.id}: {what}.",
        )
    soon = f"within {seconds} s its worker"
    beat = asked.lease_heartbeat_at
    if beat is not None and rt.clock() - beat > rt.lease_ttl / 2:
        # a heartbeat is due every third of the TTL: this worker may have stopped
        now = rt.clock()
        age = int((now - beat).total_seconds())
        lapses = asked.lease_expires_at or beat + rt.lease_ttl
        left = max(0.0, (lapses - now).total_seconds())
        bound = int(left + takeover_seconds(rt.lease_ttl)) + 1  # its lease, then a sweep
        soon = (
            f"its worker's last heartbeat was {age} s ago: if it has stopped, another takes"
            f" {holder.id} over within {bound} s and honours the request; either way it"
        )
    if soak:
        text = (
            f":rewind: {holder.id} ({asked.plan.strategy} of {new} on `{ep.slug}`) was in its"
            f" soak, {new} serving 100 %. Stopping it at your request: {soon} puts traffic"
            f" back on {old} in one update and undeploys {new}; {holder.id} then ends failed,"
            " saying who stopped it. Its thread says when it is done."
        )
    else:
        text = (
            f":rewind: {holder.id} (deploy of {new} on `{ep.slug}`) was still deploying;"
            f" nothing serves from it yet. Stopping it at your request: {soon} cancels the"
            f" deploy and, if {new} lands anyway, puts traffic back on {old} and undeploys"
            f" it; {holder.id} then ends failed, saying who stopped it. Its thread says when"
            " it is done."
        )
    return Reply(text=text, blocks=[Text(text)])


def _rollback_in_flight(rt: Runtime, ep: Endpoint, holder: Change, actor_id: str) -> Reply:
    """`/rollback` over a stranded change whose work has not landed (nothing serves from
    it yet): end it and cancel its operation; the endpoint keeps what it served."""
    line = _end_stranded(rt, holder, actor_id)
    if line is None:  # a live worker took it over meanwhile: it runs, the rollback waits
        raise _locked(rt, ep, rt.store.open_change(ep.slug) or holder)
    try:
        state = rt.platform.endpoint_state(ep).describe()
    except PlatformError as exc:
        state = f"unknown ({exc})"
    text = (
        f"{line} `{ep.slug}` serves {state}: nothing else to roll back. If its deploy lands"
        f" after all (a cancel the platform could not honour), `/rollback {ep.slug}` again."
    )
    return Reply(text=text, blocks=[Text(text)])


def _cancel_in_flight(rt: Runtime, operation: str | None) -> str:
    """Cancel a stranded change's last operation if it is still running; what happened,
    in words (a refusal is reported, not raised)."""
    if not operation:
        return "it had no operation on record to cancel"
    try:
        if rt.platform.operation(operation).done:
            return f"its last operation `{operation}` had already finished"
        rt.platform.cancel_operation(operation)
    except PlatformError as exc:
        return f"its operation `{operation}` could not be cancelled ({exc})"
    return f"its operation `{operation}` was cancelled"


def request_change(
    rt: Runtime, kind: ChangeKind, inv: Invocation, args: Args | None = None
) -> Reply:
    """Plan, check and open a change of `kind` as `inv` asks: `args` already parsed for
    an `/aiops` subcommand (`scale`, `undeploy`), else read from the slash command's text."""
    usage = spec_of(kind).usage
    if args is None:
        args = parse_for(f"/{kind.value}", inv.text)
    ep = rt.endpoint(args.positionals[0] if args.positionals else None, usage)
    env = rt.config.environment_of(ep)
    at = (
        parse_at(args.options["at"], rt.config.timezone, rt.clock())
        if "at" in args.options
        else None
    )
    glass = check_request(rt, env, ep, kind, args, inv.actor, inv.channel_id, at)
    needs_approval = (
        glass is None
        and env.needs_approval
        and (kind is not ChangeKind.ROLLBACK or env.rollback_requires_approval)
    )
    reason = required_reason(args, env, kind.value)
    holder = rt.store.open_change(ep.slug)
    if (
        holder is not None
        and holder.state is ChangeState.RUNNING
        and stranded_since(holder, rt.clock(), rt.approved_settle) is None
    ):
        if (
            kind is ChangeKind.ROLLBACK
            and holder.plan.phase in STOPPABLE
            and (holder.plan.phase == "soak" or holder.kind is ChangeKind.DEPLOY)
            and not needs_approval
            and stoppable(holder.lease_owner)  # a holder of an earlier release is not asked
        ):
            ticket = args.options.get("ticket")
            return _stop_running(rt, ep, holder, inv, reason, glass, ticket)
        if kind is ChangeKind.ROLLBACK and holder.stop_requested_by:
            # stopped already and past the phase it was asked in (cancelling, undeploying)
            return _already_stopping(holder)
        raise _locked(rt, ep, holder)  # running in a live worker: nothing may go ahead of it
    # A rollback that cannot be planned (nothing to roll back to) supersedes nothing, but
    # one over a stranded change in flight (a deploy not yet landed: no canary to take
    # back) is the mitigation itself: ending that change and cancelling its operation.
    planned = None
    if kind is ChangeKind.ROLLBACK:
        try:
            planned = _plan(rt, kind, ep, args, holder)[1]
        except Refusal:
            if holder is None or holder.state is not ChangeState.RUNNING:
                raise
            return _rollback_in_flight(rt, ep, holder, inv.actor.id)
    stranded_line: str | None = None
    if holder is not None and kind is ChangeKind.ROLLBACK:
        # Mitigation first: a rollback never waits behind a change that has not started,
        # nor behind one whose worker stopped (stranded).
        if holder.state is not ChangeState.RUNNING:
            why = f"superseded by {mention(inv.actor.id)}'s rollback of `{ep.slug}`"
            if supersede(rt, holder, inv.actor.id, why) is not None:
                holder = None
        else:
            stranded_line = _end_stranded(rt, holder, inv.actor.id)
            if stranded_line is not None:
                holder = None
        if holder is not None:
            holder = rt.store.open_change(ep.slug)
    if holder is not None:  # say so before planning; the insert below is what enforces it
        raise _locked(rt, ep, holder)
    gate = before_promote(rt, ep, env, args, inv.actor) if kind is ChangeKind.PROMOTE else None
    change = planned or _plan(rt, kind, ep, args)[1]
    if kind is ChangeKind.UNDEPLOY:
        change.plan.forced = _removes_rollback_target(rt, ep, change, args)
    # model risk: the version's validation where the environment requires it (a Refusal)
    review = model_gate.review(rt, env, ep, change, break_glass=glass is not None)
    if review is not None:
        change.plan.model_review = review.to_json()
    if gate is not None:
        gate.mark(change.plan)
    change.requester_id = inv.actor.id
    change.reason = reason
    if at is not None:  # scheduled: the scheduler starts it at its time, if approved
        change.plan.run_at = at
    change.plan.plan_hash = plan_hash(change)  # what approvers are shown
    if glass:
        change.plan.break_glass = True
    health = _health(rt, ep)
    change.plan.health = health_line(health, rt.config.thresholds)
    if needs_approval:
        opening = Opening(
            channel=rt.config.channels.approvals,
            expires_at=at or rt.clock() + env.approval_ttl,  # scheduled: until its time
            approval={"approvers": list(env.approvers), "required": env.approvals_required},
            health=health,
        )
    else:
        decided = "policy: no approval needed in " + env.name
        note = None
        if kind is ChangeKind.ROLLBACK and env.needs_approval:
            decided = "policy: rollback runs at once (mitigation first)"
            note = f"Rolled back by {mention(inv.actor.id)} without waiting for approval (policy)."
        if glass:
            decided = "policy: break glass"
        # A change that skipped an approval the environment has is announced where
        # approvers look, so a rollback without a second person (or a break glass) is seen.
        opening = Opening(
            channel=rt.config.channels.approvals if glass or note else rt.config.channels.ops,
            decided_by=decided,
            note=note,
            health=health,
            on_approved=(lambda c: _break_glass(rt, c, glass, inv)) if glass else None,
        )
    if gate is not None:
        opening = replace(
            opening,
            on_created=lambda c: after_promote_created(rt, c, gate, inv.actor, inv.request_id),
        )
    undelivered: list[Delivery] = []
    opening = replace(opening, on_undelivered=lambda _, d: undelivered.append(d))
    try:
        change = open_change(
            rt,
            change,
            inv.actor.id,
            opening,
            request_id=inv.request_id,
            parameters={"version": change.version, "ticket": change.plan.ticket}
            | _planned(change)
            | ({"validation_gate": review.to_dict()} if review is not None else {}),
        )
    except EndpointLocked as locked:
        raise _locked(rt, ep, locked.holder) from None
    reply = change_card(change, rt.config, health=health)
    reply.ephemeral = True
    if stranded_line is not None:
        reply.blocks.append(Text(stranded_line))
    if undelivered:
        # Never "posted" when it was not: say where it did not arrive, how to fix that,
        # and how the change is decided meanwhile.
        reply.blocks.append(
            Text(card_undelivered(opening.channel, undelivered[0], change, needs_approval))
        )
        reply.text = (
            f"{change.id} is waiting for approval; its card did not reach <#{opening.channel}>"
            if needs_approval
            else f"{change.id} is running; its card did not reach <#{opening.channel}>"
        )
        if gate is not None:
            reply.blocks.append(Context((gate.summary,)))
        return reply
    if needs_approval:
        reply.blocks.append(
            Context(
                (
                    f"Posted for approval in <#{rt.config.channels.approvals}>; "
                    f"you'll hear back here when {', '.join(mention(a) for a in env.approvers)} decide.",
                )
            )
        )
        reply.text = f"{change.id} is waiting for approval"
    else:
        reply.text = f"{change.id} is running"
        line = "Running now; progress goes to the change's thread."
        if at is not None:
            reply.text = f"{change.id} is scheduled for {when(at, rt.config.timezone)}"
            line = (
                f"Runs at {when(at, rt.config.timezone)}; cancel with `/aiops cancel {change.id}`."
            )
        reply.blocks.append(Context((line,)))
    if gate is not None:
        reply.blocks.append(Context((gate.summary,)))
    return reply


def _removes_rollback_target(rt: Runtime, ep: Endpoint, change: Change, args: Args) -> str | None:
    """An undeploy of the only version left to roll back to (`Plan.replaced`: the one a
    blue/green switched from) while the version serving 100 % breaches `[thresholds]` (P95
    or errors, what pages, judged as a replace's soak judges) is refused: the rollback it
    needs would become a redeploy. `force=true reason="…"` overrides it; returns why it
    would have been refused (kept on the change and audited), else None. No figures is
    no verdict: the undeploy goes ahead, its card warning that the target goes."""
    removed = change.plan.replaced_version
    if not removed:
        return None
    try:
        forced = args.flag("force")
    except ParseError as exc:
        raise Refusal(str(exc), "Write `force=true`.", code="malformed") from None
    serving = next((i for i, share in change.split_before.items() if share == 100), "")
    why, _ = soak_breach(_health(rt, ep), serving, rt.config.thresholds)
    if why is None:
        return None
    label = change.labels.get(serving, "the serving version")
    if not forced:
        raise Refusal(
            f"{escape(label)} serves 100 % of `{ep.slug}` and breaches `[thresholds]` ({why});"
            f" undeploying {escape(removed)} would remove the only version to roll back to",
            f"Roll back first: `/rollback {ep.slug}` switches back to {escape(removed)} in one"
            ' traffic update. To undeploy it anyway, add `force=true reason="…"` (audited).',
            code="breaching",
        )
    if not args.options.get("reason"):
        raise Refusal(
            "`force=true` needs a reason",
            'Add `reason="…"`: why the only rollback target goes while the serving version'
            " breaches.",
            code="missing_reason",
        )
    return f"{label} breached [thresholds] when planned ({why})"


def _planned(change: Change) -> dict[str, object]:
    """What a plan's audit row adds for strategies, scaling and cost (only when set)."""
    plan = change.plan
    out: dict[str, object] = {
        "strategy": plan.strategy,
        "deployed_model": plan.target_id,
        "replicas_before": list(plan.replicas_before) if plan.replicas_before else None,
        "replicas_after": list(plan.replicas_after) if plan.replicas_after else None,
        # an undeploy of the only rollback target: what `/rollback` would then redeploy
        "rollback_target_removed": plan.replaced_version
        if change.kind is ChangeKind.UNDEPLOY
        else None,
        "forced": plan.forced,
        "cost_per_day_usd": (
            {"before": plan.cost_before, "during": plan.cost_during, "after": plan.cost_after}
            if plan.cost_before is not None
            else None
        ),
    }
    return {key: value for key, value in out.items() if value is not None}


# What to do about a card Slack refused, by Slack's error.
_FIXES = {
    NOT_IN_CHANNEL: "The bot is not in that channel: invite it with `/invite @aiops-bot` there.",
    CHANNEL_NOT_FOUND: (
        "Slack does not know that channel (or it is private and the bot is not in it):"
        " check `[slack]` in the config, or invite the bot with `/invite @aiops-bot` there."
    ),
    IS_ARCHIVED: (
        "That channel is archived: unarchive it, or point `[slack]` in the config at another."
    ),
}


def card_undelivered(channel: str, delivery: Delivery, change: Change, pending: bool) -> str:
    """The requester's line when the change's card did not arrive."""
    error = escape(delivery.error or "unknown")
    fix = _FIXES.get(
        delivery.error or "", "Slack may be having trouble; an admin can see the error in the log."
    )
    then = (
        f"Meanwhile approvers decide with `/aiops approve {change.id}` or"
        f" `/aiops reject {change.id}`; `/aiops changes` lists it."
        if pending
        else f"The change goes ahead; follow it with `/aiops changes {change.endpoint}`."
    )
    return (
        f":warning: The card for {change.id} did not reach <#{channel}> (Slack said `{error}`)."
        f" {fix} {then}"
    )


def _break_glass(rt: Runtime, change: Change, glass: BreakGlass, inv: Invocation) -> str:
    """Audit a change run without approval by break glass; the card's note announces it."""
    rt.auditor.record(
        AuditAction.BREAK_GLASS,
        inv.actor.id,
        "ran without approval",
        change=change,
        request_id=inv.request_id,
        justification=glass.reason,
        parameters={"break_glass": True, "freeze_overridden": glass.freeze},
    )
    model_gate.record_override(rt, change, inv.actor.id, glass.reason, inv.request_id)
    return announce_break_glass(rt, change, glass)
