"""The local PostgreSQL the benchmarks and the tests use: is it there, and a throwaway
schema migrated to head for one run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text

from bot.store.db import make_engine, upgrade


def postgres_problem(url: str) -> str | None:
    """None when `url` answers; else why not, in one line."""
    try:
        eng = create_engine(url, connect_args={"connect_timeout": 2})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@contextmanager
def empty_schema(url: str, prefix: str) -> Iterator[tuple[str, str]]:
    """A new, never migrated schema `<prefix>_<random>`: its name and a URL whose
    connections have their search_path on it (for a process of its own); dropped after."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema, f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def migrated_schema(url: str, prefix: str) -> Iterator[Engine]:
    """A new schema `<prefix>_<random>` at head, its engine's search_path on it; dropped
    after."""
    with empty_schema(url, prefix) as (schema, _):
        engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
