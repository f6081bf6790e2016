"""The weekly full verify: run by the scheduler once across replicas, its head witnessed
in the `aiops-audit` log (the real logging client against the local fake), its result
audited and shown in the next morning digest — intact or broken."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as gcl
from google.cloud.logging_v2.resource import Resource
from sqlalchemy import Engine, text

from bot.audit_weekly import ACTION, JOB, add_weekly_verify
from bot.gcp_logging import CHECKPOINT, AuditLogSink
from bot.scheduler import Scheduler
from bot.wiring import make_scheduler
from commands.model import SCHEDULER
from commands.ports import AuditQuery
from commands.runtime import NullNotifier
from commands.service import Service
from tests.support.fakes.http_fakes import FakeGoogleHTTP
from tests.support.harness import FakeClock, example_config, make_runtime

SYDNEY = example_config().timezone
SUNDAY_3AM = datetime(2026, 12, 6, 3, 0, tzinfo=SYDNEY).astimezone(UTC)
MONDAY_MORNING = datetime(2026, 12, 7, 8, 30, tzinfo=SYDNEY).astimezone(UTC)


@pytest.fixture
def http() -> Iterator[FakeGoogleHTTP]:
    fake = FakeGoogleHTTP().serve()
    yield fake
    fake.stop()


def log_sink(http: FakeGoogleHTTP) -> AuditLogSink:
    client = gcl.Client(
        project="lender-aiops-prod",
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": http.url},
    )
    return AuditLogSink(client, resource=Resource(type="global", labels={}))


def replica(
    engine: Engine, clock: FakeClock, name: str, http: FakeGoogleHTTP
) -> tuple[Scheduler, NullNotifier]:
    notifier = NullNotifier()
    rt = make_runtime(engine, clock, notifier)
    rt.auditor.sinks.append(log_sink(http))
    scheduler = Scheduler(rt, engine, owner=name)
    add_weekly_verify(scheduler)
    return scheduler, notifier


def blocks_text(notifier: NullNotifier) -> str:
    def plain(value: Any) -> Any:
        return asdict(value) if is_dataclass(value) and not isinstance(value, type) else str(value)

    return "\n".join(
        json.dumps(p.reply.blocks, default=plain, ensure_ascii=False) for p in notifier.posts
    )


def test_the_job_is_registered_for_sunday_night(sqlite_engine: Engine) -> None:
    scheduler = make_scheduler(Service(make_runtime(sqlite_engine, FakeClock(SUNDAY_3AM))))
    spec = scheduler.jobs[JOB]
    nxt = spec.trigger.get_next_fire_time(None, SUNDAY_3AM - timedelta(days=3))
    assert nxt is not None and nxt.astimezone(UTC) == SUNDAY_3AM and spec.persistent


def test_two_replicas_verify_once_and_the_morning_digest_says_intact(
    engine: Engine, http: FakeGoogleHTTP
) -> None:
    clock = FakeClock(SUNDAY_3AM + timedelta(seconds=5))
    a, posts_a = replica(engine, clock, "replica-a", http)
    b, posts_b = replica(engine, clock, "replica-b", http)
    for i in range(5):
        a.rt.auditor.record("command", "U0ALICE", "ok", parameters={"i": i})
    barrier = threading.Barrier(2)
    results = []

    def fire(s: Scheduler) -> None:
        barrier.wait()
        results.append(s.fire(JOB, SUNDAY_3AM))

    threads = [threading.Thread(target=fire, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.ran for r in results) == [False, True]
    (ran,) = [r for r in results if r.ran]
    assert "audit chain intact: 5 row(s)" in ran.outcome
    rows = [e for e in a.rt.store.audit(AuditQuery(actor_id=SCHEDULER.id)) if e.action == ACTION]
    assert len(rows) == 1 and rows[0].outcome == "intact"
    assert rows[0].parameters["full"] is True and rows[0].parameters["witnessed_in_log"] is True
    logged = [e for e in http.entries if e.get("jsonPayload", {}).get("type") == CHECKPOINT]
    assert len(logged) == 1 and logged[0]["jsonPayload"]["head_id"] == 5

    clock.now = MONDAY_MORNING + timedelta(seconds=1)
    assert a.fire("digest:morning:prod", MONDAY_MORNING).ran
    text_ = blocks_text(posts_a) + blocks_text(posts_b)
    assert "Audit trail" in text_ and "chain intact, 5 row(s), head row 5" in text_


def test_a_broken_chain_is_in_the_morning_digest(
    sqlite_engine: Engine, http: FakeGoogleHTTP
) -> None:
    clock = FakeClock(SUNDAY_3AM + timedelta(seconds=5))
    a, posts = replica(sqlite_engine, clock, "replica-a", http)
    for i in range(4):
        a.rt.auditor.record("command", "U0ALICE", "ok", parameters={"i": i})
    with sqlite_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("UPDATE audit_event SET outcome = 'approved' WHERE id = 2"))
    result = a.fire(JOB, SUNDAY_3AM)
    assert result.ran and "broken at row 2" in result.outcome
    assert not [e for e in http.entries if e.get("jsonPayload", {}).get("type") == CHECKPOINT]
    clock.now = MONDAY_MORNING + timedelta(seconds=1)
    assert a.fire("digest:morning:prod", MONDAY_MORNING).ran
    text_ = blocks_text(posts)
    assert "chain *broken* at row 2 (edited)" in text_
