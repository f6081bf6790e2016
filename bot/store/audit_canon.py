"""The bytes an audit row's hash covers, per chain version, so that anyone can recompute
every hash from an export in any language (docs/audit-verification.md is the recipe).

- Version 1 (rows written before version 2 existed): SHA-256 over the predecessor's hash
  followed by Python's `json.dumps(body, sort_keys=True, separators=(",", ":"))` of the
  row's fields. Reproducible, but defined by one library's output.
- Version 2: SHA-256 over the RFC 8785 (JSON Canonicalization Scheme) serialisation of
  one JSON object holding the row's fields, its `chain_version` and its `prev_hash`.
  JCS fixes key order, string escaping and number formatting, with implementations in
  many languages. Timestamps are the strings an export prints: UTC,
  `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.

Every row records its version; a row keeps verifying under the version it was written
with, whatever becomes current later. `normalise` makes a row's values representable in
JCS (I-JSON: integers within ±(2^53 − 1), finite numbers, valid Unicode, text keys)
before it is stored and hashed, so the stored row is exactly what was hashed.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

import rfc8785

from commands.ports import AuditEvent

CURRENT = 2
VERSIONS = (1, 2)
MAX_SAFE = 2**53 - 1


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stamp(value: datetime | None) -> str | None:
    """A timestamp as version 2 hashes it (and as an export prints it)."""
    return _utc(value).isoformat(timespec="microseconds") if value is not None else None


def _text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not Unicode text
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE <= value <= MAX_SAFE else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {_text(str(k)): _value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_value(v) for v in value]
    return _text(str(value))


def normalise(event: AuditEvent) -> None:
    """Make the event's values what JCS can encode, in place, before it is hashed and
    stored: parameters through JSON (as the database stores them), out-of-range integers
    and non-finite numbers as text, text as valid Unicode."""
    params = json.loads(json.dumps(event.parameters, default=str))
    event.parameters = _value(params) if isinstance(params, dict) else {"value": _value(params)}
    for name in ("actor_id", "action", "outcome", "environment", "target"):
        current = getattr(event, name)
        if isinstance(current, str):
            setattr(event, name, _text(current))
    for name in ("justification", "change_id", "request_id"):
        current = getattr(event, name)
        if isinstance(current, str):
            setattr(event, name, _text(current))


def canonical_v1(event: AuditEvent) -> str:
    """Version 1's text (the predecessor's hash goes in front of it)."""
    body = {
        "at": _utc(event.at).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "action": event.action,
        "environment": event.environment,
        "target": event.target,
        "parameters": event.parameters,
        "justification": event.justification,
        "outcome": event.outcome,
        "change_id": event.change_id,
        "request_id": event.request_id,
        "retain_until": (
            _utc(event.retain_until).isoformat(timespec="seconds") if event.retain_until else None
        ),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


def body_v2(prev_hash: str, event: AuditEvent) -> dict[str, Any]:
    """Version 2's object: exactly these thirteen members."""
    return {
        "chain_version": 2,
        "prev_hash": prev_hash,
        "at": stamp(event.at),
        "actor_id": event.actor_id,
        "action": event.action,
        "environment": event.environment,
        "target": event.target,
        "parameters": event.parameters,
        "justification": event.justification,
        "outcome": event.outcome,
        "change_id": event.change_id,
        "request_id": event.request_id,
        "retain_until": stamp(event.retain_until),
    }


def chain_hash(prev_hash: str, event: AuditEvent, version: int | None = None) -> str:
    """The hash of `event` after a row whose hash is `prev_hash`, under `version` (default:
    the event's own `chain_version`, else the current one). A row that cannot be
    serialised under its version gets a value no stored hash equals."""
    version = version or event.chain_version or CURRENT
    if version == 1:
        return hashlib.sha256((prev_hash + canonical_v1(event)).encode()).hexdigest()
    if version == 2:
        try:
            data = rfc8785.dumps(body_v2(prev_hash, event))
        except rfc8785.CanonicalizationError:
            return "unserialisable"
        return hashlib.sha256(data).hexdigest()
    return f"unknown chain version {version}"
