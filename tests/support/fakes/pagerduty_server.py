"""A local PagerDuty Events API v2 over real HTTP: `POST /v2/enqueue` on a free loopback port.

It answers as PagerDuty documents (github.com/PagerDuty/developer-docs,
docs/events-API-v2/01-Overview.md and 02-Trigger-Events.md):

- 202 `{"status": "success", "message": "Event processed", "dedup_key": …}` for a valid
  event (a trigger without `dedup_key` gets a generated one);
- 400 `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`
  for a body that is not a JSON object, a `routing_key` missing or not 32 characters, an
  unknown `event_action`, a `dedup_key` over 255 characters or missing on acknowledge /
  resolve, and on trigger a missing `payload`, blank `payload.summary` or `payload.source`,
  a summary over 1,024 characters (PagerDuty's limit: refused here so that an adapter that
  does not cut it is caught) or a `payload.severity` outside critical / error / warning /
  info;
- for the next N requests, whatever it was told (`fail`): 429 with or without
  `Retry-After`, or a 5xx.

Alerts are deduplicated as PagerDuty does: events with a `dedup_key` apply to the open
alert of that key *and routing key*; acknowledge / resolve of no open alert are accepted
and dropped; a trigger after a resolve opens a new alert.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class FakeAlert:
    routing_key: str
    dedup_key: str
    status: str  # triggered | acknowledged | resolved
    summary: str
    severity: str
    source: str
    actions: list[str] = field(default_factory=list)  # every event applied, in order


@dataclass
class Request:
    headers: dict[str, str]
    raw: bytes
    status: int  # what the fake answered


@dataclass
class FakePagerDuty:
    requests: list[Request] = field(default_factory=list)  # every request, refused ones too
    events: list[dict[str, Any]] = field(default_factory=list)  # the accepted events
    alerts: list[FakeAlert] = field(default_factory=list)  # oldest first
    _failures: list[tuple[int, str | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL (the adapter appends /v2/enqueue)."""
        assert self._server is not None, "serve() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next `times` requests with `status` (and `Retry-After` when given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def alert(self, dedup_key: str) -> FakeAlert | None:
        """The newest alert of a dedup key."""
        with self._lock:
            found = [a for a in self.alerts if a.dedup_key == dedup_key]
        return found[-1] if found else None

    def serve(self) -> FakePagerDuty:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body, headers = fake._answer(self.path, raw)
                with fake._lock:
                    fake.requests.append(Request(dict(self.headers), raw, status))
                self._reply(status, body, headers)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- the API ------------------------------------------------------------------------

    def _answer(self, path: str, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            if status == 429:
                return (
                    status,
                    {
                        "status": "throttle event",
                        "message": "Requests for this service are arriving too quickly.  Please retry later.",
                    },
                    headers,
                )
            return status, {"status": "error", "message": "injected failure"}, headers
        if path.split("?", 1)[0] != "/v2/enqueue":
            return 404, {"status": "not found", "message": f"no route {path}"}, {}
        try:
            event = json.loads(raw)
        except ValueError:
            return _invalid(["Event object is not valid JSON"])
        if not isinstance(event, dict):
            return _invalid(["Event object must be a JSON object"])
        errors = _validate(event)
        if errors:
            return _invalid(errors)
        with self._lock:
            key = self._apply(event)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": key}, {}

    def _apply(self, event: dict[str, Any]) -> str:
        routing_key = event["routing_key"]
        action = event["event_action"]
        key = event.get("dedup_key") or uuid.uuid4().hex
        self.events.append(event)
        open_alert = next(
            (
                a
                for a in reversed(self.alerts)
                if a.dedup_key == key and a.routing_key == routing_key and a.status != "resolved"
            ),
            None,
        )
        if action == "trigger":
            payload = event["payload"]
            if open_alert is None:
                open_alert = FakeAlert(
                    routing_key,
                    key,
                    "triggered",
                    payload["summary"],
                    payload["severity"],
                    payload["source"],
                )
                self.alerts.append(open_alert)
            open_alert.actions.append(action)  # a repeat trigger keeps the alert's status
        elif open_alert is not None:  # acknowledge / resolve of no open alert: dropped
            open_alert.status = "acknowledged" if action == "acknowledge" else "resolved"
            open_alert.actions.append(action)
        return str(key)


def _invalid(errors: list[str]) -> tuple[int, Any, dict[str, str]]:
    return (
        400,
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        {},
    )


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def _validate(event: dict[str, Any]) -> list[str]:
    errors = []
    routing_key = event.get("routing_key")
    if _blank(routing_key):
        errors.append("'routing_key' is missing or blank")
    elif len(routing_key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is missing or invalid (trigger, acknowledge or resolve)")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and _blank(dedup_key):
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
            return errors
        if _blank(payload.get("summary")):
            errors.append("'payload.summary' is missing or blank")
        elif len(payload["summary"]) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if _blank(payload.get("source")):
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' is invalid (critical, error, warning or info)")
        details = payload.get("custom_details")
        if details is not None and not isinstance(details, dict):
            errors.append("'payload.custom_details' must be an object")
        for link in event.get("links") or []:
            if not isinstance(link, dict) or _blank(link.get("href")):
                errors.append("'links' entries need an 'href'")
    return errors
