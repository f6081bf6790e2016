"""Deployment strategies through the service on the sandbox and a real SQLite file:
canary (as before), blue-green (deploy at 0 %, switch in one traffic update, the old
version kept until promoted or rolled back) and replace (deploy at 100 %, soak, undeploy
the old one; roll back when the soak finds it unhealthy). Each strategy's happy path, a
failed step of each with traffic left true, and a worker that dies mid-strategy taken
over by another process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.store.sandbox_tables import SandboxOperationRow
from commands.canary.loop import check_due
from commands.canary.model import WatchState
from commands.changes.execute import take_over
from commands.config import Config, parse_config
from commands.model import Change, ChangeState, ModelHealth, Strategy
from commands.ports import AuditQuery, PlatformError
from commands.runtime import LEASE_TTL
from tests.support.harness import (
    ALICE,
    BOB,
    CAROL,
    Bot,
    DiesAfter,
    FakeClock,
    Stopped,
    endpoint_health,
    example_config,
    make_runtime,
    text_of,
)

STG = "loan-assessor-stg"
PROD = "loan-assessor"
DEAD = "deadhost:4242:deadbeef"


def last(bot: Bot) -> Change:
    return bot.rt.store.list_changes(limit=1)[0]


def actions(bot: Bot, change_id: str) -> list[str]:
    return [e.action for e in bot.rt.store.audit(AuditQuery(change_id=change_id))]


def calls_to(bot: Bot, method: str) -> list[Any]:
    """Record every call of one platform method (arguments), passing it on."""
    seen: list[Any] = []
    inner = getattr(bot.rt.platform, method)

    def call(*args: Any, **kw: Any) -> Any:
        seen.append(args)
        return inner(*args, **kw)

    setattr(bot.rt.platform, method, call)
    return seen


def operations(engine: Engine, kind: str, slug: str = STG) -> list[SandboxOperationRow]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(SandboxOperationRow).where(
                    SandboxOperationRow.endpoint == slug, SandboxOperationRow.kind == kind
                )
            ).all()
        )


def config_with(**strategies: str) -> Config:
    config = example_config()
    return parse_config(config.raw | {"strategies": strategies}, source=config.source)


# --- canary: unchanged, and the default ---------------------------------------------------


def test_strategy_canary_is_the_default_canary(bot: Bot) -> None:
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=canary canary=25").ok
    explicit = last(bot)
    assert explicit.state is ChangeState.SUCCEEDED, explicit.error
    assert explicit.plan.strategy == "canary"
    assert bot.split(STG) == {"1.2.0": 75, "1.2.1": 25}
    check_due(bot.rt)  # the analysis watches a canary: traffic is split
    watch = bot.rt.canary.watch_for_change(explicit.id) if bot.rt.canary else None
    assert watch is not None and watch.state is WatchState.WATCHING


def test_a_canary_seen_serving_alone_never_renders_an_empty_vs(bot: Bot) -> None:
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=100").ok
    assert bot.split(STG) == {"1.2.1": 100}
    shown = bot.run(ALICE, f"/aiops canary {STG}")
    assert shown.ok, text_of(shown)
    said = text_of(shown)
    assert "1.2.1 (no stable version beside it)" in said
    assert 'vs "' not in said and "vs ·" not in said


def test_unknown_strategies_and_a_share_for_a_non_canary_are_refused(bot: Bot) -> None:
    reply = bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-gren")
    assert not reply.ok
    assert "did you mean `blue-green`?" in text_of(reply)
    reply = bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace canary=10")
    assert not reply.ok and "`canary=` is the share of a canary" in text_of(reply)
    assert bot.rt.store.list_changes() == []  # nothing planned, nothing run
    assert bot.split(STG) == {"1.2.0": 100}


# --- blue-green ------------------------------------------------------------------------


def test_blue_green_deploys_at_zero_then_switches_in_one_update_keeping_the_old(
    bot: Bot,
) -> None:
    traffic = calls_to(bot, "set_traffic")
    deploys = calls_to(bot, "begin_deploy")
    reply = bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green")
    assert reply.ok, text_of(reply)
    done = last(bot)
    assert done.state is ChangeState.SUCCEEDED, done.error
    [(_, _, deploy_split, _)] = deploys
    assert list(deploy_split.values()) == [100] and "0" not in deploy_split  # new at 0 %
    assert len(traffic) == 1  # the switch is one traffic update
    assert bot.split(STG) == {"1.2.0": 0, "1.2.1": 100}  # the old version stays deployed
    assert done.plan.strategy == "blue-green" and done.plan.replaced_version is None
    card = text_of(reply)
    assert "blue/green" in card and "1.2.0" in card and "0%" in card
    assert "a day while both are deployed (until the promote)" in card
    # no canary analysis: traffic is never split, so no watch (no CAN record) at all
    check_due(bot.rt)
    assert bot.rt.canary is not None and bot.rt.canary.watch_for_change(done.id) is None
    asked = bot.run(ALICE, f"/aiops canary {STG}")
    assert not asked.ok
    said = text_of(asked)
    assert f"{done.id} (gemma-3-1b-it@1.2.1), was a blue-green" in said
    assert "no canary analysis" in said and " vs " not in said

    promote = bot.run(ALICE, f"/promote {STG}")
    assert promote.ok, text_of(promote)
    assert "undeploy 1.2.0" in text_of(promote)
    assert len(traffic) == 1  # the promote moved no traffic: it undeployed the old one
    assert last(bot).state is ChangeState.SUCCEEDED
    assert bot.split(STG) == {"1.2.1": 100}


def test_blue_green_in_prod_is_approved_and_its_rollback_is_one_traffic_update(
    bot: Bot,
) -> None:
    reply = bot.run(
        ALICE, f'/deploy {PROD} gemma-3-1b-it@1.2.1 strategy=blue-green reason="tokenizer"'
    )
    assert reply.ok and reply.text.endswith("waiting for approval")
    pending = last(bot)
    assert bot.split(PROD) == {"1.2.0": 100}  # nothing before approval
    # the plan: $62.88 a day now (2 replicas × $1.31 × 24), both during, the new one after
    assert (pending.plan.cost_before, pending.plan.cost_during, pending.plan.cost_after) == (
        62.88,
        125.76,
        62.88,
    )
    assert bot.run(BOB, f"/aiops approve {pending.id}").ok
    assert bot.change(pending.id).state is ChangeState.SUCCEEDED
    assert bot.split(PROD) == {"1.2.0": 0, "1.2.1": 100}

    traffic = calls_to(bot, "set_traffic")
    rollback = bot.run(ALICE, f'/rollback {PROD} reason="latency"')
    assert rollback.ok, text_of(rollback)
    assert [list(args[1].values()) for args in traffic] == [[100]]  # one update back
    assert bot.split(PROD) == {"1.2.0": 100}  # the new version undeployed
    assert "execution_finished" in actions(bot, last(bot).id)


def test_rollback_after_undeploying_a_blue_greens_old_version_redeploys_it(bot: Bot) -> None:
    """An undeploy of the version a blue/green switched from removes the only rollback
    target: its card says so, and `/rollback` then redeploys it (as after the promote that
    finishes a blue/green), not "nothing to roll back to"."""
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green").ok
    undeploy = bot.run(ALICE, f"/aiops undeploy {STG} 1.2.0")
    assert undeploy.ok, text_of(undeploy)
    card = text_of(undeploy)
    assert "1.2.0 is the only version to roll back to" in card
    assert f"`/rollback {STG}` redeploys it" in card
    done = last(bot)
    assert done.state is ChangeState.SUCCEEDED and done.plan.replaced_version == "1.2.0"
    assert bot.split(STG) == {"1.2.1": 100}
    [plan_row] = [
        e for e in bot.rt.store.audit(AuditQuery(change_id=done.id)) if e.action == "plan"
    ]
    assert plan_row.parameters["rollback_target_removed"] == "1.2.0"

    rollback = bot.run(ALICE, f'/rollback {STG} reason="1.2.1 regressed"')
    assert rollback.ok, text_of(rollback)
    back = last(bot)
    assert back.state is ChangeState.SUCCEEDED, back.error
    assert back.plan.redeploy_version == "gemma-3-1b-it@1.2.0"
    assert bot.split(STG) == {"1.2.0": 100}


def test_undeploying_the_only_rollback_target_while_the_serving_version_breaches_is_refused(
    bot: Bot,
) -> None:
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green").ok
    serving = next(
        d.id
        for d in bot.rt.platform.endpoint_state(bot.rt.config.endpoints[STG]).deployed
        if d.version.version == "1.2.1"
    )
    breaching = endpoint_health(
        STG, p95_latency_ms=4200.0, by_model={serving: ModelHealth(4200.0, 0.002, 9000)}
    )
    bot.rt.platform.health = lambda *_a, **_k: {STG: breaching}  # type: ignore[method-assign]
    refused = bot.run(ALICE, f"/aiops undeploy {STG} 1.2.0")
    assert not refused.ok
    said = text_of(refused)
    assert "1.2.1 serves 100 %" in said and "P95 4,200 ms > 2,000 ms" in said
    assert "the only version to roll back to" in said and f"/rollback {STG}" in said
    assert "force=true" in said
    assert bot.split(STG) == {"1.2.0": 0, "1.2.1": 100}  # nothing was done
    assert not bot.run(ALICE, f"/aiops undeploy {STG} 1.2.0 force=true").ok  # needs a reason
    forced = bot.run(ALICE, f'/aiops undeploy {STG} 1.2.0 force=true reason="frees the GPU"')
    assert forced.ok, text_of(forced)
    assert "*Forced* (`force=true`): 1.2.1 breached [thresholds]" in text_of(forced)
    done = last(bot)
    assert done.state is ChangeState.SUCCEEDED and done.plan.forced
    [plan_row] = [
        e for e in bot.rt.store.audit(AuditQuery(change_id=done.id)) if e.action == "plan"
    ]
    assert plan_row.parameters["forced"].startswith("1.2.1 breached")


def test_blue_green_to_an_unhealthy_version_switches_back_after_the_switch(bot: Bot) -> None:
    """The switch is followed by a soak (`[strategies] blue_green_soak`, the replace soak's
    code): a version breaching `[thresholds]` has traffic switched back in one update (the
    old version is still deployed), is undeployed, and the change fails saying why."""
    traffic = calls_to(bot, "set_traffic")
    reply = bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.3.0-rc1 strategy=blue-green")
    assert "then watched for 10 min" in text_of(reply)  # the card's How
    failed = last(bot)
    assert failed.state is ChangeState.FAILED
    assert failed.error and "1.3.0-rc1 was unhealthy during the soak: P95" in failed.error
    assert "rolled back: 1.2.0 serves 100 %" in failed.error
    assert len(traffic) == 2  # the switch, and one update back
    assert list(traffic[1][1].values()) == [100]
    assert bot.split(STG) == {"1.2.0": 100}
    rows = bot.rt.store.audit(AuditQuery(change_id=failed.id))
    [soak] = [e for e in rows if e.action == "soak"]
    assert soak.outcome.startswith("unhealthy: P95")
    assert rows[-1].action == "execution_finished" and "rolled back" in rows[-1].outcome
    lines = [p.reply.text for p in bot.rt.notifier.posts if p.change_id == failed.id]  # type: ignore[attr-defined]
    assert any("watching its health until" in line for line in lines)
    assert any("traffic back on 1.2.0 (100 %)" in line for line in lines)


def test_a_healthy_blue_green_is_watched_through_its_soak_and_keeps_the_old_version(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = Bot(make_runtime(sqlite_engine, clock, config=config_with(blue_green_soak="3m")), clock)
    start = clock()
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green").ok
    done = last(bot)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.plan.soak_until is not None and clock() >= done.plan.soak_until
    assert done.plan.soak_until - start >= timedelta(minutes=3)
    soaked = [e for e in bot.rt.store.audit(AuditQuery(change_id=done.id)) if e.action == "soak"]
    assert [e.outcome for e in soaked] == ["healthy"]
    assert bot.split(STG) == {"1.2.0": 0, "1.2.1": 100}


def test_blue_green_deploy_that_fails_leaves_traffic_on_the_old_version(bot: Bot) -> None:
    bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.3.0-rc2 strategy=blue-green")
    failed = last(bot)
    assert failed.state is ChangeState.FAILED
    assert failed.error and "did not become healthy" in failed.error
    assert bot.split(STG) == {"1.2.0": 100}


def test_blue_green_switch_that_fails_leaves_traffic_and_says_what_is_deployed(
    bot: Bot,
) -> None:
    def refused(*_args: Any) -> None:
        raise PlatformError("the platform refused the traffic update", kind="precondition")

    bot.rt.platform.set_traffic = refused  # type: ignore[method-assign]
    bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green")
    failed = last(bot)
    assert failed.state is ChangeState.FAILED
    assert failed.error and "switching traffic to 1.2.1 failed" in failed.error
    assert "traffic stays on 1.2.0" in failed.error and f"/rollback {STG}" in failed.error
    assert bot.split(STG) == {"1.2.0": 100, "1.2.1": 0}  # true: the new one is at 0 %
    finished = [
        e
        for e in bot.rt.store.audit(AuditQuery(change_id=failed.id))
        if e.action == "execution_finished"
    ]
    assert finished and finished[0].outcome.startswith("failed: switching traffic")


# --- replace ---------------------------------------------------------------------------


def test_replace_soaks_then_undeploys_the_old_version(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = Bot(make_runtime(sqlite_engine, clock, config=config_with(replace_soak="3m")), clock)
    start = clock()
    health = calls_to(bot, "health")
    reply = bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace")
    assert reply.ok, text_of(reply)
    done = last(bot)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert bot.split(STG) == {"1.2.1": 100}
    assert done.plan.replaced_version == "1.2.0"  # a later rollback redeploys it
    assert done.plan.soak_until is not None
    assert done.plan.soak_until - start >= timedelta(minutes=3)
    assert clock() >= done.plan.soak_until  # it soaked the whole time
    assert len(health) >= 4  # a check a minute, the plan's included
    soaked = [e for e in bot.rt.store.audit(AuditQuery(change_id=done.id)) if e.action == "soak"]
    assert [e.outcome for e in soaked] == ["healthy"]
    assert soaked[0].parameters["requests"] > 0
    assert "healthy for 3 min" in text_of(reply)
    check_due(bot.rt)
    assert bot.rt.canary is not None and bot.rt.canary.watch_for_change(done.id) is None

    rollback = bot.run(ALICE, f"/rollback {STG}")
    assert rollback.ok, text_of(rollback)
    assert bot.split(STG) == {"1.2.0": 100}


def test_replace_unhealthy_during_the_soak_rolls_back(bot: Bot) -> None:
    traffic = calls_to(bot, "set_traffic")
    bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.3.0-rc1 strategy=replace")
    failed = last(bot)
    assert failed.state is ChangeState.FAILED
    assert failed.error and "1.3.0-rc1 was unhealthy during the soak: P95" in failed.error
    assert "rolled back: 1.2.0 serves 100 %" in failed.error
    assert bot.split(STG) == {"1.2.0": 100}  # traffic back and the new version gone
    assert len(traffic) == 1  # back in one update
    assert failed.plan.soak and failed.plan.soak in failed.error
    rows = bot.rt.store.audit(AuditQuery(change_id=failed.id))
    [soak] = [e for e in rows if e.action == "soak"]
    assert soak.outcome.startswith("unhealthy: P95")
    assert rows[-1].action == "execution_finished" and "rolled back" in rows[-1].outcome


def test_replace_whose_deploy_fails_leaves_the_old_version_serving(bot: Bot) -> None:
    health = calls_to(bot, "health")
    bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.3.0-rc2 strategy=replace")
    failed = last(bot)
    assert failed.state is ChangeState.FAILED and failed.plan.soak_until is None
    assert bot.split(STG) == {"1.2.0": 100}
    assert len(health) == 1  # the plan's health only: no soak for a version not deployed


# --- a worker that dies mid-strategy ---------------------------------------------------


def strand(
    engine: Engine,
    clock: FakeClock,
    line: str,
    *,
    config: Config | None = None,
    stop: Callable[[float], bool] | None = None,
    dies: str | None = None,
) -> Change:
    """Run `line` in a process that dies: at the first sleep `stop` says so (default: the
    first), or right after the platform method `dies`. Its lease is then a dead owner's
    and the clock is moved past it (as tests/flows/test_takeover.py does)."""
    dead = Bot(make_runtime(engine, clock, config=config), clock)
    if dies is not None:
        dead.rt.platform = DiesAfter(dead.rt.platform, dies)  # type: ignore[assignment]
    else:

        def sleep(seconds: float) -> None:
            if stop is None or stop(seconds):
                raise Stopped
            clock.advance(seconds)

        dead.rt.sleep = sleep
    with contextlib.suppress(Stopped):
        dead.run(ALICE, line)
    change = last(dead)
    assert change.state is ChangeState.RUNNING
    assert dead.rt.store.take_lease(change.id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)
    return change


def take(engine: Engine, clock: FakeClock, change_id: str, config: Config | None = None) -> Bot:
    taker = Bot(make_runtime(engine, clock, config=config), clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    assert "execution_resumed" in actions(taker, change_id)
    return taker


def test_a_blue_green_deploy_taken_over_mid_deploy_switches_once(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    stranded = strand(
        sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green"
    )
    assert stranded.plan.phase == "deploy" and stranded.operation
    taker = take(sqlite_engine, clock, stranded.id)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert len(operations(sqlite_engine, "deploy")) == 1  # polled on, never deployed again
    assert taker.split(STG) == {"1.2.0": 0, "1.2.1": 100}


def test_a_blue_green_switch_a_dead_worker_made_is_recognised(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    stranded = strand(
        sqlite_engine,
        clock,
        f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green",
        dies="set_traffic",
    )
    assert stranded.plan.phase == "deployed"  # switched, but not stored
    taker = take(sqlite_engine, clock, stranded.id)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error  # not voided: the move was ours
    assert taker.split(STG) == {"1.2.0": 0, "1.2.1": 100}


def test_a_replace_taken_over_mid_soak_soaks_on_to_the_same_end(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    config = config_with(replace_soak="5m")
    stranded = strand(
        sqlite_engine,
        clock,
        f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace",
        config=config,
        stop=lambda seconds: seconds >= 5,  # the soak's first nap, not a deploy poll (1 s)
    )
    assert stranded.plan.phase == "soak" and stranded.plan.soak_until is not None
    assert len(operations(sqlite_engine, "undeploy")) == 0
    taker = take(sqlite_engine, clock, stranded.id, config)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.plan.soak_until == stranded.plan.soak_until  # the same soak, not a new one
    assert clock() >= stranded.plan.soak_until
    assert len(operations(sqlite_engine, "deploy")) == 1
    assert len(operations(sqlite_engine, "undeploy")) == 1
    assert taker.split(STG) == {"1.2.1": 100}


def test_a_replace_rolling_back_when_its_worker_died_is_finished_by_the_taker(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    stranded = strand(
        sqlite_engine,
        clock,
        f"/deploy {STG} gemma-3-1b-it@1.3.0-rc1 strategy=replace",
        dies="set_traffic",  # traffic went back; the worker died before the undeploy
    )
    assert stranded.plan.soak and stranded.plan.phase == "soak_failed"
    taker = take(sqlite_engine, clock, stranded.id)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.FAILED
    assert done.error and "rolled back" in done.error and "unhealthy during the soak" in done.error
    assert taker.split(STG) == {"1.2.0": 100}
    assert len(operations(sqlite_engine, "undeploy")) == 1


@pytest.mark.parametrize("strategy", [s.value for s in Strategy])
def test_every_strategy_plan_is_bound_to_its_approval(bot: Bot, strategy: str) -> None:
    """The plan hash covers the strategy: the same deploy with another strategy is another
    plan (an approval of one never runs the other)."""
    extra = " canary=10" if strategy == "canary" else ""
    bot.run(ALICE, f'/deploy {PROD} gemma-3-1b-it@1.2.1 strategy={strategy}{extra} reason="x"')
    change = last(bot)
    assert change.plan.plan_hash
    bot.run(ALICE, f"/aiops cancel {change.id}")
    other = "replace" if strategy != "replace" else "blue-green"
    bot.run(ALICE, f'/deploy {PROD} gemma-3-1b-it@1.2.1 strategy={other} reason="x"')
    assert last(bot).plan.plan_hash != change.plan.plan_hash


# --- a person's rollback during a live worker's soak ----------------------------------


def rollback_during_the_soak(
    engine: Engine, clock: FakeClock, strategy: str, lines: list[str]
) -> tuple[Bot, Bot, list[Any], float]:
    """Deploy with `strategy` (a 10-minute soak) in one process; the first time its worker
    naps in the soak, another process (another runtime on the same database) types each of
    `lines`. The worker is alive all along (its lease fresh). Returns both bots, the other
    process's replies, and the minutes of soak the worker spent after the first line."""
    config = config_with(replace_soak="10m", blue_green_soak="10m")
    worker = Bot(make_runtime(engine, clock, config=config), clock)
    other = Bot(make_runtime(engine, clock, config=config), clock)
    replies: list[Any] = []
    asked_at: list[Any] = []
    sleep = worker.rt.sleep

    def nap(seconds: float) -> None:
        change = last(worker)
        if not replies and change.plan.phase == "soak":
            asked_at.append(clock())
            replies.extend(other.run(BOB, line) for line in lines)
        sleep(seconds)

    worker.rt.sleep = nap
    worker.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy={strategy}")
    assert replies, "the soak never napped"
    return worker, other, replies, (clock() - asked_at[0]).total_seconds() / 60


