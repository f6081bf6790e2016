"""Cloud SQL IAM login: every new PostgreSQL connection presents the service account's
current access token as its password, refreshed once it has expired."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from bot.store.db import make_engine
from bot.store.iam_auth import AccessTokens
from tests.conftest import PG_URL


class Credentials:
    """google.auth credentials as far as AccessTokens uses them."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.valid = False
        self.refreshes = 0

    def refresh(self, _request: Any) -> None:
        self.refreshes += 1
        self.token = f"ya29.token-{self.refreshes}"
        self.valid = True


def test_tokens_are_refreshed_only_when_no_longer_valid() -> None:
    creds = Credentials()
    tokens = AccessTokens(creds)
    assert tokens() == "ya29.token-1" and tokens() == "ya29.token-1"
    creds.valid = False  # expired
    assert tokens() == "ya29.token-2" and creds.refreshes == 2


def test_each_new_connection_gets_the_token_as_password(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_DB_IAM_AUTH", "1")
    creds = Credentials()
    # Application Default Credentials, as the service account on App Engine would give them
    monkeypatch.setattr("google.auth.default", lambda scopes: (creds, "lender-aiops-prod"))
    engine = make_engine(PG_URL)
    seen: list[str] = []

    @event.listens_for(engine, "do_connect")
    def _record(_d: Any, _r: Any, _a: Any, cparams: dict[str, Any]) -> None:
        seen.append(cparams["password"])  # registered after the IAM hook: sees its password

    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        engine.dispose()
        creds.valid = False
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    assert seen == ["ya29.token-1", "ya29.token-2"]


def test_without_the_setting_no_token_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOPS_DB_IAM_AUTH", raising=False)
    engine = make_engine("postgresql+psycopg://aiops@127.0.0.1:1/aiops")
    assert "_password" not in _hooks(engine)
    monkeypatch.setenv("AIOPS_DB_IAM_AUTH", "1")
    with_iam = make_engine("postgresql+psycopg://aiops@127.0.0.1:1/aiops")
    assert "_password" in _hooks(with_iam)
    engine.dispose()
    with_iam.dispose()


def _hooks(engine: Engine) -> list[str]:
    """Names of the `do_connect` listeners on the engine's dialect."""
    return [getattr(fn, "__name__", "") for fn in engine.dialect.dispatch.do_connect]
