"""`POST /alerts/cloud-monitoring` on `serve` (bot/alerts/webhook.py): Cloud Monitoring's
recorded notifications sent over HTTP as its channel sends them, with a token in the URL
or HTTP Basic. A notice is durable before the 2xx (on SQLite recorded by a worker, on
PostgreSQL a job unique by its key), refusals are 400 / 401 / 503 with a log line that
quotes nothing of the body, and refused credentials are audited together, not a row each.
The two-replica replay through to the review is tests/edge/test_respond_replay.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.routing import Route

from bot.alerts.cloud_monitoring import MAX_BODY, TOKEN_VAR
from bot.alerts.webhook import (
    PATH,
    AlertNotTaken,
    AlertWebhook,
    job_key,
    notice_from_job,
    notice_to_job,
)
from bot.serve.queue import ALERT_REFUSED_TASK, ALERT_TASK, CommandQueue, queue_app
from bot.serve.queue_workers import ALERT_ATTEMPTS, sweep
from bot.serve.server import StartUp, asgi, build_server, make_asgi
from bot.settings import BUNDLED_CONFIG, Settings
from bot.slack.app import build_app, build_bolt
from bot.store.incident_store import SqlIncidentStore
from bot.store.sql_store import SqlStore
from bot.wiring import checked_config
from commands.config import load_config
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from commands.ports import AuditQuery
from commands.service import Service
from tests.conftest import PG_URL
from tests.support.alerts import JSON, TOKEN, basic, body, notification, token_query
from tests.support.harness import FakeClock, SlackStub, make_runtime
from tests.support.processes import free_port
from tests.support.slack_wire import SIGNING_SECRET, Served

CARD = "4111 1111 1111 1111"  # what must never reach a log line


def send(
    served: Served,
    data: bytes,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return served.client.post(
        PATH,
        content=data,
        params=params if params is not None else token_query(),
        headers={"content-type": "application/json", **(headers or {})},
    )


def alert_posts(stub: SlackStub) -> list[dict[str, Any]]:
    return [
        c.body
        for c in stub.of("chat.postMessage")
        if c.body.get("channel") == "C0OPS" and "ALERT-" in json.dumps(c.body)
    ]


def actions(service: Service, name: str) -> list[Any]:
    return [e for e in service.rt.store.audit(AuditQuery()) if e.action == name]


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    monkeypatch.delenv("AIOPS_ALERT_WEBHOOK_USER", raising=False)
    return TOKEN


# ------------------------------------------------------------------ the job's form


def test_a_notice_goes_to_a_job_as_json_and_comes_back_the_same() -> None:
    notice = AlertNotice(
        key="cloud-monitoring:0.abc",
        source=AlertSource.CLOUD_MONITORING,
        state=AlertState.CLOSED,
        policy="p",
        condition="c",
        started_at=datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC),
        ended_at=datetime(2026, 11, 30, 1, 45, tzinfo=UTC),
        endpoint="loan-assessor",
        environment="prod",
        summary="s",
        observed="P95 2,341 ms > 2,000 ms",
        url="https://console.cloud.google.com/x",
        documentation="d",
        labels={"aiops_endpoint": "loan-assessor"},
    )
    job = notice_to_job(notice)
    assert json.loads(json.dumps(job)) == job  # plain JSON: what procrastinate stores
    assert job["state"] == "closed" and job["started_at"] == "2026-11-30T01:02:03+00:00"
    assert notice_from_job(job) == notice
    assert job_key(job) == "alert:cloud-monitoring:0.abc:closed"
    # a job written before a field existed takes its default
    older = {k: v for k, v in job.items() if k not in ("labels", "ended_at")}
    assert notice_from_job(older).labels == {} and notice_from_job(older).ended_at is None


# --------------------------------------------------------- in process, on SQLite


def test_a_notice_is_posted_once_and_its_message_updated_when_it_closes(
    served: tuple[Served, Service], stub: SlackStub, token: str
) -> None:
    server, service = served
    opened = body(notification("open"))
    first = send(server, opened)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "ok": True,
        "alert": "cloud-monitoring:0.nqk3xu7d9f2a",
        "state": "open",
        "duplicate": False,
    }
    # the channel's retry, by the other kind of credentials: recorded once, posted once,
    # and said to be a duplicate, as PostgreSQL's job key says it
    again = send(server, opened, params={}, headers=basic())
    assert again.status_code == 200 and again.json()["duplicate"] is True
    [message] = alert_posts(stub)
    alert = service.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.notice.endpoint == "loan-assessor"
    assert alert.message_ts is not None
    assert "P95 prediction latency" in json.dumps(message)
    closing = send(server, body(notification("closed")))
    assert closing.status_code == 200 and closing.json()["duplicate"] is False
    assert send(server, body(notification("closed"))).json()["duplicate"] is True
    [update] = [c.body for c in stub.of("chat.update") if c.body.get("ts") == alert.message_ts]
    assert "Resolved" in json.dumps(update)
    assert len(alert_posts(stub)) == 1
    assert len(actions(service, "alert_received")) == len(actions(service, "alert_closed")) == 1


def test_requests_without_valid_credentials_get_401_and_are_audited_together(
    sqlite_engine: Engine, stub: SlackStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first refusal is audited at once; the ones after it in the same minute make one
    row when the minute ends (here: when the server stops), so a flood costs a row a
    minute, never a row a request."""
    rt = make_runtime(sqlite_engine, FakeClock())
    service = Service(rt)
    bolt = build_app(service, bot_token="xoxb-test", signing_secret=SIGNING_SECRET)
    server = Served(make_asgi(service, bolt))
    opened = body(notification("open"))
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    try:
        answers = [send(server, opened, params={}, headers=basic())]  # no token configured
        deadline = time.monotonic() + 30
        while not actions(service, "alert_refused") and time.monotonic() < deadline:
            time.sleep(0.02)
        monkeypatch.setenv(TOKEN_VAR, TOKEN)
        answers += [
            send(server, opened, params={}),  # no credentials
            send(server, opened, params=token_query("wrong")),
            send(server, opened, params={}, headers=basic(password="wrong")),
            send(server, opened, params={}, headers=basic(user="someone-else")),
        ]
        assert [a.status_code for a in answers] == [401] * 5
        assert all(a.json() == {"ok": False, "error": "unauthorized"} for a in answers)
        assert all(a.headers["www-authenticate"].startswith("Basic") for a in answers)
        [first] = actions(service, "alert_refused")  # the others wait for the window's end
    finally:
        server.close()
    assert first.parameters["count"] == 1
    assert first.parameters["reasons"] == {"not_configured": 1}
    assert first.actor_id == "unknown"
    rows = actions(service, "alert_refused")
    assert len(rows) == 2
    assert rows[1].parameters["count"] == 4
    assert rows[1].parameters["reasons"] == {"no_credentials": 1, "wrong_credentials": 3}
    assert TOKEN not in json.dumps([r.parameters for r in rows])
    assert not alert_posts(stub) and not actions(service, "alert_received")