@pytest.mark.parametrize("strategy", ["replace", "blue-green"])
def test_a_rollback_during_a_live_soak_stops_it_and_rolls_back_at_once(
    engine: Engine, clock: FakeClock, strategy: str
) -> None:
    """Mitigation never waits for a soak: the new version serves 100 % while its worker
    watches it, and a person's `/rollback` then is not refused "locked … running" for the
    rest of the soak. The worker stops within `STOP_POLL`, traffic goes back to the old
    version in one update, the new one is undeployed, the change fails naming who stopped
    it and why, and a second `/rollback` meanwhile is told it is already under way."""
    worker, _, replies, minutes = rollback_during_the_soak(
        engine,
        clock,
        strategy,
        [f'/rollback {STG} reason="bad answers in UAT"', f"/rollback {STG}"],
    )
    first, second = (text_of(r) for r in replies)
    assert "Stopping it at your request" in first and "undeploys 1.2.1" in first, first
    assert "already rolling back" in second and "<@U0BOB>" in second, second
    stopped = last(worker)
    assert stopped.state is ChangeState.FAILED
    assert stopped.error and "stopped during the soak at <@U0BOB>'s request" in stopped.error
    assert "bad answers in UAT" in stopped.error
    assert "rolled back: 1.2.0 serves 100 %" in stopped.error
    assert worker.split(STG) == {"1.2.0": 100}  # back, and 1.2.1 undeployed
    assert minutes < 1  # not the rest of a 10-minute soak
    assert len(worker.rt.store.list_changes(limit=10)) == 1  # no second change opened
    rows = worker.rt.store.audit(AuditQuery(change_id=stopped.id))
    [asked] = [e for e in rows if e.action == "stop_requested"]
    assert asked.actor_id == BOB.id and asked.justification == "bad answers in UAT"
    [soak] = [e for e in rows if e.action == "soak"]
    assert soak.outcome == "stopped: rollback asked by <@U0BOB>"
    assert rows[-1].action == "execution_finished" and "rolled back" in rows[-1].outcome


