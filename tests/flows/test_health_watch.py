"""The scheduled health watch on the sandbox: a faulty version taking traffic (the sandbox's
`canary_breach` knob, moved in and out with the traffic split) breaches P95; the watch
opens one alert message after `open_after` windows, none for one noisy window, updates it
when the endpoint recovers, keeps its state in the database between runs and processes,
and two schedulers on one PostgreSQL database post once."""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.settings import BUNDLED_CONFIG
from bot.store.db import make_engine
from commands.config import Config, ConfigError, parse_config
from commands.incidents.watch import watch_health, window_end
from commands.messages import Buttons, Post
from commands.model import ChangeState
from commands.ports import AuditQuery
from commands.runtime import NullNotifier, Runtime
from commands.service import Service
from tests.support.harness import ALICE, Bot, FakeClock, make_runtime, text_of

STG = "loan-assessor-stg"
FAULTY = "1.3.0-rc1"  # the sandbox serves it with P95 × 5 and errors × 11
POLICY = "health watch: P95 latency"


def p95_only(**alerts: Any) -> Config:
    """The bundled config with the error and drift thresholds out of reach, so that the
    faulty version breaches P95 only (each metric is its own alert)."""
    raw = tomllib.loads(BUNDLED_CONFIG.read_text())
    raw["thresholds"] |= {"error_rate": 0.9, "drift": 10.0}
    raw["alerts"] = raw.get("alerts", {}) | alerts
    return parse_config(raw, "health-watch-test")


def new_bot(engine: Engine, clock: FakeClock, config: Config | None = None) -> Bot:
    return Bot(make_runtime(engine, clock, config=config or p95_only()), clock)


@pytest.fixture
def wbot(sqlite_engine: Engine, clock: FakeClock) -> Iterator[Bot]:
    b = new_bot(sqlite_engine, clock)
    yield b
    b.rt.background.wait_idle(30)


def posts(rt: Runtime) -> list[Post]:
    assert isinstance(rt.notifier, NullNotifier)
    return rt.notifier.posts


def alert_posts(rt: Runtime) -> list[Post]:
    return [p for p in posts(rt) if "ALERT-" in p.reply.text]


def rows(rt: Runtime, action: str) -> list[Any]:
    return [e for e in rt.store.audit(AuditQuery(limit=5000)) if e.action == action]


def deploy_faulty(bot: Bot) -> None:
    """The faulty version next to the stable one on staging (no approval there), 10 %."""
    reply = bot.run(ALICE, f'/deploy {STG} gemma-3-1b-it@{FAULTY} canary=10 reason="rc1 try"')
    assert reply.ok, text_of(reply)
    change = bot.rt.store.list_changes(endpoint=STG, limit=1)[0]
    assert bot.change(change.id).state is ChangeState.SUCCEEDED


def serve(rt: Runtime, faulty_share: int) -> None:
    """The sandbox knob: the faulty version's share of the endpoint's traffic."""
    ep = rt.config.endpoints[STG]
    state = rt.platform.endpoint_state(ep)
    ids = {d.version.version: d.id for d in state.deployed}
    rt.platform.set_traffic(ep, {ids[FAULTY]: faulty_share, ids["1.2.0"]: 100 - faulty_share})


def shown(reply: Any) -> str:
    """A message as Slack gets it (rendered), readable: no JSON escapes."""
    from bot.slack.blocks import render_message

    return json.dumps(render_message(reply), ensure_ascii=False)


def window(bot: Bot) -> str:
    """Five minutes pass; the watch judges the window that just ended."""
    bot.clock.advance(minutes=5)
    return watch_health(bot.rt)


def test_a_sustained_breach_opens_one_alert_and_recovery_closes_it(wbot: Bot) -> None:
    deploy_faulty(wbot)
    assert window(wbot).endswith("0 alert(s) opened, 0 closed")  # one breaching window
    assert alert_posts(wbot.rt) == []
    assert "1 alert(s) opened" in window(wbot)  # the second in a row: `open_after = 2`
    [message] = alert_posts(wbot.rt)
    assert message.channel == wbot.rt.config.channels.ops and not message.update
    seen = shown(message.reply)
    assert f"ALERT-1 · {POLICY}" in seen and STG in seen
    assert "P95 latency" in seen and "above 2,000 ms" in seen
    actions = [
        b.action_id for blk in message.reply.blocks if isinstance(blk, Buttons) for b in blk.buttons
    ]
    assert actions == ["incident.declare", "incident.rollback", "incident.ack"]
    for _ in range(4):  # still breaching: still one alert, one message
        window(wbot)
    assert len(alert_posts(wbot.rt)) == 1 and len(rows(wbot.rt, "alert_received")) == 1
    [received] = rows(wbot.rt, "alert_received")
    assert received.parameters["source"] == "health-watch" and received.target == STG

    serve(wbot.rt, 0)  # recovered: the stable version serves alone
    window(wbot)
    window(wbot)
    assert not rows(wbot.rt, "alert_closed")  # two clear windows: `close_after = 3`
    assert "1 closed" in window(wbot)
    [closed] = rows(wbot.rt, "alert_closed")
    alert = wbot.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.closed_at is not None
    update = [p for p in posts(wbot.rt) if p.update][-1]
    assert update.ts == alert.message_ts and "Resolved at" in shown(update.reply)
    assert closed.parameters["alert"] == "ALERT-1"

    serve(wbot.rt, 10)  # the next breach is an alert of its own
    window(wbot)
    window(wbot)
    assert [p.reply.text.split()[0] for p in alert_posts(wbot.rt) if not p.update] == [
        "ALERT-1",
        "ALERT-2",
    ]


