"""the alert webhook's jobs: one job per Cloud Monitoring notice (PostgreSQL only)

Revision ID: 0012
Revises: 0011

`POST /alerts/cloud-monitoring` stores each notice as a job of the durable queue (task
`aiops.alert`, bot/serve/queue.py) before it answers 2xx. Its key, `alert:<notice key>:
<state>`, is unique among those jobs, as 0009's index makes a Slack request's key unique
among command jobs: a channel's retry of the same notice, or the copy another replica got,
is refused by the database in the statement that would enqueue it, answered 200 and not
run again. Kept while finished jobs are kept (`RETENTION`, a day). SQLite has no queue.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALERT_KEY_INDEX = "aiops_jobs_alert_key"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE UNIQUE INDEX {ALERT_KEY_INDEX} ON procrastinate_jobs ((args->>'key'))"
        " WHERE task_name = 'aiops.alert'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {ALERT_KEY_INDEX}")
