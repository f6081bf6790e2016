"""canary evidence on the watch, the sandbox clock, the judge's verdict names

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The per-window verdicts became the sequential judge's: a stored `pass` was one window
# within the limits, which is not evidence of "no regression", so it reads as undecided.
_VERDICTS = {"pass": "undecided", "breach": "regression", "not_enough_data": "undecided"}


def upgrade() -> None:
    op.add_column("canary_watch", sa.Column("evidence", sa.JSON(), nullable=True))
    op.add_column(
        "canary_watch", sa.Column("share_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "sandbox_clock",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("offset_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    for old, new in _VERDICTS.items():
        op.execute(
            sa.text(
                "UPDATE canary_watch SET last_verdict = :new WHERE last_verdict = :old"
            ).bindparams(new=new, old=old)
        )
        op.execute(
            sa.text("UPDATE canary_check SET verdict = :new WHERE verdict = :old").bindparams(
                new=new, old=old
            )
        )


def downgrade() -> None:
    for old, new in (
        ("breach", "regression"),
        ("not_enough_data", "undecided"),
        ("pass", "no_regression"),
    ):
        op.execute(
            sa.text(
                "UPDATE canary_watch SET last_verdict = :old WHERE last_verdict = :new"
            ).bindparams(new=new, old=old)
        )
        op.execute(
            sa.text("UPDATE canary_check SET verdict = :old WHERE verdict = :new").bindparams(
                new=new, old=old
            )
        )
    op.drop_table("sandbox_clock")
    with op.batch_alter_table("canary_watch", schema=None) as batch_op:
        batch_op.drop_column("share_since")
        batch_op.drop_column("evidence")
