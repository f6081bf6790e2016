"""Leases on a change's background work, on the sandbox: a second process leaves a change
with a live worker alone, a dead worker's change is taken over once (however many
sweepers race), a worker whose lease was taken stops writing, a taker adopts the deploy it
finds instead of deploying twice, and a stranded change never blocks a rollback.

A worker's death is simulated in two steps: its thread ends mid-run (`Stopped`, which
nothing catches), then a lease is written for a dead owner that never renews it, and the
clock is moved past its expiry."""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.store.sandbox_tables import SandboxDeployedModelRow, SandboxOperationRow
from bot.wiring import build_runtime
from commands.audit import AuditAction
from commands.changes.execute import TAKEOVER_SECONDS, resume, take_over
from commands.config import Config
from commands.model import Change, ChangeState, Invocation, change_deployed_model_id
from commands.ports import AuditQuery, Platform, PlatformError
from commands.runtime import LEASE_TTL, Runtime
from tests.support.harness import (
    ALICE,
    BOB,
    Bot,
    DiesAfter,
    FakeClock,
    Stopped,
    example_config,
    make_runtime,
    text_of,
)

STG = "loan-assessor-stg"
DEAD = "deadhost:4242:deadbeef"


def new_bot(engine: Engine, clock: FakeClock, config: Config | None = None) -> Bot:
    """Another process on the same database (its own runtime, platform and pool)."""
    return Bot(make_runtime(engine, clock, config=config), clock)


def actions(rt: Runtime, change_id: str) -> list[str]:
    return [e.action for e in rt.store.audit(AuditQuery(change_id=change_id))]


def deploy_operations(engine: Engine, slug: str = STG) -> list[SandboxOperationRow]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(SandboxOperationRow).where(
                    SandboxOperationRow.endpoint == slug, SandboxOperationRow.kind == "deploy"
                )
            ).all()
        )


def deployed_versions(engine: Engine, slug: str = STG) -> list[str]:
    with Session(engine) as session:
        return sorted(
            m.version
            for m in session.exec(
                select(SandboxDeployedModelRow).where(SandboxDeployedModelRow.endpoint == slug)
            ).all()
        )


def last_change(rt: Runtime) -> Change:
    return rt.store.list_changes(limit=1)[0]


def strand(
    engine: Engine,
    clock: FakeClock,
    line: str,
    *,
    dies: str | None = None,
    config: Config | None = None,
) -> Change:
    """Run `line` in a process that dies: at its first poll, or right after `dies` (a
    platform method) reached the platform. Its lease is then a dead owner's, never renewed,
    and the clock is moved past its expiry."""
    dead = new_bot(engine, clock, config)
    if dies is None:

        def stop(_seconds: float) -> None:
            raise Stopped

        dead.rt.sleep = stop
    else:
        dead.rt.platform = DiesAfter(dead.rt.platform, dies)  # type: ignore[assignment]
    # The pool may or may not hand the ended thread's Stopped to the wait: either way.
    with contextlib.suppress(Stopped):
        dead.run(ALICE, line)
    change = last_change(dead.rt)
    assert change.state is ChangeState.RUNNING
    assert dead.rt.store.take_lease(change.id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)
    return change


def held_worker(bot: Bot) -> tuple[threading.Event, threading.Event]:
    """Make `bot`'s worker stop at its first poll until `gate` is set; `sleeping` tells
    when it got there."""
    gate, sleeping = threading.Event(), threading.Event()

    def held(seconds: float) -> None:
        sleeping.set()
        assert gate.wait(30)
        bot.clock.advance(seconds)

    bot.rt.sleep = held
    return gate, sleeping


def typed(bot: Bot, line: str) -> None:
    """Type a command without waiting for its background work."""
    command, _, text = line.partition(" ")
    assert bot.service.handle(Invocation(ALICE, command, text, channel_id="C0TEST")).ok


# --- a live worker is left alone ----------------------------------------------------------


