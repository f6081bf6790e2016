"""The scheduler's tables: run keys (who runs a scheduled job, once) and APScheduler's
persistent job store, created by migration 0002."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Float, Index, LargeBinary, Table, Unicode
from sqlmodel import Field, SQLModel

from bot.store.tables import _ts

APSCHEDULER_TABLE = "apscheduler_jobs"


class SchedulerRunRow(SQLModel, table=True):
    """One row per (job, scheduled time): whoever inserts it runs the job; the primary key
    makes a second insert fail, on every replica, so a digest is posted once."""

    __tablename__ = "scheduler_run"
    __table_args__ = (Index("ix_scheduler_run_claimed_at", "claimed_at"),)

    job: str = Field(primary_key=True, max_length=128)
    scheduled_for: datetime = Field(
        sa_column=Column(DateTime(timezone=True), primary_key=True, nullable=False)
    )
    claimed_by: str = Field(max_length=64)
    claimed_at: datetime = _ts(nullable=False)
    late: bool = False
    outcome: str | None = Field(default=None, max_length=300)
    finished_at: datetime | None = _ts(nullable=True)


# APScheduler's SQLAlchemyJobStore table, declared here so the schema (and Alembic's view
# of it) is complete; the job store builds the same Table in its own MetaData.
apscheduler_jobs = Table(
    APSCHEDULER_TABLE,
    SQLModel.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
