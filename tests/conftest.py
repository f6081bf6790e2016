from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from bot.store.db import make_engine, upgrade
from tests.support.harness import Bot, FakeClock, make_runtime
from tests.support.pg import migrated_schema, postgres_problem

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
def pg_engine() -> Iterator[Engine]:
    if _PG_PROBLEM:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL must be available in CI: {_PG_PROBLEM}")
        pytest.skip(f"needs PostgreSQL at 127.0.0.1:5432 ({_PG_PROBLEM})")
    with migrated_schema(PG_URL, "t") as engine:
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
