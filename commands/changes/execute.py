"""Running an approved change on the platform: deploy / shift traffic / undeploy, its
long-running operations polled and stored so a restarted bot resumes them; and how a
change tells people (its card, its thread, the requester)."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace

from commands.audit import AuditAction
from commands.changes.tell import announce, tell, thread
from commands.config import Endpoint
from commands.messages import split_text
from commands.model import BOT, NEW, Change, ChangeKind, ChangeState, ModelVersion, check_split
from commands.ports import OperationStatus, PlatformError
from commands.runtime import Runtime

log = logging.getLogger(__name__)


class _Failed(Exception):
    pass


def start(rt: Runtime, change: Change) -> None:
    """Run an approved change after the ack (a scheduled one waits for the scheduler)."""
    run_at = change.plan.run_at
    if run_at and run_at > rt.clock():
        return
    rt.background.submit(lambda: execute(rt, change.id))


def execute(rt: Runtime, change_id: str) -> None:
    change = rt.store.transition(
        change_id, ChangeState.APPROVED, ChangeState.RUNNING, updated_at=rt.clock()
    )
    if change is None:
        return  # someone else runs it, or it is no longer approved: never twice
    announce(
        rt,
        change,
        AuditAction.EXECUTION_STARTED,
        BOT.id,
        "running",
        parameters={"plan": change.split_after, "kind": change.kind.value},
    )
    _run(rt, change)


def resume(rt: Runtime) -> int:
    """Finish the story of changes that were approved or running when the bot stopped."""
    count = 0
    for change in rt.store.list_changes(states=[ChangeState.RUNNING], limit=1000):
        count += 1
        rt.auditor.record(
            AuditAction.EXECUTION_RESUMED,
            BOT.id,
            "resumed after restart",
            change=change,
            parameters={"operation": change.operation, "phase": change.plan.phase},
        )
        rt.background.submit(functools.partial(_run, rt, change))
    for change in rt.store.list_changes(states=[ChangeState.APPROVED], limit=1000):
        count += 1
        start(rt, change)
    return count


def _endpoint(rt: Runtime, change: Change) -> Endpoint:
    return rt.config.endpoints[change.endpoint]


def _phase(rt: Runtime, change: Change, phase: str, operation: str | None = None) -> Change:
    change.plan.phase = phase
    change.operation = operation
    rt.store.update_change(change.id, plan=change.plan, operation=operation)
    return change


def _wait(rt: Runtime, change: Change, name: str, what: str) -> OperationStatus:
    last_reported = -1
    while True:
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


def _check_before(rt: Runtime, change: Change) -> None:
    """The plan was approved against a state; if the endpoint moved since, it is void."""
    state = rt.platform.endpoint_state(_endpoint(rt, change))
    if dict(state.traffic) != change.split_before:
        labels = {d.id: d.version.version for d in state.deployed}
        raise _Failed(
            "the endpoint changed since this change was planned"
            f" (planned from {split_text(change.split_before, labels)}, now"
            f" {split_text(state.traffic, labels)}); nothing was done — plan it again"
        )


def _undeploy(rt: Runtime, change: Change, ids: list[str], split: dict[str, int]) -> None:
    ep = _endpoint(rt, change)
    for dm_id in ids:
        name = rt.platform.begin_undeploy(ep, dm_id, split)
        _phase(rt, change, f"undeploy:{dm_id}", name)
        _wait(rt, change, name, f"undeploying {change.labels.get(dm_id, dm_id)}")


def _split_after(change: Change) -> dict[str, int]:
    """The split after the change, with "0" named by the new deployed model once known."""
    new = change.new_deployed_model_id or NEW
    return {new if k == NEW else k: v for k, v in change.split_after.items()}


def _run(rt: Runtime, change: Change) -> None:
    """Run (or, after a restart, go on with) a change from the phase it has reached."""
    ep = _endpoint(rt, change)
    phase = change.plan.phase or ""
    undeploy = list(change.plan.undeploy)
    try:
        if phase.startswith("undeploy:") and change.operation:
            _wait(rt, change, change.operation, "undeploying")
            current = phase.split(":", 1)[1]
            rest = undeploy[undeploy.index(current) + 1 :] if current in undeploy else []
            _undeploy(rt, change, rest, _split_after(change))
        elif change.kind is ChangeKind.DEPLOY or change.plan.mode == "redeploy":
            version = ModelVersion.parse(change.version or "")
            if not phase:
                _check_before(rt, change)
                name = rt.platform.begin_deploy(ep, version, check_split(change.split_after))
                change = _phase(rt, change, "deploy", name)
                phase = "deploy"
            if phase == "deploy":
                assert change.operation
                status = _wait(rt, change, change.operation, f"deploying {version}")
                change.new_deployed_model_id = status.deployed_model_id
                if status.deployed_model_id:
                    change.plan.labels[status.deployed_model_id] = version.version
                rt.store.update_change(
                    change.id,
                    new_deployed_model_id=status.deployed_model_id,
                    plan=change.plan,
                )
                _undeploy(rt, change, undeploy, _split_after(change))
        else:  # promote or rollback by traffic shift
            if not phase:
                _check_before(rt, change)
                rt.platform.set_traffic(ep, check_split(change.split_after))
                change = _phase(rt, change, "traffic")
                phase = "traffic"
                thread(
                    rt,
                    change,
                    f":twisted_rightwards_arrows: traffic now {split_text(change.split_after, change.labels)}",
                )
            if phase == "traffic":
                _undeploy(rt, change, undeploy, change.split_after)
    except (_Failed, PlatformError) as exc:
        _finish(rt, change, ok=False, error=str(exc))
        return
    except Exception as exc:
        log.exception("change %s failed unexpectedly", change.id)
        _finish(rt, change, ok=False, error=f"unexpected error: {type(exc).__name__}")
        return
    _finish(rt, change, ok=True)


def _finish(rt: Runtime, change: Change, *, ok: bool, error: str | None = None) -> None:
    new = ChangeState.SUCCEEDED if ok else ChangeState.FAILED
    plan = replace(change.plan, phase="done")
    done = rt.store.transition(
        change.id, ChangeState.RUNNING, new, error=error, updated_at=rt.clock(), plan=plan
    )
    if done is None:
        return
    state_after = None
    try:
        state = rt.platform.endpoint_state(_endpoint(rt, done))
        state_after = state.describe()
    except PlatformError as exc:
        state_after = f"unknown ({exc})"
    announce(
        rt,
        done,
        AuditAction.EXECUTION_FINISHED,
        BOT.id,
        "succeeded" if ok else f"failed: {error}",
        parameters={"traffic_now": state_after, "operation": done.operation},
    )
    verdict = ":white_check_mark: succeeded" if ok else f":x: failed: {error}"
    thread(rt, done, f"{verdict}. `{done.endpoint}` now serves {state_after}.")
    tell(
        rt,
        done.requester_id,
        f"{done.id} ({done.kind.value} {done.endpoint}) {verdict}. Now: {state_after}.",
    )