def test_a_second_process_starting_while_a_change_runs_does_nothing_to_it(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    first = new_bot(sqlite_engine, clock)
    gate, sleeping = held_worker(first)
    typed(first, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25")
    assert sleeping.wait(10)
    running = last_change(first.rt)
    assert running.state is ChangeState.RUNNING and running.lease_owner
    clock.advance(LEASE_TTL.total_seconds() - 5)  # late in its lease, but still live

    second = new_bot(sqlite_engine, clock)  # a replica starting up, then sweeping
    assert resume(second.rt) == 0
    assert take_over(second.rt) == 0
    second.rt.background.wait_idle(10)
    assert second.rt.stranded() == []
    assert "execution_resumed" not in actions(second.rt, running.id)

    gate.set()
    first.rt.background.wait_idle(30)
    done = first.change(running.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.lease_owner is None  # the finish gave the lease up
    assert actions(first.rt, running.id).count("execution_started") == 1
    assert "execution_resumed" not in actions(first.rt, running.id)
    assert len(deploy_operations(sqlite_engine)) == 1
    assert first.split(STG) == {"1.2.0": 75, "1.2.1": 25}


def test_a_rollback_behind_a_change_in_a_live_worker_is_refused_and_says_so(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """A live worker's change in a phase it cannot be stopped in (a promote undeploying
    the version it replaced: seconds of traffic already moved) refuses a rollback; one
    still deploying is asked to stop instead (tests/flows/test_strategies.py)."""
    first = new_bot(sqlite_engine, clock)
    first.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25")
    gate, sleeping = held_worker(first)
    typed(first, f"/promote {STG} to=100")
    assert sleeping.wait(10)
    running = last_change(first.rt)
    assert running.plan.phase and running.plan.phase.startswith("undeploy:")
    other = new_bot(sqlite_engine, clock)
    reply = other.run(BOB, f"/rollback {STG}")
    assert not reply.ok
    assert "running now in a live worker" in text_of(reply)
    gate.set()
    first.rt.background.wait_idle(30)
    assert last_change(first.rt).state is ChangeState.SUCCEEDED


def test_a_rollback_behind_a_live_workers_deploy_stops_it(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    first = new_bot(sqlite_engine, clock)
    gate, sleeping = held_worker(first)
    typed(first, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25")
    assert sleeping.wait(10)
    other = new_bot(sqlite_engine, clock)
    reply = other.run(BOB, f"/rollback {STG}")
    assert reply.ok and "was still deploying" in text_of(reply), text_of(reply)
    gate.set()
    first.rt.background.wait_idle(30)
    stopped = last_change(first.rt)
    assert stopped.state is ChangeState.FAILED and "<@U0BOB>'s request" in (stopped.error or "")
    assert first.split(STG) == {"1.2.0": 100}


# --- a dead worker's change is taken over ---------------------------------------------------


def test_a_dead_workers_change_is_taken_over_once_by_racing_sweepers(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    stranded = strand(sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25")
    assert stranded.plan.phase == "deploy" and stranded.operation
    sweepers = [new_bot(sqlite_engine, clock) for _ in range(3)]
    assert [c.id for c in sweepers[0].rt.stranded()] == [stranded.id]
    barrier = threading.Barrier(len(sweepers))
    taken: list[int] = []

    def sweep(bot: Bot) -> None:
        barrier.wait()
        taken.append(take_over(bot.rt))

    threads = [threading.Thread(target=sweep, args=(b,)) for b in sweepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in sweepers:
        b.rt.background.wait_idle(30)
    assert sorted(taken) == [0, 0, 1]
    done = sweepers[0].change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    resumed = [
        e
        for e in sweepers[0].rt.store.audit(AuditQuery(change_id=stranded.id))
        if e.action == "execution_resumed"
    ]
    assert len(resumed) == 1
    assert resumed[0].outcome == "taken over: its worker stopped heartbeating"
    assert resumed[0].parameters["previous_worker"] == DEAD
    assert len(deploy_operations(sqlite_engine)) == 1  # polled on, never deployed again
    assert sweepers[0].split(STG) == {"1.2.0": 75, "1.2.1": 25}


def test_the_scheduler_takes_a_dead_workers_change_over_within_ttl_and_sweep(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    dead = new_bot(sqlite_engine, clock)
    gate, sleeping = held_worker(dead)
    typed(dead, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25")
    assert sleeping.wait(10)
    change = last_change(dead.rt)
    # the worker freezes for good: its heartbeat stops (a killed process renews nothing)
    dead.rt.store.release_lease(change.id, str(change.lease_owner))
    assert dead.rt.store.take_lease(change.id, DEAD, clock(), LEASE_TTL)
    live = new_bot(sqlite_engine, clock)
    scheduler = Scheduler(live.rt, sqlite_engine, owner="replica-b")
    assert "every:takeover" in scheduler.jobs
    assert scheduler.jobs["every:takeover"].interval == TAKEOVER_SECONDS

    clock.advance(LEASE_TTL.total_seconds() - 1)
    assert scheduler.fire("every:takeover", clock()).outcome == "nothing stranded"
    clock.advance(TAKEOVER_SECONDS)  # the next sweep, past the expiry
    assert scheduler.fire("every:takeover", clock()).outcome == "1 taken over"
    live.rt.background.wait_idle(30)
    assert live.change(change.id).state is ChangeState.SUCCEEDED
    gate.set()  # the frozen worker wakes up: its lease is gone, it writes nothing
    dead.rt.background.wait_idle(30)
    assert actions(live.rt, change.id).count("execution_finished") == 1
    assert len(deploy_operations(sqlite_engine)) == 1


@pytest.mark.parametrize(
    ("variable", "ttl", "sweep"),
    [(None, 30.0, TAKEOVER_SECONDS), ("3", 3.0, 1.0), ("12", 12.0, 4.0), ("90", 90.0, 10.0)],
)
def test_the_lease_bound_comes_from_the_environment_and_the_sweep_scales_with_it(
    sqlite_engine: Engine, variable: str | None, ttl: float, sweep: float
) -> None:
    settings = Settings.from_env({"AIOPS_LEASE_SECONDS": variable} if variable else {})
    rt = build_runtime(settings, config=example_config(), engine=sqlite_engine)
    assert rt.lease_ttl == timedelta(seconds=ttl)
    assert rt.approved_settle == timedelta(seconds=2 * ttl)
    scheduler = Scheduler(rt, sqlite_engine, owner="replica-a")
    assert scheduler.jobs["every:takeover"].interval == sweep


def test_a_worker_whose_lease_was_taken_over_stops_without_a_write(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock)
    seen: dict[str, Any] = {}

    def paused_too_long(seconds: float) -> None:
        if not seen:
            # a long pause (a frozen VM): the lease lapses and another worker takes it
            clock.advance(LEASE_TTL.total_seconds() + 1)
            change = last_change(bot.rt)
            seen["taken"] = bot.rt.store.take_lease(change.id, "other:1:cafe", clock(), LEASE_TTL)
            seen["calls"] = bot.rt.platform.calls  # type: ignore[attr-defined]
        clock.advance(seconds)

    bot.rt.sleep = paused_too_long
    bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25")
    assert seen["taken"] is not None
    change = last_change(bot.rt)
    assert change.state is ChangeState.RUNNING  # not finished by the worker that lost it
    assert change.lease_owner == "other:1:cafe"
    assert change.plan.phase == "deploy" and change.new_deployed_model_id is None
    assert bot.rt.platform.calls == seen["calls"]  # type: ignore[attr-defined]
    assert "execution_finished" not in actions(bot.rt, change.id)


# --- look before leaping ------------------------------------------------------------------


def test_a_taker_adopts_the_deploy_it_finds_instead_of_deploying_twice(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    # the worker died after the deploy reached the platform, before it stored the operation
    stranded = strand(
        sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25", dies="begin_deploy"
    )
    assert not stranded.plan.phase and stranded.operation is None
    taker = new_bot(sqlite_engine, clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error  # not voided: the move was ours
    assert done.new_deployed_model_id == change_deployed_model_id(stranded.id)
    assert len(deploy_operations(sqlite_engine)) == 1
    assert taker.split(STG) == {"1.2.0": 75, "1.2.1": 25}


def test_a_taker_waits_for_a_deploy_still_running_and_adopts_it(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    config = example_config(operation_seconds=120)  # still running when the lease lapses
    stranded = strand(
        sqlite_engine,
        clock,
        f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25",
        dies="begin_deploy",
        config=config,
    )
    taker = new_bot(sqlite_engine, clock, config)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.new_deployed_model_id == change_deployed_model_id(stranded.id)
    [operation] = deploy_operations(sqlite_engine)  # the taker's own deploy was refused
    assert operation.payload["change_id"] == stranded.id
    assert taker.split(STG) == {"1.2.0": 75, "1.2.1": 25}


def test_the_sandbox_refuses_a_second_deploy_of_one_change(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock)
    ep = bot.rt.config.endpoints[STG]
    version = bot.rt.platform.endpoint_state(ep).deployed[0].version
    stable = bot.rt.platform.endpoint_state(ep).deployed[0].id
    newer = type(version)(version.model, "1.2.1")
    bot.rt.platform.begin_deploy(ep, newer, {stable: 90, "0": 10}, "CHG-77")
    with pytest.raises(PlatformError) as running:
        bot.rt.platform.begin_deploy(ep, newer, {stable: 90, "0": 10}, "CHG-77")
    assert running.value.kind == "already_exists"
    clock.advance(10)
    assert bot.rt.platform.endpoint_state(ep).model("9000000077") is not None
    with pytest.raises(PlatformError) as deployed:
        bot.rt.platform.begin_deploy(ep, newer, {stable: 90, "0": 10}, "CHG-77")
    assert deployed.value.kind == "already_exists"


def undeploy_operations(engine: Engine, slug: str = STG) -> list[SandboxOperationRow]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(SandboxOperationRow).where(
                    SandboxOperationRow.endpoint == slug, SandboxOperationRow.kind == "undeploy"
                )
            ).all()
        )


@pytest.mark.parametrize("landed", [False, True], ids=["still-running", "landed"])
def test_a_taker_never_undeploys_twice_what_a_dead_worker_began_undeploying(
    sqlite_engine: Engine, clock: FakeClock, landed: bool
) -> None:
    """Seen by the chaos run's aimed kills (tests/support/chaos.py, `python -m bench
    chaos`): a worker killed after its undeploy reached the platform, before it stored
    the operation. The taker started a second undeploy of the same model (the first still
    running: operations longer than the lease), or, once the first had landed, failed the
    change (`not_found`) although its work was done."""
    config = example_config(operation_seconds=120)
    bot = new_bot(sqlite_engine, clock, config)
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25").ok
    stranded = strand(sqlite_engine, clock, f"/promote {STG}", dies="begin_undeploy", config=config)
    assert stranded.plan.phase == "traffic" and len(undeploy_operations(sqlite_engine)) == 1
    if landed:
        clock.advance(120)
    taker = new_bot(sqlite_engine, clock, config)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    [operation] = undeploy_operations(sqlite_engine)  # the dead worker's, never a second
    assert operation.done and operation.error is None
    assert taker.split(STG) == {"1.2.1": 100}
    assert deployed_versions(sqlite_engine) == ["1.2.1"]


def test_the_sandbox_refuses_a_second_undeploy_of_one_model(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock)
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25").ok
    ep = bot.rt.config.endpoints[STG]
    state = bot.rt.platform.endpoint_state(ep)
    stable, canary = (d.id for d in state.deployed)
    bot.rt.platform.begin_undeploy(ep, stable, {canary: 100})
    with pytest.raises(PlatformError) as running:
        bot.rt.platform.begin_undeploy(ep, stable, {canary: 100})
    assert running.value.kind == "already_exists"
    clock.advance(10)
    with pytest.raises(PlatformError) as gone:
        bot.rt.platform.begin_undeploy(ep, stable, {canary: 100})
    assert gone.value.kind == "not_found"
    assert len(undeploy_operations(sqlite_engine)) == 1


def test_a_shift_a_dead_worker_applied_is_not_voided(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock)
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25").ok
    stranded = strand(sqlite_engine, clock, f"/promote {STG} to=50", dies="set_traffic")
    taker = new_bot(sqlite_engine, clock)
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(stranded.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert taker.split(STG) == {"1.2.0": 50, "1.2.1": 50}


# --- a stranded change is seen, and never blocks a rollback ---------------------------------


def test_changes_lists_a_stranded_change_as_such(sqlite_engine: Engine, clock: FakeClock) -> None:
    stranded = strand(sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25")
    bot = new_bot(sqlite_engine, clock)
    text = text_of(bot.run(ALICE, "/aiops changes"))
    assert f"{stranded.id}*" in text and "stranded since" in text and "no live worker" in text
    assert [c.id for c in bot.rt.stranded()] == [stranded.id]
    take_over(bot.rt)
    bot.rt.background.wait_idle(30)
    assert "stranded since" not in text_of(bot.run(ALICE, "/aiops changes"))


def rollback(bot: Bot) -> str:
    reply = bot.run(BOB, f"/rollback {STG}")
    assert reply.ok, text_of(reply)
    return text_of(reply)


def test_a_rollback_ends_a_stranded_deploy_and_removes_its_model(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock)
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=100").ok
    assert bot.split(STG) == {"1.2.1": 100}
    # a canary of 1.1.0 whose worker died once it was deployed: an extra model at 10 %
    stranded = strand(sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.1.0 canary=10")
    assert bot.split(STG) == {"1.2.1": 90, "1.1.0": 10}

    text = rollback(bot)
    assert "stranded since" in text and "marked failed" in text
    assert "had already finished" in text
    ended = bot.change(stranded.id)
    assert ended.state is ChangeState.FAILED
    assert ended.error == f"stranded: superseded by <@{BOB.id}>'s rollback"
    finished = [
        e
        for e in bot.rt.store.audit(AuditQuery(change_id=stranded.id))
        if e.action == "execution_finished"
    ]
    assert [(e.actor_id, e.outcome) for e in finished] == [(BOB.id, f"failed: {ended.error}")]
    # the stranded deploy's model is the canary, not the last successful deploy's
    assert bot.split(STG) == {"1.2.1": 100}
    assert deployed_versions(sqlite_engine) == ["1.2.1"]
    assert last_change(bot.rt).state is ChangeState.SUCCEEDED


def cancel_refused(platform: Platform) -> Platform:
    class Refusing:
        def __getattr__(self, name: str) -> Any:
            return getattr(platform, name)

        def cancel_operation(self, name: str) -> None:
            raise PlatformError("the platform said no", kind="permission")

    return Refusing()  # type: ignore[return-value]


@pytest.mark.parametrize("refuse", [False, True], ids=["cancelled", "cancel-refused"])
def test_a_rollback_cancels_a_stranded_deploy_still_running(
    sqlite_engine: Engine, clock: FakeClock, refuse: bool
) -> None:
    config = example_config(operation_seconds=120)
    bot = new_bot(sqlite_engine, clock, config)
    assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=100").ok
    stranded = strand(
        sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.1.0 canary=10", config=config
    )
    if refuse:
        bot.rt.platform = cancel_refused(bot.rt.platform)
    text = rollback(bot)  # redeploys 1.2.0, which the promote to 100 % replaced
    assert bot.change(stranded.id).state is ChangeState.FAILED
    [operation] = [o for o in deploy_operations(sqlite_engine) if o.name == stranded.operation]
    if refuse:
        assert "could not be cancelled" in text and "the platform said no" in text
        return
    assert f"its operation `{stranded.operation}` was cancelled" in text
    assert operation.done and operation.error and "cancelled" in operation.error
    assert bot.split(STG) == {"1.2.0": 100}
    assert sum(bot.split(STG).values()) == 100  # type: ignore[arg-type]
    assert deployed_versions(sqlite_engine) == ["1.2.0"]  # 1.1.0 never landed


def test_a_stranded_change_taken_over_first_is_not_ended_by_the_rollback(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """The rollback and a sweep race for the stranded change: the lease decides. The
    sweep took it first, so the rollback does not end it as stranded: it asks the live
    taker to stop its deploy, and the taker (the lease holder) does."""
    config = example_config(operation_seconds=120)  # the taker has polling to do
    stranded = strand(
        sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=25", config=config
    )
    sweeper = new_bot(sqlite_engine, clock, config)
    gate, sleeping = held_worker(sweeper)
    assert take_over(sweeper.rt) == 1
    assert sleeping.wait(10)  # the taker is polling its operation
    reply = new_bot(sqlite_engine, clock).run(BOB, f"/rollback {STG}")
    said = text_of(reply)
    assert reply.ok and "was still deploying" in said and "stranded" not in said, said
    gate.set()
    sweeper.rt.background.wait_idle(30)
    done = sweeper.change(stranded.id)
    assert done.state is ChangeState.FAILED and "<@U0BOB>'s request" in (done.error or "")
    assert sweeper.split(STG) == {"1.2.0": 100}


def test_a_rollback_over_a_stranded_first_deploy_in_flight_ends_it_with_nothing_to_undo(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """Seen in a try-out: the endpoint's first canary was still deploying when its worker
    died, so there was no canary and no earlier version to roll back to — and the
    rollback was refused while the deploy went on to land. Ending the stranded deploy is
    the mitigation: it is marked failed, its operation cancelled, and it never lands."""
    config = example_config(operation_seconds=120)
    stranded = strand(
        sqlite_engine, clock, f"/deploy {STG} gemma-3-1b-it@1.2.1 canary=10", config=config
    )
    bot = new_bot(sqlite_engine, clock, config)
    reply = bot.run(BOB, f"/rollback {STG}")
    said = text_of(reply)
    assert reply.ok, said
    assert "nothing else to roll back" in said and f"{stranded.id} was stranded" in said
    assert bot.change(stranded.id).state is ChangeState.FAILED
    clock.advance(600)  # long past when the deploy would have landed
    assert take_over(bot.rt) == 0
    assert bot.split(STG) == {"1.2.0": 100}
    assert deployed_versions(sqlite_engine) == ["1.2.0"]
    assert "execution_finished" in actions(bot.rt, stranded.id)


@pytest.mark.parametrize("kind", ["deploy", "undeploy"])
def test_racing_platform_writes_of_one_change_start_one_operation(
    engine: Engine, kind: str
) -> None:
    """Two processes holding one change at once (a worker starved past its lease and its
    taker) both reach the platform: one operation starts, the other is refused, however
    close together they come."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.platforms.sandbox import SandboxPlatform

    config = example_config(operation_seconds=600)
    platforms = [SandboxPlatform(engine, config) for _ in range(4)]
    ep = config.endpoints[STG]
    stable = platforms[0].endpoint_state(ep).deployed[0]
    newer = type(stable.version)(stable.version.model, "1.2.1")
    if kind == "undeploy":
        platforms[0].set_traffic(ep, {stable.id: 100})  # the one model, to undeploy at 0 %
    barrier = threading.Barrier(len(platforms))

    def leap(platform: SandboxPlatform, n: int) -> int:
        barrier.wait()
        try:
            if kind == "deploy":
                platform.begin_deploy(ep, newer, {stable.id: 90, "0": 10}, f"CHG-{n}")
            else:
                platform.begin_undeploy(ep, stable.id, {})
        except PlatformError as exc:
            assert exc.kind == "already_exists"
            return 0
        return 1

    rounds = 15 if kind == "deploy" else 1
    with ThreadPoolExecutor(len(platforms)) as pool:
        for n in range(100, 100 + rounds):
            assert sum(pool.map(leap, platforms, [n] * len(platforms))) == 1


# --- a change whose opener died before it was put up for approval --------------------------

PROD_DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="chaos"'


def dies_opening(bot: Bot, then: Any = None) -> None:
    """The process opening a change stops (or, with `then`, stalls while `then()` runs)
    right after creating it, before it is put up for approval: at the plan's audit row."""
    record = bot.rt.auditor.record

    def plan_then_stop(action: AuditAction, *args: Any, **kw: Any) -> Any:
        if action is AuditAction.PLAN:
            if then is None:
                raise Stopped
            then()
        return record(action, *args, **kw)

    bot.rt.auditor.record = plan_then_stop  # type: ignore[method-assign]


def test_a_change_left_requested_by_a_dead_opener_is_abandoned_and_frees_its_endpoint(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    """Found by the chaos run (tests/edge/test_chaos.py: "CHG-529 (rollback) left
    requested"): a process killed between creating a change and putting it up for
    approval left it `requested` for ever, with no card, never expiring, and its endpoint
    refusing every deploy and promote as locked by it."""
    dead = new_bot(sqlite_engine, clock)
    dies_opening(dead)
    with contextlib.suppress(Stopped):
        dead.run(ALICE, PROD_DEPLOY)
    [left] = dead.rt.store.list_changes(endpoint="loan-assessor")
    assert left.state is ChangeState.REQUESTED
    live = new_bot(sqlite_engine, clock)
    locked = live.run(ALICE, PROD_DEPLOY)
    assert not locked.ok and f"locked by {left.id}" in text_of(locked)
    assert take_over(live.rt) == 0  # a change is requested for the moments of its opening
    clock.advance(live.rt.approved_settle.total_seconds() + 1)
    assert [c.id for c in live.rt.stranded()] == [left.id]
    assert take_over(live.rt) == 1 and take_over(live.rt) == 0  # once
    done = live.change(left.id)
    assert done.state is ChangeState.CANCELLED and done.decided_by == "bot"
    [cancelled] = [
        e for e in live.rt.store.audit(AuditQuery(change_id=left.id)) if e.action == "cancel"
    ]
    assert cancelled.justification and cancelled.justification.startswith("abandoned:")
    told = [p for p in live.rt.notifier.posts if p.channel == ALICE.id]  # type: ignore[attr-defined]
    assert len(told) == 1 and "nothing was done" in told[0].reply.text
    assert live.run(ALICE, PROD_DEPLOY).ok  # the endpoint is free again
    assert live.rt.store.open_change("loan-assessor").state is ChangeState.PENDING_APPROVAL  # type: ignore[union-attr]


def test_an_opener_too_slow_for_the_sweep_says_nothing_was_done(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    slow = new_bot(sqlite_engine, clock)
    sweeper = new_bot(sqlite_engine, clock)

    def sweep_meanwhile() -> None:
        clock.advance(slow.rt.approved_settle.total_seconds() + 1)
        assert take_over(sweeper.rt) == 1

    dies_opening(slow, then=sweep_meanwhile)
    reply = slow.run(ALICE, PROD_DEPLOY)
    assert not reply.ok
    assert "was cancelled while it was being opened" in text_of(reply)
    assert "nothing was done" in text_of(reply)
    [change] = slow.rt.store.list_changes(endpoint="loan-assessor")
    assert change.state is ChangeState.CANCELLED
