"""The sandbox platform's state: kept in the bot's database so a restart keeps it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from bot.store.tables import _ts


class SandboxEndpointRow(SQLModel, table=True):
    __tablename__ = "sandbox_endpoint"

    slug: str = Field(primary_key=True, max_length=128)
    traffic: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    next_id: int = 1


class SandboxDeployedModelRow(SQLModel, table=True):
    __tablename__ = "sandbox_deployed_model"

    id: str = Field(primary_key=True, max_length=32)
    endpoint: str = Field(foreign_key="sandbox_endpoint.slug", index=True)
    model: str = Field(max_length=128)
    version: str = Field(max_length=64)
    replicas: int = 1
    deployed_at: datetime = _ts(nullable=False)


class SandboxOperationRow(SQLModel, table=True):
    __tablename__ = "sandbox_operation"

    name: str = Field(primary_key=True, max_length=128)
    kind: str = Field(max_length=16)  # deploy | undeploy | mutate (a scale)
    endpoint: str = Field(max_length=128)
    started_at: datetime = _ts(nullable=False)
    finishes_at: datetime = _ts(nullable=False)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    done: bool = False
    error: str | None = None
    deployed_model_id: str | None = None


class SandboxClockRow(SQLModel, table=True):
    """How far the console has moved the sandbox's clock ahead of the wall clock (seconds),
    so a console session started later continues where the last one left time."""

    __tablename__ = "sandbox_clock"

    name: str = Field(primary_key=True, max_length=32)
    offset_seconds: float = 0.0
