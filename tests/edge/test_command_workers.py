"""Commands in worker processes (`AIOPS_COMMAND_WORKERS`, bot/serve/workers.py): serve's ASGI
app with a process pool, driven through signed Slack requests end to end. The worker
builds its own runtime from the same settings and answers on the response_url itself."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from bot.serve.server import command_pool, make_asgi
from bot.serve.workers import (
    ENV,
    CommandPool,
    WorkerDied,
    WorkerFailed,
    WorkersError,
    workers_from_env,
)
from bot.settings import Settings
from bot.slack.app import build_app
from bot.wiring import ServeError, make_service
from commands.model import ChangeState
from commands.ports import AuditQuery
from commands.service import Service
from tests.support.harness import SlackStub
from tests.support.slack_wire import (
    SIGNING_SECRET,
    Served,
    action_body,
    home_action_body,
    home_opened_body,
    slash_body,
)


def test_workers_setting() -> None:
    assert workers_from_env({}, default=2) == 2
    assert workers_from_env({ENV: "0"}, default=2) == 0
    assert workers_from_env({ENV: " 3 "}) == 3
    for bad in ("two", "-1", "65"):
        with pytest.raises(WorkersError, match=ENV):
            workers_from_env({ENV: bad})


def test_serve_refuses_a_bad_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "many")
    with pytest.raises(ServeError, match=ENV):
        command_pool(Settings())
    monkeypatch.setenv(ENV, "0")
    assert command_pool(Settings()) is None  # 0: threads of the server process


def test_slash_command_and_click_run_in_a_worker_process(
    tmp_path: Path, stub: SlackStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_PII_KEY", "test-key-shared-by-the-workers")
    settings = Settings(
        data_dir=tmp_path,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_base_url=stub.api_url,
    )
    service: Service = make_service(settings)  # the server's own runtime (migrates the db)
    pool = CommandPool(settings, 1)
    bolt = build_app(
        service,
        bot_token="xoxb-test",
        signing_secret=SIGNING_SECRET,
        api_base_url=stub.api_url,
        runner=pool.run,
    )
    server = Served(make_asgi(service, bolt, pool=pool))
    try:
        workers = pool.wait_ready()
        assert os.getpid() not in workers
        if hasattr(os, "SCHED_IDLE"):  # commands take only CPU the acks leave
            assert {os.sched_getscheduler(pid) for pid in workers} == {os.SCHED_IDLE}

        body = slash_body(
            "/deploy",
            'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer"',
            "U0ALICE",
            "alice",
            stub.url + "/respond/deploy",
        )
        assert server.post(body).status_code == 200
        stub.wait_for(lambda: bool(stub.responded("/respond/deploy")))
        [reply] = stub.responded("/respond/deploy")
        assert reply["response_type"] == "ephemeral"
        assert "CHG-1" in reply["text"] and reply["blocks"]
        # the worker's notifier posted the approval card; its store is the server's
        stub.wait_for(
            lambda: any(c.body.get("channel") == "C0APPROVALS" for c in stub.of("chat.postMessage"))
        )
        change = service.rt.store.get_change("CHG-1")
        assert change is not None and change.state is ChangeState.PENDING_APPROVAL

        click = action_body("reject", "CHG-1", "U0BOB", "bob", stub.url + "/respond/click")
        assert server.post(click).status_code == 200
        stub.wait_for(lambda: bool(stub.responded("/respond/click")))
        [answer] = stub.responded("/respond/click")
        assert answer["response_type"] == "ephemeral"
        assert answer["replace_original"] is False  # the card is updated, not replaced
        change = service.rt.store.get_change("CHG-1")
        assert change is not None and change.state is ChangeState.REJECTED

        refused = slash_body("/aiops", "frobnicate", "U0DAVE", "dave", stub.url + "/respond/x")
        assert server.post(refused).status_code == 200
        stub.wait_for(lambda: bool(stub.responded("/respond/x")))
        assert "unknown subcommand" in stub.responded("/respond/x")[0]["text"]
        # every command the workers ran is in the one audit chain
        actions = [
            e.parameters.get("command")
            for e in service.rt.store.audit(AuditQuery())
            if e.action == "command"
        ]
        assert actions == ["/deploy", "/aiops", "/aiops"]
    finally:
        server.close()  # the lifespan shuts the pool down
    with pytest.raises(WorkerDied, match="stopping"):  # and it takes no more work
        asyncio.run(pool.call(os.getpid))


def test_the_home_tab_is_drawn_and_answered_in_a_worker_process(
    tmp_path: Path, stub: SlackStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`app_home_opened` and a click on the Home tab have no response URL: the worker
    publishes the person's Home tab itself, with the bot token (views.publish)."""
    monkeypatch.setenv("AIOPS_PII_KEY", "test-key-shared-by-the-workers")
    settings = Settings(
        data_dir=tmp_path,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_base_url=stub.api_url,
    )
    service: Service = make_service(settings)
    pool = CommandPool(settings, 1)
    bolt = build_app(
        service,
        bot_token="xoxb-test",
        signing_secret=SIGNING_SECRET,
        api_base_url=stub.api_url,
        runner=pool.run,
    )
    server = Served(make_asgi(service, bolt, pool=pool))

    def views(user: str) -> list[str]:
        return [str(c.body["view"]) for c in stub.of("views.publish") if c.body["user_id"] == user]

    try:
        pool.wait_ready()
        deploy = slash_body(
            "/deploy",
            "loan-assessor gemma-3-1b-it@1.2.1 reason=x",
            "U0ALICE",
            "alice",
            stub.url + "/r/d",
        )
        assert server.post(deploy).status_code == 200
        stub.wait_for(lambda: bool(stub.responded("/r/d")))
        assert server.post(home_opened_body("U0DAVE"), json=True).status_code == 200
        stub.wait_for(lambda: bool(views("U0DAVE")))
        assert "loan-assessor" in views("U0DAVE")[0]
        assert server.post(home_action_body("reject", "CHG-1", "U0BOB", "bob")).status_code == 200
        stub.wait_for(lambda: any("Rejected CHG-1" in v for v in views("U0BOB")))
        change = service.rt.store.get_change("CHG-1")
        assert change is not None and change.state is ChangeState.REJECTED
        assert [c.path for c in stub.of("response_url")] == ["r/d"]
    finally:
        server.close()


