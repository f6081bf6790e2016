"""Cost operations: idle endpoints and models at 0 % of traffic in the morning digest, with
what each cost yesterday and the buttons that request a scale-down or an undeploy (on the
wire, through the Slack stub); each environment's own budget; budget alerts posted once
per environment, day and threshold across two replicas on PostgreSQL and a restart."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.cli.main import deprecation_notes
from bot.scheduler import RunKeys, Scheduler
from bot.slack.blocks import render_message
from bot.slack.notifier import SlackNotifier
from commands.config import Config, ConfigError, Endpoint, parse_config
from commands.cost import budget
from commands.cost.capacity import MAX_STATE_READS
from commands.cost.settings import cost_settings
from commands.digests.post import post
from commands.digests.render import MAX_CAPACITY_BUTTONS, compose
from commands.digests.schedule import DigestKind
from commands.model import SCHEDULER
from commands.ports import AuditQuery, DeployedModelCost, EndpointState
from commands.runtime import NullNotifier, Runtime
from tests.flows.test_digests import check_limits
from tests.support.harness import (
    ALICE,
    BOB,
    Bot,
    FakeClock,
    SlackStub,
    example_config,
    make_runtime,
)

# Tuesday 1 December 2026, 08:30 in Sydney (AEDT, UTC+11): "yesterday" is Monday 30 Nov.
MORNING = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)


class Figures:
    """The sandbox, with yesterday's use per deployed model and billed costs set by the
    test where it says so; counts the endpoint-state reads."""

    def __init__(
        self,
        inner: Any,
        usage: dict[str, list[DeployedModelCost]] | None = None,
        costs: dict[str, list[float]] | None = None,
    ) -> None:
        self.inner = inner
        self.usage = usage or {}
        self.costs = costs if costs is not None else {}
        self.state_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def deployed_model_costs(
        self, endpoints: Sequence[Endpoint]
    ) -> dict[str, list[DeployedModelCost]]:
        real = self.inner.deployed_model_costs(endpoints)
        return real | {e.slug: self.usage[e.slug] for e in endpoints if e.slug in self.usage}

    def daily_costs(self, endpoints: Sequence[Endpoint], days: int) -> dict[str, list[float]]:
        real = self.inner.daily_costs(endpoints, days)
        return real | {
            e.slug: self.costs[e.slug][-days:] for e in endpoints if e.slug in self.costs
        }

    def endpoint_state(self, endpoint: Endpoint) -> EndpointState:
        self.state_reads += 1
        return self.inner.endpoint_state(endpoint)


def raw_config(**edits: Any) -> dict[str, Any]:
    raw = copy.deepcopy(example_config().raw)
    for path, value in edits.items():
        *tables, key = path.split("__")
        node = raw
        for t in tables:
            node = node.setdefault(t, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return raw


def slack_runtime(engine: Engine, clock: FakeClock, stub: SlackStub, config: Config) -> Runtime:
    notifier = SlackNotifier(WebClient(token="xoxb-test", base_url=stub.api_url))
    return make_runtime(engine, clock, notifier, config=config)


def dm_id(rt: Runtime, slug: str, version: str) -> str:
    state = rt.platform.endpoint_state(rt.config.endpoints[slug])
    return next(d.id for d in state.deployed if d.version.version == version)


def posted_digest(stub: SlackStub, words: str) -> dict[str, Any]:
    bodies = [
        c.body
        for c in stub.of("chat.postMessage")
        if words in json.dumps(c.body, ensure_ascii=False)
    ]
    assert len(bodies) == 1, words
    return bodies[0]


def buttons_of(body: dict[str, Any], *action_ids: str) -> list[dict[str, Any]]:
    return [
        e
        for b in body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] in action_ids
    ]


def test_idle_endpoint_and_zero_percent_model_with_request_buttons_on_the_wire(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    clock = FakeClock(MORNING - timedelta(days=2))  # Sunday morning
    rt = slack_runtime(sqlite_engine, clock, stub, example_config())
    bot = Bot(rt, clock)
    # Staging: a new version takes all the traffic and the old one stays deployed at 0 %,
    # as after a blue/green switch; the sandbox bills both all of Monday.
    reply = bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10")
    assert reply.ok, reply.text
    stg = rt.config.endpoints["loan-assessor-stg"]
    rt.platform.set_traffic(stg, {dm_id(rt, "loan-assessor-stg", "1.2.1"): 100})
    clock.now = MORNING
    # Prod: 2 replicas of 1.2.0 answered 3 requests all Monday; billed $60.
    seeded = dm_id(rt, "loan-assessor", "1.2.0")
    figures = Figures(
        rt.platform,
        usage={"loan-assessor": [DeployedModelCost(seeded, 3, 48.0, 62.88)]},
        costs={"loan-assessor": [60.0] * 8},
    )
    rt.platform = figures  # type: ignore[assignment]

    post(rt, DigestKind.MORNING, "prod")
    post(rt, DigestKind.MORNING, "staging")

    prod = posted_digest(stub, "Morning digest · prod")
    check_limits(prod)
    text = json.dumps(prod, ensure_ascii=False)
    assert (
        ":zzz: *loan-assessor* idle: 3 request(s) yesterday, 2 replica(s) up · $60.00 yesterday"
        " (billed) · `/aiops scale loan-assessor 1.2.0 min=1 max=6` saves ~$31.44/day"
    ) in text
    assert "Idle: fewer than 10 requests yesterday" in text
    (scale,) = buttons_of(prod, "scale", "undeploy")
    # what the click runs: the typed proposal, with the reason prod requires
    assert scale["value"] == (
        'loan-assessor 1.2.0 min=1 max=6 reason="idle: 3 request(s) yesterday (morning digest)"'
    )
    assert scale["text"]["text"] == "Scale down loan-assessor 1.2.0"
    # clicked (`/aiops scale <value>`), it is a request that waits for a prod approver
    clicked = bot.run(ALICE, f"/aiops scale {scale['value']}")
    assert clicked.ok and clicked.text.endswith("waiting for approval"), clicked.text
    assert bot.run(ALICE, f"/aiops cancel {rt.store.list_changes(limit=1)[0].id}").ok
    assert scale["confirm"]["title"]["text"] == "Request a scale-down of loan-assessor?"
    assert "from 2 to min 1, max 6 replicas" in scale["confirm"]["text"]["text"]
    assert "style" not in scale
    # The cost buttons' block comes before the digest's own (Open status / changes).
    actions = [b for b in prod["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[-1]["elements"]] == ["status", "changes"]
    assert len({b["block_id"] for b in actions}) == len(actions)

    staging = posted_digest(stub, "Morning digest · staging")
    check_limits(staging)
    text = json.dumps(staging, ensure_ascii=False)
    # 1 replica × 24 h × $1.31 (the sandbox's replica-hour): an estimate, not billed
    assert (
        ":ghost: *loan-assessor-stg* 1.2.0 at 0 % of traffic: 1 replica(s) · $31.44 yesterday"
        " (est.) · `/aiops undeploy loan-assessor-stg 1.2.0`"
    ) in text
    assert "1.2.1 at 0 %" not in text and "idle:" not in text  # it serves Monday's traffic
    (undeploy,) = buttons_of(staging, "scale", "undeploy")
    assert undeploy["value"] == (
        'loan-assessor-stg 1.2.0 reason="at 0 % of traffic, held replicas yesterday'
        ' (morning digest)"'
    )
    assert undeploy["style"] == "danger"
    assert undeploy["confirm"]["style"] == "danger"
    assert (
        "undeploy 1.2.0 (0 % of traffic) from loan-assessor-stg"
        in (undeploy["confirm"]["text"]["text"])
    )
    rows = [e for e in rt.store.audit(AuditQuery(actor_id=SCHEDULER.id))]
    counts = {r.environment: r.parameters for r in rows if r.action == "digest_posted"}
    assert (counts["prod"]["idle"], counts["prod"]["unused"]) == (1, 0)
    assert (counts["staging"]["idle"], counts["staging"]["unused"]) == (0, 1)


def test_the_sandbox_reports_yesterday_per_deployed_model(sqlite_engine: Engine) -> None:
    clock = FakeClock(MORNING - timedelta(days=2))
    rt = make_runtime(sqlite_engine, clock)
    bot = Bot(rt, clock)
    assert bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10").ok
    deployed_at = clock.now
    clock.now = MORNING - timedelta(days=1) + timedelta(hours=3)  # Mon 11:30: both all Sunday
    stg = rt.config.endpoints["loan-assessor-stg"]
    old, new = dm_id(rt, "loan-assessor-stg", "1.2.0"), dm_id(rt, "loan-assessor-stg", "1.2.1")
    sunday = rt.platform.deployed_model_costs([stg])  # type: ignore[attr-defined]
    by_id = {m.deployed_model_id: m for m in sunday["loan-assessor-stg"]}
    assert set(by_id) == {old, new}
    # The canary was deployed at 08:30 on Sunday: it held its replica 15.5 h of the day.
    assert by_id[old].replica_hours == 24.0 and by_id[old].cost_usd == 31.44
    assert by_id[new].replica_hours == pytest.approx(15.5, abs=0.1)
    assert deployed_at.astimezone(rt.config.timezone).hour == 8
    # 90 % / 10 % of the day's traffic from then, all of it before: far from idle
    assert by_id[old].requests > 9 * by_id[new].requests > 0
    clock.now = MORNING - timedelta(days=2) + timedelta(hours=1)
    assert new not in {  # deployed today: nothing of yesterday to report
        m.deployed_model_id
        for m in rt.platform.deployed_model_costs([stg])["loan-assessor-stg"]  # type: ignore[attr-defined]
    }


def yesterday_of(rt: Runtime, slug: str) -> tuple[float, dict[str, DeployedModelCost]]:
    """The sandbox's billed cost of yesterday for `slug`, and its use per deployed model."""
    ep = rt.config.endpoints[slug]
    cost = rt.platform.daily_costs([ep], 2)[slug][-1]  # type: ignore[attr-defined]
    usage = rt.platform.deployed_model_costs([ep]).get(slug, [])  # type: ignore[attr-defined]
    return cost, {m.deployed_model_id: m for m in usage}


