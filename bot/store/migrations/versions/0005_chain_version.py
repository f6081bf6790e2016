"""audit_event.chain_version: how each row's hash was computed

Revision ID: 0005
Revises: 0004

Existing rows are version 1 (the server default), and stay so: their hashes were
computed that way. The new release writes version 2 (RFC 8785) explicitly. The default
stays 1 so that a previous release still serving during a rolling deploy, which knows
nothing of the column, keeps writing rows that verify (as version 1).

A plain ADD COLUMN with a constant default: on PostgreSQL it rewrites no row and fires
no UPDATE trigger; on SQLite it is not a table rebuild, so the append-only triggers of
0003 stay in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "audit_event",
        sa.Column("chain_version", sa.Integer(), nullable=False, server_default="1"),
    )


def downgrade() -> None:
    # Dropping it would leave version-2 rows unverifiable; refuse rather than lose that.
    raise RuntimeError("0005 cannot be downgraded: version-2 audit rows need chain_version")
