"""the lease on a change's background work: who runs it, their heartbeat, its expiry

Revision ID: 0008
Revises: 0007

Three nullable columns on `change`. A process that runs (or takes over) a change's work
takes the lease by compare-and-set, renews it while it works and clears it when the
change ends; a RUNNING change whose lease is missing or expired has no live worker and
is taken over (commands/changes/execute.py). Rows written before this revision have no
lease: a change left RUNNING then is taken over as soon as a process of this release
sweeps, as a restart resumed it before.

Plain ADD COLUMNs, nullable, no default: nothing is rewritten on PostgreSQL, and on
SQLite it is not a table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("change", sa.Column("lease_owner", sa.String(length=96), nullable=True))
    op.add_column(
        "change", sa.Column("lease_heartbeat_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "change", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    # Native DROP COLUMN (SQLite ≥ 3.35, PostgreSQL), not a batch rebuild: on SQLite that
    # drops and recreates `change`, which approvals and endpoint locks reference, and with
    # foreign keys on (bot/store/db.py) the drop is refused once any change has an approval.
    op.drop_column("change", "lease_expires_at")
    op.drop_column("change", "lease_heartbeat_at")
    op.drop_column("change", "lease_owner")