def test_a_stop_request_and_the_end_of_the_soak_race_on_one_row(
    engine: Engine, clock: FakeClock
) -> None:
    """The stop request and the worker's move out of the soak are compare-and-sets on one
    row: a request after the soak ended loses (the rollback is then refused as behind any
    running change), and a soak asked to stop can no longer be marked passed; of two
    requests the first counts."""
    bot = Bot(make_runtime(engine, clock, config=config_with(replace_soak="3m")), clock)
    store = bot.rt.store
    seen: list[str] = []
    sleep = bot.rt.sleep

    def nap(seconds: float) -> None:
        change = last(bot)
        if change.plan.phase == "soak" and not seen:
            seen.append(change.id)
            owner = change.lease_owner
            # the worker leaves the soak before the request lands: the request loses
            change.plan.phase = "soaked"
            assert store.update_change(
                change.id, holder=owner, unless_stop_requested=True, plan=change.plan
            )
            assert store.request_stop(change.id, BOB.id, "too late", phase="soak") is None
            change.plan.phase = "soak"
            assert store.update_change(change.id, holder=owner, plan=change.plan)
            # asked first: the worker cannot leave the soak, and a second request loses
            asked = store.request_stop(change.id, BOB.id, "first", phase="soak")
            assert asked is not None and asked.stop_requested_by == BOB.id
            assert store.request_stop(change.id, CAROL.id, "second", phase="soak") is None
            change.plan.phase = "soaked"
            assert not store.update_change(
                change.id, holder=owner, unless_stop_requested=True, plan=change.plan
            )
        sleep(seconds)

    bot.rt.sleep = nap
    bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace")
    assert seen
    stopped = last(bot)
    assert stopped.state is ChangeState.FAILED  # the request that won was honoured
    assert stopped.error and "<@U0BOB>'s request (first)" in stopped.error
    assert bot.split(STG) == {"1.2.0": 100}
    assert store.request_stop(stopped.id, CAROL.id, None, phase="soak") is None  # ended