def test_bad_bodies_get_400_and_a_log_line_that_quotes_none_of_them(
    served: tuple[Served, Service],
    stub: SlackStub,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, service = served
    good = notification("open")
    test_notification = {**good, "version": "test"}
    no_id = json.loads(json.dumps(good))
    del no_id["incident"]["incident_id"]
    no_id["incident"]["summary"] = CARD
    padded = json.loads(json.dumps(good))
    padded["incident"]["summary"] = CARD + " " + "x" * MAX_BODY

    def chunked() -> Iterator[bytes]:  # no Content-Length: the size is found while reading
        data = body(padded)
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    caplog.set_level(logging.INFO, logger="bot.alerts.webhook")
    cases = {
        "not JSON": send(server, b'{"incident": ' + CARD.encode()),
        # 60 KB nested 30,000 deep: Python's parser raises RecursionError past ~1,000
        "not JSON: nested too deep": send(
            server, b'{"version":"1.2","incident":' + b"[" * 30_000 + b"]" * 30_000 + b"}"
        ),
        "test notification": send(server, body(test_notification)),
        "incident.incident_id missing": send(server, body(no_id)),
        f"is {len(body(padded)):,} bytes": send(server, body(padded), params={}),  # before auth
        f"more than {MAX_BODY:,} bytes": server.client.post(
            PATH, content=chunked(), params=token_query(), headers=JSON
        ),
    }
    for said, resp in cases.items():
        assert resp.status_code == 400, (said, resp.text)
        assert said in resp.json()["error"] and CARD not in resp.text
    refused = [
        r.getMessage() for r in caplog.records if "refused a notification (400)" in r.message
    ]
    assert len(refused) == len(cases)
    assert not any(CARD in r.getMessage() for r in caplog.records)
    assert not alert_posts(stub) and not actions(service, "alert_refused")


def test_a_body_that_is_not_declared_json_gets_415_before_anything_is_read(
    served: tuple[Served, Service],
    stub: SlackStub,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cloud Monitoring posts `application/json`; a form, text, or no type at all is not
    its notification (415, not retried as a 5xx would be), whatever the body holds."""
    server, service = served
    opened = body(notification("open"))
    caplog.set_level(logging.INFO, logger="bot.alerts.webhook")
    for kind in ("application/x-www-form-urlencoded", "text/plain", "application/jsonx", ""):
        resp = send(server, opened, headers={"content-type": kind})
        assert resp.status_code == 415, (kind, resp.text)
        assert "application/json" in resp.json()["error"] and not resp.json()["ok"]
    bare = server.client.post(PATH, content=opened, params=token_query())  # no header
    assert bare.status_code == 415 and "is none;" in bare.json()["error"]
    assert not alert_posts(stub) and not actions(service, "alert_received")
    assert len([r for r in caplog.records if "(415)" in r.getMessage()]) == 5
    charset = send(server, opened, headers={"content-type": "Application/JSON; charset=utf-8"})
    assert charset.status_code == 200, charset.text
    assert len(alert_posts(stub)) == 1


class Broken:
    """A sink that fails as its kind may (`AlertNotTaken`) or as a bug would."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def take_alert(self, job: dict[str, Any]) -> bool:
        raise self.error

    async def alert_refused(self, report: dict[str, Any]) -> None:
        return None


def test_a_notice_that_cannot_be_stored_is_503_and_a_bug_of_ours_500_logged(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(BUNDLED_CONFIG)
    for error, status in ((AlertNotTaken("the database did not answer"), 503), (KeyError(), 500)):
        hook = AlertWebhook(config, Broken(error))
        server = Served(Starlette(routes=[Route(PATH, hook.handle, methods=["POST"])]))
        try:
            resp = send(server, body(notification("open")))
        finally:
            server.close()
        assert resp.status_code == status
        assert not resp.json()["ok"]
    ours = [r for r in caplog.records if r.name == "bot.alerts.webhook"]
    assert ours[-1].exc_info is not None  # the bug, with its traceback
    assert any("not taken (503" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="worker processes fork from a forkserver")
def test_on_sqlite_a_worker_has_recorded_the_notice_when_the_answer_leaves(
    tmp_path: Path, stub: SlackStub, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    """`serve` as built for SQLite with a worker process: the alert's row exists when
    the 200 arrives, and the closing notice updates the message the worker posted."""
    monkeypatch.setenv("AIOPS_COMMAND_WORKERS", "1")
    monkeypatch.setenv("AIOPS_PII_KEY", "test-key-shared-by-the-workers")
    settings = Settings(
        data_dir=tmp_path,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_base_url=stub.api_url,
    )
    built = build_server(settings)
    assert built.pool is not None and built.queue is None
    server = Served(built.asgi())
    try:
        assert send(server, body(notification("open"))).status_code == 200
        store = SqlIncidentStore(built.engine)  # type: ignore[arg-type]
        alert = store.get_alert("ALERT-1")
        assert alert is not None and alert.message_ts is not None  # before the answer left
        assert send(server, body(notification("open"))).status_code == 200
        assert send(server, body(notification("closed"))).status_code == 200
        assert (store.get_alert("ALERT-1") or alert).closed_at is not None
    finally:
        server.close()
    assert len(alert_posts(stub)) == 1
    assert [c.body["ts"] for c in stub.of("chat.update")] == [alert.message_ts]


# ----------------------------------------------------------------- on PostgreSQL


def _url(engine: Engine) -> str:
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_settings(pg_engine: Engine, stub: SlackStub, tmp_path: Path) -> Settings:
    return Settings(
        database_url=_url(pg_engine),
        data_dir=tmp_path,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_base_url=stub.api_url,
    )


def _queue_server(settings: Settings, queue: CommandQueue, engine: Engine | None) -> Served:
    """The acking server with its queue and no worker: what it took waits in the table."""

    async def nothing(*_: Any) -> None:
        return None

    config = checked_config(settings)
    bolt = build_bolt(
        config,
        bot_token="xoxb-test",
        signing_secret=SIGNING_SECRET,
        api_base_url=settings.slack_api_base_url,
        runner=nothing,
        refused=nothing,
        submit=queue.take,
    )
    return Served(
        asgi(
            bolt,
            engine=engine,
            platform="sandbox",
            startup=StartUp(None),
            queue=queue,
            alerts=AlertWebhook(config, queue),
        )
    )


def _jobs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status::text, task_name, args, attempts FROM procrastinate_jobs")
        ).mappings()
        return sorted((dict(r) for r in rows), key=lambda r: r["id"])


@pytest.mark.postgres
def test_on_postgresql_a_notice_is_a_job_before_the_answer_and_a_copy_a_duplicate(
    pg_settings: Settings, pg_engine: Engine, stub: SlackStub, token: str
) -> None:
    from tests.edge.test_durable_queue import _run_worker, _stop

    server = _queue_server(pg_settings, CommandQueue(pg_settings), pg_engine)
    try:
        opened = body(notification("open"))
        assert send(server, opened).json()["duplicate"] is False
        [job] = _jobs(pg_engine)
        assert (job["task_name"], job["status"]) == (ALERT_TASK, "todo")
        assert job["args"]["key"] == "alert:cloud-monitoring:0.nqk3xu7d9f2a:open"
        again = send(server, opened, params={}, headers=basic())
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert len(_jobs(pg_engine)) == 1
        assert send(server, body(notification("closed"))).json()["duplicate"] is False
        for _ in range(3):
            assert send(server, opened, params=token_query("wrong")).status_code == 401
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_jobs(pg_engine)) < 3:
            time.sleep(0.02)
    finally:
        server.close()  # the window's held refusals: a second report
    jobs = _jobs(pg_engine)
    assert [j["task_name"] for j in jobs] == [ALERT_TASK, ALERT_TASK] + [ALERT_REFUSED_TASK] * 2
    assert [j["args"]["report"]["count"] for j in jobs[2:]] == [1, 2]
    worker = _run_worker(pg_settings)
    try:
        stub.wait_for(lambda: [j["status"] for j in _jobs(pg_engine)] == ["succeeded"] * 4, 60)
    finally:
        assert _stop(worker) == 0
    assert len(alert_posts(stub)) == 1 and len(stub.of("chat.update")) == 1
    store = SqlStore(pg_engine)
    refused = [e for e in store.audit(AuditQuery()) if e.action == "alert_refused"]
    assert sum(e.parameters["count"] for e in refused) == 3


@pytest.mark.postgres
def test_on_postgresql_a_database_that_does_not_answer_is_503(
    pg_settings: Settings, token: str
) -> None:
    dead = Settings(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    server = _queue_server(pg_settings, CommandQueue(dead), None)
    try:
        resp = send(server, body(notification("open")))
    finally:
        server.close()
    assert resp.status_code == 503 and resp.headers["retry-after"]
    assert "send it again" in resp.json()["error"]


@pytest.mark.postgres
def test_a_stalled_alert_job_is_run_again_not_failed(
    pg_settings: Settings, pg_engine: Engine
) -> None:
    """A command whose worker died is failed (it may have taken effect); a notice is put
    back, since nobody else would send it again and receiving it twice is harmless — up
    to `ALERT_ATTEMPTS` runs in all."""

    async def stall(app: Any) -> int:
        worker_id = await app.job_manager.register_worker()
        job = await app.job_manager.fetch_job(queues=["commands"], worker_id=worker_id)
        assert job is not None
        async with app.connector.pool.connection() as conn:
            await conn.execute(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute'"
            )
        return int(await sweep(app))

    async def scenario() -> list[int]:
        app = queue_app(pg_settings)
        async with app.open_async():
            await app.configure_task(ALERT_TASK, queue="commands").defer_async(
                notice=notice_to_job(
                    AlertNotice(
                        "cloud-monitoring:x", AlertSource.CLOUD_MONITORING, AlertState.OPEN, "p"
                    )
                ),
                key="alert:cloud-monitoring:x:open",
            )
            return [await stall(app) for _ in range(ALERT_ATTEMPTS)]

    failed = asyncio.run(scenario())
    assert failed == [0] * (ALERT_ATTEMPTS - 1) + [1]
    [job] = _jobs(pg_engine)
    assert job["status"] == "failed" and job["attempts"] == ALERT_ATTEMPTS  # runs in all


def test_the_parser_and_the_route_load_nothing_of_the_domain() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import bot.alerts.webhook\n"
        "heavy = {'commands.service', 'commands.incidents.alerts', 'bot.store.sql_store',"
        " 'bot.store.incident_store', 'sqlmodel', 'sqlalchemy.orm', 'procrastinate'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
