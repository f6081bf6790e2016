"""The scheduler: run keys make every digest post once across replicas, a restart posts a
missed digest once (late), scheduled changes start at their time only if approved.

Time is controlled: jobs are fired with explicit scheduled times (what APScheduler hands
the executor), and the one test through a running APScheduler makes a job due now."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from bot.scheduler import RunKeys, Scheduler
from bot.store.schedule_tables import apscheduler_jobs
from commands.digests.schedule import DigestKind, digest_settings
from commands.model import SCHEDULER, ChangeState
from commands.ports import AuditQuery
from commands.runtime import NullNotifier
from tests.support.harness import ALICE, BOB, Bot, FakeClock, example_config, make_runtime

SYDNEY = example_config().timezone
# Tuesday 1 December 2026, 08:30 in Sydney
MORNING = datetime(2026, 12, 1, 8, 30, tzinfo=SYDNEY).astimezone(UTC)


def digest_posts(notifier: NullNotifier, kind: str = "") -> list[str]:
    return [
        p.reply.text for p in notifier.posts if "digest" in p.reply.text and kind in p.reply.text
    ]


def replica(engine: Engine, clock: FakeClock, name: str) -> tuple[Scheduler, NullNotifier]:
    notifier = NullNotifier()
    rt = make_runtime(engine, clock, notifier)
    return Scheduler(rt, engine, owner=name), notifier


def test_two_replicas_post_each_digest_once_over_many_runs(pg_engine: Engine) -> None:
    clock = FakeClock(MORNING - timedelta(days=1))
    a, posts_a = replica(pg_engine, clock, "replica-a")
    b, posts_b = replica(pg_engine, clock, "replica-b")
    start = MORNING - timedelta(hours=12)
    due: list[tuple[str, datetime]] = []
    for spec in a.jobs.values():
        if spec.persistent:
            t = spec.trigger.get_next_fire_time(None, start)
            while t is not None and t < start + timedelta(days=14):
                due.append((spec.id, t))
                t = spec.trigger.get_next_fire_time(t, t + timedelta(seconds=1))
    due.sort(key=lambda d: d[1])
    # prod morning + eod and staging morning, on the 10 weekdays of two weeks
    assert len(due) == 30
    assert all(t.astimezone(SYDNEY).weekday() < 5 for _, t in due)
    results = []
    for job_id, t in due:
        clock.now = t + timedelta(seconds=1)
        barrier = threading.Barrier(2)

        def run(
            s: Scheduler,
            job_id: str = job_id,
            t: datetime = t,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            results.append(s.fire(job_id, t))

        threads = [threading.Thread(target=run, args=(s,)) for s in (a, b)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        results.append(a.fire(job_id, t))  # APScheduler on a replica firing it again
    ran = [r for r in results if r.ran]
    assert len(ran) == 30 and not any(r.late for r in ran)
    assert {(r.job, r.scheduled_for) for r in ran} == {(j, t) for j, t in due}
    assert len(digest_posts(posts_a)) + len(digest_posts(posts_b)) == 30
    assert digest_posts(posts_a) and digest_posts(posts_b)  # both replicas took turns
    keys = RunKeys(pg_engine).runs()
    digest_keys = [k for k in keys if k.job.startswith("digest:")]
    assert len(digest_keys) == 30
    assert all(k.outcome and k.outcome.startswith("posted") for k in digest_keys)
    audited = [
        e
        for e in a.rt.store.audit(AuditQuery(actor_id=SCHEDULER.id))
        if e.action == "digest_posted"
    ]
    assert len(audited) == 30


def test_restart_after_a_missed_time_posts_once_marked_late(engine: Engine) -> None:
    clock = FakeClock(MORNING + timedelta(minutes=20))  # the bot was down at 08:30
    a, posts_a = replica(engine, clock, "restarted")
    results = a.catch_up()
    morning = [r for r in results if r.job == "digest:morning:prod"]
    assert len(morning) == 1 and morning[0].ran and morning[0].late
    assert morning[0].scheduled_for == MORNING
    assert len(digest_posts(posts_a, "Morning digest · prod")) == 1
    post = next(p for p in posts_a.posts if "Morning digest · prod" in p.reply.text)
    assert post.reply.blocks[0].text.endswith("· late")  # type: ignore[union-attr]
    # staging's morning digest is at 09:00: not due yet, nothing to catch up
    assert not [r for r in results if r.job == "digest:morning:staging"]

    # Another replica starting, the same one again, APScheduler's own misfire: nothing more.
    b, posts_b = replica(engine, clock, "second")
    assert [r for r in b.catch_up() if r.ran] == []
    assert [r for r in a.catch_up() if r.ran] == []
    assert not a.fire("digest:morning:prod", MORNING).ran
    assert digest_posts(posts_b) == []
    row = next(k for k in RunKeys(engine).runs("digest:morning:prod"))
    assert row.late and row.claimed_by == "restarted" and row.scheduled_for == MORNING
    audit = [
        e
        for e in a.rt.store.audit(AuditQuery(actor_id=SCHEDULER.id))
        if e.action == "digest_posted"
    ]
    assert [e.outcome for e in audit] == ["posted late"]
    assert audit[0].parameters["scheduled_for"] == MORNING.isoformat()


def test_beyond_the_grace_window_a_digest_is_recorded_missed_never_posted(
    sqlite_engine: Engine,
) -> None:
    clock = FakeClock(MORNING + timedelta(hours=3))  # grace is 2 h
    s, posts = replica(sqlite_engine, clock, "late-riser")
    assert s.catch_up() == []  # nothing within the grace window
    # APScheduler's persisted job hands over the time it missed while nobody ran:
    missed = s.fire("digest:morning:prod", MORNING)
    assert not missed.ran and missed.outcome.startswith("missed: 180 min late")
    assert digest_posts(posts, "Morning digest · prod") == []
    other = Scheduler(s.rt, sqlite_engine, owner="other")
    assert other.fire("digest:morning:prod", MORNING).outcome == "claimed elsewhere"
    rows = [
        e
        for e in s.rt.store.audit(AuditQuery(actor_id=SCHEDULER.id))
        if e.action == "digest_missed"
    ]
    assert len(rows) == 1 and rows[0].environment == "prod" and rows[0].outcome == "missed"
    assert "beyond the 120 min grace window" in rows[0].parameters["why"]


def test_late_after_and_grace_are_configurable(sqlite_engine: Engine) -> None:
    config = example_config()
    config.raw["digests"] = dict(config.raw["digests"], misfire_grace="10m", late_after="30s")
    clock = FakeClock(MORNING + timedelta(seconds=45))
    rt = make_runtime(sqlite_engine, clock, NullNotifier(), config=config)
    s = Scheduler(rt, sqlite_engine, owner="x")
    assert s.settings.misfire_grace == timedelta(minutes=10)
    result = s.fire("digest:morning:prod", MORNING)
    assert result.ran and result.late  # 45 s > 30 s
    clock.advance(minutes=15)
    assert not s.fire("digest:eod:prod", MORNING - timedelta(hours=15)).ran


def test_cron_times_follow_the_zone_across_daylight_saving(sqlite_engine: Engine) -> None:
    clock = FakeClock(datetime(2027, 4, 5, 0, 0, tzinfo=UTC))  # Sydney leaves DST on 4 Apr
    s, _ = replica(sqlite_engine, clock, "x")
    spec = s.jobs["digest:morning:prod"]
    first = spec.trigger.get_next_fire_time(None, datetime(2027, 4, 1, 12, tzinfo=UTC))
    after = spec.trigger.get_next_fire_time(None, datetime(2027, 4, 4, 12, tzinfo=UTC))
    assert first.astimezone(SYDNEY).strftime("%a %H:%M") == "Fri 08:30"
    assert after.astimezone(SYDNEY).strftime("%a %H:%M") == "Mon 08:30"
    assert first.utcoffset() != after.utcoffset()  # AEDT, then AEST
    schedule = digest_settings(s.rt.config).schedules["prod"]
    assert schedule.previous(DigestKind.MORNING, after + timedelta(minutes=1)) == after


def test_interval_jobs_run_once_per_slot_across_replicas(sqlite_engine: Engine) -> None:
    clock = FakeClock(MORNING)
    a, _ = replica(sqlite_engine, clock, "a")
    b, _ = replica(sqlite_engine, clock, "b")
    seen: list[datetime] = []
    for s in (a, b):
        s.add_interval("canary", 30, lambda rt: seen.append(rt.clock()))
    # The two replicas' APScheduler phases differ; their slots on the grid do not.
    for second in range(0, 120, 7):
        clock.now = MORNING + timedelta(seconds=second)
        a.fire("every:canary", clock.now)
        b.fire("every:canary", clock.now + timedelta(seconds=3))
    assert len(seen) == 5  # slots starting at 0, 30, 60, 90 s … and the one at 120 s (b, +3 s)


def test_apscheduler_persists_jobs_and_runs_them_through_the_run_keys(
    sqlite_engine: Engine,
) -> None:
    """APScheduler runs on the wall clock here, so `run_now` of the end-of-day digest judges
    the slot before now (a weekday's 17:30 Sydney): a grace window of 8 days keeps it a late
    run, not a missed one, at every time of day and week (with the default 2 h it failed
    outside 17:30–19:30 Sydney)."""
    from dataclasses import replace

    clock = FakeClock(datetime.now(UTC))
    notifier = NullNotifier()
    rt = make_runtime(sqlite_engine, clock, notifier)
    wide = replace(digest_settings(rt.config), misfire_grace=timedelta(days=8))
    s, posts = Scheduler(rt, sqlite_engine, owner="live", settings=wide), notifier
    s.start(catch_up=False)
    try:
        with sqlite_engine.connect() as conn:
            stored = dict(
                conn.execute(select(apscheduler_jobs.c.id, apscheduler_jobs.c.next_run_time)).all()
            )
        assert set(stored) == {"digest:morning:prod", "digest:eod:prod", "digest:morning:staging"}
        nxt = s.next_runs()["digest:morning:prod"]
        assert nxt is not None
        local = nxt.astimezone(SYDNEY)
        assert (local.hour, local.minute) == (8, 30) and local.weekday() < 5
        assert abs(stored["digest:morning:prod"] - nxt.timestamp()) < 1

        ran = threading.Event()
        s.add_interval("probe", 3600, lambda rt: ran.set())
        s.run_now("every:probe")  # due now: APScheduler → our executor → run key → fn
        assert ran.wait(10)
        done = threading.Event()
        original = s.jobs["digest:eod:prod"].run
        s.jobs["digest:eod:prod"].run = lambda t, late: (original(t, late), done.set())[0]
        s.run_now("digest:eod:prod")
        assert done.wait(20)
    finally:
        s.shutdown()
    assert len(digest_posts(posts, "End-of-day digest · prod")) == 1
    # A restart keeps the persisted job (same trigger), so a missed time is still seen.
    again, _ = replica(sqlite_engine, clock, "restarted")
    again.start(catch_up=False)
    try:
        assert again.next_runs()["digest:morning:prod"] == nxt
    finally:
        again.shutdown()


def test_scheduled_change_runs_at_its_time_only_if_approved(sqlite_engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 23, 0, tzinfo=UTC))  # Fri 27 Nov 10:00 Sydney
    bot = Bot(make_runtime(sqlite_engine, clock), clock)
    s = Scheduler(bot.rt, sqlite_engine, owner="x")
    reply = bot.run(
        ALICE,
        '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="release" at="2026-11-27 11:00"',
    )
    assert reply.ok, reply.text
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None and change.expires_at == datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    reply = bot.run(BOB, f"/aiops approve {change.id}")
    assert "it runs at 2026-11-27 11:00 AEDT" in reply.text
    assert bot.change(change.id).state is ChangeState.APPROVED
    assert bot.split("loan-assessor") == {"1.2.0": 100}  # approved early, not run early
    listed = bot.run(BOB, "/aiops changes")
    assert "at 2026-11-27 11:00 AEDT" in str(listed.blocks)

    clock.advance(minutes=59)  # 10:59
    s.fire("every:housekeeping", clock())
    bot.rt.background.wait_idle(30)
    assert bot.change(change.id).state is ChangeState.APPROVED
    clock.advance(minutes=1, seconds=5)  # 11:00:05
    s.fire("every:housekeeping", clock())
    bot.rt.background.wait_idle(30)
    assert bot.change(change.id).state is ChangeState.SUCCEEDED
    assert bot.split("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}
    actions = [e.action for e in bot.rt.store.audit(AuditQuery(change_id=change.id))]
    assert "scheduled_run" in actions and actions.index("scheduled_run") < actions.index(
        "execution_started"
    )


def test_unapproved_or_stale_scheduled_changes_fail_clearly(sqlite_engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 23, 0, tzinfo=UTC))  # 10:00 Sydney
    notifier = NullNotifier()
    bot = Bot(make_runtime(sqlite_engine, clock, notifier), clock)
    s = Scheduler(bot.rt, sqlite_engine, owner="x")
    bot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="r" at=10:30')
    unapproved = bot.rt.store.open_change("loan-assessor")
    # staging needs no approval: approved at once, but it waits for its time
    bot.run(ALICE, '/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 at="2026-11-27 10:30"')
    stale = bot.rt.store.open_change("loan-assessor-stg")
    assert unapproved and stale and bot.change(stale.id).state is ChangeState.APPROVED
    assert bot.split("loan-assessor-stg") == {"1.2.0": 100}
    # the endpoint is no longer as planned (as if someone moved its traffic since)
    bot.rt.store.update_change(stale.id, split_before={"9999999999001": 100})
    clock.now = datetime(2026, 11, 26, 23, 30, 10, tzinfo=UTC)  # 10:30:10
    s.fire("every:housekeeping", clock())
    bot.rt.background.wait_idle(30)
    gone = bot.change(unapproved.id)
    assert gone.state is ChangeState.EXPIRED
    assert "was not approved by then; it did not run" in (gone.error or "")
    threaded = [
        p.reply.text for p in notifier.posts if p.thread_ts and p.change_id == unapproved.id
    ]
    assert any("not approved by then" in t for t in threaded)
    assert bot.split("loan-assessor") == {"1.2.0": 100}
    failed = bot.change(stale.id)
    assert failed.state is ChangeState.FAILED
    assert "the endpoint changed since this change was planned" in (failed.error or "")
    assert bot.split("loan-assessor-stg") == {"1.2.0": 100}
    # a cancelled scheduled change never runs
    clock.advance(minutes=1)
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 at=11:00")
    later = bot.rt.store.open_change("loan-assessor-stg")
    assert later is not None
    assert bot.run(ALICE, f"/aiops cancel {later.id}").ok
    clock.now = datetime(2026, 11, 27, 0, 1, tzinfo=UTC)  # 11:01
    s.fire("every:housekeeping", clock())
    bot.rt.background.wait_idle(30)
    assert bot.change(later.id).state is ChangeState.CANCELLED


def test_bad_at_is_refused(sqlite_engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 23, 0, tzinfo=UTC))  # 10:00 Sydney
    bot = Bot(make_runtime(sqlite_engine, clock), clock)
    for line, words in (
        ('/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 at="2026-11-27 09:00"', "in the past"),
        ("/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 at=tomorrowish", "is not a time"),
        ('/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 at="2027-06-01 10:00"', "60 days"),
        ('/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 at="2027-10-03 02:30"', "does not exist"),
        ('/rollback loan-assessor-stg at="2026-11-27 11:00"', "unknown option `at=`"),
    ):
        reply = bot.run(ALICE, line)
        assert not reply.ok and words in reply.text, (line, reply.text)
    assert bot.rt.store.open_change("loan-assessor-stg") is None


def test_serve_starts_the_scheduler_which_catches_up_and_stops(sqlite_engine: Engine) -> None:
    from slack_sdk import WebClient

    from bot.serve.server import make_asgi
    from bot.slack.app import build_app
    from bot.slack.notifier import SlackNotifier
    from commands.service import Service
    from tests.support.harness import SlackStub
    from tests.support.slack_wire import SIGNING_SECRET, Served

    stub = SlackStub()
    clock = FakeClock(MORNING + timedelta(minutes=10))  # started at 08:40: 08:30 was missed
    rt = make_runtime(
        sqlite_engine, clock, SlackNotifier(WebClient(token="xoxb-test", base_url=stub.api_url))
    )
    service = Service(rt)
    bolt = build_app(
        service, bot_token="xoxb-test", signing_secret=SIGNING_SECRET, api_base_url=stub.api_url
    )
    scheduler = Scheduler(rt, sqlite_engine, owner="served")
    server = Served(make_asgi(service, bolt, scheduler=lambda: scheduler))
    try:
        # The scheduler starts (and catches up) on a thread once the server answers.
        assert server.app.state.startup.wait(10)
        assert scheduler.aps is not None and scheduler.aps.running
        health = server.client.get("/healthz").json()
        assert health["ok"] is True and health["startup"] == "done"
        digests_posted = [
            c for c in stub.of("chat.postMessage") if "Morning digest" in str(c.body.get("text"))
        ]
        assert len(digests_posted) == 1 and digests_posted[0].body["channel"] == "C0OPS"
        assert "late" in str(digests_posted[0].body["blocks"][0])
    finally:
        server.close()
        stub.close()
    assert scheduler.aps is None  # shut down with the server


def test_an_owed_page_is_sent_once_while_another_replicas_sweep_is_still_sending(
    sqlite_engine: Engine,
) -> None:
    """Replica A's `pages` job sends a lost trigger and the pager is slow (retries); 30 s
    on, replica B's job reads no page row yet: it must not send the page a second time
    (nor say "had not gone out" twice, nor a second `@here` if it fails)."""
    from commands.incidents.paging import OWED_AFTER, PAGE_SWEEP_SECONDS
    from tests.flows.test_incidents import GatedPager

    clock = FakeClock()
    a, _ = replica(sqlite_engine, clock, "a")
    b, _ = replica(sqlite_engine, clock, "b")
    pager = GatedPager()
    a.rt.pager = b.rt.pager = pager
    a.rt.background.submit = lambda fn: None  # type: ignore[method-assign,assignment]
    declared = Bot(a.rt, clock).run(
        ALICE, '/aiops incident declare loan-assessor sev=P1 summary="5xx since 14:05"'
    )
    assert declared.ok
    clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    first = threading.Thread(target=lambda: a.fire("every:pages", clock()))
    first.start()
    while not pager.pages:  # A is at the pager
        threading.Event().wait(0.01)
    clock.advance(seconds=PAGE_SWEEP_SECONDS)
    second = b.fire("every:pages", clock())
    pager.gate.set()
    first.join(10)
    assert second.ran and second.outcome == "ok (0)"
    assert len(pager.pages) == 1
