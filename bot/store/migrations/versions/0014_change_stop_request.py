"""who asked a running change to stop, and why

Revision ID: 0014
Revises: 0013

`change.stop_requested_by` / `change.stop_reason`: a person's `/rollback` over a replace or
blue-green deploy in its soak (a live worker holds it, the new version serves 100 %) asks
that worker to stop and roll back at once instead of being refused until the soak ends
(`commands/changes/request.py: _stop_soak`). Written by one compare-and-set
(`Store.request_stop`) that wins only while the change is running in its soak; the
worker's own move out of the soak is conditional on the column being empty, so exactly
one of the two happens first. Columns of their own, not the plan's map: the worker
rewrites the plan while it runs.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable columns: ADD COLUMN, no table rebuild on SQLite (its append-only triggers
    # are on the audit table, untouched)
    op.add_column("change", sa.Column("stop_requested_by", sa.String(length=32), nullable=True))
    op.add_column("change", sa.Column("stop_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    # Native DROP COLUMN (SQLite ≥ 3.35, PostgreSQL), not a batch rebuild: on SQLite that
    # drops and recreates `change`, which approvals and endpoint locks reference, and with
    # foreign keys on (bot/store/db.py) the drop is refused once any change has an approval.
    op.drop_column("change", "stop_reason")
    op.drop_column("change", "stop_requested_by")