def test_what_is_done_today_leaves_yesterdays_figures_as_they_were(
    sqlite_engine: Engine,
) -> None:
    """Yesterday's cost and requests come from what was deployed yesterday: a blue/green
    switch, a scale or an undeploy made this morning before the digest changes none of
    them (the sandbox keeps the splits, scales and undeploys with their times)."""
    clock = FakeClock(MORNING - timedelta(hours=2))  # Tuesday 06:30, before the digest
    rt = make_runtime(sqlite_engine, clock)
    bot = Bot(rt, clock)
    stg, prod = "loan-assessor-stg", "loan-assessor"
    before = {slug: yesterday_of(rt, slug) for slug in (stg, prod)}
    old = dm_id(rt, stg, "1.2.0")
    stg_cost, stg_usage = before[stg]
    assert stg_usage[old].requests > 100_000 and stg_usage[old].replica_hours == 24.0

    # today: a staging blue/green (the old version left at 0 %), a prod scale-down
    assert bot.run(ALICE, f"/deploy {stg} gemma-3-1b-it@1.2.1 strategy=blue-green").ok
    assert bot.split(stg) == {"1.2.0": 0, "1.2.1": 100}
    scale = bot.run(ALICE, f'/aiops scale {prod} 1.2.0 min=1 max=6 reason="quiet"')
    assert scale.ok, scale.text
    assert bot.run(BOB, f"/aiops approve {rt.store.list_changes(limit=1)[0].id}").ok
    assert rt.platform.endpoint_state(rt.config.endpoints[prod]).deployed[0].replicas == 1
    clock.now = MORNING
    assert {slug: yesterday_of(rt, slug) for slug in (stg, prod)} == before

    staging = json.dumps(render_message(compose(rt, DigestKind.MORNING, "staging").reply))
    assert "idle:" not in staging  # the endpoint answered all of Monday's traffic
    assert f"${stg_cost:,.2f} yesterday / $50.00 budget" in staging
    assert "over the daily budget" not in staging
    # 1.2.0 served all of Monday: its cost was for serving, not idle capacity
    assert ":ghost:" not in staging

    # the old version undeployed this morning: its Monday is still Monday's
    assert bot.run(ALICE, f"/aiops undeploy {stg} 1.2.0").ok
    assert bot.split(stg) == {"1.2.1": 100}
    assert yesterday_of(rt, stg) == before[stg]
    # and tomorrow, Tuesday is what it was: 1.2.0 until the undeploy, 1.2.1 since
    clock.now = MORNING + timedelta(days=1)
    _, tuesday = yesterday_of(rt, stg)
    new = dm_id(rt, stg, "1.2.1")
    assert set(tuesday) == {old, new}
    assert tuesday[old].requests > 0 and tuesday[new].requests > 0
    # 1.2.0 held its replica until the 08:30 undeploy, 1.2.1 since its 06:30 deploy
    assert tuesday[old].replica_hours == pytest.approx(8.5, abs=0.05)
    assert tuesday[new].replica_hours == pytest.approx(17.5, abs=0.05)


