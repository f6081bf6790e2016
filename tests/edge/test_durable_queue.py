"""The durable command queue on PostgreSQL: a command is a job in the database before its
ack leaves, a replay is answered once, a job whose worker died is failed and its author
told (never run twice), and a killed server takes its workers with it."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from bot.serve.queue import TASK, CommandQueue, Duplicate, queue_app
from bot.serve.queue_workers import sweep, worker_main
from bot.serve.server import StartUp, asgi
from bot.settings import Settings
from bot.slack.app import Replays, build_bolt, request_key
from bot.wiring import checked_config
from tests.conftest import PG_URL
from tests.support.harness import SlackStub
from tests.support.processes import descendants, free_port
from tests.support.slack_wire import (
    SIGNING_SECRET,
    Served,
    home_opened_body,
    sign,
    slash_body,
    view_submission_body,
)

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


def _url(engine: Engine) -> str:
    """The test schema's URL, its search_path in libpq's `options` (what a replica gets)."""
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def settings(pg_engine: Engine, stub: SlackStub, tmp_path: Path) -> Settings:
    return Settings(
        database_url=_url(pg_engine),
        data_dir=tmp_path,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_base_url=stub.api_url,
    )


def _jobs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status::text, task_name, args FROM procrastinate_jobs ORDER BY id")
        ).mappings()
        return [dict(r) for r in rows]


@pytest.fixture
def server_only(settings: Settings, pg_engine: Engine) -> Iterator[tuple[Served, CommandQueue]]:
    """The acking server with its queue and no worker: what it acked waits in the table."""
    queue = CommandQueue(settings)

    async def runner(*_: Any) -> None:
        raise AssertionError("commands go to the queue")

    async def refused(*_: Any) -> None:
        return None

    bolt = build_bolt(
        checked_config(settings),
        bot_token="xoxb-test",
        signing_secret=SIGNING_SECRET,
        api_base_url=settings.slack_api_base_url,
        runner=runner,
        refused=refused,
        submit=queue.take,
    )
    served = Served(
        asgi(bolt, engine=pg_engine, platform="sandbox", startup=StartUp(None), queue=queue)
    )
    try:
        yield served, queue
    finally:
        served.close()


def _post(served: Served, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = headers or {"content-type": "application/x-www-form-urlencoded", **sign(body)}
    return served.client.post("/slack/events", content=body, headers=headers)


def _run_worker(settings: Settings) -> multiprocessing.process.BaseProcess:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=worker_main, args=(settings, 0, ready))
    proc.start()
    assert ready.wait(60), "the worker did not start"
    return proc


def _stop(proc: multiprocessing.process.BaseProcess) -> int | None:
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGTERM)
    proc.join(60)
    if proc.is_alive():
        proc.kill()
    return proc.exitcode


def test_an_acked_command_is_a_job_before_the_ack_and_runs_once_a_worker_is_up(
    server_only: tuple[Served, CommandQueue],
    settings: Settings,
    pg_engine: Engine,
    stub: SlackStub,
) -> None:
    served, _ = server_only
    card = "4111 1111 1111 1111"
    body = slash_body("/aiops", f"status note={card}", "U0DAVE", "dave", stub.url + "/r/1")
    headers = {"content-type": "application/x-www-form-urlencoded", **sign(body)}
    assert _post(served, body, headers).status_code == 200
    # acked: the job is in the table, with what the domain may see (PII masked), and no
    # display name (people's names live in the directory only)
    [job] = _jobs(pg_engine)
    assert job["status"] == "todo" and job["task_name"] == TASK
    stored = str(job["args"])
    assert card not in stored and "[CARD:" in stored and "dave" not in stored
    # a replay of the very same signed request: acked, not stored again
    assert _post(served, body, headers).status_code == 200
    assert len(_jobs(pg_engine)) == 1
    # a control character: stored in its shown form with the refusal the worker answers
    bad = slash_body("/aiops", "status \x07 x", "U0DAVE", "dave", stub.url + "/r/2")
    assert _post(served, bad).status_code == 200
    assert "\x07" not in str(_jobs(pg_engine)[-1]["args"])

    worker = _run_worker(settings)
    try:
        stub.wait_for(lambda: bool(stub.responded("/r/1")) and bool(stub.responded("/r/2")), 60)
        assert "unknown option `note=`" in str(stub.responded("/r/1")[0]["blocks"])
        assert "U+0007" in str(stub.responded("/r/2")[0])
        with pg_engine.connect() as conn:
            outcomes = [
                r[0]
                for r in conn.execute(
                    text("SELECT outcome FROM audit_event WHERE action = 'command' ORDER BY id")
                )
            ]
        assert len(outcomes) == 2 and outcomes[1].startswith("refused")
    finally:
        assert _stop(worker) == 0
    assert len(stub.responded("/r/1")) == 1  # the replay was never run
    # finished jobs are kept (they hold the request keys): a later replay is still refused
    assert [j["status"] for j in _jobs(pg_engine)] == ["succeeded", "succeeded"]
    assert _post(served, body, headers).status_code == 200
    assert len(_jobs(pg_engine)) == 2


def test_opening_the_home_tab_is_a_job_without_a_response_url_stored_once(
    server_only: tuple[Served, CommandQueue],
    settings: Settings,
    pg_engine: Engine,
    stub: SlackStub,
) -> None:
    served, _ = server_only
    body = home_opened_body("U0DAVE", event_id="Ev0HOME")
    headers = {"content-type": "application/json", **sign(body)}
    assert _post(served, body, headers).status_code == 200
    retried = headers | {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    assert _post(served, body, retried).status_code == 200  # Slack's retry: not stored again
    [job] = _jobs(pg_engine)
    assert job["task_name"] == TASK and job["args"]["key"] == "event:Ev0HOME"
    assert job["args"]["response_url"] is None
    assert job["args"]["inv"]["command"] == "app_home_opened"
    worker = _run_worker(settings)
    try:
        stub.wait_for(lambda: bool(stub.of("views.publish")), 60)
        [call] = stub.of("views.publish")
        assert call.body["user_id"] == "U0DAVE" and "loan-assessor" in str(call.body["view"])
    finally:
        assert _stop(worker) == 0
    assert [j["status"] for j in _jobs(pg_engine)] == ["succeeded"]
    assert stub.of("response_url") == []


def test_a_database_that_does_not_answer_is_said_in_the_ack(
    settings: Settings, pg_engine: Engine, stub: SlackStub
) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    queue = CommandQueue(Settings(database_url=dead, slack_api_base_url=stub.api_url))

    async def nothing(*_: Any) -> None:
        return None

    bolt = build_bolt(
        checked_config(settings),
        bot_token="xoxb-test",
        signing_secret=SIGNING_SECRET,
        api_base_url=settings.slack_api_base_url,
        runner=nothing,
        refused=nothing,
        submit=queue.take,
    )
    # the server starts with its database down; each connection its pool is asked for
    # fails within the pool's timeout, and the ack says so inside Slack's 3 s
    served = Served(asgi(bolt, engine=None, platform="sandbox", startup=StartUp(None), queue=queue))
    try:
        body = slash_body("/aiops", "status", "U0DAVE", "dave", stub.url + "/r/1")
        resp = _post(served, body)
        assert resp.status_code == 200
        assert "could not take this command" in resp.text and "nothing was done" in resp.text
        # a form's submission cannot be answered with text: the form stays open, saying so
        from bot.slack.forms import ENDPOINT, form_view
        from tests.flows.test_forms import state

        config = checked_config(settings)
        view = form_view(config, "/rollback", "U0ALICE", "C0OPS", "loan-assessor").to_dict()
        values = state("loan-assessor", reason="p95 above 2 s")
        resp = _post(served, view_submission_body(view, values, "U0ALICE", "alice"))
        assert resp.json()["response_action"] == "errors"
        assert "could not take this command" in resp.json()["errors"][ENDPOINT]
    finally:
        served.close()


def test_a_job_whose_worker_died_is_failed_once_and_its_author_told(
    settings: Settings, pg_engine: Engine, stub: SlackStub
) -> None:
    async def scenario() -> tuple[int, int]:
        app = queue_app(settings)
        async with app.open_async():
            await app.configure_task(TASK, queue="commands").defer_async(
                inv={"actor": "U0DAVE", "command": "/deploy", "text": "x", "channel_id": None},
                click=False,
                response_url=stub.url + "/r/dead",
                key="command:dead",
                refusal=None,
            )
            worker_id = await app.job_manager.register_worker()
            job = await app.job_manager.fetch_job(queues=["commands"], worker_id=worker_id)
            assert job is not None
            # the worker is killed: no heartbeat for a minute
            pool = app.connector.pool  # type: ignore[attr-defined]
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'"
                )
            first, second = await asyncio.gather(sweep(app), sweep(app))
            return first, second

    first, second = asyncio.run(scenario())
    assert first + second == 1
    [job] = _jobs(pg_engine)
    assert job["status"] == "failed"
    stub.wait_for(lambda: bool(stub.responded("/r/dead")), 15)
    time.sleep(0.3)
    [told] = stub.responded("/r/dead")
    assert "stopped before it answered" in str(told) and "will not be run again" in str(told)


def test_a_form_submission_is_a_job_without_a_response_url_answered_in_a_dm(
    server_only: tuple[Served, CommandQueue],
    settings: Settings,
    pg_engine: Engine,
    stub: SlackStub,
) -> None:
    """A form's submission (`bot/slack/forms.py`) has no response URL: the job names its
    actor (`dm`) and the worker answers there, through the bot's token."""
    from bot.slack.forms import form_view
    from tests.flows.test_forms import state

    served, _ = server_only
    view = form_view(checked_config(settings), "/deploy", "U0ALICE", "C0OPS", "loan-assessor")
    values = state("loan-assessor", version="1.2.1", share="10", reason="fix tokenizer bug")
    assert (
        _post(served, view_submission_body(view.to_dict(), values, "U0ALICE", "alice")).text == ""
    )
    [job] = _jobs(pg_engine)
    assert job["args"]["response_url"] is None and job["args"]["dm"] == "U0ALICE"
    assert job["args"]["inv"]["text"] == (
        'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'
    )
    worker = _run_worker(settings)
    try:
        stub.wait_for(
            lambda: any(
                c.body.get("channel") == "U0ALICE" and "waiting for approval" in c.body["text"]
                for c in stub.of("chat.postMessage")
            ),
            60,
        )
    finally:
        assert _stop(worker) == 0
    assert not stub.of("response_url")


