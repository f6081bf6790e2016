"""Running an approved change on the platform: deploy / shift traffic / undeploy, its
long-running operations polled and stored so that another process can go on with them.

Exactly one process works on a change at a time: it holds the change's lease
(`commands/changes/lease.py`), taken by compare-and-set together with APPROVED → RUNNING,
renewed by a heartbeat and before every platform call, cleared when the change ends. A
change whose worker died (its lease expired) is *stranded*; `take_over` — run by the
scheduler every `takeover_seconds(lease_ttl)` on every replica, and at start-up as
`resume` — takes its lease by compare-and-set, and only the winner writes
`execution_resumed` and goes on.

Going on never repeats a platform write: a deploy carries an id derived from the change
(`change_deployed_model_id`), so a taker first looks for it on the endpoint and adopts
it; a traffic shift already applied is recognised by the split it set; a model already
undeployed is not undeployed again, and one whose undeploy is running is waited for; a
scale already applied is recognised by the replicas it set.

Strategies (planned by `commands/changes/plan.py: plan_deploy`), by phase: a canary
deploys with its share, then undeploys the replaced model at 100 %. A blue-green deploy
deploys at 0 % (`deploy` → `deployed`), then switches to 100 % in one traffic update
(`traffic`), the old model left deployed. A replace deploys at 100 %, soaks (`soak`,
until `soak_until`: a taker soaks on to the same end), then undeploys the old model
(`soaked` → `undeploy:…`); a soak that finds the new version unhealthy records why
(`plan.soak`, before anything moves), puts traffic back on the old model in one update
and undeploys the new one, and the change fails saying so. A person's `/rollback` during
the soak does the same at once (`Store.request_stop`, looked for every `STOP_POLL`): the
soak is the one phase a live worker holds while a new version serves everyone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from commands.audit import AuditAction
from commands.changes.lease import Lease, LeaseLost, new_owner
from commands.changes.tell import announce, tell, thread
from commands.config import Endpoint, Thresholds
from commands.incidents import links
from commands.messages import escape, mention, split_text, when
from commands.model import (
    BOT,
    NEW,
    Change,
    ChangeKind,
    ChangeState,
    EndpointHealth,
    EndpointState,
    ModelVersion,
    Strategy,
    change_deployed_model_id,
    check_split,
    stranded_since,
)
from commands.models.alias import after_change
from commands.models.model import PipelineState, RetrainSpec
from commands.ports import OperationStatus, PlatformError
from commands.runtime import Runtime

log = logging.getLogger(__name__)

# How often the scheduler sweeps for stranded changes (bot/scheduler.py): a dead worker's
# change is taken over within the lease's TTL plus this (40 s with the defaults). A lease
# shorter than 30 s (`AIOPS_LEASE_SECONDS`) sweeps every third of its TTL, at least 1 s
# apart (`takeover_seconds`).
TAKEOVER_SECONDS = 10.0
# How long a taker waits for a deploy that a dead worker started (the platform says its id
# already exists, but it is not on the endpoint yet) before it gives the change up.
ADOPT_WAIT = timedelta(hours=1)
# While waiting for such a deploy, how often (in polls) to try deploying again, in case
# it failed: the id is then free and this worker's deploy starts.
_RETRY_POLLS = 30
# How often a replace's soak reads the new version's health (one Monitoring read of the
# endpoint each time): Monitoring's shortest period.
SOAK_CHECK = timedelta(minutes=1)
# How often a soak looks for a person's request to stop and roll back (one read of the
# change): the longest a `/rollback` during a soak waits for its worker.
STOP_POLL = timedelta(seconds=5)
# How often a retrain's pipeline job is polled: a run takes hours, and each poll is one
# read of the job (and, once it ended, of the registry). A restart polls on from the name.
PIPELINE_POLL_SECONDS = 30.0


class _Failed(Exception):
    pass


def takeover_seconds(lease_ttl: timedelta) -> float:
    """The takeover sweep's interval for a lease TTL: `TAKEOVER_SECONDS`, or a third of a
    shorter TTL, never under 1 s (the scheduler's run keys are whole seconds)."""
    return max(1.0, min(TAKEOVER_SECONDS, lease_ttl.total_seconds() / 3))


def start(rt: Runtime, change: Change) -> bool:
    """Run an approved change after the ack (a scheduled one waits for the scheduler).
    False when it is not due yet."""
    run_at = change.plan.run_at
    if run_at and run_at > rt.clock():
        return False
    rt.background.submit(lambda: execute(rt, change.id))
    return True


def execute(rt: Runtime, change_id: str) -> None:
    """APPROVED → RUNNING with this worker's lease, in one compare-and-set; then run it.
    Anyone who loses the compare-and-set does nothing: never twice."""
    owner = new_owner()
    now = rt.clock()
    change = rt.store.take_lease(
        change_id, owner, now, rt.lease_ttl, from_state=ChangeState.APPROVED
    )
    if change is None:
        return  # someone else runs it, or it is no longer approved
    lease = Lease(rt, change.id, owner, now)
    lease.start()
    try:
        parameters: dict[str, object] = {"plan": change.split_after, "kind": change.kind.value}
        if change.plan.strategy:
            parameters["strategy"] = change.plan.strategy
        if change.plan.replicas_after:
            parameters["replicas"] = list(change.plan.replicas_after)
        if change.kind is ChangeKind.RETRAIN:
            del parameters["plan"]
            spec = RetrainSpec.from_json(change.plan.pipeline)
            parameters["model"] = change.subject
            parameters["template"] = spec.template if spec else None
        announce(
            rt, change, AuditAction.EXECUTION_STARTED, BOT.id, "running", parameters=parameters
        )
        links.moved(
            rt,
            change,
            f":arrow_forward: {change.id} ({change.kind.value} of `{change.subject}`) started.",
        )
        _run(rt, change, lease)
    finally:
        lease.close()


def take_over(rt: Runtime, *, at_start: bool = False) -> int:
    """Take over stranded work (`Runtime.stranded`): every RUNNING change without a live
    lease is taken by compare-and-set and, by the winner only, audited and run on from
    its phase; an approved change that never started is started (its own compare-and-set
    decides who); a change left `requested` by an opener that died is cancelled
    (`_abandon`). A change held by a live worker is left alone. Returns how many this
    process took, started or cancelled.

    Safe on every replica at once. `at_start` (the start-up `resume`): approved changes
    are started at once, scheduled ones that are due included, as a restart always did."""
    now = rt.clock()
    count = 0
    for change in rt.stranded(now):
        since = stranded_since(change, now, rt.approved_settle)
        log.warning(
            "%s (%s) is stranded since %s: no live worker (last: %s)",
            change.id,
            change.state.value,
            since.isoformat() if since else "?",
            change.lease_owner or "none",
        )
        if change.state is ChangeState.RUNNING:
            count += _take_running(rt, change, now, at_start=at_start)
        elif change.state is ChangeState.REQUESTED:
            count += _abandon(rt, change, since)
        elif at_start:
            continue  # started below with every other approved change
        elif change.plan.run_at is None:
            log.warning(
                "%s was approved at %s and never started (its worker stopped); starting it",
                change.id,
                when(change.decided_at, rt.config.timezone),
            )
            count += start(rt, change)
        else:  # housekeeping starts it, with the checks a scheduled change must pass
            log.warning(
                "%s was due at %s and has not started: no housekeeping has run since",
                change.id,
                when(change.plan.run_at, rt.config.timezone),
            )
    if at_start:
        for change in rt.store.list_changes(states=[ChangeState.APPROVED], limit=1000):
            count += start(rt, change)
    return count


ABANDONED = (
    "abandoned: the process opening it stopped before it was put up for approval; nothing was done"
)


def _abandon(rt: Runtime, change: Change, since: datetime | None) -> int:
    """A change left `requested`: the process opening it died between creating it and
    putting it up for approval (or approving it by policy). Nothing was done for it, no
    card was posted, it would never expire, and it holds its endpoint: cancel it
    (compare-and-set, so once), audit why and tell its requester. 1 if this process did."""
    now = rt.clock()
    done = rt.store.transition(
        change.id,
        ChangeState.REQUESTED,
        ChangeState.CANCELLED,
        decided_by=BOT.id,
        decided_at=now,
        updated_at=now,
    )
    if done is None:
        return 0  # its opener moved it on after all, or another sweep was first
    log.warning("%s was %s", done.id, ABANDONED)
    announce(
        rt,
        done,
        AuditAction.CANCEL,
        BOT.id,
        "cancelled",
        justification=ABANDONED,
        parameters={"stranded_since": since.isoformat() if since else None},
    )
    tell(
        rt,
        done.requester_id,
        f"{done.id} ({done.kind.value} {done.subject}) was {ABANDONED}; request it again"
        " if it is still needed.",
    )
    return 1


def resume(rt: Runtime) -> int:
    """At start-up: take over what no live worker holds (`take_over`)."""
    return take_over(rt, at_start=True)


def _take_running(rt: Runtime, stale: Change, now: datetime, *, at_start: bool) -> int:
    owner = new_owner()
    change = rt.store.take_lease(stale.id, owner, now, rt.lease_ttl)
    if change is None:
        return 0  # another process took it first, or it ended meanwhile
    lease = Lease(rt, change.id, owner, now)
    lease.start()
    if stale.lease_owner is None:
        why = "resumed after restart" if at_start else "resumed: no worker held it"
    else:
        why = "taken over: its worker stopped heartbeating"
    log.warning("%s %s (last heartbeat %s)", change.id, why, stale.lease_heartbeat_at)
    try:
        rt.auditor.record(
            AuditAction.EXECUTION_RESUMED,
            BOT.id,
            why,
            change=change,
            parameters={
                "operation": change.operation,
                "phase": change.plan.phase,
                "previous_worker": stale.lease_owner,
                "last_heartbeat": stale.lease_heartbeat_at.isoformat()
                if stale.lease_heartbeat_at
                else None,
                "worker": owner,
            },
        )
    except BaseException:
        lease.close()
        raise

    def run() -> None:
        try:
            _run(rt, change, lease)
        finally:
            lease.close()

    rt.background.submit(run)
    return 1


def _endpoint(rt: Runtime, change: Change) -> Endpoint:
    return rt.config.endpoints[change.endpoint]


def _write(rt: Runtime, lease: Lease, change: Change, **fields: Any) -> None:
    """Write to the change only while the lease is ours (the store checks, in the write)."""
    if not rt.store.update_change(change.id, holder=lease.owner, **fields):
        raise lease.lose()


def _phase(
    rt: Runtime, lease: Lease, change: Change, phase: str, operation: str | None = None
) -> Change:
    change.plan.phase = phase
    change.operation = operation
    _write(rt, lease, change, plan=change.plan, operation=operation)
    return change


def _wait(
    rt: Runtime,
    lease: Lease,
    change: Change,
    name: str,
    what: str,
    on_stop: Callable[[Change], None] | None = None,
) -> OperationStatus:
    """Poll operation `name` until it is done; its status, or `_Failed` with its error.
    With `on_stop`, a person's stop request (`Store.request_stop`) is looked for at each
    poll and handed to it (it raises)."""
    last_reported = -1
    while True:
        lease.check()
        if on_stop is not None and (asked := _stop_asked(rt, change)) is not None:
            on_stop(asked)
        status = rt.platform.operation(name)
        if status.done:
            if status.error:
                error = status.error or "no reason given"
                # The platform may already say what failed; say it once.
                raise _Failed(error if error.startswith(what) else f"{what} failed: {error}")
            return status
        if status.progress // 25 > last_reported:
            last_reported = status.progress // 25
            thread(rt, change, f":hourglass_flowing_sand: {what}: {status.progress}%")
        rt.sleep(rt.poll_seconds)


def _state(rt: Runtime, lease: Lease, change: Change) -> EndpointState:
    lease.check()
    return rt.platform.endpoint_state(_endpoint(rt, change))


def _check_before(change: Change, state: EndpointState) -> None:
    """The plan was approved against a state; if the endpoint moved since, it is void."""
    if dict(state.traffic) != change.split_before:
        labels = {d.id: d.version.version for d in state.deployed}
        raise _Failed(
            "the endpoint changed since this change was planned"
            f" (planned from {split_text(change.split_before, labels)}, now"
            f" {split_text(state.traffic, labels)}); nothing was done — plan it again"
        )


def _undeploy(
    rt: Runtime, lease: Lease, change: Change, ids: list[str], split: dict[str, int]
) -> None:
    """Undeploy `ids` in turn, looking before each leap: a model no longer on the endpoint
    was undeployed already (by a worker of this change that stopped before it stored the
    operation), and one whose undeploy is still running is waited for, not undeployed
    twice."""
    for dm_id in ids:
        label = change.labels.get(dm_id, dm_id)
        if _state(rt, lease, change).model(dm_id) is None:
            log.info("%s: %s is already undeployed; not again", change.id, dm_id)
            continue
        name = _begin_undeploy(rt, lease, change, dm_id, split)
        if name is None:
            continue
        _phase(rt, lease, change, f"undeploy:{dm_id}", name)
        _wait(rt, lease, change, name, f"undeploying {label}")


def _begin_undeploy(
    rt: Runtime, lease: Lease, change: Change, dm_id: str, split: dict[str, int]
) -> str | None:
    """Start undeploying `dm_id` (its operation's name), or None once it is gone. If the
    platform says an undeploy of it is already running (a worker of this change started it
    and stopped), wait for that one to land; try again now and then, in case it failed."""
    ep = _endpoint(rt, change)
    polls = 0
    deadline = rt.clock() + ADOPT_WAIT
    while True:
        lease.check()
        try:
            return rt.platform.begin_undeploy(ep, dm_id, split)
        except PlatformError as exc:
            if exc.kind == "not_found" and _state(rt, lease, change).model(dm_id) is None:
                return None  # it went between the look and the leap
            if exc.kind != "already_exists":
                raise
            if polls == 0:
                thread(
                    rt,
                    change,
                    f":hourglass_flowing_sand: an undeploy of {change.labels.get(dm_id, dm_id)}"
                    f" for {change.id} is already running (started by a worker that stopped);"
                    " waiting for it",
                )
        while True:
            if rt.clock() > deadline:
                raise _Failed(
                    f"an undeploy of {dm_id} for {change.id} was already running and did not"
                    f" finish within {int(ADOPT_WAIT.total_seconds() // 60)} min"
                )
            rt.sleep(rt.poll_seconds)
            polls += 1
            if _state(rt, lease, change).model(dm_id) is None:
                return None
            if polls % _RETRY_POLLS == 0:
                break


def _deploy_split(change: Change) -> dict[str, int]:
    """The split a deploy is made with: a blue-green deploy lands at 0 % (the split before:
    the old model keeps all traffic); the others with their split after."""
    if change.plan.strategy == Strategy.BLUE_GREEN.value:
        return check_split(change.split_before)
    return check_split(change.split_after)


def _split_after(change: Change) -> dict[str, int]:
    """The split after the change, with "0" named by the new deployed model once known."""
    new = change.new_deployed_model_id or NEW
    return {new if k == NEW else k: v for k, v in change.split_after.items()}


def _ours(state: EndpointState, change: Change, version: ModelVersion) -> str | None:
    """The id of this change's own deploy if it is on the endpoint already."""
    dm_id = change_deployed_model_id(change.id)
    found = state.model(dm_id) if dm_id else None
    if found is None:
        return None
    if found.version != version:
        raise _Failed(
            f"deployed model {found.id} on `{change.endpoint}` carries this change's id but"
            f" serves {found.version}, not {version}; nothing was done — check the endpoint"
        )
    return found.id


def _deployed(rt: Runtime, lease: Lease, change: Change, dm_id: str | None, version: str) -> None:
    """Record the landed deploy and leave the `deploy` phase — only if nobody asked the
    change to stop meanwhile (`Store.request_stop` wins only while the phase is `deploy`):
    then the deploy that landed is taken back (`_abort_deploy`, which raises)."""
    change.new_deployed_model_id = dm_id
    if dm_id:
        change.plan.labels[dm_id] = version
    change.plan.phase = "deployed"
    asked = _leave_unless_stopped(rt, lease, change, new_deployed_model_id=dm_id, plan=change.plan)
    if asked is not None:
        change.plan.phase = "deploy"
        _abort_deploy(rt, lease, change, asked)


def _leave_unless_stopped(
    rt: Runtime, lease: Lease, change: Change, **fields: Any
) -> Change | None:
    """Write `fields` (the move out of a stoppable phase) only if nobody asked the change
    to stop first (`Store.request_stop` wins only while the phase is still the old one):
    None when written; the change as stored, with its stop request, when the request won
    (the caller takes its work back). `LeaseLost` when the lease is no longer ours."""
    if rt.store.update_change(change.id, holder=lease.owner, unless_stop_requested=True, **fields):
        return None
    asked = _stop_asked(rt, change)
    if asked is None:
        raise lease.lose()
    return asked


def _deploy(rt: Runtime, lease: Lease, change: Change, version: ModelVersion) -> str | None:
    """Look before leaping: adopt this change's deploy if it is on the endpoint (returns
    its id), else start one (stores the operation, returns None). If the platform says the
    id exists already, a deploy started by a worker that died is still running: wait for
    it to land and adopt it, or, if it failed, deploy."""
    ep = _endpoint(rt, change)
    state = _state(rt, lease, change)
    adopted = _ours(state, change, version)
    if adopted is not None:
        return adopted
    _check_before(change, state)
    polls = 0
    deadline = rt.clock() + ADOPT_WAIT
    while True:
        lease.check()
        try:
            name = rt.platform.begin_deploy(ep, version, _deploy_split(change), change.id)
        except PlatformError as exc:
            if exc.kind != "already_exists":
                raise
            if polls == 0:
                thread(
                    rt,
                    change,
                    f":hourglass_flowing_sand: a deploy of {version} for {change.id} is"
                    " already running (started by a worker that stopped); waiting for it",
                )
        else:
            _phase(rt, lease, change, "deploy", name)
            return None
        while True:  # wait for it to land; try again now and then, in case it failed
            if rt.clock() > deadline:
                raise _Failed(
                    f"a deploy of {version} for {change.id} was already running and did not"
                    f" finish within {int(ADOPT_WAIT.total_seconds() // 60)} min"
                )
            rt.sleep(rt.poll_seconds)
            polls += 1
            state = _state(rt, lease, change)
            adopted = _ours(state, change, version)
            if adopted is not None:
                return adopted
            if polls % _RETRY_POLLS == 0:
                _check_before(change, state)
                break


def _run(rt: Runtime, change: Change, lease: Lease) -> None:
    """Run (or, taken over, go on with) a change from the phase it has reached, while
    `lease` is ours; once it is not, stop without another write."""
    phase = change.plan.phase or ""
    undeploy = list(change.plan.undeploy)
    strategy = change.plan.strategy
    try:
        if change.kind is ChangeKind.RETRAIN:
            _retrain(rt, lease, change)
        elif change.plan.soak:  # a replace's soak failed: finish rolling it back
            _unwind(rt, lease, change)
        elif phase.startswith("undeploy:") and change.stop_requested_by:
            # only `_abort_deploy` undeploys after a stop without `plan.soak` (a stopped
            # soak records it first): a deploy stopped by a person, not one that is done
            _undo_stopped_deploy(rt, lease, change)
        elif phase.startswith("undeploy:") and change.operation:
            _wait(rt, lease, change, change.operation, "undeploying")
            current = phase.split(":", 1)[1]
            rest = undeploy[undeploy.index(current) + 1 :] if current in undeploy else []
            _undeploy(rt, lease, change, rest, _split_after(change))
        elif change.kind is ChangeKind.SCALE:
            _scale(rt, lease, change)
        elif change.kind is ChangeKind.DEPLOY or change.plan.mode == "redeploy":
            version = ModelVersion.parse(change.version or "")
            if not phase:
                adopted = _deploy(rt, lease, change, version)
                if adopted is not None:
                    log.info("%s: adopted deployed model %s", change.id, adopted)
                    _deployed(rt, lease, change, adopted, version.version)
                phase = change.plan.phase or ""
            if phase == "deploy_stopped":  # stopped by a person: finish taking it back
                asked = _stop_asked(rt, change)
                assert asked is not None, "a stopped deploy keeps its stop request"
                _abort_deploy(rt, lease, change, asked)
            if phase == "deploy":
                assert change.operation
                status = _wait(
                    rt,
                    lease,
                    change,
                    change.operation,
                    f"deploying {version}",
                    on_stop=lambda asked: _abort_deploy(rt, lease, change, asked),
                )
                _deployed(rt, lease, change, status.deployed_model_id, version.version)
                phase = "deployed"
            if strategy == Strategy.BLUE_GREEN.value:
                if phase == "deployed":
                    _switch(rt, lease, change, version)
                    phase = "traffic"
                if phase == "traffic":  # switched: watched, the old version still ready
                    _start_soak(rt, lease, change, version, f"{_old_label(change)} stays ready")
                    phase = "soak"
                if phase == "soak":
                    _soak(rt, lease, change, version)
            elif strategy == Strategy.REPLACE.value:
                if phase == "deployed":
                    _start_soak(rt, lease, change, version, f"{_old_label(change)} is undeployed")
                    phase = "soak"
                if phase == "soak":
                    _soak(rt, lease, change, version)
                    phase = "soaked"
                if phase == "soaked":
                    _undeploy(rt, lease, change, undeploy, _split_after(change))
            elif phase == "deployed":
                _undeploy(rt, lease, change, undeploy, _split_after(change))
        else:  # promote, rollback or undeploy by traffic shift (an undeploy shifts nothing)
            if not phase:
                state = _state(rt, lease, change)
                after = check_split(change.split_after)
                moves = after != check_split(change.split_before)
                # A worker that died after the shift but before storing it: it is done.
                if not (dict(state.traffic) == after and moves):
                    _check_before(change, state)
                    if moves:
                        lease.check()
                        rt.platform.set_traffic(_endpoint(rt, change), after)
                change = _phase(rt, lease, change, "traffic")
                phase = "traffic"
                if moves:
                    thread(
                        rt,
                        change,
                        ":twisted_rightwards_arrows: traffic now"
                        f" {split_text(change.split_after, change.labels)}",
                    )
            if phase == "traffic":
                _undeploy(rt, lease, change, undeploy, change.split_after)
    except LeaseLost:
        log.warning("%s: taken over by another worker; this one stopped", change.id)
        return
    except (_Failed, PlatformError) as exc:
        _finish(rt, lease, change, ok=False, error=str(exc))
        return
    except Exception as exc:
        log.exception("change %s failed unexpectedly", change.id)
        _finish(rt, lease, change, ok=False, error=f"unexpected error: {type(exc).__name__}")
        return
    _finish(rt, lease, change, ok=True)


def _old_label(change: Change) -> str:
    return change.labels.get(change.plan.stable_id or "", "the old version")


def soak_breach(
    health: EndpointHealth | None, deployed_model_id: str, thresholds: Thresholds
) -> tuple[str | None, int]:
    """Judge a version serving all traffic (a replace's or blue/green's new one during its
    soak, the serving one of an undeploy) against `[thresholds]` (P95 and errors, what
    pages): (why it is unhealthy, or None; how many of its requests the figures cover).
    Its own figures where the platform splits them by deployed model (it serves all
    traffic, so the endpoint's otherwise). No requests is no evidence either way: not a
    breach."""
    if health is None:
        return None, 0
    mine = health.by_model.get(deployed_model_id)
    p95 = mine.p95_latency_ms if mine else health.p95_latency_ms
    errors = mine.error_rate if mine else health.error_rate
    count = mine.request_count if mine else health.request_count
    if not count:
        return None, 0
    reasons = []
    if p95 is not None and p95 > thresholds.p95_latency_ms:
        reasons.append(f"P95 {p95:,.0f} ms > {thresholds.p95_latency_ms:,.0f} ms")
    if errors is not None and errors > thresholds.error_rate:
        reasons.append(f"errors {errors:.2%} > {thresholds.error_rate:.2%}")
    return ("; ".join(reasons) or None), count


def _switch(rt: Runtime, lease: Lease, change: Change, version: ModelVersion) -> None:
    """Blue-green: the new model is deployed (its operation done: ready to serve); all
    traffic goes to it in one traffic update. Looks before leaping: a switch already
    made (by a worker that died before storing it) is recognised, and an endpoint that
    moved since the plan voids it. On a failed update traffic stays where it was."""
    new_id = change.new_deployed_model_id
    state = _state(rt, lease, change)
    if not new_id or state.model(new_id) is None:
        raise _Failed(
            f"{version} was deployed but is not on `{change.endpoint}` now; traffic stays"
            f" {split_text(state.traffic, change.labels)}"
        )
    after = check_split(_split_after(change))
    old = _old_label(change)
    if dict(state.traffic) != after:
        _check_before(change, state)
        lease.check()
        try:
            rt.platform.set_traffic(_endpoint(rt, change), after)
        except PlatformError as exc:
            raise _Failed(
                f"switching traffic to {version.version} failed: {exc}; traffic stays on {old}"
                f" (100 %) and {version.version} stays deployed at 0 %: `/rollback"
                f" {change.endpoint}` undeploys it"
            ) from exc
    _phase(rt, lease, change, "traffic")
    thread(
        rt,
        change,
        f":twisted_rightwards_arrows: switched: {version.version} 100 % in one traffic update;"
        f" {old} stays deployed and ready at 0 %.",
    )


def _start_soak(
    rt: Runtime, lease: Lease, change: Change, version: ModelVersion, then: str
) -> None:
    """Begin the soak of a version now serving 100 % (replace, blue-green): its end is
    stored first, so a taker soaks on to the same end; the thread says what follows."""
    soak = rt.config.strategies.soak(change.plan.strategy)
    change.plan.soak_until = rt.clock() + soak
    _phase(rt, lease, change, "soak")
    thread(
        rt,
        change,
        f":hourglass_flowing_sand: {version.version} serves 100 %; watching its health until"
        f" {when(change.plan.soak_until, rt.config.timezone)} (P95 and errors within"
        f" `[thresholds]`), then {then}",
    )


def _soak(rt: Runtime, lease: Lease, change: Change, version: ModelVersion) -> None:
    """Replace and blue-green: read the new model's health every `SOAK_CHECK` until
    `soak_until`, judged against `[thresholds]`. Unhealthy: record why on the change
    (first, so a taker goes on rolling back) and roll back (`_unwind`, which raises: one
    traffic update back to the old version, the new one undeployed). Healthy: audit it
    and go on (replace: to undeploy the old version; blue-green: done, the old one kept)."""
    until = change.plan.soak_until
    assert until is not None, "a soak starts with its end"
    soak = rt.config.strategies.soak(change.plan.strategy)
    started = until - soak
    ep = _endpoint(rt, change)
    new_id = change.new_deployed_model_id or ""
    checks = requests = 0
    while True:
        now = rt.clock()
        lease.check()
        asked = _stop_asked(rt, change)
        if asked is not None:  # asked before this worker (or a dead one) looked
            _stopped(rt, lease, change, version, asked, checks, requests)
        window = max(SOAK_CHECK, min(soak, now - started))
        try:
            health = rt.platform.health([ep], window).get(ep.slug)
        except PlatformError as exc:  # no figures this time: not a verdict either way
            log.warning("%s: soak check could not read health: %s", change.id, exc)
            health = None
        why, seen = soak_breach(health, new_id, rt.config.thresholds)
        checks += 1
        requests = max(requests, seen)
        if why is not None:
            _fail_soak(
                rt,
                lease,
                change,
                f"{version.version} was unhealthy during the soak: {why}",
                f"unhealthy: {why}",
                {"checks": checks, "requests": seen, "why": why},
            )
        if now >= until:
            break
        asked = _nap(rt, change, min(SOAK_CHECK, until - now))
        if asked is not None:
            _stopped(rt, lease, change, version, asked, checks, requests)
    # Out of the soak only if nobody asked it to stop meanwhile (`Store.request_stop` wins
    # only while the phase is still `soak`): one of the two happens first, never both.
    change.plan.phase, change.operation = "soaked", None
    asked = _leave_unless_stopped(rt, lease, change, plan=change.plan, operation=None)
    if asked is not None:
        change.plan.phase = "soak"
        _stopped(rt, lease, change, version, asked, checks, requests)
    seen_text = f"{requests:,} requests" if requests else "no requests (no evidence either way)"
    rt.auditor.record(
        AuditAction.SOAK,
        BOT.id,
        "healthy",
        change=change,
        parameters={"checks": checks, "requests": requests, "soak_s": soak.total_seconds()},
    )
    old = _old_label(change)
    then = (
        f"{old} stays deployed and ready at 0 %. `/promote {change.endpoint}` undeploys it,"
        f" `/rollback {change.endpoint}` switches back."
        if change.plan.strategy == Strategy.BLUE_GREEN.value
        else f"undeploying {old}"
    )
    thread(
        rt,
        change,
        f":white_check_mark: {version.version} healthy through the soak ({checks} checks,"
        f" {seen_text}); {then}",
    )


def _stop_asked(rt: Runtime, change: Change) -> Change | None:
    """The change as stored if someone asked it to stop (`Store.request_stop`), else None."""
    stored = rt.store.get_change(change.id)
    return stored if stored is not None and stored.stop_requested_by else None


def _nap(rt: Runtime, change: Change, length: timedelta) -> Change | None:
    """Sleep `length` in steps of `STOP_POLL`, looking for a stop request after each; the
    change as stored once one is found (the rest of the nap is skipped)."""
    left = length
    while left > timedelta(0):
        step = min(STOP_POLL, left)
        rt.sleep(step.total_seconds())
        left -= step
        asked = _stop_asked(rt, change)
        if asked is not None:
            return asked
    return None


def _stopped(
    rt: Runtime,
    lease: Lease,
    change: Change,
    version: ModelVersion,
    asked: Change,
    checks: int,
    requests: int,
) -> None:
    """A person's `/rollback` during the soak: record who and why on the change (first, so
    a taker goes on rolling back), audit the soak's end, then roll back as an unhealthy
    soak does (`_unwind`, which raises)."""
    if not change.plan.incident:  # stopped under an incident declared during the soak
        incident = links.open_incident(rt, change.endpoint)
        if incident is not None:
            change.plan.incident = incident.id
    by = asked.stop_requested_by or ""
    _fail_soak(
        rt,
        lease,
        change,
        f"{version.version} was stopped during the soak at {_request_of(asked)}",
        f"stopped: rollback asked by {mention(by)}",
        {"checks": checks, "requests": requests, "stop_requested_by": by},
    )


def _abort_deploy(rt: Runtime, lease: Lease, change: Change, asked: Change) -> None:
    """A person's `/rollback` while the change's deploy was running: record it (phase
    `deploy_stopped`, so a taker finishes it), cancel the operation if it still runs (best
    effort: a deploy the platform finishes anyway is taken back below), wait for it to end,
    then, if the deployed model landed, put traffic back (`restore_split`) and undeploy it.
    Always raises `_Failed`, naming who stopped it and why."""
    operation = change.operation
    _phase(rt, lease, change, "deploy_stopped", operation)
    cancelled = "it had no operation on record"
    if operation:
        try:
            status = rt.platform.operation(operation)
        except PlatformError as exc:
            status = None
            cancelled = f"its deploy could not be read ({exc})"
        if status is not None and status.done:
            cancelled = (
                f"its deploy had already ended with an error ({status.error})"
                if status.error
                else "its deploy had already finished"
            )
        elif status is not None:
            try:
                lease.check()
                rt.platform.cancel_operation(operation)
                cancelled = "its deploy was cancelled"
            except PlatformError as exc:
                cancelled = f"its deploy could not be cancelled ({exc})"
        while not rt.platform.operation(operation).done:
            lease.check()
            rt.sleep(rt.poll_seconds)
    state = _state(rt, lease, change)
    version = ModelVersion.parse(change.version or "")
    landed = _ours(state, change, version)
    head = f"{_deploy_stopped_by(asked)}; {cancelled}"
    if landed is None:
        raise _Failed(f"{head}; nothing of it is deployed")
    change.new_deployed_model_id = landed
    change.plan.labels.setdefault(landed, version.version)
    # what landed, on the change itself (the dossier's "New deployed model")
    _write(rt, lease, change, new_deployed_model_id=landed, plan=change.plan)
    restore = check_split(change.restore_split)
    if dict(state.traffic) != restore and restore:
        lease.check()
        rt.platform.set_traffic(_endpoint(rt, change), restore)
    _undeploy(rt, lease, change, [landed], restore)
    raise _taken_back(asked, restore, change, cancelled)


def _request_of(asked: Change) -> str:
    """`<@U…>'s request (reason)`: who stopped a change, and their typed reason escaped —
    it goes into the thread, the failure and the requester's DM as mrkdwn, so it must not
    @channel, mention or forge a link."""
    why = f" ({escape(asked.stop_reason)})" if asked.stop_reason else ""
    return f"{mention(asked.stop_requested_by or '')}'s request{why}"


def _deploy_stopped_by(asked: Change) -> str:
    """How a deploy stopped by a person (`_abort_deploy`) begins its failure."""
    return f"stopped before its deploy finished, at {_request_of(asked)}"


def _taken_back(
    asked: Change, restore: dict[str, int], change: Change, cancelled: str | None = None
) -> _Failed:
    """The failure of a stopped deploy whose model had landed and was taken back (what
    became of its operation, `cancelled`, when this worker tried to cancel it)."""
    head = _deploy_stopped_by(asked) + (f"; {cancelled}" if cancelled else "")
    version = ModelVersion.parse(change.version or "").version
    return _Failed(
        f"{head}; it had landed: traffic back to {split_text(restore, change.labels)} and"
        f" {version} undeployed"
    )


def _undo_stopped_deploy(rt: Runtime, lease: Lease, change: Change) -> None:
    """Taken over from a worker that stopped while `_abort_deploy` undeployed the version
    that landed (phase `undeploy:<id>`; traffic went back before that undeploy began):
    wait for that undeploy (or start it again if it failed to leave), then fail the
    change as `_abort_deploy` does. Always raises `_Failed`."""
    landed = (change.plan.phase or "").split(":", 1)[1]
    restore = check_split(change.restore_split)
    if change.operation:
        _wait(
            rt, lease, change, change.operation, f"undeploying {change.labels.get(landed, landed)}"
        )
    _undeploy(rt, lease, change, [landed], restore)
    raise _taken_back(change, restore, change)


def _fail_soak(
    rt: Runtime, lease: Lease, change: Change, why: str, outcome: str, parameters: dict[str, Any]
) -> None:
    """End a soak that must not pass (unhealthy, or stopped by a person): record `why` on
    the change first (so a taker goes on rolling back), audit the soak's `outcome`, then
    roll back (`_unwind`, which raises)."""
    change.plan.soak = why
    _phase(rt, lease, change, "soak_failed")
    rt.auditor.record(AuditAction.SOAK, BOT.id, outcome, change=change, parameters=parameters)
    _unwind(rt, lease, change)


def _unwind(rt: Runtime, lease: Lease, change: Change) -> None:
    """A replace or blue-green whose soak failed: traffic back on the old model in one
    update, the new model undeployed (each looked at first, so a taker repeats neither),
    then the change fails with why. Always raises `_Failed`."""
    why = change.plan.soak or "the soak failed"
    old_id, new_id = change.plan.stable_id or "", change.new_deployed_model_id or ""
    old = _old_label(change)
    if change.plan.phase and change.plan.phase.startswith("undeploy:") and change.operation:
        _wait(rt, lease, change, change.operation, "undeploying")
    state = _state(rt, lease, change)
    restore = check_split(change.restore_split)
    if dict(state.traffic) != restore and state.model(new_id) is not None:
        if state.model(old_id) is None:
            raise _Failed(
                f"{why}; {old} is no longer deployed, so traffic could not go back to it"
                f" (now {split_text(state.traffic, change.labels)})"
            )
        lease.check()
        rt.platform.set_traffic(_endpoint(rt, change), restore)
        thread(rt, change, f":rewind: {why}; traffic back on {old} (100 %)")
    if new_id:
        _undeploy(rt, lease, change, [new_id], restore)
    raise _Failed(f"{why}; rolled back: {old} serves 100 % and the new version is undeployed")


def _scale(rt: Runtime, lease: Lease, change: Change) -> None:
    """Change a deployed model's (min, max) replicas with one long-running mutate, looking
    before leaping: replicas already as planned (a worker that died after the call) are
    adopted; replicas neither as planned nor as they were mean the endpoint moved (void);
    a mutate the platform says is running is waited for."""
    target, want = change.plan.target_id or "", change.plan.replicas_after
    assert want is not None, "a scale plans its replicas"
    label = change.labels.get(target, target)
    phase = change.plan.phase or ""
    if not phase:
        state = _state(rt, lease, change)
        model = state.model(target)
        if model is None:
            raise _Failed(f"{label} is no longer deployed on `{change.endpoint}`; nothing was done")
        _check_before(change, state)
        now = (model.replicas, model.max_replicas)
        if now == want:
            log.info("%s: replicas already as planned; adopted", change.id)
            _phase(rt, lease, change, "mutated")
            phase = "mutated"
        elif change.plan.replicas_before is not None and now[0] != change.plan.replicas_before[0]:
            raise _Failed(
                f"{label} on `{change.endpoint}` runs min {now[0]} replicas, not the"
                f" {change.plan.replicas_before[0]} this change was planned from; nothing was"
                " done — plan it again"
            )
        else:
            name = _begin_mutate(rt, lease, change, target, want)
            if name is None:
                phase = "mutated"
            else:
                _phase(rt, lease, change, "mutate", name)
                phase = "mutate"
    if phase == "mutate" and change.operation:
        _wait(rt, lease, change, change.operation, f"scaling {label}")
    thread(
        rt,
        change,
        f":gear: {label} on `{change.endpoint}` now runs min {want[0]} · max {want[1]} replicas",
    )


def _begin_mutate(
    rt: Runtime, lease: Lease, change: Change, target: str, want: tuple[int, int]
) -> str | None:
    """Start the mutate (its operation's name); None once the replicas are as wanted. If
    the platform says a mutate of the model is running (a worker of this change started
    it and stopped), wait for the replicas to arrive."""
    ep = _endpoint(rt, change)
    deadline = rt.clock() + ADOPT_WAIT
    polls = 0
    while True:
        lease.check()
        try:
            return rt.platform.begin_mutate(ep, target, want[0], want[1])
        except PlatformError as exc:
            if exc.kind != "already_exists":
                raise
        while True:
            if rt.clock() > deadline:
                raise _Failed(
                    f"a scale of {target} for {change.id} was already running and did not"
                    f" finish within {int(ADOPT_WAIT.total_seconds() // 60)} min"
                )
            rt.sleep(rt.poll_seconds)
            polls += 1
            model = _state(rt, lease, change).model(target)
            if model is not None and (model.replicas, model.max_replicas) == want:
                return None
            if polls % _RETRY_POLLS == 0:
                break


def _retrain(rt: Runtime, lease: Lease, change: Change) -> None:
    """Run a retrain's training pipeline: submit the job (looking first for one labelled
    with this change and its run key, which a worker that died after submitting it left
    without a stored name: adopted, never submitted twice), store its name, poll it until
    it ends, and record the version it registered. A run that fails, is cancelled, or
    succeeds without a version the bot can name fails the change saying so."""
    spec = RetrainSpec.from_json(change.plan.pipeline)
    registry = rt.registry
    if spec is None or registry is None:
        why = "its pipeline plan cannot be read" if spec is None else "no model registry is wired"
        raise _Failed(f"{why}; nothing was submitted")
    env = rt.config.environments.get(spec.environment)
    if env is None:
        raise _Failed(
            f"environment `{spec.environment}` is no longer in the config; nothing was submitted"
        )
    env = replace(env, project=spec.project, region=spec.region)  # where it was approved to run
    labels = spec.labels(change.id)
    name = change.operation
    if not name:
        lease.check()
        name = registry.find_pipeline(spec.model, labels, env)
        how = "adopted"
        if name is None:
            lease.check()
            try:
                name = registry.begin_pipeline(
                    spec.model,
                    spec.template,
                    spec.parameters,
                    labels,
                    env,
                    display_name=f"retrain {spec.model} {change.id}",
                    pipeline_root=spec.pipeline_root,
                )
            except PlatformError as exc:
                if exc.kind != "unavailable":
                    raise
                # the answer was lost, not necessarily the job: look again before failing
                found = registry.find_pipeline(spec.model, labels, env)
                if found is None:
                    raise
                name = found
            how = "submitted"
        else:
            log.info("%s: adopted pipeline job %s", change.id, name)
        _phase(rt, lease, change, "pipeline", name)
        rt.auditor.record(
            AuditAction.PIPELINE_SUBMITTED,
            BOT.id,
            how,
            change=change,
            parameters={
                "pipeline_job": name,
                "template": spec.template,
                "parameters": spec.parameters,
                "labels": labels,
                "project": spec.project,
                "region": spec.region,
            },
        )
        thread(
            rt,
            change,
            f":gear: pipeline job `{name}` {how} in `{env.project}` ({env.region}); polled"
            f" every {PIPELINE_POLL_SECONDS:g} s",
        )
    last: PipelineState | None = None
    while True:
        lease.check()
        run = registry.pipeline_status(name, spec.model, env)
        if run.state is not last and not run.done:
            thread(rt, change, f":hourglass_flowing_sand: pipeline job {run.state.value}")
        last = run.state
        if run.done:
            break
        rt.sleep(max(rt.poll_seconds, PIPELINE_POLL_SECONDS))
    if run.state is not PipelineState.SUCCEEDED:
        raise _Failed(f"the pipeline job {run.state.value}: {run.error or 'no reason given'}")
    if run.registered_version is None:
        raise _Failed(
            "the pipeline job succeeded but the registry holds no version of"
            f" `{spec.model}` from it with a semantic version alias"
            + (
                f" (it registered version id {run.registered_id}: give it an alias such as"
                " `v1-2-2` to deploy it)"
                if run.registered_id
                else " (did it register one?)"
            )
        )
    # the run's outcome, not its plan: `version` is in the plan hash approvers were bound to
    registered = f"{spec.model}@{run.registered_version}"
    change.plan.registered_version = registered
    change.plan.phase = "registered"
    _write(rt, lease, change, plan=change.plan)
    rt.auditor.record(
        AuditAction.MODEL_REGISTERED,
        BOT.id,
        f"{registered} registered, validation pending",
        change=change,
        parameters={
            "version": registered,
            "registry_id": run.registered_id,
            "pipeline_job": name,
            "dataset": spec.parameters.get("dataset"),
        },
    )


def _finish(
    rt: Runtime, lease: Lease, change: Change, *, ok: bool, error: str | None = None
) -> None:
    new = ChangeState.SUCCEEDED if ok else ChangeState.FAILED
    plan = replace(change.plan, phase="done")
    done = rt.store.transition(
        change.id,
        ChangeState.RUNNING,
        new,
        holder=lease.owner,
        error=error,
        updated_at=rt.clock(),
        plan=plan,
    )
    if done is None:
        log.warning("%s: not finished here: it moved on, or another worker took it", change.id)
        return
    verdict = ":white_check_mark: succeeded" if ok else f":x: failed: {error}"
    state: EndpointState | None = None
    if done.kind is ChangeKind.RETRAIN:  # no endpoint moved: say what the registry gained
        registered = done.plan.registered_version
        now_line = (
            f"`{registered}` is registered, validation pending: `/aiops models {done.subject}`."
            if registered
            else f"No version of `{done.subject}` was registered from it."
        )
        parameters: dict[str, object] = {"pipeline_job": done.operation, "registered": registered}
        told = now_line
    else:
        try:
            state = rt.platform.endpoint_state(_endpoint(rt, done))
            state_after = state.describe()
        except PlatformError as exc:
            state_after = f"unknown ({exc})"
        now_line = f"`{done.endpoint}` now serves {state_after}."
        parameters = {"traffic_now": state_after, "operation": done.operation}
        told = f"Now: {state_after}."
    announce(
        rt,
        done,
        AuditAction.EXECUTION_FINISHED,
        BOT.id,
        "succeeded" if ok else f"failed: {error}",
        parameters=parameters,
    )
    thread(rt, done, f"{verdict}. {now_line}")
    links.moved(rt, done, f"{done.id} ({done.kind.value}) {verdict}. {now_line}")
    tell(rt, done.requester_id, f"{done.id} ({done.kind.value} {done.subject}) {verdict}. {told}")
    if ok:  # one version at 100 % in prod: the registry's serving alias follows it
        after_change(rt, done, state)