def test_a_stop_asked_of_a_worker_that_then_died_is_honoured_by_the_taker(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    config = config_with(replace_soak="5m")
    stranded = strand(
        sqlite_engine,
        clock,
        f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace",
        config=config,
        stop=lambda seconds: seconds >= 5,  # the soak's first nap, not a deploy poll
    )
    assert stranded.plan.phase == "soak"
    store = Bot(make_runtime(sqlite_engine, clock, config=config), clock).rt.store
    assert store.request_stop(stranded.id, BOB.id, "asked while it was alive", phase="soak")
    taker = take(sqlite_engine, clock, stranded.id, config)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.FAILED
    assert done.error and "asked while it was alive" in done.error
    assert taker.split(STG) == {"1.2.0": 100}
    assert len(operations(sqlite_engine, "undeploy")) == 1


def test_a_stop_reason_is_shown_inert_wherever_the_stop_is_told(
    engine: Engine, clock: FakeClock
) -> None:
    """The reason typed with the `/rollback` goes into the change's failure, which the
    thread, the requester's DM and the card show as mrkdwn: an `@channel`, a mention or a
    forged link in it must arrive as the text that was typed, never as markup."""
    typed = "<!channel> see <https://evil.example|the runbook> & <@U0EVE>"
    worker, other, _, _ = rollback_during_the_soak(
        engine, clock, "replace", [f'/rollback {STG} reason="{typed}"']
    )
    stopped = last(worker)
    assert stopped.state is ChangeState.FAILED and stopped.stop_reason == typed
    posts = [
        text_of(p.reply)
        for bot in (worker, other)
        for p in bot.rt.notifier.posts  # type: ignore[attr-defined]
    ]
    told = [p for p in posts if "stopped during the soak" in p]
    assert told  # the thread's rewind line, the failure, the DM and the card
    for shown in told:
        assert "<!channel>" not in shown and "<https://evil" not in shown, shown
        assert "<@U0EVE>" not in shown, shown
    assert any("&lt;!channel&gt; see &lt;https://evil.example|the runbook&gt;" in p for p in told)
    # the card shows it escaped once, as the thread does (not `&amp;lt;`)
    assert not any("&amp;lt;" in p for p in told)


def test_a_break_glass_stop_is_audited_as_break_glass_with_its_ticket(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """Where rollbacks need approval, `break_glass=true` stops the soak at once; it is the
    break glass the digest and the incident review look for (a `break_glass` row under the
    person's name), announced in the change's thread, and the ticket typed with it is on
    the stop's row."""
    config = example_config()
    raw = dict(config.raw)
    raw["strategies"] = {"replace_soak": "10m"}
    raw["environments"] = dict(raw["environments"]) | {
        "prod": dict(raw["environments"]["prod"]) | {"rollback_requires_approval": True}
    }
    config = parse_config(raw, source=config.source)
    worker = Bot(make_runtime(sqlite_engine, clock, config=config), clock)
    other = Bot(make_runtime(sqlite_engine, clock, config=config), clock)
    replies: list[Any] = []
    sleep = worker.rt.sleep

    def nap(seconds: float) -> None:
        change = last(worker)
        if not replies and change.plan.phase == "soak":
            replies.append(other.run(ALICE, f'/rollback {PROD} reason="needs approval"'))
            replies.append(
                other.run(
                    BOB, f'/rollback {PROD} break_glass=true reason="on fire" ticket=CHG-4242'
                )
            )
        sleep(seconds)

    worker.rt.sleep = nap
    assert worker.run(ALICE, f'/deploy {PROD} gemma-3-1b-it@1.2.1 strategy=replace reason="x"').ok
    assert worker.run(BOB, f"/aiops approve {last(worker).id}").ok
    refused, glass = (text_of(r) for r in replies)
    assert "locked by" in refused  # without glass it still waits for the soak
    assert "Stopping it at your request" in glass, glass
    stopped = last(worker)
    assert stopped.state is ChangeState.FAILED and worker.split(PROD) == {"1.2.0": 100}
    rows = worker.rt.store.audit(AuditQuery(change_id=stopped.id))
    [broke] = [e for e in rows if e.action == "break_glass"]
    assert broke.actor_id == BOB.id and broke.justification == "on fire"
    [asked] = [e for e in rows if e.action == "stop_requested"]
    assert asked.parameters["ticket"] == "CHG-4242" and asked.parameters["break_glass"] is True
    posts = [text_of(p.reply) for p in other.rt.notifier.posts]  # type: ignore[attr-defined]
    assert any("Break glass" in p and "on fire" in p for p in posts)


def test_a_stop_under_an_open_incident_is_its_mitigation_in_the_review(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """An incident declared during the soak, then its Roll back: no rollback change is
    opened, so the stopped deploy itself is linked (its rows name the incident, an
    `incident_linked` row), `incident show` lists it, the incident's review has the stop
    on its timeline and the stopped deploy as a linked change, not a preceding one."""
    from commands.incidents.review import review_for

    worker, other, replies, _ = rollback_during_the_soak(
        sqlite_engine,
        clock,
        "replace",
        [
            f'/aiops incident declare {STG} sev=P3 summary="wrong answers after 1.2.1"',
            "/aiops incident rollback INC-1",
        ],
    )
    declared, rolled = (text_of(r) for r in replies)
    assert "INC-1" in declared, declared
    assert "Stopping it at your request" in rolled, rolled
    stopped = last(worker)
    assert stopped.state is ChangeState.FAILED and stopped.plan.incident == "INC-1"
    assert worker.split(STG) == {"1.2.0": 100}
    rows = worker.rt.store.audit(AuditQuery(change_id=stopped.id))
    assert {"stop_requested", "incident_linked"} <= {e.action for e in rows}
    [asked] = [e for e in rows if e.action == "stop_requested"]
    assert asked.parameters["incident"] == "INC-1"
    assert stopped.id in text_of(other.run(BOB, "/aiops incident show INC-1"))

    assert other.rt.incidents is not None
    review = review_for(other.rt.store, other.rt.incidents, other.rt.config, "INC-1")
    changes = {c["id"]: c for c in review["changes"]}
    assert changes[stopped.id]["role"] == "linked"
    assert "stop_requested" in [e["kind"] for e in review["timeline"]]


def test_a_soak_held_by_an_earlier_release_is_not_asked_to_stop(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """During a rolling upgrade the soak's worker may be of a release that never looks for
    a stop request: its owner name says what it can be asked (`lease.CAPABILITIES`), and
    without `+stop` the rollback is refused as behind any running change rather than
    promised and then ignored."""
    from sqlalchemy import update

    from bot.store.tables import ChangeRow
    from commands.changes.lease import new_owner, stoppable

    assert stoppable(new_owner()) and not stoppable("oldhost:4242:cafe1234")
    assert not stoppable(None) and not stoppable("host+stop:1:cafe1234")  # in the uuid part

    config = config_with(replace_soak="10m")
    worker = Bot(make_runtime(sqlite_engine, clock, config=config), clock)
    other = Bot(make_runtime(sqlite_engine, clock, config=config), clock)
    replies: list[Any] = []
    sleep = worker.rt.sleep

    def nap(seconds: float) -> None:
        change = last(worker)
        if not replies and change.plan.phase == "soak":
            with Session(sqlite_engine) as session:  # as an earlier release names its lease
                session.execute(update(ChangeRow).values(lease_owner="oldhost:4242:cafe1234"))
                session.commit()
            replies.append(other.run(BOB, f"/rollback {STG}"))
            raise Stopped  # this worker lost its lease: it stops
        sleep(seconds)

    worker.rt.sleep = nap
    with contextlib.suppress(Stopped):
        worker.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace")
    [reply] = replies
    assert "running now in a live worker" in text_of(reply), text_of(reply)
    held = last(worker)
    assert held.state is ChangeState.RUNNING and held.stop_requested_by is None


def test_a_stop_asked_of_a_worker_gone_quiet_says_when_a_taker_will_honour_it(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """The reply promises "within 5 s" only of a worker that heartbeats: one silent for
    more than half its lease may have died, and the reply says when another worker takes
    the change over (its lease's end plus a sweep) and honours the request then."""
    config = config_with(replace_soak="10m")
    worker = Bot(make_runtime(sqlite_engine, clock, config=config), clock)
    other = Bot(make_runtime(sqlite_engine, clock, config=config), clock)
    replies: list[Any] = []
    sleep = worker.rt.sleep

    def nap(seconds: float) -> None:
        change = last(worker)
        if not replies and change.plan.phase == "soak":
            assert change.lease_heartbeat_at is not None
            clock.advance(20 - (clock() - change.lease_heartbeat_at).total_seconds())
            replies.append(other.run(BOB, f"/rollback {STG}"))
        sleep(seconds)

    worker.rt.sleep = nap
    worker.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace")
    text = text_of(replies[0])
    assert "last heartbeat was 20 s ago" in text, text
    assert "takes CHG-1 over within 21 s" in text  # 10 s of lease left + a 10 s sweep + 1
    assert last(worker).state is ChangeState.FAILED  # and it was honoured


# --- a person's rollback while a live worker's deploy is still running -----------------


def rollback_while_deploying(
    engine: Engine, clock: FakeClock, line: str, *, land_first: bool = False
) -> tuple[Bot, Any]:
    """Deploy a canary in one process; at its first poll of the deploy operation another
    process types `/rollback`. `land_first`: the operation has finished by the time the
    worker looks again (the platform did not honour the cancel in time)."""
    worker = Bot(make_runtime(engine, clock), clock)
    other = Bot(make_runtime(engine, clock), clock)
    replies: list[Any] = []
    sleep = worker.rt.sleep

    def poll(seconds: float) -> None:
        change = last(worker)
        if not replies and change.plan.phase == "deploy":
            replies.append(other.run(BOB, f'/rollback {STG} reason="wrong version"'))
            if land_first:
                clock.advance(3600)
        sleep(seconds)

    worker.rt.sleep = poll
    worker.run(ALICE, line)
    assert replies, "the deploy was never polled"
    return worker, replies[0]


def test_a_rollback_while_a_deploy_runs_cancels_it_and_nothing_moves(
    engine: Engine, clock: FakeClock
) -> None:
    """On Vertex AI a deploy runs for minutes; a `/rollback` then is not refused "locked …
    running" until it lands: the worker cancels the operation at its next poll, nothing of
    the new version is deployed, traffic never moved, and the change fails naming who
    stopped it."""
    worker, reply = rollback_while_deploying(
        engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=10"
    )
    text = text_of(reply)
    assert "was still deploying" in text and "cancels the deploy" in text, text
    stopped = last(worker)
    assert stopped.state is ChangeState.FAILED and stopped.error
    assert "stopped before its deploy finished, at <@U0BOB>'s request" in stopped.error
    assert "(wrong version)" in stopped.error and "nothing of it is deployed" in stopped.error
    assert worker.split(STG) == {"1.2.0": 100}
    assert len(worker.rt.store.list_changes(limit=10)) == 1  # no second change opened
    rows = worker.rt.store.audit(AuditQuery(change_id=stopped.id))
    [asked] = [e for e in rows if e.action == "stop_requested"]
    assert asked.actor_id == BOB.id and asked.parameters["phase"] == "deploy"


def test_a_deploy_that_lands_despite_the_stop_is_taken_back(
    engine: Engine, clock: FakeClock
) -> None:
    """The platform finished the deploy before the cancel: the canary that landed at 10 %
    is taken back — traffic to the stable version in one update, the canary undeployed."""
    worker, reply = rollback_while_deploying(
        engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=10", land_first=True
    )
    stopped = last(worker)
    assert stopped.state is ChangeState.FAILED and stopped.error
    assert "its deploy had already finished" in stopped.error, stopped.error
    assert "it had landed: traffic back to 1.2.0 100" in stopped.error
    assert worker.split(STG) == {"1.2.0": 100}
    assert "was still deploying" in text_of(reply)


def test_a_stopped_deploy_whose_worker_died_is_taken_back_by_the_taker(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """The worker recorded the stop (`deploy_stopped`) and cancelled the operation, then
    died: the taker finishes taking the deploy back and fails the change the same way,
    cancelling nothing twice."""
    dead = Bot(make_runtime(sqlite_engine, clock), clock)
    dead.rt.platform = DiesAfter(dead.rt.platform, "cancel_operation")  # type: ignore[assignment]
    store = dead.rt.store
    sleep = dead.rt.sleep
    asked: list[str] = []

    def poll(seconds: float) -> None:
        change = last(dead)
        if not asked and change.plan.phase == "deploy":
            assert store.request_stop(change.id, BOB.id, "wrong version", phase="deploy")
            asked.append(change.id)
        sleep(seconds)

    dead.rt.sleep = poll
    with contextlib.suppress(Stopped):
        dead.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=10")
    stranded = last(dead)
    assert stranded.state is ChangeState.RUNNING and stranded.plan.phase == "deploy_stopped"
    assert dead.rt.store.take_lease(stranded.id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)
    cancels: list[None] = []
    taker = Bot(make_runtime(sqlite_engine, clock), clock)
    inner = taker.rt.platform.cancel_operation
    taker.rt.platform.cancel_operation = lambda name: cancels.append(inner(name))  # type: ignore[method-assign]
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.FAILED and done.error
    assert "at <@U0BOB>'s request (wrong version)" in done.error
    assert "had already ended with an error (the operation was cancelled)" in done.error
    assert taker.split(STG) == {"1.2.0": 100}
    assert cancels == []


@pytest.mark.parametrize("line", ["canary=10", "strategy=replace"])
def test_a_stopped_deploy_whose_worker_died_undeploying_it_fails_not_succeeds(
    sqlite_engine: Engine, clock: FakeClock, line: str
) -> None:
    """The deploy landed despite the stop; its worker put traffic back, began undeploying
    the new version (phase `undeploy:<id>`) and died. The taker waits for that undeploy
    and fails the change naming who stopped it — not "succeeded", as the undeploy phase
    of a finished deploy would."""
    dead = Bot(make_runtime(sqlite_engine, clock), clock)
    other = Bot(make_runtime(sqlite_engine, clock), clock)
    sleep = dead.rt.sleep
    asked: list[Any] = []

    def poll(seconds: float) -> None:
        phase = last(dead).plan.phase or ""
        if phase.startswith("undeploy:"):
            raise Stopped
        if not asked and phase == "deploy":
            asked.append(other.run(BOB, f'/rollback {STG} reason="wrong version"'))
            clock.advance(3600)  # it lands before the worker looks again
        sleep(seconds)

    dead.rt.sleep = poll
    with contextlib.suppress(Stopped):
        dead.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 {line}")
    stranded = last(dead)
    assert stranded.plan.phase and stranded.plan.phase.startswith("undeploy:")
    assert dead.rt.store.take_lease(stranded.id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)
    taker = Bot(make_runtime(sqlite_engine, clock), clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.FAILED, done.error
    assert done.error and "at <@U0BOB>'s request (wrong version)" in done.error
    assert "traffic back to 1.2.0 100% and 1.2.1 undeployed" in done.error
    assert taker.split(STG) == {"1.2.0": 100}
    assert len(operations(sqlite_engine, "deploy")) == 1


def test_a_second_rollback_while_a_stopped_deploy_is_taken_back_is_told_so(
    engine: Engine, clock: FakeClock
) -> None:
    """Past its `deploy` phase (the platform would not cancel; the worker waits for the
    deploy to end, phase `deploy_stopped`), a second `/rollback` is told the change is
    already rolling back, not that it must wait for a running change."""
    worker = Bot(make_runtime(engine, clock), clock)

    def refuse(name: str) -> None:
        raise PlatformError("cannot cancel now", kind="precondition")

    worker.rt.platform.cancel_operation = refuse  # type: ignore[method-assign]
    other = Bot(make_runtime(engine, clock), clock)
    replies: list[Any] = []
    sleep = worker.rt.sleep

    def poll(seconds: float) -> None:
        phase = last(worker).plan.phase
        if not replies and phase == "deploy":
            replies.append(other.run(BOB, f'/rollback {STG} reason="wrong version"'))
        elif len(replies) == 1 and phase == "deploy_stopped":
            replies.append(other.run(CAROL, f"/rollback {STG}"))
        sleep(seconds)

    worker.rt.sleep = poll
    worker.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=10")
    worker.rt.background.wait_idle(30)
    assert len(replies) == 2
    second = text_of(replies[1])
    assert "already rolling back at <@U0BOB>'s request" in second, second
    done = last(worker)
    assert done.state is ChangeState.FAILED and "could not be cancelled" in (done.error or "")
    assert worker.split(STG) == {"1.2.0": 100}


def test_a_deploy_that_failed_on_its_own_before_the_stop_says_why(
    engine: Engine, clock: FakeClock
) -> None:
    """The platform's own failure (a quota) is not lost behind the stop: the change's
    error names it, not "had already finished"."""
    worker = Bot(make_runtime(engine, clock), clock)
    other = Bot(make_runtime(engine, clock), clock)
    replies: list[Any] = []
    sleep = worker.rt.sleep
    inner = worker.rt.platform.operation

    def failing(name: str) -> Any:
        from dataclasses import replace

        status = inner(name)
        if replies and "deploy" in name:
            return replace(status, done=True, error="RESOURCE_EXHAUSTED: quota")
        return status

    worker.rt.platform.operation = failing  # type: ignore[method-assign]

    def poll(seconds: float) -> None:
        if not replies and last(worker).plan.phase == "deploy":
            replies.append(other.run(BOB, f"/rollback {STG}"))
        sleep(seconds)

    worker.rt.sleep = poll
    worker.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=10")
    stopped = last(worker)
    assert stopped.state is ChangeState.FAILED and stopped.error
    assert "had already ended with an error (RESOURCE_EXHAUSTED: quota)" in stopped.error
    assert worker.split(STG) == {"1.2.0": 100}