def test_many_idle_endpoints_fit_and_only_the_costliest_are_read(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    raw = raw_config()
    for i in range(30):
        raw["endpoints"][f"ep-{i:02d}"] = {
            "environment": "prod",
            "model": "gemma-3-1b-it",
            "min_replicas": 2,
            "max_replicas": 4,
        }
    config = parse_config(raw, source="test")
    clock = FakeClock(MORNING)
    rt = slack_runtime(sqlite_engine, clock, stub, config)
    usage = {
        slug: [DeployedModelCost(dm_id(rt, slug, "1.2.0"), 0, 48.0, 10.0 + i)]
        for i, slug in enumerate(
            sorted(s for s, e in config.endpoints.items() if e.environment == "prod")
        )
    }
    figures = Figures(rt.platform, usage=usage)
    rt.platform = figures  # type: ignore[assignment]
    digest = post(rt, DigestKind.MORNING, "prod")
    assert figures.state_reads == MAX_STATE_READS  # not one per endpoint
    body = posted_digest(stub, "Morning digest · prod")
    check_limits(body)
    text = json.dumps(body, ensure_ascii=False)
    # 31 idle: the costliest 20 read (11 not), 12 of them listed (8 not)
    assert "…and 19 more endpoint(s) or model(s) not listed" in text
    buttons = buttons_of(body, "scale")
    assert len(buttons) == MAX_CAPACITY_BUTTONS
    # the costliest first: $10 + its place in the sorted slugs (loan-assessor is last)
    assert [b["value"].split(" reason=")[0] for b in buttons[:2]] == [
        "loan-assessor 1.2.0 min=1 max=6",
        "ep-29 1.2.0 min=1 max=4",
    ]
    assert digest.counts["idle"] == MAX_STATE_READS


def test_an_endpoint_held_by_an_open_change_gets_no_proposal(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    clock = FakeClock(MORNING)
    rt = slack_runtime(sqlite_engine, clock, stub, example_config())
    bot = Bot(rt, clock)
    reply = bot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="fix"')
    assert reply.ok and "waiting for approval" in reply.text
    change = rt.store.open_change("loan-assessor")
    assert change is not None
    seeded = dm_id(rt, "loan-assessor", "1.2.0")
    rt.platform = Figures(  # type: ignore[assignment]
        rt.platform, usage={"loan-assessor": [DeployedModelCost(seeded, 0, 48.0, 62.88)]}
    )
    post(rt, DigestKind.MORNING, "prod")
    body = posted_digest(stub, "Morning digest · prod")
    assert f"held by {change.id}: nothing proposed until it ends" in json.dumps(
        body, ensure_ascii=False
    )
    assert buttons_of(body, "scale", "undeploy") == []


def test_each_environment_is_compared_with_its_own_budget(sqlite_engine: Engine) -> None:
    raw = raw_config(
        environments__prod__daily_budget_usd=50,
        environments__staging__daily_budget_usd=None,  # → [thresholds] daily_budget_usd
        thresholds__daily_budget_usd=80,
    )
    config = parse_config(raw, source="test")
    assert config.environments["prod"].daily_budget_usd == 50
    assert config.environments["staging"].daily_budget_usd == 80
    assert config.environments["dev"].daily_budget_usd == 20
    clock = FakeClock(MORNING)
    rt = make_runtime(sqlite_engine, clock, config=config)
    rt.platform = Figures(  # type: ignore[assignment]
        rt.platform, costs={"loan-assessor": [40.0] * 7 + [62.5], "loan-assessor-stg": [30.0] * 8}
    )
    prod = json.dumps(render_message(compose(rt, DigestKind.MORNING, "prod").reply))
    assert "$62.50 yesterday / $50.00 budget :warning:" in prod
    assert "over the daily budget by $12.50" in prod
    assert "budget $50.00/day" in prod
    staging = json.dumps(render_message(compose(rt, DigestKind.MORNING, "staging").reply))
    assert "$30.00 yesterday / $80.00 budget" in staging and "over the daily" not in staging
    assert "budget $80.00/day" in staging


def budget_posts(notifier: NullNotifier, env: str = "") -> list[str]:
    return [p.reply.text for p in notifier.posts if p.reply.text.startswith(f"Budget {env}")]


def replica(
    engine: Engine, clock: FakeClock, name: str, costs: dict[str, list[float]], **raw: Any
) -> tuple[Scheduler, NullNotifier]:
    notifier = NullNotifier()
    config = parse_config(raw_config(**raw), source="test") if raw else example_config()
    rt = make_runtime(engine, clock, notifier, config=config)
    rt.platform = Figures(rt.platform, costs=costs)  # type: ignore[assignment]
    return Scheduler(rt, engine, owner=name), notifier


def race(*calls: Any) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.postgres
def test_budget_alerts_post_once_per_environment_day_and_threshold_across_replicas(
    pg_engine: Engine,
) -> None:
    clock = FakeClock(MORNING)
    # [day before yesterday, yesterday]; prod's budget is $100, staging's $50
    costs = {"loan-assessor": [30.0, 55.0], "loan-assessor-stg": [10.0, 10.0]}
    a, posts_a = replica(pg_engine, clock, "replica-a", costs)
    b, posts_b = replica(pg_engine, clock, "replica-b", costs)
    every = a.jobs["every:budget"].interval
    assert every == 3600 and b.jobs["every:budget"].interval == every

    def both(at: datetime) -> list[Any]:
        return race(lambda: a.fire("every:budget", at), lambda: b.fire("every:budget", at))

    def posts(env: str = "") -> list[str]:
        return budget_posts(posts_a, env) + budget_posts(posts_b, env)

    # One slot, two replicas: one check, one message for prod's 50 %.
    ran = both(MORNING)
    assert sum(r.ran for r in ran) == 1
    assert posts() == [
        "Budget prod: $55.00 on 30 Nov, 55 % of its $100.00 daily budget (reached 50 %)"
    ]

    # The export fills Monday in: an hour later it reads $130, and only 100 % is new.
    costs["loan-assessor"][-1] = 130.0
    clock.advance(hours=1)
    assert sum(r.ran for r in both(clock.now)) == 1
    assert sorted(posts("prod")) == [
        "Budget prod: $130.00 on 30 Nov, 130 % of its $100.00 daily budget (reached 100 %)",
        "Budget prod: $55.00 on 30 Nov, 55 % of its $100.00 daily budget (reached 50 %)",
    ]

    # A restarted process (a new runtime and scheduler on the same database): nothing again.
    clock.advance(hours=1)
    c, posts_c = replica(pg_engine, clock, "restarted", costs)
    result = c.fire("every:budget", clock.now)
    assert result.ran and result.outcome == "no threshold newly crossed"
    assert budget_posts(posts_c) == []

    # Two checks at once (two slots' runs overlapping) race on the thresholds' own keys:
    # staging reaching 120 % is told once per threshold, whoever claims which.
    costs["loan-assessor-stg"][-1] = 60.0
    race(
        lambda: budget.check(a.rt, lambda job, day: a.keys.claim(job, day, "a", clock.now)),
        lambda: budget.check(b.rt, lambda job, day: b.keys.claim(job, day, "b", clock.now)),
    )
    staging = posts("staging")
    announced = sorted(
        p for text in staging for p in (50, 100) if f"{p} %" in text.split("reached")[1]
    )
    assert announced == [50, 100] and 1 <= len(staging) <= 2

    # The next day: Monday is now the day before yesterday and stays told; Tuesday is new.
    clock.advance(days=1)
    costs["loan-assessor"][:] = [130.0, 70.0]
    costs["loan-assessor-stg"][:] = [60.0, 5.0]
    assert c.fire("every:budget", clock.now).ran
    assert budget_posts(posts_c) == [
        "Budget prod: $70.00 on 01 Dec, 70 % of its $100.00 daily budget (reached 50 %)"
    ]

    keys = {
        (k.job, k.scheduled_for) for k in RunKeys(pg_engine).runs() if k.job.startswith("budget:")
    }
    monday = datetime(2026, 11, 30, tzinfo=a.rt.config.timezone).astimezone(UTC)
    assert keys == {
        ("budget:prod:50", monday),
        ("budget:prod:100", monday),
        ("budget:staging:50", monday),
        ("budget:staging:100", monday),
        ("budget:prod:50", monday + timedelta(days=1)),
    }
    rows = [
        e for e in a.rt.store.audit(AuditQuery(actor_id=SCHEDULER.id)) if e.action == "budget_alert"
    ]
    assert len(rows) == len(posts()) + len(budget_posts(posts_c))  # one row a message
    first = next(r for r in rows if r.parameters["thresholds"] == [100])
    assert first.environment == "prod" and first.outcome == "posted"
    assert first.parameters | {"ts": None} == {
        "day": "2026-11-30",
        "cost_usd": 130.0,
        "budget_usd": 100.0,
        "percent": 130.0,
        "thresholds": [100],
        "channel": "C0OPS",
        "ts": None,
    }


def test_budget_thresholds_are_configurable(sqlite_engine: Engine) -> None:
    clock = FakeClock(MORNING)
    costs = {"loan-assessor": [0.0, 70.0]}
    s, notifier = replica(
        sqlite_engine, clock, "a", costs, cost__budget_alerts=[80], cost__budget_check_every="15m"
    )
    assert s.jobs["every:budget"].interval == 900
    assert not s.fire("every:budget", clock.now).outcome.startswith("failed")
    assert budget_posts(notifier) == []  # 70 % is under the one threshold
    costs["loan-assessor"][-1] = 85.0
    clock.advance(minutes=15)
    assert s.fire("every:budget", clock.now).ran
    assert budget_posts(notifier) == [
        "Budget prod: $85.00 on 30 Nov, 85 % of its $100.00 daily budget (reached 80 %)"
    ]
    off, _ = replica(sqlite_engine, clock, "b", costs, cost__budget_alerts=[])
    assert "every:budget" not in off.jobs  # `[]`: no alerts, no check


def test_an_alert_slack_refuses_is_audited_as_failed(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    clock = FakeClock(MORNING)
    rt = slack_runtime(sqlite_engine, clock, stub, example_config())
    costs = {"loan-assessor": [0.0, 140.0], "loan-assessor-stg": [0.0, 0.0]}
    rt.platform = Figures(rt.platform, costs=costs)  # type: ignore[assignment]
    stub.fail["chat.postMessage"] = "not_in_channel"
    keys = RunKeys(sqlite_engine)
    alerts = budget.check(rt, lambda job, day: keys.claim(job, day, "x", clock.now))
    assert [(a.environment, a.thresholds, a.delivered) for a in alerts] == [
        ("prod", (50, 100), False)
    ]
    (row,) = [e for e in rt.store.audit(AuditQuery()) if e.action == "budget_alert"]
    assert row.outcome == "post failed: not_in_channel"


def test_bad_cost_config_is_refused_with_what_to_write() -> None:
    for edits, words in (
        ({"cost__budget_alerts": [100, 50]}, "[cost] budget_alerts: [100, 50] must rise strictly"),
        ({"cost__budget_alerts": [0]}, "each a whole percentage 1–1000"),
        ({"cost__budget_alerts": [50.5]}, "[cost] budget_alerts[0]:"),
        (
            {"cost__idle_requests": 5},
            "idle_requests: not a key of [cost]; did you mean `idle_requests_per_day`?",
        ),
        ({"cost__idle_requests_per_day": -1}, "[cost] idle_requests_per_day:"),
        ({"cost__budget_check_every": "1m"}, "`1m` is outside 5m–24h"),
        ({"cost__budget_check_every": "hourly"}, "`hourly` is not a duration"),
        (
            {"environments__prod__daily_budget": 10},
            "[environments.prod] daily_budget: not a key of [environments.prod]; did you mean"
            " `daily_budget_usd`?",
        ),
        ({"environments__prod__daily_budget_usd": -5}, "[environments.prod] daily_budget_usd:"),
        ({"environments__prod__daily_budget_usd": "100"}, "[environments.prod] daily_budget_usd:"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config(raw_config(**edits), source="bot.toml")
        assert any(words in line for line in caught.value.problems), (words, caught.value.problems)
        assert all(line.startswith("bot.toml: ") for line in caught.value.problems)
    # the settings reader refuses the same on its own (a config built around the schema)
    config = example_config()
    bad = type(config)(**{**config.__dict__, "raw": raw_config(cost__budget_alert=[50])})
    with pytest.raises(ConfigError, match=r"budget_alert: not a key of \[cost\]"):
        cost_settings(bad)


def test_the_old_single_budget_still_works_and_is_noted_as_deprecated() -> None:
    raw = raw_config(thresholds__daily_budget_usd=70, environments__staging__daily_budget_usd=None)
    config = parse_config(raw)
    assert config.environments["staging"].daily_budget_usd == 70  # the old key, as default
    assert config.environments["prod"].daily_budget_usd == 100  # its own wins
    (note,) = deprecation_notes(config)
    assert note.startswith("[thresholds] daily_budget_usd is deprecated: set `daily_budget_usd`")
    assert "still the budget of staging" in note
    assert deprecation_notes(example_config()) == []  # the example is migrated
    assert cost_settings(example_config()) == cost_settings(parse_config(raw_config(cost=None)))


def test_no_number_in_the_config_may_be_infinite_and_a_zero_budget_is_noted() -> None:
    """TOML reads `1e400` as infinity and accepts `inf` and `nan`: every float key of the
    schema refuses them (a budget, a threshold, a price, a timeout); a zero budget is
    allowed (an environment that should cost nothing) and `config check` notes it."""
    inf, nan = float("1e400"), float("nan")
    for edits, where in (
        ({"environments__prod__daily_budget_usd": inf}, "[environments.prod] daily_budget_usd"),
        ({"environments__prod__daily_budget_usd": nan}, "[environments.prod] daily_budget_usd"),
        ({"thresholds__daily_budget_usd": inf}, "[thresholds] daily_budget_usd"),
        ({"thresholds__p95_latency_ms": inf}, "[thresholds] p95_latency_ms"),
        ({"thresholds__drift": inf}, "[thresholds] drift"),
        ({"canary__baseline_p95_ratio": inf}, "[canary] baseline_p95_ratio"),
        ({"digests__spike_factor": inf}, "[digests] spike_factor"),
        ({"models__gemma-3-1b-it__retrain_cost_usd": inf}, "retrain_cost_usd"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config(raw_config(**edits), source="bot.toml")
        assert any(
            where in line and "must be a finite number" in line for line in caught.value.problems
        ), (where, caught.value.problems)
    zero = parse_config(raw_config(environments__dev__daily_budget_usd=0))
    assert zero.environments["dev"].daily_budget_usd == 0
    assert any(
        note.startswith("[environments.dev] daily_budget_usd is 0: any billed cost is over budget")
        for note in deprecation_notes(zero)
    )
