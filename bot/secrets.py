"""Secrets by reference: `NAME_SECRET` names a Secret Manager secret whose value becomes
`NAME` in the environment at start, before anything reads it. Values are never logged.

A bare id means `projects/$GOOGLE_CLOUD_PROJECT/secrets/<id>/versions/latest`; a full
`projects/…/secrets/…/versions/…` name is used as it is. A variable already set wins.

The names are `SECRET_VARS`, plus every `<prefix><ENV>_SECRET` of `SECRET_PREFIXES` found in
the environment: one PagerDuty routing key per environment
(`PAGERDUTY_ROUTING_KEY_PROD_SECRET=pd-prod` → `PAGERDUTY_ROUTING_KEY_PROD`), so that adding
an environment needs no code.

Reads retry like the bot's other Google reads (backoff on UNAVAILABLE, DEADLINE_EXCEEDED
and a dropped connection, up to `retry`'s deadline: a start during a network blip or a
Secret Manager hiccup still comes up); anything else fails at once with one line that
says which secret, for which variable, what happened and what to do — never its value.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.api_core.retry import Retry

SECRET_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "AIOPS_PII_KEY",
    "DATABASE_URL",
    "AIOPS_ALERT_WEBHOOK_TOKEN",  # Cloud Monitoring's webhook channel (bot/alerts)
)
SECRET_PREFIXES = ("PAGERDUTY_ROUTING_KEY_",)  # + the environment's name (bot/pager)
_SUFFIX = re.compile(r"[A-Z0-9_]+")
API = "https://secretmanager.googleapis.com"


class SecretError(RuntimeError):
    pass


def _session() -> Any:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


def read_retry(timeout: float = 30.0) -> Retry:
    """The backoff of the bot's Google reads (bot.platforms.monitoring.read_retry), plus a
    connection that failed: at start the network may not be up yet."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type

    return Retry(
        predicate=if_exception_type(
            gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.GatewayTimeout
        ),
        initial=0.25,
        maximum=4.0,
        multiplier=2.0,
        timeout=timeout,
    )


_HINTS = {
    403: "the bot's service account needs roles/secretmanager.secretAccessor on it",
    401: "the bot's credentials were refused; check the service account it runs as",
    404: "no such secret or version, or it has no enabled version; add one",
}


def _access(session: Any, url: str, ref: str, name: str, retry: Retry) -> str:
    import requests
    from google.api_core import exceptions as gexc

    def fetch() -> Any:
        try:
            response = session.get(url, timeout=10)
        except (requests.ConnectionError, requests.Timeout) as exc:
            failed = f"connection failed ({type(exc).__name__})"
            raise gexc.ServiceUnavailable(failed) from exc  # type: ignore[no-untyped-call]
        if response.status_code >= 400:
            raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]
        return response.json()

    where = f"cannot read {ref} for {name}"
    try:
        body = retry(fetch)()
    except gexc.RetryError as exc:
        cause = exc.cause.message if isinstance(exc.cause, gexc.GoogleAPICallError) else exc
        raise SecretError(
            f"{where}: Secret Manager did not answer within {retry.timeout:g} s ({cause})"
        ) from None
    except gexc.GoogleAPICallError as exc:
        code = int(exc.code or 0)
        said = " ".join(str(exc.message or "").split())[:160]
        hint = _HINTS.get(code, "see Secret Manager's status")
        raise SecretError(
            f"{where}: HTTP {code}" + (f" ({said})" if said else "") + f"; {hint}"
        ) from None
    except ValueError:
        raise SecretError(f"{where}: unexpected answer from Secret Manager (not JSON)") from None
    try:
        return base64.b64decode(body["payload"]["data"]).decode()
    except (KeyError, TypeError, ValueError):
        raise SecretError(f"{where}: unexpected answer from Secret Manager") from None


def secret_names(env: Mapping[str, str]) -> list[str]:
    """`SECRET_VARS`, then the prefixed names whose `_SECRET` reference is in `env`
    (`PAGERDUTY_ROUTING_KEY_PROD`), sorted."""
    found = {
        ref.removesuffix("_SECRET")
        for ref in env
        for prefix in SECRET_PREFIXES
        if ref.startswith(prefix)
        and ref.endswith("_SECRET")
        and _SUFFIX.fullmatch(ref[len(prefix) : -len("_SECRET")])
    }
    return [*SECRET_VARS, *sorted(found - set(SECRET_VARS))]


def resolve_secrets(
    env: MutableMapping[str, str] | None = None,
    *,
    session: Any = None,
    api: str | None = None,
    retry: Retry | None = None,
) -> list[str]:
    """Fill each unset secret variable from its `_SECRET` reference; returns the names filled.
    Raises SecretError (one line, no value) when one cannot be read."""
    env = os.environ if env is None else env
    api = (api or env.get("AIOPS_SECRET_MANAGER_URL") or API).rstrip("/")
    filled = []
    for name in secret_names(env):
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
        if session is None:
            try:
                session = _session()
            except Exception as exc:  # google.auth: no credentials on this machine
                raise SecretError(
                    f"cannot read {ref} for {name}: no Google credentials"
                    f" ({type(exc).__name__}); run as the bot's service account or set {name}"
                ) from None
        value = _access(session, f"{api}/v1/{ref}:access", ref, name, retry or read_retry())
        env[name] = value.strip()
        filled.append(name)
    return filled
