"""Changes scheduled with `at=`: starting those that fall due (the time itself is parsed by
`commands.parsing.parse_at`)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from commands.audit import AuditAction
from commands.changes.execute import execute
from commands.changes.rules import frozen_now
from commands.changes.tell import announce, tell, thread
from commands.messages import when
from commands.model import OPEN_STATES, SCHEDULER, Change, ChangeState
from commands.runtime import Runtime

# --- scheduled changes -----------------------------------------------------------------


def run_at(change: Change) -> datetime | None:
    return change.plan.run_at


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def is_later(change: Change, now: datetime) -> bool:
    """A scheduled change whose time has not come: approval must not start it."""
    at = run_at(change)
    return at is not None and at > now


def scheduled_changes(
    rt: Runtime,
    environment: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Change]:
    """Open changes scheduled in [start, end), soonest first."""
    out = []
    for change in rt.store.list_changes(states=sorted(OPEN_STATES), limit=1000):
        at = run_at(change)
        if at is None or (environment and change.environment != environment):
            continue
        if (start is None or at >= start) and (end is None or at < end):
            out.append(change)
    return sorted(out, key=lambda c: run_at(c) or c.created_at)


def _fail_scheduled(
    rt: Runtime, change: Change, old: ChangeState, new: ChangeState, why: str
) -> Change | None:
    now = rt.clock()
    fields: dict[str, Any] = {"error": why, "updated_at": now}
    if new is ChangeState.EXPIRED:
        fields |= {"decided_by": SCHEDULER.id, "decided_at": now}
    done = rt.store.transition(change.id, old, new, **fields)
    if done is None:
        return None
    announce(
        rt,
        done,
        AuditAction.SCHEDULED_RUN,
        SCHEDULER.id,
        new.value,
        line=f":x: {why}",
        parameters={"run_at": _iso(run_at(change)), "state_before": old.value, "why": why},
    )
    tell(rt, done.requester_id, f"{done.id} ({done.kind.value} {done.subject}): {why}")
    return done


def start_due_changes(rt: Runtime, grace: timedelta = timedelta(hours=2)) -> list[tuple[str, str]]:
    """Start scheduled changes whose time has come, if approved; fail the rest, clearly.

    Returns (change id, what happened) pairs. Safe to call from every replica: every move
    is a compare-and-set, and the run itself is `execute`'s approved → running.
    """
    now = rt.clock()
    out: list[tuple[str, str]] = []
    for change in rt.store.list_changes(
        states=[ChangeState.PENDING_APPROVAL, ChangeState.APPROVED], limit=1000
    ):
        at = run_at(change)
        if at is None or at > now:
            continue
        stamp = when(at, rt.config.timezone)
        if change.state is not ChangeState.APPROVED:
            why = (
                f"{change.id} was scheduled for {stamp} but was not approved by then; it did not"
                " run. Plan it again with a new `at=`."
            )
            if _fail_scheduled(rt, change, change.state, ChangeState.EXPIRED, why):
                out.append((change.id, "expired"))
            continue
        if now - at > grace:
            why = (
                f"{change.id} was scheduled for {stamp} and missed its time by more than"
                f" {_span(grace)} (the bot was not running); it did not run. Plan it again."
            )
            if _fail_scheduled(rt, change, ChangeState.APPROVED, ChangeState.FAILED, why):
                out.append((change.id, "failed"))
            continue
        frozen = frozen_now(rt, change)
        if frozen is not None:
            why = (
                f"{change.id} was scheduled for {stamp} but did not run: {frozen.message}."
                " Plan it again for after the freeze."
            )
            if _fail_scheduled(rt, change, ChangeState.APPROVED, ChangeState.FAILED, why):
                out.append((change.id, "frozen"))
            continue
        holder = rt.store.open_change(change.endpoint)
        if holder is not None and holder.id != change.id:
            why = f"{change.id} could not run at {stamp}: `{change.endpoint}` is busy with {holder.id}."
            if _fail_scheduled(rt, change, ChangeState.APPROVED, ChangeState.FAILED, why):
                out.append((change.id, "failed"))
            continue
        rt.auditor.record(
            AuditAction.SCHEDULED_RUN,
            SCHEDULER.id,
            "starting",
            change=change,
            parameters={
                "run_at": _iso(run_at(change)),
                "late_by_s": int((now - at).total_seconds()),
            },
        )
        thread(rt, change, f":alarm_clock: {stamp}: starting {change.id} as scheduled.")
        rt.background.submit(functools.partial(execute, rt, change.id))
        out.append((change.id, "started"))
    return out


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def describe_runs(pairs: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{cid} {what}" for cid, what in pairs) or "nothing due"
