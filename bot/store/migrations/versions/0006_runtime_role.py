"""PostgreSQL: the runtime role, which may only append to the audit tables

Revision ID: 0006
Revises: 0005

Migrations run as the migration owner (the login that owns every table; Terraform's
`aiops_owner`). The bot runs as another login with only what it needs, granted through
the group role `aiops_runtime`:

- `audit_event`, `audit_checkpoint`: SELECT and INSERT only. No UPDATE, DELETE or
  TRUNCATE, so append-only holds against the bot's own credentials, not only through the
  triggers (which an owner can disable);
- every other table: SELECT, INSERT, UPDATE, DELETE (changes, approvals, locks, run keys,
  the scheduler's job store, canary watches, people); `alembic_version`: SELECT only;
- sequences: USAGE and SELECT; `aiops_purge_audit`: nothing (a separate purge role gets it).

Tables later migrations create get the same DML by default privileges; a later migration
that adds an append-only table must revoke UPDATE, DELETE and TRUNCATE on it like here.

`AIOPS_DB_RUNTIME_ROLE` (set on the migration job by Terraform) names the bot's login (the
Cloud SQL IAM user of its service account); it is made a member of `aiops_runtime`. The
role is cluster-wide and the statements are idempotent, so re-running is harmless.
SQLite has no roles: nothing to do there.
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNTIME = "aiops_runtime"
APPEND_ONLY = ("audit_event", "audit_checkpoint")
READ_ONLY = ("alembic_version",)

_CREATE = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'aiops_runtime') THEN
    CREATE ROLE aiops_runtime NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;  -- created at the same moment by another migration run
END
$$
"""


def _quote(bind: sa.engine.Connection, name: str) -> str:
    return str(bind.execute(sa.text("SELECT quote_ident(:n)"), {"n": name}).scalar_one())


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = _quote(bind, bind.execute(sa.text("SELECT current_schema()")).scalar_one())
    op.execute(_CREATE)
    op.execute(f"GRANT USAGE ON SCHEMA {schema} TO {RUNTIME}")
    op.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {RUNTIME}"
    )
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {RUNTIME}")
    for table in APPEND_ONLY:
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.{table} FROM {RUNTIME}")
    for table in READ_ONLY:
        op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.{table} FROM {RUNTIME}")
    op.execute(f"REVOKE ALL ON FUNCTION {schema}.aiops_purge_audit(bigint) FROM {RUNTIME}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema}"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {RUNTIME}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {RUNTIME}"
    )
    login = os.environ.get("AIOPS_DB_RUNTIME_ROLE", "").strip()
    if login:
        op.execute(f"GRANT {RUNTIME} TO {_quote(bind, login)}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = _quote(bind, bind.execute(sa.text("SELECT current_schema()")).scalar_one())
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {RUNTIME}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {RUNTIME}")
    op.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {RUNTIME}")