def test_a_dead_worker_fails_only_its_own_jobs_and_is_replaced(
    tmp_path: Path, stub: SlackStub
) -> None:
    settings = Settings(
        data_dir=tmp_path, slack_bot_token="xoxb-test", slack_api_base_url=stub.api_url
    )

    async def scenario() -> None:
        pool = CommandPool(settings, 2, nice=0)
        pool.start()
        try:
            first = await pool.ready()
            assert len(first) == 2 and os.getpid() not in first
            # both workers busy; the one running the long job is killed mid-job
            doomed = asyncio.ensure_future(pool.call(time.sleep, 30))
            survivor = asyncio.ensure_future(pool.call(time.sleep, 0.5))
            await asyncio.sleep(1.0)
            [victim] = [w for w in pool._slots if any(j.args == (30,) for j in w.held.values())]
            os.kill(victim.proc.pid, signal.SIGKILL)
            with pytest.raises(WorkerDied):
                await asyncio.wait_for(doomed, 10)
            assert await asyncio.wait_for(survivor, 10) is None  # the other worker's job ran
            # a replacement takes work; the pool is whole again
            deadline = time.monotonic() + 60
            while len(await pool.ready()) < 2 or victim.proc.pid in await pool.ready():
                assert time.monotonic() < deadline, "the dead worker was not replaced"
                await asyncio.sleep(0.2)
            assert await pool.call(os.getpid) not in {victim.proc.pid, os.getpid()}
            # a job that raises fails alone: the worker lives on
            before = await pool.ready()
            with pytest.raises(WorkerFailed, match="ValueError"):
                await pool.call(int, "not a number")
            assert await pool.ready() == before
        finally:
            await pool.aclose()

    asyncio.run(scenario())


def test_closing_runs_every_job_already_taken(tmp_path: Path, stub: SlackStub) -> None:
    """Commands acked before a shutdown still run (and answer); nothing new is taken."""
    settings = Settings(
        data_dir=tmp_path, slack_bot_token="xoxb-test", slack_api_base_url=stub.api_url
    )

    async def scenario() -> list[object]:
        pool = CommandPool(settings, 1, nice=0)
        jobs = [asyncio.ensure_future(pool.call(time.sleep, 0.2)) for _ in range(5)]
        await asyncio.sleep(0)  # taken: queued in the server or sent to the worker
        await pool.aclose()
        assert all(j.done() for j in jobs)
        with pytest.raises(WorkerDied):
            await pool.call(os.getpid)
        return [j.result() for j in jobs]

    assert asyncio.run(scenario()) == [None] * 5