def test_a_stalled_form_submission_is_told_in_a_dm(
    settings: Settings, pg_engine: Engine, stub: SlackStub
) -> None:
    from bot.slack.clients import web_client

    async def scenario() -> int:
        app = queue_app(settings)
        async with app.open_async():
            await app.configure_task(TASK, queue="commands").defer_async(
                inv={"actor": "U0ALICE", "command": "/deploy", "text": "x", "channel_id": None},
                click=False,
                response_url=None,
                key="view:dead",
                refusal=None,
                dm="U0ALICE",
            )
            worker_id = await app.job_manager.register_worker()
            assert await app.job_manager.fetch_job(queues=["commands"], worker_id=worker_id)
            pool = app.connector.pool  # type: ignore[attr-defined]
            async with pool.connection() as conn:
                await conn.execute(
                    "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'"
                )
            return await sweep(app, web_client("xoxb-test", stub.api_url))

    assert asyncio.run(scenario()) == 1
    [told] = [c.body for c in stub.of("chat.postMessage") if c.body.get("channel") == "U0ALICE"]
    assert "stopped before it answered" in str(told)


def test_the_schema_we_install_is_the_installed_procrastinates() -> None:
    import procrastinate

    ours = (REPO / "bot/store/migrations/procrastinate_3.10.0.sql").read_text()
    theirs = (Path(procrastinate.__file__).parent / "sql/schema.sql").read_text()
    assert ours == theirs, "procrastinate changed its schema: add a migration for it"


