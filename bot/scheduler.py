"""The scheduler inside `aiops-bot serve`: digests on cron triggers, housekeeping on an
interval, exactly once however many replicas run.

APScheduler 3 (BackgroundScheduler) keeps the digest jobs in the bot's database
(SQLAlchemyJobStore, table `apscheduler_jobs`), with cron triggers in each environment's
zone. APScheduler alone does not stop two replicas sharing a job store from both running
a job, so every run first inserts a *run key* — (job, scheduled time) under a primary
key — into `scheduler_run`; whoever inserts it runs the job, everyone else skips it.

After downtime, a digest whose time passed less than `misfire_grace` ago is posted once,
marked late; one older than that is recorded as missed (and audited) but never posted.
Interval jobs (approval expiry and scheduled changes, the takeover of stranded changes,
the canary watch, budget alerts) use run keys on a grid aligned to the epoch, so replicas
share the slots. Budget alerts also claim one key per (environment, day, percentage):
`budget:<environment>:<percent>` at the day's local midnight, never pruned (a few a day).
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.store.schedule_tables import APSCHEDULER_TABLE, SchedulerRunRow
from commands.audit import AuditAction
from commands.changes.approve import expire_due
from commands.changes.execute import take_over, takeover_seconds
from commands.changes.schedule import describe_runs, start_due_changes
from commands.cost import budget
from commands.cost.settings import cost_settings
from commands.digests.post import post
from commands.digests.schedule import DigestKind, DigestSettings, digest_settings
from commands.incidents import paging
from commands.model import SCHEDULER
from commands.runtime import Runtime

log = logging.getLogger(__name__)

GRID_ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)  # interval slots are counted from here
INTERVAL_KEYS_KEPT = timedelta(days=2)


def key_time(moment: datetime) -> datetime:
    """A scheduled time as stored in a run key: UTC, whole seconds."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(microsecond=0)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RunKeys:
    """The `scheduler_run` table: INSERT decides who runs a (job, scheduled time)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(
        self,
        job: str,
        scheduled_for: datetime,
        owner: str,
        now: datetime,
        *,
        late: bool = False,
        outcome: str | None = None,
    ) -> bool:
        row = {
            "job": job,
            "scheduled_for": key_time(scheduled_for),
            "claimed_by": owner[:64],
            "claimed_at": now,
            "late": late,
            "outcome": outcome,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(SchedulerRunRow).values(**row))
        except IntegrityError:
            return False
        return True

    def finish(self, job: str, scheduled_for: datetime, outcome: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(SchedulerRunRow)
                .where(
                    col(SchedulerRunRow.job) == job,
                    col(SchedulerRunRow.scheduled_for) == key_time(scheduled_for),
                )
                .values(outcome=outcome[:300], finished_at=now)
            )

    def runs(self, job: str | None = None) -> list[SchedulerRunRow]:
        query = select(SchedulerRunRow).order_by(
            col(SchedulerRunRow.scheduled_for), col(SchedulerRunRow.job)
        )
        if job is not None:
            query = query.where(SchedulerRunRow.job == job)
        with Session(self.engine) as session:
            rows = list(session.exec(query).all())
        for r in rows:
            r.scheduled_for = _utc(r.scheduled_for) or r.scheduled_for
            r.claimed_at = _utc(r.claimed_at) or r.claimed_at
        return rows

    def prune(self, prefix: str, before: datetime) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(SchedulerRunRow).where(
                    col(SchedulerRunRow.job).startswith(prefix),
                    col(SchedulerRunRow.scheduled_for) < key_time(before),
                )
            )
            return int(result.rowcount)


@dataclass
class JobSpec:
    id: str
    trigger: CronTrigger | IntervalTrigger
    run: Callable[[datetime, bool], str]  # (scheduled time, late) → outcome
    interval: float | None = None  # seconds, for interval jobs
    # scheduled time → the time its run is keyed by (digests: their local date's one time)
    key: Callable[[datetime], datetime] | None = None

    @property
    def persistent(self) -> bool:
        return self.interval is None


@dataclass(frozen=True)
class RunResult:
    job: str
    scheduled_for: datetime
    ran: bool
    late: bool
    outcome: str


def _run_by_id(job_id: str) -> None:
    """What APScheduler stores as a job's function. Never called: the scheduler's own
    executor runs jobs by id, so that the live scheduler (and its runtime) runs them."""
    raise RuntimeError(f"job {job_id} ran outside its scheduler")


class _Executor(BaseExecutor):  # type: ignore[misc]
    """Hands APScheduler's due run times to `Scheduler.fire` on a small thread pool."""

    def __init__(self, owner: Scheduler, workers: int = 4) -> None:
        super().__init__()
        self._owner = owner
        self._pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="aiops-scheduler"
        )

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def work() -> None:
            for run_time in run_times:
                self._owner.fire(job.id, run_time)

        def done(future: concurrent.futures.Future[None]) -> None:
            exc = future.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, [])

        self._pool.submit(work).add_done_callback(done)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait)


