"""SQLModel tables. Column names are the bot's vocabulary: change, approval, audit event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class ChangeRow(SQLModel, table=True):
    __tablename__ = "change"
    __table_args__ = (Index("ix_change_endpoint_state", "endpoint", "state"),)

    seq: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    endpoint: str = Field(max_length=128)
    environment: str = Field(max_length=32)
    requester_id: str = Field(max_length=32)
    state: str = Field(max_length=24, index=True)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=True)
    reason: str | None = None
    version: str | None = Field(default=None, max_length=128)
    canary_percent: int | None = None
    split_before: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    split_after: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    restore_split: dict[str, int] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    expires_at: datetime | None = _ts(nullable=True)
    operation: str | None = None
    new_deployed_model_id: str | None = None
    decided_by: str | None = Field(default=None, max_length=128)  # a Slack id or `policy: …`
    decided_at: datetime | None = _ts(nullable=True)
    error: str | None = None
    channel: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    extra: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The lease on the change's background work (commands/changes/execute.py): written only
    # by the store's lease methods and cleared when the change ends.
    lease_owner: str | None = Field(default=None, max_length=96)
    lease_heartbeat_at: datetime | None = _ts(nullable=True)
    lease_expires_at: datetime | None = _ts(nullable=True)
    # A person's request that the running change stop and roll back (migration 0014):
    # written only by `SqlStore.request_stop`.
    stop_requested_by: str | None = Field(default=None, max_length=32)
    stop_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class EndpointLockRow(SQLModel, table=True):
    """One open change per endpoint: the primary key is the lock."""

    __tablename__ = "endpoint_lock"

    endpoint: str = Field(primary_key=True, max_length=128)
    change_seq: int = Field(foreign_key="change.seq")
    taken_at: datetime = _ts(nullable=False)


class ApprovalRow(SQLModel, table=True):
    __tablename__ = "approval"
    __table_args__ = (UniqueConstraint("change_seq", "approver_id", name="uq_approval_once"),)

    id: int | None = Field(default=None, primary_key=True)
    change_seq: int = Field(foreign_key="change.seq", index=True)
    approver_id: str = Field(max_length=32)
    decision: str = Field(max_length=16)
    at: datetime = _ts(nullable=False)
    reason: str | None = None
    plan_hash: str | None = Field(default=None, max_length=64)


class AuditRow(SQLModel, table=True):
    """Append-only; each row carries the hash of the previous row (a chain)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_target_at", "target", "at"),
        Index("ix_audit_change", "change_id"),
        Index("ix_audit_actor_at", "actor_id", "at"),
        Index("ix_audit_action_at", "action", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(nullable=False)
    actor_id: str = Field(max_length=64)
    action: str = Field(max_length=64)
    environment: str | None = Field(default=None, max_length=32)
    target: str | None = Field(default=None, max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    justification: str | None = None
    outcome: str = Field(sa_column=Column(Text, nullable=False))
    change_id: str | None = Field(default=None, max_length=32)
    request_id: str | None = Field(default=None, max_length=64)
    retain_until: datetime | None = _ts(nullable=True)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
    # How `hash` was computed (bot/store/audit_canon.py). Rows written before versions
    # existed are 1 (the column's default, also for a previous release still writing).
    chain_version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
