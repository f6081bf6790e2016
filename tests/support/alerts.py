"""Cloud Monitoring's webhook notifications as its channel sends them: the recorded fixtures
(tests/fixtures/cloud_monitoring/) replayed with the times and ids a scenario needs, and
the two ways the channel authenticates (a token in the URL, HTTP Basic)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloud_monitoring"
PATH = "/alerts/cloud-monitoring"
TOKEN = "test-webhook-token"  # a test value, not a credential
USER = "cloud-monitoring"
JSON = {"content-type": "application/json"}  # what the channel declares (415 otherwise)


def notification(
    state: str,
    *,
    incident_id: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """The fixture of `state` (`open` / `closed`), its incident id, start and end replaced
    when given, and its `aiops_endpoint` label pointed at `endpoint`."""
    name = "open_p95_latency.json" if state == "open" else "closed_p95_latency.json"
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    incident = data["incident"]
    if incident_id is not None:
        incident["incident_id"] = incident_id
    if started_at is not None:
        incident["started_at"] = int(started_at.timestamp())
    if ended_at is not None:
        incident["ended_at"] = int(ended_at.timestamp())
    if endpoint is not None:
        incident["policy_user_labels"]["aiops_endpoint"] = endpoint
        incident["resource"]["labels"]["endpoint_id"] = "0"  # maps by the label only
    return data


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def basic(user: str = USER, password: str = TOKEN) -> dict[str, str]:
    """The `Authorization` header of a `webhook_basicauth` channel."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def token_query(token: str = TOKEN) -> dict[str, str]:
    """The query of a `webhook_tokenauth` channel's URL."""
    return {"auth_token": token}
