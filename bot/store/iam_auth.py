"""Cloud SQL IAM database authentication for the bot's runtime login.

In production the bot connects to PostgreSQL as the Cloud SQL IAM user of its service
account (`aiops-bot@PROJECT.iam`): a login Terraform creates without any privilege of its
own, made a member of `aiops_runtime` by the migrations (append-only audit). It has no
password: each new connection presents a fresh OAuth access token of the service account
as its password (TLS is required by the instance). `AIOPS_DB_IAM_AUTH=1` turns this on
(`bot.store.db.make_engine`); tokens only matter when a connection is opened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event

SCOPE = "https://www.googleapis.com/auth/sqlservice.login"


class AccessTokens:
    """The service account's access token, refreshed when it has expired (or is about to)."""

    def __init__(self, credentials: Any = None) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._credentials is None:
                import google.auth

                self._credentials, _ = google.auth.default(scopes=[SCOPE])
            if not self._credentials.valid:  # no token yet, or expiring within minutes
                from google.auth.transport.requests import Request

                self._credentials.refresh(Request())
            return str(self._credentials.token)


def attach(engine: Engine, token: Callable[[], str] | None = None) -> Engine:
    """Every new connection of `engine` gets `token()` as its password."""
    provider = token or AccessTokens()

    @event.listens_for(engine, "do_connect")
    def _password(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["password"] = provider()

    return engine
