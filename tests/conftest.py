from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from bot.store.db import make_engine, upgrade
from tests.support.harness import Bot, FakeClock, SlackStub, make_runtime
from tests.support.pg import migrated_schema, postgres_problem

if TYPE_CHECKING:
    from commands.service import Service
    from tests.support.slack_wire import Served

PG_URL = os.environ.get("AIOPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


_PG_PROBLEM = postgres_problem(PG_URL)


def pytest_report_header() -> str:
    if _PG_PROBLEM:
        return f"PostgreSQL at 127.0.0.1:5432 unavailable ({_PG_PROBLEM}): postgres tests skip"
    return "PostgreSQL at 127.0.0.1:5432: available"


@pytest.fixture
def sqlite_engine(tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url() -> str:
    """The test PostgreSQL's URL; skips (fails in CI) when it does not answer."""
    if _PG_PROBLEM:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must be available in CI: {_PG_PROBLEM}")
        pytest.skip(f"needs PostgreSQL at 127.0.0.1:5432 ({_PG_PROBLEM})")
    return PG_URL


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    with migrated_schema(pg_url, "t") as engine:
        yield engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request) -> Engine:  # type: ignore[no-untyped-def]
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bot(sqlite_engine: Engine, clock: FakeClock) -> Iterator[Bot]:
    b = Bot(make_runtime(sqlite_engine, clock), clock)
    yield b
    b.rt.background.wait_idle(30)


@pytest.fixture
def stub() -> Iterator[SlackStub]:
    """A local Slack Web API and response URL, recording every call."""
    s = SlackStub()
    yield s
    s.close()


@pytest.fixture
def served(sqlite_engine: Engine, stub: SlackStub) -> Iterator[tuple[Served, Service]]:
    """The bot's Bolt app under its ASGI server in this process, posting to `stub` through
    the production Web API client (retry handlers included)."""
    from bot.serve.server import make_asgi
    from bot.slack.app import build_app
    from bot.slack.clients import web_client
    from bot.slack.notifier import SlackNotifier
    from commands.service import Service
    from tests.support.slack_wire import SIGNING_SECRET, Served

    rt = make_runtime(
        sqlite_engine, FakeClock(), SlackNotifier(web_client("xoxb-test", stub.api_url))
    )
    service = Service(rt)
    bolt = build_app(
        service, bot_token="xoxb-test", signing_secret=SIGNING_SECRET, api_base_url=stub.api_url
    )
    server = Served(make_asgi(service, bolt))
    yield server, service
    rt.background.wait_idle(30)
    assert isinstance(rt.notifier, SlackNotifier)
    rt.notifier.wait_homes(30)  # Home tabs still being republished
    server.close()
