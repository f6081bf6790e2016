"""Tables for compliance: verification checkpoints / purge anchors, and people.

Kept apart from `tables.py` so the audit row itself stays exactly as first defined;
`migrations/versions/0003_compliance.py` creates these tables (and the guards around
`audit_event`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field, SQLModel


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class AuditCheckpointRow(SQLModel, table=True):
    """Append-only marks on the audit chain.

    `kind = "verified"`: `aiops-bot audit verify` walked the chain up to `last_id`, whose
    hash was `last_hash`; the next verify starts there. `kind = "purged"`: rows up to and
    including `last_id` were removed past their retention; `last_hash` is the hash of the
    last removed row, which the first remaining row names as its `prev_hash` (the chain's
    new anchor). `audit_id` is the audit row that recorded the purge.
    """

    __tablename__ = "audit_checkpoint"
    __table_args__ = (Index("ix_audit_checkpoint_kind_id", "kind", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    last_id: int
    last_hash: str = Field(max_length=64)
    rows: int = 0
    at: datetime = _ts(nullable=False)
    audit_id: int | None = None


class PersonRow(SQLModel, table=True):
    """Slack id → display name. Audit rows carry only the Slack id, so erasing a name here
    (a privacy request) leaves the audit chain intact."""

    __tablename__ = "person"

    slack_id: str = Field(primary_key=True, max_length=32)
    display_name: str | None = Field(default=None, max_length=256)
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)
    erased_at: datetime | None = _ts(nullable=True)
