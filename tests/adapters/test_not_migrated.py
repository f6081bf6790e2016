"""A database behind this release's migrations is named in one line before anything reads
it: the CLI (serve included) exits 2 with it, `/healthz` says "not migrated". PostgreSQL
is never migrated on start (the release's migration job does it); SQLite is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import make_url, text

from bot.cli import main as cli
from bot.serve.server import StartUp, asgi
from bot.store.db import NotMigrated, check_migrated, head_revisions, make_engine, upgrade
from tests.support.pg import empty_schema
from tests.support.slack_wire import SIGNING_SECRET, Served

REPO = Path(__file__).resolve().parents[2]
(HEAD,) = head_revisions() or {"?"}


def line(url: str, at: str) -> str:
    masked = make_url(url).render_as_string(hide_password=True)
    return (
        f"aiops-bot: the database at {masked} is not migrated (at {at}, needs {HEAD}):"
        " run `aiops-bot db upgrade`"
    )


def cli_env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "AIOPS_"))}
    env.update(
        DATABASE_URL=url,
        AIOPS_DATA_DIR=str(tmp_path),
        # enough for `serve` to reach the database; a stub Web API, so not real Slack
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_BASE_URL="http://127.0.0.1:9/",
    )
    return env


@pytest.mark.postgres
def test_every_entry_point_on_a_never_migrated_postgres_says_one_line_and_exits_2(
    pg_url: str, tmp_path: Path
) -> None:
    with empty_schema(pg_url, "nm") as (schema, url):
        # a password in the URL is masked in the line (trust auth ignores it here)
        url = make_url(url).set(password="s3cret").render_as_string(hide_password=False)
        commands = [["serve"], ["audit", "export"], ["audit", "verify"], ["digest", "morning"]]
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "bot.cli", *argv],
                cwd=REPO,
                env=cli_env(url, tmp_path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for argv in commands
        ]
        for argv, proc in zip(commands, runs, strict=True):
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 2, (argv, err)
            assert err.splitlines() == [line(url, "none")], (argv, err)
            assert "s3cret" not in err and "Traceback" not in err
            assert out == ""
        admin = make_engine(pg_url)
        with admin.connect() as conn:  # nothing was created behind the operator's back
            tables = conn.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            ).scalar()
        admin.dispose()
        assert tables == 0


@pytest.mark.postgres
def test_a_database_behind_this_release_names_where_it_is(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with empty_schema(pg_url, "nm") as (_, url):
        engine = make_engine(url)
        upgrade(engine, "0004")
        engine.dispose()
        for key, value in cli_env(url, tmp_path).items():
            monkeypatch.setenv(key, value)
        assert cli.main(["audit", "export"]) == 2
        assert capsys.readouterr().err.splitlines() == [line(url, "0004")]


def test_sqlite_ahead_passes_behind_does_not(tmp_path: Path) -> None:
    """A revision this release does not know is a newer release's (expand-only migrations
    run before it takes traffic, while this one still serves): not refused."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = make_engine(url)
    upgrade(engine)
    check_migrated(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    check_migrated(engine)  # ahead
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    with pytest.raises(NotMigrated) as behind:
        check_migrated(engine)
    assert f"aiops-bot: {behind.value}" == line(url, "0004")
    engine.dispose()


@pytest.mark.postgres
def test_healthz_on_a_never_migrated_database_says_so_until_it_is_migrated(pg_url: str) -> None:
    with empty_schema(pg_url, "nm") as (_, url):
        engine = make_engine(url)
        bolt = AsyncApp(
            name="healthz-test",
            client=AsyncWebClient(token="xoxb-test", base_url="http://127.0.0.1:9/"),
            signing_secret=SIGNING_SECRET,
        )
        server = Served(asgi(bolt, engine=engine, platform="vertex", startup=StartUp(None)))
        try:
            unready = server.client.get("/healthz")
            assert unready.status_code == 503
            assert unready.json() == {
                "ok": False,
                "database": "not migrated: run aiops-bot db upgrade",
            }
            upgrade(engine)  # the migration job runs: the same instance becomes ready
            ready = server.client.get("/healthz")
            assert ready.status_code == 200 and ready.json()["ok"] is True
        finally:
            server.close()
            engine.dispose()


def test_a_database_that_does_not_answer_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """`serve` (and any store command) with PostgreSQL down: one line naming why, no
    driver traceback; the orchestrator restarts it until the database answers."""
    from tests.support.processes import free_port

    dead = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/aiops"
    for argv in (["serve"], ["audit", "verify"]):
        out = subprocess.run(
            [sys.executable, "-m", "bot.cli", *argv],
            cwd=REPO,
            env=cli_env(dead, tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 2, (argv, out.stderr)
        [said] = out.stderr.splitlines()
        assert (
            said.startswith("aiops-bot: the database does not answer (") and "DATABASE_URL" in said
        )
        assert "s3cret" not in out.stderr and "Traceback" not in out.stderr
