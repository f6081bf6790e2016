"""Cost operations through the service on the sandbox and a real SQLite file:
`/aiops scale` (a deployed model's min / max replicas) and `/aiops undeploy` (a model at
0 %), each a change like any other: planned with replicas and cost a day, approved in
prod, audited, resumable; and their refusals, which leave everything as it was."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.store.sandbox_tables import SandboxOperationRow
from commands.changes.execute import take_over
from commands.config import Config
from commands.model import Change, ChangeKind, ChangeState, DeployedModel
from commands.ports import AuditQuery
from commands.reports import dossier
from commands.runtime import LEASE_TTL
from tests.support.harness import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    Bot,
    DiesAfter,
    FakeClock,
    Stopped,
    example_config,
    make_runtime,
    text_of,
)

PROD = "loan-assessor"  # 1.2.0 at 100 %, min 2 · max 6 replicas (the example config)
STG = "loan-assessor-stg"  # min 1 · max 2
DEAD = "deadhost:4242:deadbeef"


def shown(reply: Any) -> str:
    """The reply as Slack gets it, its text readable (`text_of` escapes non-ASCII)."""
    return json.dumps(json.loads(text_of(reply)), ensure_ascii=False)


def last(bot: Bot) -> Change:
    return bot.rt.store.list_changes(limit=1)[0]


def model(bot: Bot, slug: str, version: str) -> DeployedModel:
    state = bot.rt.platform.endpoint_state(bot.rt.config.endpoints[slug])
    found = next((d for d in state.deployed if d.version.version == version), None)
    assert found is not None, state.describe()
    return found


def replicas(bot: Bot, slug: str, version: str) -> tuple[int, int | None]:
    found = model(bot, slug, version)
    return found.replicas, found.max_replicas


def mutates(engine: Engine) -> list[SandboxOperationRow]:
    with Session(engine) as session:
        return list(
            session.exec(select(SandboxOperationRow).where(SandboxOperationRow.kind == "mutate"))
        )


def zero_config() -> Config:
    config = example_config()
    endpoints = dict(config.endpoints)
    endpoints[STG] = dataclasses.replace(endpoints[STG], scale_to_zero=True)
    return dataclasses.replace(config, endpoints=endpoints)


# --- scale -----------------------------------------------------------------------------


def test_a_prod_scale_down_is_planned_with_cost_approved_and_audited(bot: Bot) -> None:
    assert replicas(bot, PROD, "1.2.0") == (2, 6)
    reply = bot.run(ALICE, f'/aiops scale {PROD} min=1 max=3 reason="quiet overnight"')
    assert reply.ok and reply.text.endswith("waiting for approval"), shown(reply)
    pending = last(bot)
    assert pending.kind is ChangeKind.SCALE and pending.version == "gemma-3-1b-it@1.2.0"
    assert (pending.plan.replicas_before, pending.plan.replicas_after) == ((2, 6), (1, 3))
    card = shown(reply)
    assert "min 2 → 1, max 6 → 3 replicas" in card
    assert "$62.88 → $31.44 a day (saves $31.44 a day)" in card  # 2 → 1 × $1.31 × 24 h
    assert "Traffic* unchanged:\\n```\\nnow     1.2.0  ████████████████████ 100%" in card
    assert f"/aiops scale {PROD} 1.2.0 min=2 max=6" in card  # how it goes back
    assert replicas(bot, PROD, "1.2.0") == (2, 6)  # nothing before approval

    assert not bot.run(ALICE, f"/aiops approve {pending.id}").ok  # never one's own
    assert bot.run(BOB, f"/aiops approve {pending.id}").ok
    done = bot.change(pending.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.operation and "/operations/mutate-" in done.operation
    assert replicas(bot, PROD, "1.2.0") == (1, 3)
    assert bot.split(PROD) == {"1.2.0": 100}  # traffic untouched
    rows = bot.rt.store.audit(AuditQuery(change_id=done.id))
    assert [e.action for e in rows] == [
        "plan",
        "approval_requested",
        "decision_refused",  # alice's own
        "approve",
        "execution_started",
        "execution_finished",
    ]
    plan = rows[0].parameters
    assert plan["replicas_before"] == [2, 6] and plan["replicas_after"] == [1, 3]
    assert plan["cost_per_day_usd"] == {"before": 62.88, "during": None, "after": 31.44}
    assert rows[4].parameters["replicas"] == [1, 3]
    # the cost of the endpoint follows the replicas it now holds
    health = bot.rt.platform.health([bot.rt.config.endpoints[PROD]])[PROD]
    assert health.replicas == 1
    # the dossier shows what the approver approved
    evidence = dossier.build(bot.rt.store, bot.rt.config, done.id)
    assert evidence["plan"]["replicas_before"] == [2, 6]
    assert evidence["plan"]["replicas_after"] == [1, 3]
    assert evidence["plan"]["cost_per_day_usd"]["after"] == 31.44
    assert "Replicas (min, max): [2, 6] → [1, 3]" in dossier.to_markdown(evidence)


def test_min_zero_is_refused_where_the_platform_keeps_a_replica(bot: Bot) -> None:
    reply = bot.run(ALICE, f'/aiops scale {PROD} min=0 reason="idle"')
    assert not reply.ok
    said = shown(reply)
    assert "cannot scale 1.2.0 to zero replicas" in said
    assert "Scale To Zero preview" in said and "scale_to_zero = true" in said  # why
    assert f"/aiops undeploy {PROD} 1.2.0" in said and "min=1" in said  # what to do
    assert bot.rt.store.list_changes() == []
    assert replicas(bot, PROD, "1.2.0") == (2, 6)
    [row] = [e for e in bot.rt.store.audit(AuditQuery()) if e.action == "command"]
    assert row.parameters["code"] == "scale_to_zero"


def test_min_zero_is_a_scale_like_any_other_where_the_endpoint_may_scale_to_zero(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = Bot(make_runtime(sqlite_engine, clock, config=zero_config()), clock)
    reply = bot.run(ALICE, f"/aiops scale {STG} min=0")
    assert reply.ok, shown(reply)
    assert last(bot).state is ChangeState.SUCCEEDED
    assert replicas(bot, STG, "1.2.0") == (0, 2)
    assert "$31.44 → $0.00 a day (saves $31.44 a day)" in shown(reply)


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (f"/aiops scale {STG} min=3 max=2", "min 3 is above max 2"),
        (f"/aiops scale {STG} min=3", "min 3 is above max 2"),  # max stays 2
        (f"/aiops scale {STG} max=5", "max 5 is above the endpoint's `max_replicas`"),
        (f"/aiops scale {STG} min=1 max=2", "already runs min 1 · max 2 replicas"),
        (f"/aiops scale {STG}", "say what to scale to"),
        (f"/aiops scale {STG} min=-1", "out of range"),
        (f"/aiops scale {STG} min=two", "not a whole number"),
        (f"/aiops scale {STG} 1.2.1 max=1", "`1.2.1` is not deployed"),
        (f"/aiops scale {STG} 1.2 max=1", "is not a model version"),
        ("/aiops scale loan-asesor max=1", "did you mean `loan-assessor`"),
    ],
)
def test_bad_scales_are_refused_clearly_and_change_nothing(bot: Bot, line: str, said: str) -> None:
    reply = bot.run(ALICE, line)
    assert not reply.ok
    assert said in shown(reply)
    assert bot.rt.store.list_changes() == []
    assert replicas(bot, STG, "1.2.0") == (1, 2)


@pytest.mark.parametrize("number", ["٢", "۲", "२", "1_0", "+2"])
def test_whole_numbers_are_ascii_digits_in_every_command(bot: Bot, number: str) -> None:
    """`int()` reads `٢` (Arabic-Indic), `२` (Devanagari) and `1_0` as numbers: every
    integer option goes through `Args.integer`, which takes digits 0–9 only. (Fullwidth
    `２` and `²` arrive as `2`: typed text is NFKC-normalised on the way in, so the record
    shows the 2 that was acted on.)"""
    for line in (
        f"/aiops scale {STG} min={number}",
        f'/aiops scale {STG} max="{number}"',
        f"/deploy {STG} gemma-3-1b-it@1.2.1 canary={number}",
    ):
        reply = bot.run(ALICE, line)
        assert not reply.ok, line
        assert "is not a whole number (digits 0–9)" in shown(reply), (line, shown(reply))
    assert bot.rt.store.list_changes() == []
    assert replicas(bot, STG, "1.2.0") == (1, 2)


def test_other_numbers_typed_are_ascii_digits_too(bot: Bot) -> None:
    """Step plans, `at=` times, model versions and canary references: digits 0–9 only."""
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=10").ok
    for line, said in (
        (f"/promote {STG} steps=٢٥,١٠٠", "is not a step plan"),
        (f"/promote {STG} to=٥٠", "is not a whole number"),
        (f'/aiops scale {STG} 1.2.0 max=1 at="١١:٠٠"', "at="),
        (f"/deploy {STG} gemma-3-1b-it@١.٢.١", "is not a model version"),
        ("/aiops canary CAN-١", "unknown endpoint"),
    ):
        reply = bot.run(ALICE, line)
        assert not reply.ok, line
        assert said in shown(reply), (line, shown(reply))
    assert bot.split(STG) == {"1.2.0": 90, "1.2.1": 10}


def test_a_scale_of_an_endpoint_with_two_models_names_the_version(bot: Bot) -> None:
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25").ok
    reply = bot.run(ALICE, f"/aiops scale {STG} max=1")
    assert not reply.ok and "which version?" in shown(reply)
    assert "`1.2.0`, `1.2.1`" in shown(reply)
    assert bot.run(ALICE, f"/aiops scale {STG} gemma-3-1b-it@1.2.1 max=1").ok
    assert replicas(bot, STG, "1.2.1") == (1, 1)
    assert replicas(bot, STG, "1.2.0") == (1, 2)


def test_who_may_scale_is_who_may_request(bot: Bot) -> None:
    reply = bot.run(DAVE, f'/aiops scale {PROD} min=1 reason="x"')
    assert not reply.ok and "may not request changes in `prod`" in shown(reply)


def test_a_scale_whose_worker_died_after_the_call_is_adopted_not_repeated(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    dead = Bot(make_runtime(sqlite_engine, clock), clock)
    dead.rt.platform = DiesAfter(dead.rt.platform, "begin_mutate")  # type: ignore[assignment]
    with contextlib.suppress(Stopped):
        dead.run(ALICE, f"/aiops scale {STG} max=1")
    stranded = last(dead)
    assert stranded.state is ChangeState.RUNNING and not stranded.plan.phase
    assert dead.rt.store.take_lease(stranded.id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)  # its mutate has landed meanwhile

    taker = Bot(make_runtime(sqlite_engine, clock), clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert len(mutates(sqlite_engine)) == 1  # the dead worker's, never a second
    assert replicas(taker, STG, "1.2.0") == (1, 1)


def test_a_scale_taken_over_mid_operation_polls_the_stored_one(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    dead = Bot(make_runtime(sqlite_engine, clock), clock)

    def stop(_seconds: float) -> None:
        raise Stopped

    dead.rt.sleep = stop
    with contextlib.suppress(Stopped):
        dead.run(ALICE, f"/aiops scale {STG} max=1")
    stranded = last(dead)
    assert stranded.plan.phase == "mutate" and stranded.operation
    assert dead.rt.store.take_lease(stranded.id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)
    taker = Bot(make_runtime(sqlite_engine, clock), clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    assert taker.change(stranded.id).state is ChangeState.SUCCEEDED
    assert len(mutates(sqlite_engine)) == 1
    assert replicas(taker, STG, "1.2.0") == (1, 1)


# --- undeploy ---------------------------------------------------------------------------


def test_a_prod_undeploy_of_a_model_at_zero_says_what_it_saves_and_needs_approval(
    bot: Bot,
) -> None:
    bot.run(ALICE, f'/deploy {PROD} gemma-3-1b-it@1.2.1 strategy=blue-green reason="x"')
    bot.run(BOB, f"/aiops approve {last(bot).id}")
    assert bot.split(PROD) == {"1.2.0": 0, "1.2.1": 100}

    reply = bot.run(ALICE, f'/aiops undeploy {PROD} 1.2.0 reason="blue kept long enough"')
    assert reply.ok and reply.text.endswith("waiting for approval"), shown(reply)
    pending = last(bot)
    assert pending.kind is ChangeKind.UNDEPLOY
    card = shown(reply)
    assert "Undeploy *1.2.0* from `loan-assessor` (serves 0 %)" in card
    assert "$125.76 → $62.88 a day (saves $62.88 a day)" in card
    assert bot.split(PROD) == {"1.2.0": 0, "1.2.1": 100}
    assert bot.run(CAROL, f"/aiops approve {pending.id}").ok
    done = bot.change(pending.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert bot.split(PROD) == {"1.2.1": 100}
    assert "execution_finished" in [
        e.action for e in bot.rt.store.audit(AuditQuery(change_id=done.id))
    ]


def test_an_undeploy_of_a_model_with_traffic_is_refused_clearly(bot: Bot) -> None:
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25").ok
    reply = bot.run(ALICE, f"/aiops undeploy {STG} 1.2.1")
    assert not reply.ok
    said = shown(reply)
    assert "1.2.1 serves 25%" in said and "only a model at 0 % may be undeployed" in said
    assert f"/rollback {STG}" in said
    assert bot.split(STG) == {"1.2.0": 75, "1.2.1": 25}
    reply = bot.run(ALICE, f"/aiops undeploy {STG}")
    assert not reply.ok and "which version" in shown(reply)


def test_the_buttons_value_is_the_typed_arguments(bot: Bot) -> None:
    """What the cost digest's buttons send (`/aiops <action_id> <value>`), run as typed."""
    reply = bot.run(ALICE, f"/aiops scale {STG} 1.2.0 min=1 max=1")
    assert reply.ok, shown(reply)
    assert replicas(bot, STG, "1.2.0") == (1, 1)
    help_reply = bot.run(ALICE, "/aiops scale help")
    assert help_reply.ok and "<endpoint> <version> min=N max=M" in shown(help_reply)


