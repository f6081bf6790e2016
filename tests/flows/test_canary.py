"""Canary analysis with controlled time and the sandbox's per-model metrics: checks judged
against the baseline, step plans, automatic rollback, asking, forced promotes, restarts."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.settings import BUNDLED_CONFIG
from commands.audit import AuditAction
from commands.canary.loop import check_due
from commands.canary.model import Check, Verdict, Watch, WatchState
from commands.config import Config, load_config, parse_config
from commands.messages import Buttons, Post
from commands.model import BOT, ChangeKind, ChangeState
from commands.ports import AuditEvent, AuditQuery
from commands.runtime import NullNotifier
from tests.support.harness import ALICE, BOB, CAROL, DAVE, Bot, FakeClock, make_runtime, text_of

PROD = "loan-assessor"
STG = "loan-assessor-stg"
DEV = "loan-assessor-dev"


def config_with(**env_overrides: dict[str, Any]) -> Config:
    """The bundled config plus a dev endpoint, with per-environment overrides."""
    raw = copy.deepcopy(load_config(BUNDLED_CONFIG).raw)
    raw["environments"]["dev"] = raw["environments"].get("dev") or {
        "project": "lender-aiops-dev",
        "region": "australia-southeast1",
        "requesters": ["alice", "bob", "carol"],
    }
    raw["endpoints"][DEV] = {"environment": "dev", "model": "gemma-3-1b-it"}
    for env, values in env_overrides.items():
        raw["environments"][env].update(values)
    return parse_config(raw, source="test")


def new_bot(engine: Engine, clock: FakeClock, config: Config | None = None) -> Bot:
    return Bot(make_runtime(engine, clock, config=config or config_with()), clock)


@pytest.fixture
def cbot(sqlite_engine: Engine, clock: FakeClock) -> Iterator[Bot]:
    b = new_bot(sqlite_engine, clock)
    yield b
    b.rt.background.wait_idle(30)


def tick(bot: Bot, minutes: float = 1.0) -> list[Check]:
    """One scheduler tick after `minutes` of fake time; waits for the work it started."""
    bot.clock.advance(minutes=minutes)
    checks = check_due(bot.rt)
    bot.rt.background.wait_idle(30)
    return checks


def run_for(bot: Bot, minutes: int) -> list[Check]:
    out: list[Check] = []
    for _ in range(minutes):
        out += tick(bot)
    return out


def watch_of(bot: Bot, slug: str) -> Watch:
    assert bot.rt.canary is not None
    w = bot.rt.canary.latest_watch(slug)
    assert w is not None
    return w


def audit(bot: Bot, action: str) -> list[AuditEvent]:
    return [e for e in bot.rt.store.audit(AuditQuery(limit=5000)) if e.action == action]


def posts(bot: Bot) -> list[Post]:
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    return notifier.posts


def deploy(bot: Bot, slug: str, version: str, canary_pct: int) -> str:
    reply = bot.run(
        ALICE, f'/deploy {slug} gemma-3-1b-it@{version} canary={canary_pct} reason="try it"'
    )
    assert reply.ok, text_of(reply)
    change = bot.rt.store.list_changes(endpoint=slug, limit=1)[0]
    if change.state is ChangeState.PENDING_APPROVAL:
        assert bot.run(BOB, f"/aiops approve {change.id}").ok
    done = bot.change(change.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    return done.id


def promotes(bot: Bot, slug: str) -> list[Any]:
    return sorted(
        (
            c
            for c in bot.rt.store.list_changes(endpoint=slug, limit=100)
            if c.kind is ChangeKind.PROMOTE
        ),
        key=lambda c: int(c.id.split("-")[1]),
    )


# --- the analysis itself ---------------------------------------------------------------


def tick_until(bot: Bot, slug: str, verdict: Verdict, windows: int) -> list[Check]:
    """Five-minute ticks until a check says `verdict` (at most `windows` of them)."""
    out: list[Check] = []
    for _ in range(windows):
        out += tick(bot, 5)
        if out and out[-1].verdict is verdict:
            return out
    raise AssertionError(f"no {verdict.words} in {windows} windows: {[c.reasons for c in out]}")


def test_one_window_does_not_open_the_prod_gate(cbot: Bot) -> None:
    """Seen: one passing window of ~400 canary requests opened the prod promote gate."""
    deploy(cbot, PROD, "1.2.1", 10)
    [first] = tick(cbot, 5)
    assert 250 <= first.canary.requests <= 450 and first.windows == 1
    assert first.verdict is Verdict.UNDECIDED, first.reasons
    refused = cbot.run(ALICE, f'/promote {PROD} to=50 reason="looks fine"')
    assert not refused.ok and "undecided" in refused.text
    # evidence accumulates: "no regression" once the errors are shown within 0.5 points
    checks = tick_until(cbot, PROD, Verdict.NO_REGRESSION, 12)
    last = checks[-1]
    assert last.windows == 1 + len(checks) and last.canary.requests >= 1000
    assert any("within" in r for r in last.reasons)
    assert cbot.run(ALICE, f'/promote {PROD} to=50 reason="no regression"').ok


def test_healthy_canary_is_promoted_step_by_step_to_100(cbot: Bot) -> None:
    """Seen: a plan advanced 10→25→50→100 % in ~90 s with a 5-min interval, each step judged
    on a window that mostly predated it. Each step now rests on evidence gathered entirely
    after the traffic reached its current share."""
    deploy_id = deploy(cbot, PROD, "1.2.1", 10)
    tick_until(cbot, PROD, Verdict.NO_REGRESSION, 12)

    reply = cbot.run(ALICE, f'/promote {PROD} steps=10,25,50,100 reason="canary healthy"')
    assert reply.ok, text_of(reply)
    assert "Canary analysis CAN-" in text_of(reply) and "no regression" in text_of(reply)
    step1 = promotes(cbot, PROD)[-1]
    assert step1.canary_percent == 25 and step1.state is ChangeState.PENDING_APPROVAL
    assert cbot.run(CAROL, f"/aiops approve {step1.id}").ok
    assert cbot.split(PROD) == {"1.2.0": 75, "1.2.1": 25}

    run_for(cbot, 120)
    assert cbot.split(PROD) == {"1.2.1": 100}
    steps = promotes(cbot, PROD)
    assert [c.canary_percent for c in steps] == [25, 50, 100]
    assert [c.requester_id for c in steps] == [ALICE.id, BOT.id, BOT.id]
    assert all(c.state is ChangeState.SUCCEEDED for c in steps)
    assert all("plan approved in " + step1.id in (c.decided_by or "") for c in steps[1:])

    w = watch_of(cbot, PROD)
    assert w.state is WatchState.PROMOTED and w.change_id == deploy_id
    assert cbot.rt.canary is not None
    checks = cbot.rt.canary.checks(w.id)
    assert [c.seq for c in checks] == list(range(1, len(checks) + 1))
    # each bot step: after a "no regression" check at the share before it, whose evidence
    # began when that share was reached (the previous step's end), never before
    rows = audit(cbot, "canary_check")
    for before, after in itertools.pairwise(steps):
        reached = before.updated_at
        assert reached is not None and after.created_at is not None
        judged = [
            r
            for r in rows
            if r.outcome == "no_regression"
            and r.parameters["share"] == before.canary_percent
            and r.at <= after.created_at
        ]
        assert judged, f"no evidence at {before.canary_percent}% before {after.id}"
        since = datetime.fromisoformat(judged[-1].parameters["since"])
        assert since >= reached
        assert after.created_at - reached >= timedelta(minutes=5)  # at least one whole window
    assert [e.outcome for e in audit(cbot, "canary_step")] == [
        "canary at 25%",
        "canary at 50%",
        "canary at 100%",
    ]
    # each check: one short line in the deploy's thread; the summary on its message
    deploy_change = cbot.change(deploy_id)
    lines = [
        p.reply.text
        for p in posts(cbot)
        if p.thread_ts == deploy_change.message_ts and " check " in p.reply.text
    ]
    assert len(lines) == len(checks) and lines[0].startswith(":white_circle: check 1 ·")
    card = [p for p in posts(cbot) if p.update and p.ts == deploy_change.message_ts][-1]
    assert "Canary analysis CAN-" in text_of(card.reply) and "promoted" in text_of(card.reply)


def test_faulty_canary_on_staging_at_10_percent_is_rolled_back(cbot: Bot) -> None:
    """Seen: rc1 on staging (~5,000 requests an hour, canary 10 %) stayed "not enough data"
    forever (~40 canary requests a window, 100 needed in one window). Evidence now adds up
    across windows: the regression is found within four windows and acted on at once."""
    deploy(cbot, STG, "1.3.0-rc1", 10)
    found: list[Check] = []
    for _ in range(4):
        found += tick(cbot, 5)
        if cbot.split(STG) == {"1.2.0": 100}:
            break
    assert found[0].canary.requests < 100  # one window alone is too little
    assert found[-1].verdict is Verdict.REGRESSION
    assert [c.verdict for c in found[:-1]] == [Verdict.UNDECIDED] * (len(found) - 1)
    assert any("P95" in r and "above the" in r for r in found[-1].reasons), found[-1].reasons
    assert cbot.split(STG) == {"1.2.0": 100}
    rollback = cbot.rt.store.list_changes(endpoint=STG, limit=1)[0]
    assert rollback.kind is ChangeKind.ROLLBACK and rollback.state is ChangeState.SUCCEEDED
    assert rollback.requester_id == BOT.id
    assert "canary_auto_rollback = yes" in (rollback.decided_by or "")
    [row] = audit(cbot, "canary_rollback")
    assert row.actor_id == BOT.id and row.justification
    assert "regression" in row.justification and "ms" in row.justification
    tick(cbot)
    assert watch_of(cbot, STG).state is WatchState.ROLLED_BACK
    assert tick(cbot, 10) == []  # a finished canary is not checked again


def test_a_typed_check_never_counts_a_window_twice(cbot: Bot) -> None:
    deploy(cbot, STG, "1.2.1", 25)
    cbot.clock.advance(minutes=5)
    for n in range(4):
        assert cbot.run(ALICE, f"/aiops canary {STG}").ok
        assert cbot.rt.canary is not None
        last = cbot.rt.canary.checks(watch_of(cbot, STG).id)[-1]
        assert (last.windows, last.counted) == (1, 1 if n == 0 else 0)
    cbot.clock.advance(minutes=5)
    assert cbot.run(ALICE, f"/aiops canary {STG}").ok
    assert cbot.rt.canary is not None
    last = cbot.rt.canary.checks(watch_of(cbot, STG).id)[-1]
    assert (last.windows, last.counted) == (2, 1)


def test_no_stable_requests_is_undecided_never_a_pass(cbot: Bot) -> None:
    """Seen: with the canary at 100 % the stable version had no requests, yet the window
    was judged a pass."""
    deploy(cbot, PROD, "1.2.1", 10)
    tick_until(cbot, PROD, Verdict.NO_REGRESSION, 12)
    w = watch_of(cbot, PROD)
    ep = cbot.rt.config.endpoints[PROD]
    cbot.rt.platform.set_traffic(ep, {w.canary_id: 100, w.stable_id: 0})  # moved outside the bot
    later = tick(cbot, 5) + tick(cbot, 5)
    assert later and all(c.verdict is Verdict.UNDECIDED for c in later)
    assert later[-1].stable.requests == 0 and later[-1].canary.requests > 1000
    assert any("no stable requests" in r for r in later[-1].reasons)
    assert watch_of(cbot, PROD).last_verdict is Verdict.UNDECIDED
    refused = cbot.run(ALICE, f'/promote {PROD} to=100 reason="all on it"')
    assert not refused.ok and "no stable requests" in refused.text


def test_prod_rollback_pages_the_ops_channel(cbot: Bot) -> None:
    deploy(cbot, PROD, "1.3.0-rc1", 10)
    for _ in range(3):
        tick(cbot, 5)
    assert cbot.split(PROD) == {"1.2.0": 100}
    pages = [p for p in posts(cbot) if "<!here>" in p.reply.text]
    assert len(pages) == 1 and pages[0].channel == cbot.rt.config.channels.ops


def test_low_traffic_never_passes_and_asks_after_max_undecided(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock, config_with(dev={"canary_promote_gate": True}))
    deploy(bot, DEV, "1.2.1", 1)
    checks = run_for(bot, 30)
    assert len(checks) == 6
    assert {c.verdict for c in checks} == {Verdict.UNDECIDED}
    assert all(c.canary.requests < 100 and c.consecutive_breaches == 0 for c in checks)
    refused = bot.run(ALICE, f"/promote {DEV}")
    assert not refused.ok and "undecided" in refused.text

    # a plan started anyway never moves past its first step on too little traffic
    assert bot.run(ALICE, f'/promote {DEV} steps=10,50,100 force=true reason="dev try"').ok
    assert bot.split(DEV) == {"1.2.0": 90, "1.2.1": 10}
    later = run_for(bot, 55)
    assert later and {c.verdict for c in later} == {Verdict.UNDECIDED}
    assert bot.split(DEV) == {"1.2.0": 90, "1.2.1": 10}
    assert watch_of(bot, DEV).state is WatchState.WATCHING
    # undecided for longer than `max_undecided` (1 h) at this share: people are asked, once
    run_for(bot, 10)
    w = watch_of(bot, DEV)
    assert w.state is WatchState.AWAITING_DECISION
    asks = [p for p in posts(bot) if p.reply.text == f"{w.ref} needs a decision"]
    run_for(bot, 30)
    assert len(asks) == 1 == len([p for p in posts(bot) if p.reply.text == asks[0].reply.text])
    assert "max_undecided" in text_of(asks[0].reply)
    assert bot.split(DEV) == {"1.2.0": 90, "1.2.1": 10}


def test_prod_canary_with_policy_ask_posts_buttons_and_waits(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock, config_with(prod={"canary_auto_rollback": "ask"}))
    deploy(bot, PROD, "1.3.0-rc1", 10)
    for _ in range(3):
        tick(bot, 5)
    w = watch_of(bot, PROD)
    assert w.state is WatchState.AWAITING_DECISION
    [ask] = [p for p in posts(bot) if p.reply.text == f"{w.ref} needs a decision"]
    assert ask.channel == bot.rt.config.channels.approvals
    [buttons] = [b for b in ask.reply.blocks if isinstance(b, Buttons)]
    assert [(b.action_id, b.value) for b in buttons.buttons] == [
        ("canary-rollback", w.ref),
        ("canary-promote", w.ref),
    ]
    run_for(bot, 20)  # it waits: checks go on, nothing moves, nobody is asked twice
    assert bot.split(PROD) == {"1.2.0": 90, "1.3.0-rc1": 10}
    assert len([p for p in posts(bot) if p.reply.text == f"{w.ref} needs a decision"]) == 1
    assert watch_of(bot, PROD).state is WatchState.AWAITING_DECISION

    assert not bot.run(DAVE, f"/aiops canary-rollback {w.ref}").ok  # a reader may not
    assert not bot.run(ALICE, f"/aiops canary-promote {w.ref}").ok  # only approvers override
    reply = bot.run(BOB, f"/aiops canary-rollback {w.ref}")  # the button's click, typed
    assert reply.ok, text_of(reply)
    assert bot.split(PROD) == {"1.2.0": 100}
    [row] = audit(bot, "canary_rollback")
    assert row.actor_id == BOB.id
    assert w.decision_ts
    [closed] = [p for p in posts(bot) if p.update and p.ts == w.decision_ts]
    assert "chose to roll back" in closed.reply.text  # the buttons are gone
    again = bot.run(CAROL, f"/aiops canary-rollback {w.ref}")
    assert not again.ok  # decided once


def test_promote_anyway_is_a_forced_promote_by_an_approver(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock, config_with(prod={"canary_auto_rollback": "ask"}))
    deploy(bot, PROD, "1.3.0-rc1", 10)
    for _ in range(3):
        tick(bot, 5)
    w = watch_of(bot, PROD)
    reply = bot.run(CAROL, f"/aiops canary-promote {w.ref}")
    assert reply.ok, text_of(reply)
    assert bot.split(PROD) == {"1.3.0-rc1": 100}
    [row] = audit(bot, AuditAction.FORCED_PROMOTE)
    assert row.actor_id == CAROL.id and "regression" in row.parameters["overrode"]


def test_forced_promote_in_prod_is_audited(cbot: Bot) -> None:
    deploy(cbot, PROD, "1.3.0-rc1", 10)  # nothing judged yet: undecided
    refused = cbot.run(ALICE, f'/promote {PROD} to=50 reason="looks fine to me"')
    assert not refused.ok and "undecided" in refused.text
    no_reason = cbot.run(ALICE, f"/promote {PROD} to=50 force=true")
    assert not no_reason.ok and "needs a reason" in no_reason.text
    assert cbot.rt.store.open_change(PROD) is None

    reply = cbot.run(ALICE, f'/promote {PROD} to=50 force=true reason="risk accepted by CRO"')
    assert reply.ok, text_of(reply)
    change = cbot.rt.store.open_change(PROD)
    assert change is not None and change.state is ChangeState.PENDING_APPROVAL
    [row] = audit(cbot, AuditAction.FORCED_PROMOTE)
    assert row.actor_id == ALICE.id and row.change_id == change.id
    assert row.justification == "risk accepted by CRO"
    assert "undecided" in row.parameters["overrode"]
    card = next(p for p in posts(cbot) if p.change_id == change.id)
    assert "Forced promote" in text_of(card.reply)

    # mitigation first: a regression, and the pending promote gives way to the rollback
    tick(cbot, 5)
    tick(cbot, 5)
    assert cbot.change(change.id).state is ChangeState.CANCELLED
    assert cbot.split(PROD) == {"1.2.0": 100}


def test_pause_resume_and_a_check_run_now(cbot: Bot) -> None:
    deploy(cbot, STG, "1.2.1", 25)
    reply = cbot.run(ALICE, f"/aiops canary {STG}")  # runs one check now, counted
    assert reply.ok and "check 1" in text_of(reply)
    assert cbot.run(ALICE, f'/aiops pause {STG} reason="load test"').ok
    assert run_for(cbot, 20) == []  # paused: no scheduled checks
    assert not cbot.run(ALICE, f"/aiops pause {STG}").ok  # already paused
    assert cbot.run(ALICE, f"/aiops resume {STG}").ok
    assert len(run_for(cbot, 5)) == 1
    w = watch_of(cbot, STG)
    assert w.checks == 2
    viewer = cbot.run(DAVE, f"/aiops canary {STG}")
    assert viewer.ok and "View only" in text_of(viewer)
    assert watch_of(cbot, STG).checks == 2  # a reader's look runs nothing
    assert [e.action for e in audit(cbot, "canary_pause")] == ["canary_pause"]


# --- restarts and replicas ---------------------------------------------------------------


def test_restart_mid_analysis_resumes_without_repeating_or_losing_a_step(
    engine: Engine, clock: FakeClock
) -> None:
    sqlite_engine = engine  # SQLite and PostgreSQL
    bot = new_bot(sqlite_engine, clock)
    deploy(bot, PROD, "1.2.1", 25)
    tick_until(bot, PROD, Verdict.NO_REGRESSION, 12)
    assert bot.run(ALICE, f'/promote {PROD} steps=25,50,75,100 reason="healthy"').ok
    assert bot.run(CAROL, f"/aiops approve {promotes(bot, PROD)[-1].id}").ok
    assert bot.split(PROD) == {"1.2.0": 50, "1.2.1": 50}

    # the bot dies after claiming the next step and before its change exists
    real_create = bot.rt.store.create_change

    def power_cut(change: Any) -> Any:
        raise RuntimeError("power cut")

    bot.rt.store.create_change = power_cut  # type: ignore[method-assign]
    for _ in range(40):
        tick(bot)
        if watch_of(bot, PROD).action == "step":
            break
    w = watch_of(bot, PROD)
    assert w.action == "step" and w.action_key == f"{w.ref}:step:75"
    assert w.action_change_id is None
    bot.rt.store.create_change = real_create  # type: ignore[method-assign]

    # a new runtime on the same database (and the old one, as a second replica)
    after = new_bot(sqlite_engine, clock)
    assert watch_of(after, PROD).id == w.id
    for _ in range(60):
        after.clock.advance(minutes=1)
        check_due(after.rt)
        check_due(bot.rt)
        after.rt.background.wait_idle(30)
        bot.rt.background.wait_idle(30)
    assert after.split(PROD) == {"1.2.1": 100}
    assert [c.canary_percent for c in promotes(after, PROD)] == [50, 75, 100]
    done = watch_of(after, PROD)
    assert done.state is WatchState.PROMOTED and done.id == w.id
    assert after.rt.canary is not None
    seqs = [c.seq for c in after.rt.canary.checks(done.id)]
    assert seqs == list(range(1, len(seqs) + 1))  # no check recorded twice
    assert [e.outcome for e in audit(after, "canary_step")] == [
        "canary at 50%",
        "canary at 75%",
        "canary at 100%",
    ]
    starts = audit(after, "execution_started")
    assert len(starts) == len({e.change_id for e in starts})  # each change ran once


def test_bad_canary_config_stops_the_bot(sqlite_engine: Engine, clock: FakeClock) -> None:
    from commands.canary.model import validate
    from commands.config import ConfigError

    raw = copy.deepcopy(load_config(BUNDLED_CONFIG).raw)
    raw["environments"]["prod"]["canary_auto_rollback"] = "sometimes"
    with pytest.raises(ConfigError, match="canary_auto_rollback"):
        validate(parse_config(raw))
    raw = copy.deepcopy(load_config(BUNDLED_CONFIG).raw)
    raw["environments"]["prod"]["promote_steps"] = [50, 25]
    with pytest.raises(ConfigError, match="promote_steps"):
        validate(parse_config(raw))


def test_the_judge_settings_come_from_the_config() -> None:
    from commands.canary.judge import judge_settings
    from commands.canary.model import CanarySettings
    from commands.config import Thresholds

    js = judge_settings(CanarySettings(confidence=0.9, min_requests=200), Thresholds())
    assert (js.baseline_p95_ratio, js.baseline_error_margin) == (1.5, 0.005)
    assert (js.max_p95_ms, js.max_error_rate) == (2000.0, 0.01)  # the thresholds, as guards
    assert js.alpha_pass == 0.1 and js.min_canary == js.min_stable == 200


def test_the_scheduler_runs_the_canary_watch(cbot: Bot) -> None:
    from bot.wiring import make_scheduler
    from commands.service import Service

    scheduler = make_scheduler(Service(cbot.rt))
    assert "every:canary" in scheduler.jobs
    deploy(cbot, STG, "1.2.1", 25)
    cbot.clock.advance(minutes=5)
    result = scheduler.fire("every:canary", cbot.clock.now)
    assert result.ran and result.outcome == "ok (1)"
    again = scheduler.fire("every:canary", cbot.clock.now)  # the same slot runs once
    assert not again.ran
    assert watch_of(cbot, STG).checks == 1


def test_steps_default_uses_the_environments_plan(cbot: Bot) -> None:
    deploy(cbot, STG, "1.2.1", 10)
    assert cbot.run(ALICE, f"/promote {STG} steps=default").ok
    assert cbot.split(STG) == {"1.2.0": 75, "1.2.1": 25}  # staging's plan: 25, 50, 100
    assert watch_of(cbot, STG).steps == [25, 50, 100]
    bad = cbot.run(ALICE, f"/promote {STG} steps=50,25")
    assert not bad.ok and "not a step plan" in bad.text
    both = cbot.run(ALICE, f"/promote {STG} to=50 steps=50,100")
    assert not both.ok and "not both" in both.text


def test_bot_steps_obey_change_freezes(sqlite_engine: Engine, clock: FakeClock) -> None:
    """Seen: a bot step ran inside a change freeze that refuses a person's promote. Now it is
    held (announced once in the deploy's thread) and resumed by the first tick after the
    freeze ends, if the analysis still says no regression."""
    raw = copy.deepcopy(config_with().raw)
    raw["freezes"] = [
        {
            "name": "quarter-close",
            "environments": ["prod"],
            "from": datetime(2026, 11, 27, 10, 10),  # local (Sydney) times; the test starts 10:00
            "until": datetime(2026, 11, 27, 11, 30),
        }
    ]
    bot = new_bot(sqlite_engine, clock, parse_config(raw, source="test"))
    deploy(bot, PROD, "1.2.1", 10)
    reply = bot.run(ALICE, f'/promote {PROD} steps=10,25,50,100 force=true reason="plan"')
    assert reply.ok, text_of(reply)
    assert bot.run(CAROL, f"/aiops approve {promotes(bot, PROD)[-1].id}").ok
    assert bot.split(PROD) == {"1.2.0": 75, "1.2.1": 25}

    run_for(bot, 60)  # 11:0x: inside the freeze, long after "no regression" at 25 %
    w = watch_of(bot, PROD)
    assert w.last_verdict is Verdict.NO_REGRESSION
    assert bot.split(PROD) == {"1.2.0": 75, "1.2.1": 25}  # held
    assert w.note and "quarter-close" in w.note
    refused = bot.run(ALICE, f'/promote {PROD} to=50 reason="by hand"')
    assert not refused.ok and "freeze" in refused.text  # as a person's promote is
    held = [p for p in posts(bot) if "is held" in p.reply.text]
    assert len(held) == 1 and "quarter-close" in held[0].reply.text
    assert [e.outcome for e in audit(bot, "canary_step")] == [
        "canary at 25%",
        "held by a change freeze",
    ]

    run_for(bot, 60)  # the freeze ended at 11:30: the plan resumes
    assert bot.split(PROD) == {"1.2.1": 100}
    assert any("freeze is over" in p.reply.text for p in posts(bot))
    bot_steps = [c for c in promotes(bot, PROD) if c.requester_id == BOT.id]
    assert [c.canary_percent for c in bot_steps] == [50, 100]
    end = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)  # 11:30 in Sydney
    assert all(c.created_at is not None and c.created_at >= end for c in bot_steps)


# --- full shares ----------------------------------------------------------------------------


def test_deploy_at_100_undeploys_the_old_version_and_rollback_redeploys_it(cbot: Bot) -> None:
    """Seen: `canary=100` left the old version deployed at 0 % (replicas billed), hidden from
    status, and promote / deploy then refused the endpoint."""
    change_id = deploy(cbot, STG, "1.2.1", 100)
    ep = cbot.rt.config.endpoints[STG]
    state = cbot.rt.platform.endpoint_state(ep)
    assert [d.version.version for d in state.deployed] == ["1.2.1"]  # 1.2.0 is gone
    card = next(p for p in posts(cbot) if p.change_id == change_id)
    assert "redeploys 1.2.0 at 100 %" in text_of(card.reply)
    tick(cbot)
    assert watch_of(cbot, STG).state is WatchState.ENDED  # nothing to compare with
    # the endpoint takes the next deploy, and a rollback brings the replaced version back
    assert cbot.run(ALICE, f"/rollback {STG}").ok
    done = cbot.rt.store.list_changes(endpoint=STG, limit=1)[0]
    assert cbot.change(done.id).state is ChangeState.SUCCEEDED
    assert cbot.split(STG) == {"1.2.0": 100}
    deploy(cbot, STG, "1.2.1", 10)
    assert cbot.split(STG) == {"1.2.0": 90, "1.2.1": 10}


def test_status_lists_a_model_deployed_at_0_percent(cbot: Bot) -> None:
    deploy(cbot, STG, "1.2.1", 10)
    tick(cbot)
    w = watch_of(cbot, STG)
    cbot.rt.platform.set_traffic(cbot.rt.config.endpoints[STG], {w.canary_id: 100})
    reply = cbot.run(DAVE, f"/aiops status {STG}")
    assert "1.2.1 100% \\u00b7 1.2.0 0%" in text_of(reply)  # "·", as JSON writes it


def test_promote_card_says_what_rollback_restores(cbot: Bot) -> None:
    """Seen: the promote card's rollback line promised the pre-promote split (90/10), but
    rollback restored 100/0."""
    deploy(cbot, STG, "1.2.1", 10)
    assert cbot.run(ALICE, f'/promote {STG} to=50 reason="more"').ok
    promote = promotes(cbot, STG)[-1]
    assert cbot.change(promote.id).state is ChangeState.SUCCEEDED
    card = next(p for p in posts(cbot) if p.change_id == promote.id)
    assert "puts 1.2.0 back at 100 % and undeploys the canary" in text_of(card.reply)
    assert cbot.run(ALICE, f"/rollback {STG}").ok
    rollback = cbot.rt.store.list_changes(endpoint=STG, limit=1)[0]
    assert cbot.change(rollback.id).state is ChangeState.SUCCEEDED
    assert cbot.split(STG) == {"1.2.0": 100}  # what the card said


# --- the chart in the deploy's thread -------------------------------------------------------


class ChartingNotifier(NullNotifier):
    """A notifier that can attach files, as Slack's can: it keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[tuple[str, str, Any, str]] = []

    def attach_chart(self, channel: str, thread_ts: str, chart: Any, comment: str) -> bool:
        self.charts.append((channel, thread_ts, chart, comment))
        return True


def test_each_check_attaches_the_analysis_chart_in_the_deploys_thread(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    from bot.canary_chart import draw, render
    from commands.ports import CanaryChart

    notifier = ChartingNotifier()
    bot = Bot(make_runtime(sqlite_engine, clock, notifier, config=config_with()), clock)
    deploy_id = deploy(bot, PROD, "1.2.1", 10)
    tick_until(bot, PROD, Verdict.NO_REGRESSION, 12)
    assert bot.run(ALICE, f'/promote {PROD} to=25 reason="more"').ok
    assert bot.run(CAROL, f"/aiops approve {promotes(bot, PROD)[-1].id}").ok
    tick(bot, 5)
    tick(bot, 5)
    checks = bot.rt.canary.checks(watch_of(bot, PROD).id) if bot.rt.canary else []
    assert len(notifier.charts) == len(checks) >= 3
    channel, thread_ts, chart, comment = notifier.charts[-1]
    deploy_change = bot.change(deploy_id)
    assert (channel, thread_ts) == (deploy_change.channel, deploy_change.message_ts)
    assert isinstance(chart, CanaryChart) and len(chart.points) == len(checks)
    assert [share for _, share in chart.share_changes] == [25]
    assert "orange" in comment and "dashed red" in comment
    fig = draw(chart)
    top, bottom = fig.axes
    assert chart.title == top.get_title() and "1.2.1" in top.get_title()
    assert (top.get_ylabel(), bottom.get_ylabel(), bottom.get_xlabel()) == (
        "P95 latency (ms)",
        "error rate (%)",
        "time (UTC)",
    )
    assert 2000.0 in [line.get_ydata()[0] for line in top.get_lines()]  # the threshold
    assert render(chart).startswith(b"\x89PNG")


def test_a_regression_while_people_decide_on_an_undecided_canary_still_rolls_back(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock)
    deploy(bot, DEV, "1.3.0-rc1", 1)  # ~5 canary requests an hour
    for _ in range(14):
        tick(bot, 5)
        if watch_of(bot, DEV).state is WatchState.AWAITING_DECISION:
            break
    w = watch_of(bot, DEV)
    assert w.state is WatchState.AWAITING_DECISION and w.last_verdict is Verdict.UNDECIDED
    for _ in range(120):  # nobody answers; the evidence grows until it shows the regression
        tick(bot, 5)
        if bot.split(DEV) == {"1.2.0": 100}:
            break
    assert bot.split(DEV) == {"1.2.0": 100}
    rollback = bot.rt.store.list_changes(endpoint=DEV, limit=1)[0]
    assert rollback.kind is ChangeKind.ROLLBACK and rollback.requester_id == BOT.id
    assert watch_of(bot, DEV).last_verdict is Verdict.REGRESSION


def test_the_chart_goes_up_to_slack_in_the_deploys_thread(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    from slack_sdk import WebClient

    from bot.slack.notifier import SlackNotifier
    from tests.support.harness import SlackStub

    stub = SlackStub()
    try:
        notifier = SlackNotifier(WebClient(token="xoxb-test", base_url=stub.api_url))
        bot = Bot(make_runtime(sqlite_engine, clock, notifier, config=config_with()), clock)
        deploy_id = deploy(bot, STG, "1.3.0-rc1", 10)
        tick(bot, 5)
        [upload] = stub.of("file_upload")
        assert upload.body["data"].startswith(b"\x89PNG")
        [complete] = stub.of("files.completeUploadExternal")
        deploy_change = bot.change(deploy_id)
        assert complete.body["thread_ts"] == deploy_change.message_ts
        assert complete.body["channel_id"] == deploy_change.channel
        assert "P95 (top) and error rate (bottom)" in complete.body["initial_comment"]
    finally:
        stub.close()


def test_a_canary_being_rolled_back_takes_no_more_checks(cbot: Bot) -> None:
    """Once its regression is acted on, a typed `/aiops canary` does not judge the
    rollback's own traffic (the canary at 0 % before it is undeployed) and cannot show
    "undecided" over the verdict that rolled it back: it says why, and adds no check."""
    deploy(cbot, STG, "1.3.0-rc1", 10)
    tick(cbot, 0)  # the watch starts
    w = watch_of(cbot, STG)
    assert cbot.rt.canary is not None
    moved = cbot.rt.canary.update_watch(
        w.id, w.rev, state=WatchState.ROLLING_BACK, last_verdict=Verdict.REGRESSION
    )
    assert moved is not None
    cbot.clock.advance(minutes=10)
    reply = cbot.run(ALICE, f"/aiops canary {STG}")
    assert "No check now: the bot is rolling this canary back" in text_of(reply)
    assert "Next scheduled check" not in text_of(reply)  # none is coming
    after = watch_of(cbot, STG)
    assert after.checks == w.checks and after.last_verdict is Verdict.REGRESSION
    assert cbot.rt.canary.checks(w.id, 10) == []


def test_a_typed_check_books_a_rollback_that_finished(cbot: Bot) -> None:
    """With no scheduler (the console), `/aiops canary` after the bot's rollback finished
    says the canary was rolled back, not "rolling back" for ever."""
    deploy(cbot, STG, "1.3.0-rc1", 10)
    cbot.clock.advance(minutes=6)
    first = cbot.run(ALICE, f"/aiops canary {STG}")  # regression: the bot rolls back
    assert "regression" in text_of(first)
    again = text_of(cbot.run(ALICE, f"/aiops canary {STG}"))  # the rollback has finished
    assert "(rolled back)" in again and "no longer watched" in again, again
    assert watch_of(cbot, STG).state is WatchState.ROLLED_BACK


def test_a_finished_rollback_is_booked_once_however_many_see_it(cbot: Bot) -> None:
    """The scheduler's tick on two replicas and a typed check may all see the bot's
    rollback finished, each holding the watch as it read it: the watch ends once, audited
    and said once."""
    from commands.canary.act import settle

    deploy(cbot, STG, "1.3.0-rc1", 10)
    cbot.clock.advance(minutes=6)
    assert "regression" in text_of(cbot.run(ALICE, f"/aiops canary {STG}"))
    stale = watch_of(cbot, STG)
    assert stale.state is WatchState.ROLLING_BACK and stale.action_change_id is not None
    ended = [settle(cbot.rt, stale) for _ in range(3)]
    assert all(w.state is WatchState.ROLLED_BACK for w in ended)
    assert len(audit(cbot, AuditAction.CANARY_WATCH_ENDED)) == 1
    flags = [p for p in posts(cbot) if ":checkered_flag:" in p.reply.text]
    assert len(flags) == 1
