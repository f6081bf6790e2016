"""The store port: changes, approvals and audit events. `bot/store/` implements it on
SQLModel (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from commands.model import Change, ChangeState


class EndpointLocked(Exception):
    def __init__(self, endpoint: str, holder: Change) -> None:
        super().__init__(f"{endpoint} is locked by {holder.id}")
        self.endpoint = endpoint
        self.holder = holder


@dataclass(frozen=True)
class ApprovalRecord:
    change_id: str
    approver_id: str
    decision: str  # approve | reject
    at: datetime
    reason: str | None = None
    plan_hash: str | None = None


@dataclass
class AuditEvent:
    """One append-only record of something that happened."""

    action: str
    actor_id: str
    outcome: str
    at: datetime
    environment: str | None = None
    target: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    justification: str | None = None
    change_id: str | None = None
    request_id: str | None = None
    id: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    retain_until: datetime | None = None
    chain_version: int | None = None  # how `hash` was computed; set by the store


@dataclass(frozen=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    endpoint: str | None = None
    environment: str | None = None
    actor_id: str | None = None
    change_id: str | None = None
    limit: int | None = None


class Store(Protocol):
    def create_change(self, change: Change) -> Change:
        """Insert a change and take its endpoint's lock; assigns `change.id`.

        Raises `EndpointLocked` naming the open change that holds the endpoint.
        """
        ...

    def get_change(self, change_id: str) -> Change | None: ...

    def open_change(self, endpoint: str) -> Change | None: ...

    def transition(
        self, change_id: str, old: ChangeState, new: ChangeState, **fields: Any
    ) -> Change | None:
        """Compare-and-set `old → new` (and `fields`); None when the change was not in `old`.

        A terminal state releases the endpoint's lock in the same transaction.
        """
        ...

    def update_change(self, change_id: str, **fields: Any) -> None: ...

    def list_changes(
        self,
        *,
        states: Sequence[ChangeState] | None = None,
        endpoint: str | None = None,
        limit: int = 20,
    ) -> list[Change]: ...

    def last_succeeded(
        self, endpoint: str, kinds: Sequence[str] | None = None
    ) -> Change | None: ...

    def add_approval(self, record: ApprovalRecord) -> bool:
        """False when this person already decided on this change."""
        ...

    def approvals(self, change_id: str) -> list[ApprovalRecord]: ...

    def append_audit(self, event: AuditEvent) -> AuditEvent: ...

    def audit(self, query: AuditQuery) -> list[AuditEvent]: ...
