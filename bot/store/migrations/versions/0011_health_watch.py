"""health watch state, and alerts the bot paged for

Revision ID: 0011
Revises: 0010

`health_watch`: one row per endpoint holding the health watch's state between windows
(`commands.incidents.health_watch.judge`'s JSON), moved by compare-and-set on `rev`, so
that of two scheduler processes (two replicas) judging the same window only one applies
it. `alert.paged_at`: when the pager was triggered for an alert (the canary `page`
policy); its acknowledgement and close then follow at the pager. The runtime role gets
DML by 0006's default privileges; neither is append-only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "health_watch",
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rev", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("endpoint"),
    )
    # ADD COLUMN of a nullable column: no table rebuild on SQLite (its audit triggers are
    # on another table, untouched either way)
    op.add_column("alert", sa.Column("paged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_column("paged_at")
    op.drop_table("health_watch")
