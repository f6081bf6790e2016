"""Replicas starting together on a new database: migrations run at once take turns, the
sandbox is seeded once, and every process starts. On PostgreSQL (a new schema: the
migration job run twice, then the replicas) and on SQLite (a new file, and a file behind
the migrations, which every process upgrades on start)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, text

from bot.platforms.sandbox import SandboxPlatform
from bot.store.db import head_revisions, make_engine, schema_drift, upgrade
from tests.support.harness import example_config
from tests.support.pg import empty_schema

REPO = Path(__file__).resolve().parents[2]
REPLICAS = 3

# One replica: everything imported first, then wait for the starting gun, so the processes
# reach the database together rather than one import time apart.
CHILD = """
import sys, time
from pathlib import Path
import alembic.command, bot.platforms.sandbox, bot.store.sql_store
from bot.settings import Settings
from bot.store.db import make_engine, upgrade
from bot.wiring import build_runtime
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.002)
if sys.argv[2] == "upgrade":
    upgrade(make_engine(Settings.from_env().db_url))
else:
    build_runtime(Settings.from_env())
print("started")
"""


def start_together(what: str, env: dict[str, str], tmp_path: Path) -> None:
    """`REPLICAS` processes doing `what` (`upgrade` or `start`) at the same moment; each
    must succeed."""
    go = tmp_path / f"go-{what}-{time.monotonic_ns()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(go), what],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(REPLICAS)
    ]
    time.sleep(3)  # their imports (two cores shared with others)
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0 and out.strip() == "started", err


def env_for(url: str | None, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIOPS_"))}
    env.pop("DATABASE_URL", None)
    env["AIOPS_DATA_DIR"] = str(tmp_path)
    if url:
        env["DATABASE_URL"] = url
    return env


def assert_seeded_once_at_head(engine: Engine) -> None:
    endpoints = example_config().endpoints
    with engine.connect() as conn:
        seeded = conn.execute(text("SELECT slug FROM sandbox_endpoint")).scalars().all()
        models = conn.execute(text("SELECT endpoint FROM sandbox_deployed_model")).scalars().all()
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert sorted(seeded) == sorted(endpoints)
    assert sorted(models) == sorted(endpoints)  # each endpoint's first model, once
    assert set(versions) == head_revisions() and len(versions) == 1
    assert schema_drift(engine) == []


def test_replicas_seeding_the_sandbox_at_once_seed_it_once(engine: Engine) -> None:
    barrier = threading.Barrier(6)
    failures: list[BaseException] = []

    def first_start() -> None:
        barrier.wait()
        try:
            SandboxPlatform(engine, example_config())
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first_start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert_seeded_once_at_head(engine)


def test_first_start_of_replicas_on_a_new_postgres_schema(pg_url: str, tmp_path: Path) -> None:
    with empty_schema(pg_url, "fs") as (_, url):
        env = env_for(url, tmp_path)
        start_together("upgrade", env, tmp_path)  # the migration job, started twice over
        start_together("start", env, tmp_path)  # then the replicas
        engine = make_engine(url)
        try:
            assert_seeded_once_at_head(engine)
        finally:
            engine.dispose()


def test_first_start_of_replicas_on_a_new_sqlite_file(tmp_path: Path) -> None:
    start_together("start", env_for(None, tmp_path), tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    try:
        assert_seeded_once_at_head(engine)
    finally:
        engine.dispose()


def test_replicas_upgrading_a_sqlite_file_behind_at_once(tmp_path: Path) -> None:
    """Not empty, so Alembic upgrades it in every process: one transaction each, taken in
    turns (BEGIN IMMEDIATE), so the later ones find it at head."""
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine, "0004")
    start_together("start", env_for(None, tmp_path), tmp_path)
    try:
        assert_seeded_once_at_head(engine)
    finally:
        engine.dispose()
