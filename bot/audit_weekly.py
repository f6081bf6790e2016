"""The weekly full verify of the audit chain, run by the scheduler once across replicas.

Every week (Sunday 03:00 in the config's zone, when nothing else runs) the scheduler
re-reads the whole chain (`verify --full`, not only the rows since the last checkpoint),
records the checkpoint, writes its head to the `aiops-audit` log (the witness outside the
database) and audits the result as `audit_verified`. The next morning digest shows it
(`commands.digests` reads that row). Exactly once: it is a scheduler cron job, so its run
key in `scheduler_run` lets one replica run it.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, time
from typing import TYPE_CHECKING

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from commands.audit import AuditAction
from commands.model import SCHEDULER
from commands.runtime import Runtime

if TYPE_CHECKING:
    from bot.scheduler import Scheduler

log = logging.getLogger(__name__)

JOB = "audit:verify-weekly"
ACTION = AuditAction.AUDIT_VERIFIED  # the audit row the morning digest reads
DAY = "sun"
AT = time(3, 0)


def add_weekly_verify(scheduler: Scheduler, *, day: str = DAY, at: time = AT) -> str:
    """Register the job (before the scheduler starts)."""
    trigger = CronTrigger(
        day_of_week=day, hour=at.hour, minute=at.minute, timezone=scheduler.rt.config.timezone
    )
    scheduler.add_cron(
        JOB, trigger, functools.partial(run_weekly_verify, scheduler.rt, scheduler.engine)
    )
    return JOB


def run_weekly_verify(rt: Runtime, engine: Engine, scheduled_for: datetime, late: bool) -> str:
    """Verify the whole chain, witness its head, audit the result; returns the run's outcome."""
    from bot.store.audit_chain import verify, witness

    result = verify(engine, from_checkpoint=False, record=True, now=rt.clock())
    witnessed: bool | str = False
    for sink in rt.auditor.sinks:
        if hasattr(sink, "write_checkpoint"):
            try:
                witnessed = witness(result, sink, at=rt.clock(), full=True)  # type: ignore[arg-type]
            except Exception as exc:
                log.exception("weekly audit verify: checkpoint not written to the log")
                witnessed = f"failed: {type(exc).__name__}"
    problem = result.problem
    rt.auditor.record(
        ACTION,
        SCHEDULER.id,
        "intact" if result.ok else "broken",
        parameters={
            "full": True,
            "checked": result.checked,
            "from": result.started_from,
            "head_id": result.head_id,
            "head_hash": result.head_hash,
            "problem": problem.kind if problem else None,
            "problem_row": problem.row_id if problem else None,
            "detail": problem.detail if problem else None,
            "witnessed_in_log": witnessed,
            "scheduled_for": scheduled_for.isoformat(),
            "late": late,
        },
    )
    if not result.ok:
        log.error("weekly audit verify: %s", result.message())
    return result.message()[:300]
