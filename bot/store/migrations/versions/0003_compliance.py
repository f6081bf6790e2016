"""person table, audit trigger and checkpoints

Revision ID: 0003
Revises: 0002

- `audit_checkpoint`: verification checkpoints and purge anchors (append-only).
- `person`: Slack id → display name, erasable on a privacy request.
- Guards on `audit_event` (and `audit_checkpoint`):
  * PostgreSQL: row triggers refuse every UPDATE and every DELETE, and a statement
    trigger refuses TRUNCATE. The one deliberate way to remove rows is the function
    `aiops_purge_audit(through_id)`: SECURITY DEFINER (it runs as the schema owner, so
    the bot's role needs only INSERT and SELECT on the table plus EXECUTE on the
    function), it sets the transaction-local setting `aiops.audit_purge = on`, which is
    the only case the trigger lets a DELETE through — and then only for a row whose
    `retain_until` is already past by the database's clock. Setting that GUC by hand
    does not help a role without DELETE privilege, and does not make an unexpired row
    deletable for anyone short of dropping the trigger (which needs the owner, and which
    `aiops-bot audit verify` would still expose through the hash chain).
  * SQLite (the embedded default): triggers refuse UPDATE, and DELETE of a row still
    within its retention.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_GUARD = """
CREATE OR REPLACE FUNCTION aiops_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('aiops.audit_purge', true) = 'on' THEN
    IF OLD.retain_until IS NOT NULL AND OLD.retain_until < now() THEN
      RETURN OLD;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'rows past retain_until are removed only by aiops-bot audit purge';
END $$;
"""

_PG_REFUSE = """
CREATE OR REPLACE FUNCTION aiops_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
"""

_PG_PURGE = """
CREATE OR REPLACE FUNCTION aiops_purge_audit(through_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
  removed bigint;
BEGIN
  IF EXISTS (SELECT 1 FROM audit_event WHERE id <= through_id
             AND (retain_until IS NULL OR retain_until >= now())) THEN
    RAISE EXCEPTION 'audit rows up to % are not all past retain_until', through_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM set_config('aiops.audit_purge', 'on', true);
  DELETE FROM audit_event WHERE id <= through_id;
  GET DIAGNOSTICS removed = ROW_COUNT;
  PERFORM set_config('aiops.audit_purge', 'off', true);
  RETURN removed;
END $$;
"""

_SQLITE = [
    """CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    WHEN OLD.retain_until IS NULL OR OLD.retain_until >= strftime('%Y-%m-%d %H:%M:%f', 'now')
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused (within retention)');
    END""",
    """CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only: DELETE refused'); END""",
]


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_checkpoint_kind_id", "audit_checkpoint", ["kind", "id"])
    op.create_table(
        "person",
        sa.Column("slack_id", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("slack_id"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # `policy: rollback runs at once (mitigation first)` and friends are longer than
        # 32 characters: PostgreSQL refused them (SQLite does not enforce the length).
        op.alter_column(
            "change",
            "decided_by",
            type_=sa.String(length=128),
            existing_type=sa.String(length=32),
            existing_nullable=True,
        )
        schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
        op.execute(_PG_GUARD)
        op.execute(_PG_REFUSE)
        op.execute(_PG_PURGE.format(schema=f'"{schema}"'))
        op.execute("REVOKE ALL ON FUNCTION aiops_purge_audit(bigint) FROM PUBLIC")
        op.execute(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event"
            " FOR EACH ROW EXECUTE FUNCTION aiops_audit_guard()"
        )
        op.execute(
            "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event"
            " FOR EACH STATEMENT EXECUTE FUNCTION aiops_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON"
            " audit_checkpoint FOR EACH ROW EXECUTE FUNCTION aiops_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint"
            " FOR EACH STATEMENT EXECUTE FUNCTION aiops_refuse_change()"
        )
    elif bind.dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS aiops_purge_audit(bigint)")
        op.execute("DROP FUNCTION IF EXISTS aiops_audit_guard()")
    elif bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    op.drop_table("person")
    op.drop_index("ix_audit_checkpoint_kind_id", table_name="audit_checkpoint")
    op.drop_table("audit_checkpoint")  # its triggers go with it
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS aiops_refuse_change()")
