"""who is posting an alert's message, until when

Revision ID: 0013
Revises: 0012

`alert.posting_by` / `alert.posting_until`: the claim a worker takes (compare-and-set on
`rev`) before it posts an alert's one message, so that a worker that stored a new alert
and died before posting it leaves the post to the next one (a retried job, another
replica, the next notice) once its claim has expired, and that two live workers never
both post it (`commands.incidents.alerts.receive_alert`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable columns: ADD COLUMN, no table rebuild on SQLite
    op.add_column("alert", sa.Column("posting_by", sa.String(length=128), nullable=True))
    op.add_column("alert", sa.Column("posting_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_column("posting_until")
        batch_op.drop_column("posting_by")
