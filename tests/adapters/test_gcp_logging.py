"""Cloud Logging: the real google-cloud-logging client over HTTP to a fake entries:write."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import logging as gcl
from google.cloud.logging.handlers.transports import SyncTransport
from google.cloud.logging_v2.resource import Resource

from bot.gcp_logging import AUDIT_LOG, AuditLogSink, setup_cloud_logging
from commands.ports import AuditEvent
from tests.support.fakes.http_fakes import FakeGoogleHTTP

PROJECT = "lender-aiops-prod"
GLOBAL = Resource(type="global", labels={"project_id": PROJECT})  # no metadata-server probing


@pytest.fixture
def http() -> Iterator[FakeGoogleHTTP]:
    fake = FakeGoogleHTTP().serve()
    yield fake
    fake.stop()


@pytest.fixture
def client(http: FakeGoogleHTTP) -> Any:
    return gcl.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": http.url},
    )


def _in_log(http: FakeGoogleHTTP, log: str) -> list[dict[str, Any]]:
    # The library's first write in a process also sends a diagnostic entry; skip it.
    return [
        e
        for e in http.entries
        if e.get("logName") == f"projects/{PROJECT}/logs/{log}"
        and "logging.googleapis.com/diagnostic" not in e.get("jsonPayload", {})
    ]


def _event(**changes: Any) -> AuditEvent:
    base: dict[str, Any] = {
        "action": "deploy.approved",
        "actor_id": "U0BOB",
        "outcome": "ok",
        "at": datetime(2026, 11, 17, 9, 30, tzinfo=timezone(timedelta(hours=11))),
        "environment": "prod",
        "target": "loan-assessor",
        "parameters": {
            "version": "gemma-3-1b-it@1.2.1",
            "split": {"501": 90, "0": 10},
            "requested_at": datetime(2026, 11, 17, tzinfo=UTC),
        },
        "justification": "canary per CAB-123, contact jane.doe@lender.example",
        "change_id": "CHG-42",
        "request_id": "req-1",
        "id": 42,
        "prev_hash": "a" * 64,
        "hash": "b" * 64,
        "retain_until": datetime(2033, 11, 17, tzinfo=UTC),
    }
    return AuditEvent(**{**base, **changes})


def test_audit_rows_are_structured_entries_in_the_audit_log(
    client: Any, http: FakeGoogleHTTP
) -> None:
    sink = AuditLogSink(client, resource=GLOBAL, labels={"app": "aiops-bot"})
    sink.write(_event())
    sink.write(_event(id=43, hash="c" * 64, outcome="failed", justification=None))

    first, second = _in_log(http, AUDIT_LOG)
    payload = first["jsonPayload"]
    assert payload["action"] == "deploy.approved" and payload["actor_id"] == "U0BOB"
    assert payload["at"] == "2026-11-16T22:30:00+00:00"  # UTC, with its zone
    assert payload["parameters"]["split"] == {"501": 90, "0": 10}
    assert payload["parameters"]["requested_at"].startswith("2026-11-17 00:00:00")
    assert "jane.doe@lender.example" not in str(first)  # PII stays out of the copy too
    assert payload["hash"] == "b" * 64 and payload["prev_hash"] == "a" * 64
    assert first["insertId"] == "b" * 64  # the same row written twice is stored once
    assert first["timestamp"].startswith("2026-11-16T22:30:00")
    assert first["severity"] == "NOTICE" and second["severity"] == "ERROR"
    assert first["labels"] == {
        "app": "aiops-bot",
        "action": "deploy.approved",
        "outcome": "ok",
        "environment": "prod",
        "change_id": "CHG-42",
    }
    assert first["resource"] == {"type": "global", "labels": {"project_id": PROJECT}}


def test_a_failed_write_raises_so_the_caller_can_record_it(
    client: Any, http: FakeGoogleHTTP
) -> None:
    from google.api_core import exceptions

    sink = AuditLogSink(client, resource=GLOBAL)
    sink.write(_event())  # the first write of a process may carry the diagnostic entry
    http.fail("entries:write", 403)
    with pytest.raises(exceptions.Forbidden):
        sink.write(_event(id=44, hash="d" * 64))


def test_app_logs_go_to_cloud_logging_as_structured_entries(
    client: Any, http: FakeGoogleHTTP
) -> None:
    app = logging.getLogger("aiops_test_app")
    app.propagate = False
    try:
        handler = setup_cloud_logging(
            PROJECT,
            client,
            logger=app,
            resource=GLOBAL,
            transport=SyncTransport,
            labels={"env": "prod"},
        )
        again = setup_cloud_logging(
            PROJECT, client, logger=app, resource=GLOBAL, transport=SyncTransport
        )
        assert app.handlers == [again]  # set up twice, attached once
        app.warning("canary breached", extra={"json_fields": {"endpoint": "loan-assessor"}})

        (entry,) = _in_log(http, "aiops-bot")
        assert entry["severity"] in ("WARNING", 400)  # SyncTransport sends the enum number
        assert entry["jsonPayload"]["message"] == "canary breached"
        assert entry["jsonPayload"]["endpoint"] == "loan-assessor"
        assert handler is not again
        # the client's own loggers are never fed back into Cloud Logging
        internal = logging.LogRecord("urllib3.connectionpool", logging.ERROR, "", 0, "x", (), None)
        assert not again.filter(internal)
    finally:
        for h in list(app.handlers):
            app.removeHandler(h)