def test_a_scale_down_scheduled_for_the_night_runs_at_its_time(bot: Bot) -> None:
    """`at=` works for a scale as for a deploy: approved before, started by housekeeping
    at its time (10:00 in Sydney now; 19:00 the same day)."""
    from commands.changes.schedule import start_due_changes

    reply = bot.run(ALICE, f'/aiops scale {PROD} min=1 reason="quiet night" at="19:00"')
    assert reply.ok, shown(reply)
    pending = last(bot)
    assert pending.plan.run_at is not None
    assert bot.run(BOB, f"/aiops approve {pending.id}").ok
    assert bot.change(pending.id).state is ChangeState.APPROVED
    assert replicas(bot, PROD, "1.2.0") == (2, 6)  # not before its time
    bot.clock.advance(hours=9)
    assert [cid for cid, _ in start_due_changes(bot.rt)] == [pending.id]
    bot.rt.background.wait_idle(30)
    assert bot.change(pending.id).state is ChangeState.SUCCEEDED
    assert replicas(bot, PROD, "1.2.0") == (1, 6)


def test_scale_and_undeploy_on_either_database(engine: Engine, clock: FakeClock) -> None:
    """The sandbox keeps a scaled model's max in its operation's JSON: read back the same
    on SQLite and PostgreSQL, as are the plan's new fields."""
    bot = Bot(make_runtime(engine, clock), clock)
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green").ok
    assert bot.run(ALICE, f"/aiops scale {STG} 1.2.1 max=1").ok
    scaled = last(bot)
    assert scaled.state is ChangeState.SUCCEEDED, scaled.error
    assert scaled.plan.replicas_after == (1, 1) and scaled.plan.cost_after == 62.88
    assert replicas(bot, STG, "1.2.1") == (1, 1)
    assert replicas(bot, STG, "1.2.0") == (1, 2)
    assert bot.run(ALICE, f"/aiops undeploy {STG} 1.2.0").ok
    assert last(bot).state is ChangeState.SUCCEEDED
    assert bot.split(STG) == {"1.2.1": 100}