def test_one_noisy_window_does_not_open_an_alert(wbot: Bot) -> None:
    deploy_faulty(wbot)
    serve(wbot.rt, 0)
    for share in (10, 0, 0, 10, 0, 10, 0):  # never two breaching windows in a row
        serve(wbot.rt, share)
        window(wbot)
    assert alert_posts(wbot.rt) == [] and rows(wbot.rt, "alert_received") == []
    state = wbot.rt.health_watch.watch_state(STG)  # type: ignore[union-attr]
    assert state.state["metrics"]["p95_latency_ms"]["open"] is False


def test_the_state_survives_a_restart_between_windows(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    first = new_bot(sqlite_engine, clock)
    deploy_faulty(first)
    window(first)  # one breaching window, judged by the process that then stops
    second = new_bot(sqlite_engine, clock)  # a new process: the state is in the database
    window(second)
    assert len(alert_posts(second.rt)) == 1 and alert_posts(first.rt) == []


def test_a_window_is_judged_once(wbot: Bot) -> None:
    deploy_faulty(wbot)
    window(wbot)
    end = window_end(wbot.clock(), timedelta(minutes=5))
    assert watch_health(wbot.rt, end).startswith("0 endpoint(s) judged")  # again: nothing
    wbot.clock.advance(minutes=1)  # a run late within the same window: nothing either
    assert watch_health(wbot.rt).startswith("0 endpoint(s) judged")
    assert alert_posts(wbot.rt) == []


def test_the_runbook_or_its_absence_is_on_the_watchs_alert(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """`[runbooks.policies]` keys the watch's policy names: the bundled config names one for
    "health watch: error rate"; P95 on staging has none, and its message says so."""
    bot = new_bot(sqlite_engine, clock)
    deploy_faulty(bot)
    window(bot)
    window(bot)
    seen = shown(alert_posts(bot.rt)[0].reply)
    assert "No runbook" in seen and f'[runbooks.policies] \\"{POLICY}\\"' in seen

    errors = tomllib.loads(BUNDLED_CONFIG.read_text())
    errors["thresholds"] |= {"p95_latency_ms": 100_000, "drift": 10.0}
    other = Bot(make_runtime(sqlite_engine, clock, config=parse_config(errors, "e")), clock)
    serve(other.rt, 100)  # errors × 11 on all the traffic
    window(other)
    window(other)
    [message] = [p for p in alert_posts(other.rt) if "error rate" in p.reply.text]
    assert "<https://wiki.example.com/aiops/runbooks/error-rate|Runbook>" in shown(message.reply)


def test_the_scheduler_runs_the_watch_every_watch_interval(wbot: Bot) -> None:
    from bot.wiring import make_scheduler

    scheduler = make_scheduler(Service(wbot.rt))
    spec = scheduler.jobs["every:health-watch"]
    assert spec.interval == 300  # `[alerts] watch_interval = "5m"`
    deploy_faulty(wbot)
    for _ in range(2):
        wbot.clock.advance(minutes=5)
        result = scheduler.fire("every:health-watch", wbot.clock())
        assert result.ran and "endpoint(s) judged" in result.outcome
        assert not scheduler.fire("every:health-watch", wbot.clock()).ran  # its slot: once
    assert len(alert_posts(wbot.rt)) == 1


def test_watch_false_leaves_the_watching_to_cloud_monitoring(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """`[alerts] watch = false` (Terraform's Cloud Monitoring policies watch the same
    thresholds through the webhook): no scheduled watch, so one breach is one alert."""
    from bot.wiring import make_scheduler

    off = new_bot(sqlite_engine, clock, p95_only(watch=False))
    scheduler = make_scheduler(Service(off.rt))
    assert "every:health-watch" not in scheduler.jobs
    assert "every:canary" in scheduler.jobs  # the rest of the schedule is there
    deploy_faulty(off)
    for _ in range(3):
        off.clock.advance(minutes=5)
        assert watch_health(off.rt).startswith("off")
    assert alert_posts(off.rt) == [] and off.rt.health_watch is not None
    assert off.rt.health_watch.watch_state(STG).rev == 0  # nothing judged, nothing kept


def test_watch_a_list_judges_only_what_cloud_monitoring_does_not(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """Terraform's policies watch P95 latency and error rate, not drift: `watch =
    ["drift"]` keeps the drift alert and leaves the P95 breach to Cloud Monitoring."""
    from bot.wiring import make_scheduler

    drift_only = new_bot(sqlite_engine, clock, p95_only(watch=["drift"]))
    assert "every:health-watch" in make_scheduler(Service(drift_only.rt)).jobs
    deploy_faulty(drift_only)
    for _ in range(3):
        serve(drift_only.rt, 100)
        window(drift_only)
    assert alert_posts(drift_only.rt) == []  # a P95 breach, not watched here
    kept = drift_only.rt.health_watch.watch_state(STG)  # type: ignore[union-attr]
    assert kept.rev > 0 and "p95_latency_ms" not in kept.state.get("metrics", {})
    with pytest.raises(ConfigError, match="watch"):
        p95_only(watch=["cost"])


# --------------------------------------------------------- two replicas, one database


@pytest.fixture
def two_replicas(pg_engine: Engine) -> Iterator[tuple[Bot, Bot]]:
    """Two processes' runtimes on one PostgreSQL database, each with its own engine."""
    with pg_engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    other = make_engine(
        pg_engine.url.render_as_string(hide_password=False),
        connect_args={"options": f"-csearch_path={schema}"},
    )
    clock = FakeClock()
    a, b = new_bot(pg_engine, clock), new_bot(other, clock)
    yield a, b
    a.rt.background.wait_idle(30)
    b.rt.background.wait_idle(30)
    other.dispose()


def together(*calls: Any) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # a failure is the test's, not the thread's
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r for r in results if isinstance(r, BaseException)], results
    return results


@pytest.mark.postgres
def test_two_schedulers_on_one_postgresql_database_post_once(
    two_replicas: tuple[Bot, Bot],
) -> None:
    from bot.wiring import make_scheduler

    a, b = two_replicas
    schedulers = [make_scheduler(Service(bot.rt)) for bot in (a, b)]
    deploy_faulty(a)
    for _ in range(3):
        a.clock.advance(minutes=5)
        now = a.clock()
        ran = together(*(lambda s=s, t=now: s.fire("every:health-watch", t) for s in schedulers))
        assert [r.ran for r in ran].count(True) == 1
    # without the run keys (two replicas' jobs in different slots of their own, say), the
    # state's compare-and-set still lets one judgement of a window through
    serve(a.rt, 0)
    for _ in range(3):
        a.clock.advance(minutes=5)
        together(lambda: watch_health(a.rt), lambda: watch_health(b.rt))
    everything = posts(a.rt) + posts(b.rt)
    assert len([p for p in everything if not p.update and "ALERT-" in p.reply.text]) == 1
    assert len(rows(a.rt, "alert_received")) == 1 and len(rows(a.rt, "alert_closed")) == 1
    assert len([p for p in everything if p.update and "Resolved at" in shown(p.reply)]) == 1


def test_an_incident_from_the_watchs_alert_says_it_has_no_runbook_and_the_review_asks(
    wbot: Bot,
) -> None:
    from commands.incidents.review import review_for

    deploy_faulty(wbot)
    window(wbot)
    window(wbot)
    reply = wbot.run(
        ALICE, f'/aiops incident declare {STG} sev=P3 summary="rc1 slow" alert=ALERT-1'
    )
    assert reply.ok, text_of(reply)
    [card] = [p for p in posts(wbot.rt) if "INC-1 ·" in shown(p.reply) and not p.update]
    assert f"No runbook: add a runbook for {STG}: `[runbooks.endpoints] {STG}" in shown(card.reply)
    assert wbot.run(ALICE, '/aiops incident resolve INC-1 cause="rc1 serves slowly"').ok
    review = review_for(
        wbot.rt.store,
        wbot.rt.incidents,  # type: ignore[arg-type]
        wbot.rt.config,
        "INC-1",
    )
    assert review["runbook"] is None
    [item] = review["action_items"]
    assert item["source"] == "no runbook" and f'"{POLICY}"' in item["text"]
    assert review["alert"]["source"] == "health-watch"
    # an incident on an endpoint with a runbook links it on its card
    assert wbot.run(ALICE, '/aiops incident declare loan-assessor sev=P2 summary="slow"').ok
    [other] = [p for p in posts(wbot.rt) if "INC-2 ·" in shown(p.reply) and not p.update]
    assert "<https://wiki.example.com/aiops/runbooks/loan-assessor|Runbook>" in shown(other.reply)