def default_owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Scheduler:
    """Digests, housekeeping and any interval work, run once across replicas."""

    def __init__(
        self,
        rt: Runtime,
        engine: Engine,
        *,
        settings: DigestSettings | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.rt = rt
        self.engine = engine
        self.settings = settings or digest_settings(rt.config)
        self.owner = owner or default_owner()
        self.clock = clock or rt.clock
        self.keys = RunKeys(engine)
        self.jobs: dict[str, JobSpec] = {}
        self.aps: BackgroundScheduler | None = None
        self._lock = threading.Lock()
        for env, sched in self.settings.schedules.items():
            for kind in DigestKind:
                at = sched.at(kind)
                if at is None:
                    continue
                trigger = CronTrigger(
                    day_of_week=sched.cron_days,
                    hour=at.hour,
                    minute=at.minute,
                    timezone=sched.timezone,
                )
                self.add_cron(
                    f"digest:{kind.value}:{env}",
                    trigger,
                    functools.partial(self._digest, kind, env),
                    key=functools.partial(sched.local_date_key, kind),
                )
        self.add_interval("housekeeping", self.settings.housekeeping_seconds, self._housekeeping)
        # Stranded changes (their worker stopped heartbeating) are taken over by a live
        # process of any replica within the lease's TTL plus this interval (10 s, or a
        # third of a shorter lease).
        self.add_interval("takeover", takeover_seconds(rt.lease_ttl), self._take_over)
        # Pages an incident owes the on-call that no process attempted (lost with the process
        # that was to send them after its reply): sent once across replicas.
        if rt.incidents is not None:
            self.add_interval("pages", paging.PAGE_SWEEP_SECONDS, self._send_owed_pages)
        # Budget alerts: each (environment, day, percentage) is claimed as its own run key,
        # so it is posted once whichever replica's check sees it first (commands/cost/budget.py).
        cost = cost_settings(rt.config)
        if cost.budget_alerts:
            self.add_interval(
                "budget", cost.budget_check_every.total_seconds(), self._check_budgets
            )

    # jobs ------------------------------------------------------------------------------

    def add_cron(
        self,
        job_id: str,
        trigger: CronTrigger,
        run: Callable[[datetime, bool], str],
        key: Callable[[datetime], datetime] | None = None,
    ) -> None:
        self.jobs[job_id] = JobSpec(job_id, trigger, run, key=key)

    def add_interval(self, name: str, seconds: float, fn: Callable[[Runtime], object]) -> str:
        """Run `fn(rt)` every `seconds`, once per slot across replicas (e.g. the canary
        watch: `scheduler.add_interval("canary", 30, canary.check_due)`)."""
        if seconds <= 0:
            raise ValueError("an interval must be positive")
        job_id = f"every:{name}"

        def run(_: datetime, __: bool) -> str:
            result = fn(self.rt)
            if isinstance(result, list | tuple | set | dict):
                return f"ok ({len(result)})"
            return "ok" if result is None else str(result)[:200]

        trigger = IntervalTrigger(seconds=seconds, start_date=GRID_ORIGIN, timezone=UTC)
        self.jobs[job_id] = JobSpec(job_id, trigger, run, interval=seconds)
        if self.aps is not None:
            self._add_to_aps(self.jobs[job_id])
        return job_id

    def _digest(self, kind: DigestKind, env: str, scheduled_for: datetime, late: bool) -> str:
        digest = post(
            self.rt, kind, env, scheduled_for=scheduled_for, late=late, settings=self.settings
        )
        c = digest.counts
        return f"posted: {c['breaching']} of {c['endpoints']} breaching, {c['alerts']} alert(s)"

    def _housekeeping(self, rt: Runtime) -> str:
        started = start_due_changes(rt, self.settings.misfire_grace)
        expired = expire_due(rt)
        self.keys.prune("every:", self.clock() - INTERVAL_KEYS_KEPT)
        self.keys.prune("page:", self.clock() - paging.OWED_WITHIN - INTERVAL_KEYS_KEPT)
        return f"{describe_runs(started)}; {len(expired)} expired"

    def _check_budgets(self, rt: Runtime) -> str:
        def claim(job: str, day: datetime) -> bool:
            return self.keys.claim(job, day, self.owner, self.clock(), outcome="claimed")

        return budget.describe(budget.check(rt, claim))

    def _send_owed_pages(self, rt: Runtime) -> list[str]:
        # Each owed page is its own run key (`page:INC-N:action`, keyed by the moment it
        # became owed): one replica sends it even while another's sweep is still at it.
        def claim(key: str, since: datetime) -> bool:
            return self.keys.claim(f"page:{key}", since, self.owner, self.clock(), outcome="sent")

        return paging.catch_up(rt, claim)

    def _take_over(self, rt: Runtime) -> str:
        taken = take_over(rt)
        return f"{taken} taken over" if taken else "nothing stranded"

    # running once ----------------------------------------------------------------------

    def slot(self, spec: JobSpec, scheduled_for: datetime) -> datetime:
        # When the clocks go back, a cron trigger fires twice for a time in the repeated
        # hour; keyed by the local date's one time, the second run finds the key taken.
        moment = key_time(spec.key(scheduled_for) if spec.key else scheduled_for)
        if spec.interval is None:
            return moment
        n = int((moment - GRID_ORIGIN).total_seconds() // spec.interval)
        return GRID_ORIGIN + timedelta(seconds=n * spec.interval)

    def fire(self, job_id: str, scheduled_for: datetime, now: datetime | None = None) -> RunResult:
        """Run `job_id` for its `scheduled_for` time unless some replica already did."""
        spec = self.jobs.get(job_id)
        key = key_time(scheduled_for)
        if spec is None:
            log.warning("no job %s in this scheduler (an older config?); skipped", job_id)
            return RunResult(job_id, key, False, False, "unknown job")
        key = self.slot(spec, scheduled_for)
        now = now or self.clock()
        behind = now - key
        late = spec.persistent and behind > self.settings.late_after
        if spec.persistent and behind > self.settings.misfire_grace:
            outcome = (
                f"missed: {int(behind.total_seconds() // 60)} min late, beyond the"
                f" {int(self.settings.misfire_grace.total_seconds() // 60)} min grace window"
            )
            if self.keys.claim(job_id, key, self.owner, now, late=True, outcome=outcome):
                self.rt.auditor.record(
                    AuditAction.DIGEST_MISSED
                    if job_id.startswith("digest:")
                    else AuditAction.JOB_MISSED,
                    SCHEDULER.id,
                    "missed",
                    environment=job_id.split(":")[-1] if job_id.startswith("digest:") else None,
                    parameters={"job": job_id, "scheduled_for": key.isoformat(), "why": outcome},
                )
                log.warning("%s for %s %s", job_id, key.isoformat(), outcome)
                return RunResult(job_id, key, False, True, outcome)
            return RunResult(job_id, key, False, True, "claimed elsewhere")
        if not self.keys.claim(job_id, key, self.owner, now, late=late):
            return RunResult(job_id, key, False, late, "claimed elsewhere")
        try:
            outcome = spec.run(key, late)
        except Exception as exc:
            log.exception("scheduled job %s for %s failed", job_id, key.isoformat())
            outcome = f"failed: {type(exc).__name__}"
        self.keys.finish(job_id, key, outcome, self.clock())
        return RunResult(job_id, key, True, late, outcome)

    def latest_due(self, spec: JobSpec, now: datetime) -> datetime | None:
        """The cron job's most recent scheduled time in the grace window before `now`.

        Older misses are APScheduler's to report (a persisted job whose time passed while
        no replica ran reaches `fire`, which records it missed); a first start has none."""
        if not isinstance(spec.trigger, CronTrigger):
            return None
        cursor = now - self.settings.misfire_grace
        last: datetime | None = None
        nxt = spec.trigger.get_next_fire_time(None, cursor)
        while nxt is not None and nxt <= now:
            last = nxt
            # In UTC: wall-clock arithmetic on the second of two equal local times (fold=1)
            # lands before it, and the trigger would hand the same time back for ever.
            after = nxt.astimezone(UTC) + timedelta(seconds=1)
            nxt = spec.trigger.get_next_fire_time(nxt, after)
        return last

    def catch_up(self, now: datetime | None = None) -> list[RunResult]:
        """After a start: post what was missed while no replica ran, once, marked late."""
        now = now or self.clock()
        results = []
        for spec in list(self.jobs.values()):
            due = self.latest_due(spec, now) if spec.persistent else None
            if due is None:
                continue
            results.append(self.fire(spec.id, due, now))
        return [r for r in results if r.outcome != "claimed elsewhere"]

    # APScheduler -----------------------------------------------------------------------

    def _add_to_aps(self, spec: JobSpec) -> None:
        assert self.aps is not None
        self.aps.add_job(
            _run_by_id,
            trigger=spec.trigger,
            args=[spec.id],
            id=spec.id,
            name=spec.id,
            jobstore="default" if spec.persistent else "memory",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # every missed time reaches `fire`, which decides
        )

    def start(self, *, catch_up: bool = True) -> None:
        """Start APScheduler with the job store in the bot's database; keep persisted jobs
        whose trigger is unchanged (so a missed run is still seen), replace the others."""
        with self._lock:
            if self.aps is not None:
                return
            aps = BackgroundScheduler(
                jobstores={
                    "default": SQLAlchemyJobStore(engine=self.engine, tablename=APSCHEDULER_TABLE),
                    "memory": MemoryJobStore(),
                },
                executors={"default": _Executor(self)},
                timezone=self.rt.config.timezone,
            )
            aps.start(paused=True)
            self.aps = aps
            stored = {job.id: job for job in aps.get_jobs(jobstore="default")}
            for spec in self.jobs.values():
                job = stored.pop(spec.id, None) if spec.persistent else None
                if job is not None and repr(job.trigger) == repr(spec.trigger):
                    continue
                self._add_to_aps(spec)
            for job_id in stored:
                if job_id.startswith("digest:"):  # no longer configured
                    aps.remove_job(job_id, jobstore="default")
        if catch_up:
            for result in self.catch_up():
                log.info(
                    "catch-up: %s for %s: %s", result.job, result.scheduled_for, result.outcome
                )
        aps.resume()
        log.info(
            "scheduler %s started: %s",
            self.owner,
            ", ".join(f"{j.id} next {j.next_run_time}" for j in aps.get_jobs()),
        )

    def run_now(self, job_id: str) -> None:
        """Make APScheduler run a job at once (its scheduled time becomes now)."""
        assert self.aps is not None
        self.aps.modify_job(job_id, next_run_time=datetime.now(UTC))

    def next_runs(self) -> dict[str, datetime | None]:
        if self.aps is None:
            return {}
        return {job.id: job.next_run_time for job in self.aps.get_jobs()}

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            aps, self.aps = self.aps, None
        if aps is not None and aps.running:
            aps.shutdown(wait=wait)