def test_a_request_key_is_the_same_for_a_replay_and_new_for_a_new_request() -> None:
    body = {"trigger_id": "1.2", "text": "status"}
    assert request_key("command", body) == request_key("command", dict(body))
    assert request_key("command", body) != request_key("command", {**body, "trigger_id": "1.3"})
    no_trigger = {"text": "status", "user_id": "U1"}
    assert request_key("command", no_trigger) == request_key("command", dict(no_trigger))
    assert request_key("command", no_trigger) != request_key("command", {**no_trigger, "x": 1})
    replays = Replays(window=10)
    assert replays.first("k", now=0) and not replays.first("k", now=5)
    assert replays.first("k", now=20)  # outside the window it is a new request


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
def test_serve_on_postgresql_answers_from_the_queue_and_dies_with_its_workers(
    settings: Settings, stub: SlackStub, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIOPS_"))}
    env.update(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_BASE_URL=stub.api_url,
        AIOPS_DATA_DIR=str(tmp_path),
        AIOPS_COMMAND_WORKERS="1",
        AIOPS_PII_KEY="test-key",
        DATABASE_URL=str(settings.database_url),
        HOST="127.0.0.1",
        PORT=str(port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=5).json().get("startup") == "done":
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        body = slash_body("/aiops", "status", "U0DAVE", "dave", stub.url + "/r/s")
        headers = {"content-type": "application/x-www-form-urlencoded", **sign(body)}
        for _ in range(2):  # the second is a replay
            resp = httpx.post(base + "/slack/events", content=body, headers=headers, timeout=10)
            assert resp.status_code == 200
        stub.wait_for(lambda: bool(stub.responded("/r/s")), timeout=60)
        children = descendants(proc.pid)
        assert len(children) >= 3  # forkserver, the worker, the scheduler
    finally:
        proc.kill()  # kill -9: no drain, no goodbye
        proc.wait(10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(children):
        time.sleep(0.1)
    assert not _alive(children), f"left behind: {_alive(children)}"
    assert len(stub.responded("/r/s")) == 1


def _alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def test_commands_arriving_together_share_a_commit_and_a_replay_among_them_is_refused(
    settings: Settings, pg_engine: Engine
) -> None:
    """Submits that arrive while a commit is in flight go in the next one together; a
    replay inside such a batch is refused on its own and the rest are stored."""
    from commands.model import Actor, Invocation

    async def scenario() -> list[object]:
        queue = CommandQueue(settings)
        await queue.open()
        try:
            inv = Invocation(Actor("U0DAVE"), "/aiops", "status")
            keys = [f"command:{i}" for i in range(40)] + [f"command:{i}" for i in range(0, 40, 4)]
            results = await asyncio.gather(
                *(queue.submit(inv, False, None, key) for key in keys), return_exceptions=True
            )
            return list(results)
        finally:
            await queue.close()

    results = asyncio.run(scenario())
    stored = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Duplicate)]
    assert len(stored) == 40 and len(set(stored)) == 40 and len(refused) == 10
    jobs = _jobs(pg_engine)
    assert sorted(j["id"] for j in jobs) == sorted(stored)
    assert len({j["args"]["key"] for j in jobs}) == 40


def test_the_servers_connections_commit_each_statement_as_it_ends(
    settings: Settings, pg_engine: Engine
) -> None:
    """A lone command's ack waits for one round trip to the database, not three (psycopg
    would otherwise send BEGIN and COMMIT around the job's statement): the server's pooled
    connections are in autocommit, and the job is committed when `submit` returns."""
    from commands.model import Actor, Invocation

    async def scenario() -> tuple[bool, int]:
        queue = CommandQueue(settings)
        await queue.open()
        try:
            job_id = await queue.submit(
                Invocation(Actor("U0DAVE"), "/aiops", "status"), False, None, "command:lone"
            )
            async with queue._pool.connection() as conn:
                return bool(conn.autocommit), job_id
        finally:
            await queue.close()

    autocommit, job_id = asyncio.run(scenario())
    assert autocommit
    assert [j["id"] for j in _jobs(pg_engine)] == [job_id]
