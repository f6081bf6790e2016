"""Secrets by reference: `NAME_SECRET` names a Secret Manager secret whose value becomes
`NAME` in the environment at start, before anything reads it. Values are never logged.

A bare id means `projects/$GOOGLE_CLOUD_PROJECT/secrets/<id>/versions/latest`; a full
`projects/…/secrets/…/versions/…` name is used as it is. A variable already set wins.
"""

from __future__ import annotations

import base64
import os
from collections.abc import MutableMapping
from typing import Any

SECRET_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "AIOPS_PII_KEY",
    "DATABASE_URL",
)
API = "https://secretmanager.googleapis.com"


class SecretError(RuntimeError):
    pass


def _session() -> Any:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


def resolve_secrets(
    env: MutableMapping[str, str] | None = None, *, session: Any = None, api: str | None = None
) -> list[str]:
    """Fill each unset secret variable from its `_SECRET` reference; returns the names filled."""
    env = os.environ if env is None else env
    api = (api or env.get("AIOPS_SECRET_MANAGER_URL") or API).rstrip("/")
    filled = []
    for name in SECRET_VARS:
        ref = env.get(f"{name}_SECRET")
        if env.get(name) or not ref:
            continue
        if not ref.startswith("projects/"):
            project = env.get("GOOGLE_CLOUD_PROJECT")
            if not project:
                raise SecretError(
                    f"{name}_SECRET is a bare id; set GOOGLE_CLOUD_PROJECT or give the full name"
                )
            ref = f"projects/{project}/secrets/{ref}/versions/latest"
        session = session or _session()
        response = session.get(f"{api}/v1/{ref}:access", timeout=10)
        if response.status_code != 200:
            raise SecretError(f"cannot read {ref} for {name}: HTTP {response.status_code}")
        try:
            value = base64.b64decode(response.json()["payload"]["data"]).decode()
        except (KeyError, ValueError) as exc:
            raise SecretError(f"{ref} for {name}: unexpected answer from Secret Manager") from exc
        env[name] = value.strip()
        filled.append(name)
    return filled
