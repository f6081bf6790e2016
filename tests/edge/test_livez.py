"""Liveness and readiness are different questions: `/livez` says the process answers,
`/healthz` says it can serve (database reachable, scheduler running). A database outage
must make the instance unready, never get it restarted."""

from __future__ import annotations

import re
from pathlib import Path

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine, create_engine

from bot.serve.server import StartUp, asgi
from tests.support.processes import free_port
from tests.support.slack_wire import SIGNING_SECRET, Served

ROOT = Path(__file__).resolve().parents[2]


def _bolt() -> AsyncApp:
    return AsyncApp(
        name="livez-test",
        client=AsyncWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/"),
        signing_secret=SIGNING_SECRET,
    )


def _down_engine() -> Engine:
    # A PostgreSQL address on loopback where nothing listens: the database is down.
    port = free_port()
    return create_engine(
        f"postgresql+psycopg://aiops@127.0.0.1:{port}/aiops",
        connect_args={"connect_timeout": 2},
        pool_pre_ping=True,
    )


def test_livez_stays_200_while_healthz_is_503_with_the_database_down() -> None:
    engine = _down_engine()
    server = Served(asgi(_bolt(), engine=engine, platform="vertex", startup=StartUp(None)))
    try:
        ready = server.client.get("/healthz")
        assert ready.status_code == 503
        assert ready.json()["ok"] is False and ready.json()["database"] == "OperationalError"
        live = server.client.get("/livez")
        assert live.status_code == 200 and live.json() == {"ok": True}
    finally:
        server.close()
        engine.dispose()


def test_both_answer_200_when_the_database_is_up(sqlite_engine: Engine) -> None:
    server = Served(asgi(_bolt(), engine=sqlite_engine, platform="sandbox", startup=StartUp(None)))
    try:
        assert server.client.get("/healthz").status_code == 200
        assert server.client.get("/livez").status_code == 200
    finally:
        server.close()


def _check(text: str, name: str) -> str:
    block = re.search(rf"^{name}:\n((?:  .*\n)+)", text, re.MULTILINE)
    assert block, f"app.yaml has no {name}"
    path = re.search(r"^  path: (\S+)", block.group(1), re.MULTILINE)
    assert path, f"{name} has no path"
    return path.group(1)


def test_app_yaml_probes_liveness_on_livez_and_readiness_on_healthz() -> None:
    text = (ROOT / "app.yaml").read_text()
    assert _check(text, "liveness_check") == "/livez"
    assert _check(text, "readiness_check") == "/healthz"


def test_healthz_names_the_changes_stranded_without_a_live_worker(sqlite_engine: Engine) -> None:
    """A change whose worker died is seen at `/healthz` (detail, not a failure: any
    replica's takeover sweep picks it up; restarting this instance would not help)."""
    from datetime import UTC, datetime, timedelta

    from bot.store.sql_store import SqlStore
    from commands.model import ChangeState
    from tests.adapters.test_lease_store import change_in

    store = SqlStore(sqlite_engine)
    live = change_in(store, ChangeState.RUNNING, endpoint="loan-assessor")
    dead = change_in(store, ChangeState.RUNNING, endpoint="loan-assessor-stg")
    now = datetime.now(UTC)
    assert store.take_lease(live.id, "w1", now, timedelta(minutes=5))
    # its worker stopped heartbeating a minute ago
    assert store.take_lease(dead.id, "w2", now - timedelta(minutes=2), timedelta(minutes=1))
    server = Served(asgi(_bolt(), engine=sqlite_engine, platform="sandbox", startup=StartUp(None)))
    try:
        ready = server.client.get("/healthz")
        assert ready.status_code == 200
        assert ready.json()["stranded"] == [dead.id]
    finally:
        server.close()
