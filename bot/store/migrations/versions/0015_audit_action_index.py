"""an index on the audit's action and time

Revision ID: 0015
Revises: 0014

`ix_audit_action_at` (`audit_event.action`, `at`): the scheduler's `pages` job
(`commands/incidents/paging.py: owed_pages`) reads, every 30 s, the page attempts and
severity raises of an environment since a moment (`AuditQuery.actions`); without it each
read scanned every row of the environment since then (tens of thousands a day in prod).
An index only: no table rebuild, the append-only triggers untouched.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_action_at", "audit_event", ["action", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_action_at", table_name="audit_event")
