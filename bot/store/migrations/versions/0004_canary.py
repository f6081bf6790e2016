"""canary analysis checks and step plans

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canary_watch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("environment", sa.String(length=32), nullable=False),
        sa.Column("change_id", sa.String(length=32), nullable=False),
        sa.Column("canary_id", sa.String(length=64), nullable=False),
        sa.Column("stable_id", sa.String(length=64), nullable=False),
        sa.Column("canary_version", sa.String(length=64), nullable=False),
        sa.Column("stable_version", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("consecutive_breaches", sa.Integer(), nullable=False),
        sa.Column("last_verdict", sa.String(length=24), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("plan_change_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("action_key", sa.String(length=64), nullable=True),
        sa.Column("action_change_id", sa.String(length=32), nullable=True),
        sa.Column("decision_channel", sa.String(length=32), nullable=True),
        sa.Column("decision_ts", sa.String(length=32), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("change_id"),
    )
    with op.batch_alter_table("canary_watch", schema=None) as batch_op:
        batch_op.create_index("ix_canary_watch_endpoint", ["endpoint"], unique=False)
        batch_op.create_index(batch_op.f("ix_canary_watch_state"), ["state"], unique=False)

    op.create_table(
        "canary_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("canary_share", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=24), nullable=False),
        sa.Column("consecutive_breaches", sa.Integer(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["watch_id"], ["canary_watch.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("watch_id", "seq", name="uq_canary_check_once"),
    )
    with op.batch_alter_table("canary_check", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_canary_check_watch_id"), ["watch_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("canary_check", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_canary_check_watch_id"))
    op.drop_table("canary_check")
    with op.batch_alter_table("canary_watch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_canary_watch_state"))
        batch_op.drop_index("ix_canary_watch_endpoint")
    op.drop_table("canary_watch")
