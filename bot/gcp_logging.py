"""Cloud Logging for the bot when it runs in Google Cloud.

- `setup_cloud_logging` sends the bot's Python logs to Cloud Logging as structured
  entries (severity, labels, `json_fields` from `extra=`, trace when set) through
  google-cloud-logging's `CloudLoggingHandler`. Locally the bot logs JSON lines on stderr.
- `AuditLogSink` writes every audit row, as a structured entry, to the dedicated log
  `aiops-audit`, which the Terraform log sink copies into a locked 7-year bucket; and the
  head of every successful verification (`write_checkpoint`), so that rows cut from the
  table's end and re-appended are caught by comparing the two (`checkpoints` reads them
  back; `aiops-bot audit verify --against-log`).

google-cloud-logging is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from commands.ports import AuditEvent
from commands.redaction import redact, redact_value

AUDIT_LOG = "aiops-audit"
APP_LOG = "aiops-bot"

# The client's own loggers: their records must not be fed back into Cloud Logging, or one
# failed write would log an error that triggers another write.
_INTERNAL = ("google.cloud", "google.auth", "google.api_core", "urllib3", "requests", "grpc")

CHECKPOINT = "audit_checkpoint"  # jsonPayload.type of a verification checkpoint entry
# How far back `checkpoints` looks: the audit retention. (Without a timestamp term the
# library reads only the last 24 hours.)
_LOOKBACK = timedelta(days=7 * 365 + 2)

# Outcomes that deserve more than NOTICE in the audit log.
_SEVERITY = {"failed": "ERROR", "error": "ERROR", "denied": "WARNING", "rejected": "NOTICE"}


class _NotInternal(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_INTERNAL)


def setup_cloud_logging(
    project: str,
    client: Any = None,
    *,
    log_name: str = APP_LOG,
    level: int = logging.INFO,
    labels: Mapping[str, str] | None = None,
    resource: Any = None,
    transport: Any = None,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """Attach a Cloud Logging handler to `logger` (the root logger by default).

    `resource` defaults to what the library detects (App Engine, Cloud Run, GCE…);
    `transport` defaults to the library's background-thread transport (tests pass
    `SyncTransport`). Calling it again replaces the handler instead of adding a second.
    """
    from google.cloud.logging import Client
    from google.cloud.logging.handlers import CloudLoggingHandler

    client = client if client is not None else Client(project=project)  # type: ignore[no-untyped-call]
    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    if resource is not None:
        options["resource"] = resource
    handler: logging.Handler = CloudLoggingHandler(
        client, name=log_name, labels=dict(labels or {}), **options
    )
    handler.addFilter(_NotInternal())
    handler.set_name(f"cloud-logging:{log_name}")
    target = logger or logging.getLogger()
    for old in [h for h in target.handlers if h.get_name() == handler.get_name()]:
        target.removeHandler(old)
        old.close()
    target.addHandler(handler)
    target.setLevel(level)
    return handler


def _jsonable(value: Any) -> Any:
    """Parameters as JSON (datetimes, decimals, enums as text), PII masked."""
    return redact_value(json.loads(json.dumps(value, default=str)))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class LoggedCheckpoint:
    """A verification checkpoint as the `aiops-audit` log holds it."""

    head_id: int
    head_hash: str
    at: str | None = None
    rows: int | None = None
    full: bool | None = None


class AuditLogSink:
    """Writes audit events to the Cloud Logging log `aiops-audit`, one entry per row.

    A write that fails raises the library's exception: the caller decides (the audit
    table is the record; this is the second copy). The row's hash is the entry's
    insert id, so writing the same row twice stores it once.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        project: str | None = None,
        log_name: str = AUDIT_LOG,
        resource: Any = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if client is None:
            from google.cloud.logging import Client

            client = Client(project=project)  # type: ignore[no-untyped-call]
        self.client = client
        self.labels = dict(labels or {})
        self.logger = client.logger(log_name, resource=resource)

    @staticmethod
    def entry(event: AuditEvent) -> dict[str, Any]:
        """The structured payload of one audit row."""
        return {
            "id": event.id,
            "action": event.action,
            "actor_id": event.actor_id,
            "outcome": event.outcome,
            "at": _utc(event.at).isoformat(),
            "environment": event.environment,
            "target": redact(event.target) if event.target else event.target,
            "parameters": _jsonable(event.parameters),
            "justification": redact(event.justification) if event.justification else None,
            "change_id": event.change_id,
            "request_id": event.request_id,
            "prev_hash": event.prev_hash,
            "hash": event.hash,
            "retain_until": _utc(event.retain_until).isoformat() if event.retain_until else None,
        }

    def write(self, event: AuditEvent) -> None:
        labels = {
            **self.labels,
            "action": event.action,
            "outcome": event.outcome,
            **({"environment": event.environment} if event.environment else {}),
            **({"change_id": event.change_id} if event.change_id else {}),
        }
        insert_id = event.hash or (f"audit-{event.id}" if event.id is not None else None)
        self.logger.log_struct(
            self.entry(event),
            severity=_SEVERITY.get(event.outcome.lower(), "NOTICE"),
            labels=labels,  # per-call labels replace the logger's, hence merged here
            timestamp=_utc(event.at),
            insert_id=insert_id,
        )

    def write_checkpoint(
        self, *, head_id: int, head_hash: str, rows: int, at: datetime, full: bool
    ) -> None:
        """The head of a chain that was just verified: the outside witness of the table's
        newest rows. Same head written twice is stored once (the insert id)."""
        self.logger.log_struct(
            {
                "type": CHECKPOINT,
                "head_id": head_id,
                "head_hash": head_hash,
                "rows_checked": rows,
                "full": full,
                "at": _utc(at).isoformat(),
            },
            severity="NOTICE",
            labels={**self.labels, "action": CHECKPOINT},
            timestamp=_utc(at),
            insert_id=f"checkpoint-{head_id}-{head_hash}",
        )

    def checkpoints(
        self, *, limit: int = 50, resource: str | None = None, now: datetime | None = None
    ) -> list[LoggedCheckpoint]:
        """The newest `limit` checkpoints in the log, newest first. `resource`: where to
        read (default `projects/<the client's project>`; a log view
        `projects/P/locations/L/buckets/B/views/V` for a bucket of its own)."""
        from google.cloud.logging import DESCENDING

        project = self.client.project
        since = (now or datetime.now(UTC)) - _LOOKBACK
        query = (
            f'logName="projects/{project}/logs/{self.logger.name}"'
            f' AND jsonPayload.type="{CHECKPOINT}"'
            f' AND timestamp>="{since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}"'
        )
        found: list[LoggedCheckpoint] = []
        for entry in self.client.list_entries(
            resource_names=[resource or f"projects/{project}"],
            filter_=query,
            order_by=DESCENDING,
            max_results=limit,
            page_size=min(limit, 1000),
        ):
            payload = entry.payload if isinstance(entry.payload, dict) else {}
            try:
                found.append(
                    LoggedCheckpoint(
                        head_id=int(payload["head_id"]),
                        head_hash=str(payload["head_hash"]),
                        at=payload.get("at"),
                        rows=payload.get("rows_checked"),
                        full=payload.get("full"),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue  # not one of ours
        return found
