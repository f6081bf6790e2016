"""the durable job queue (procrastinate's schema, PostgreSQL only), one job per Slack request

Revision ID: 0009
Revises: 0008

procrastinate ships its schema as SQL plus per-release migration scripts. The 3.10.0
schema is kept verbatim beside our migrations (`procrastinate_3.10.0.sql`) so this
revision installs the same thing whatever version is installed later; a test compares
it with the installed package's, and a procrastinate upgrade that changes the schema
gets its own revision running procrastinate's migration scripts.
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCRASTINATE_VERSION = "3.10.0"
REQUEST_KEY_INDEX = "aiops_jobs_request_key"
SCHEMA = Path(__file__).resolve().parent.parent / f"procrastinate_{PROCRASTINATE_VERSION}.sql"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite serves one process: commands run in it (README: guarantees)
    # The raw driver, without parameters: the script holds `%` (RAISE formats) and `$$`
    # bodies that neither SQLAlchemy's text() nor a parameterised execute would leave alone.
    bind.connection.driver_connection.execute(SCHEMA.read_text())  # type: ignore[union-attr]
    # One job per Slack request: a retry or replay of a request (same key) is refused by
    # the database in the same statement that would enqueue it. An index of ours on the
    # library's table (kept while finished jobs are kept: `RETENTION` in bot/serve/queue.py).
    op.execute(
        f"CREATE UNIQUE INDEX {REQUEST_KEY_INDEX} ON procrastinate_jobs ((args->>'key'))"
        " WHERE task_name = 'aiops.command'"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {REQUEST_KEY_INDEX}")
    for table in (
        "procrastinate_events",
        "procrastinate_periodic_defers",
        "procrastinate_jobs",
        "procrastinate_workers",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP TYPE IF EXISTS procrastinate_job_status CASCADE")
    op.execute("DROP TYPE IF EXISTS procrastinate_job_event_type CASCADE")
