"""Canary analysis tables: a watch per canary (its plan and counters, moved by
compare-and-set on `rev`) and one row per check (unique per watch and sequence number)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.store.tables import _ts


class CanaryWatchRow(SQLModel, table=True):
    __tablename__ = "canary_watch"
    __table_args__ = (Index("ix_canary_watch_endpoint", "endpoint"),)

    id: int | None = Field(default=None, primary_key=True)
    endpoint: str = Field(max_length=128)
    environment: str = Field(max_length=32)
    change_id: str = Field(max_length=32, unique=True)
    canary_id: str = Field(max_length=64)
    stable_id: str = Field(max_length=64)
    canary_version: str = Field(max_length=64)
    stable_version: str = Field(max_length=64)
    state: str = Field(max_length=24, index=True)
    started_at: datetime = _ts(nullable=False)
    next_check_at: datetime = _ts(nullable=False)
    checks: int = 0
    consecutive_breaches: int = 0
    last_verdict: str | None = Field(default=None, max_length=24)
    steps: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    step_index: int = -1
    plan_change_id: str | None = Field(default=None, max_length=32)
    action: str | None = Field(default=None, max_length=16)
    action_key: str | None = Field(default=None, max_length=64)
    action_change_id: str | None = Field(default=None, max_length=32)
    decision_channel: str | None = Field(default=None, max_length=32)
    decision_ts: str | None = Field(default=None, max_length=32)
    note: str | None = None
    evidence: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    share_since: datetime | None = _ts(nullable=True)
    rev: int = 0
    updated_at: datetime | None = _ts(nullable=True)


class CanaryCheckRow(SQLModel, table=True):
    __tablename__ = "canary_check"
    __table_args__ = (UniqueConstraint("watch_id", "seq", name="uq_canary_check_once"),)

    id: int | None = Field(default=None, primary_key=True)
    watch_id: int = Field(foreign_key="canary_watch.id", index=True)
    seq: int
    at: datetime = _ts(nullable=False)
    window_seconds: int
    source: str = Field(max_length=32)
    canary_share: int
    verdict: str = Field(max_length=24)
    consecutive_breaches: int
    figures: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
