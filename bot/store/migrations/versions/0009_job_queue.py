"""the durable job queue (procrastinate's schema, PostgreSQL only) and Slack request keys

Revision ID: 0009
Revises: 0007

procrastinate ships its schema as SQL plus per-release migration scripts. The 3.10.0
schema is kept verbatim beside our migrations (`procrastinate_3.10.0.sql`) so this
revision installs the same thing whatever version is installed later; a test compares
it with the installed package's, and a procrastinate upgrade that changes the schema
gets its own revision running procrastinate's migration scripts.
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCRASTINATE_VERSION = "3.10.0"
SCHEMA = Path(__file__).resolve().parent.parent / f"procrastinate_{PROCRASTINATE_VERSION}.sql"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite serves one process: commands run in it (README: guarantees)
    # The raw driver, without parameters: the script holds `%` (RAISE formats) and `$$`
    # bodies that neither SQLAlchemy's text() nor a parameterised execute would leave alone.
    bind.connection.driver_connection.execute(SCHEMA.read_text())  # type: ignore[union-attr]
    op.create_table(
        "slack_request",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_slack_request_received_at", "slack_request", ["received_at"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.drop_index("ix_slack_request_received_at", table_name="slack_request")
    op.drop_table("slack_request")
    for table in (
        "procrastinate_events",
        "procrastinate_periodic_defers",
        "procrastinate_jobs",
        "procrastinate_workers",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP TYPE IF EXISTS procrastinate_job_status CASCADE")
    op.execute("DROP TYPE IF EXISTS procrastinate_job_event_type CASCADE")
