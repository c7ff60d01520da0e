"""Several engine processes on one store: who owns what, and who is paused where.

- ``instances``: one row per open store (a server process); PostgreSQL proves an instance
  alive by the session advisory lock it holds, so a crashed process is recognised at once.
- ``owner`` on executions, DLQ entries and backfills: the instance running them, so a
  restart can mark what a dead process left half-done.
- ``paused_executions``: the debugger's pauses, readable by every process; ``command``
  carries a resume sent through another process to the one holding the pause.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = (sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
        .with_variant(sa.Text(), "sqlite"))
ID = sa.String(64)
NAME = sa.String(200)
PATH = sa.String(1000)
SHORT = sa.String(32)
OWNED = ("executions", "dlq_entries", "backfills")


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", ID, nullable=False),
        sa.Column("host", NAME, nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_table(
        "paused_executions",
        sa.Column("execution_id", ID, nullable=False),
        sa.Column("tenant", ID, nullable=False),
        sa.Column("pipeline", NAME, nullable=False),
        sa.Column("step", NAME, nullable=False),
        sa.Column("path", PATH, nullable=False),
        sa.Column("reason", SHORT, nullable=False),
        sa.Column("breakpoint_id", ID, nullable=True),
        sa.Column("paused_at", sa.Float(), nullable=False),
        sa.Column("context", JSON, nullable=True),
        sa.Column("owner", ID, nullable=True),
        sa.Column("command", JSON, nullable=True),
        sa.PrimaryKeyConstraint("execution_id", name="pk_paused_executions"),
    )
    op.create_index("ix_paused_executions_tenant_paused_at", "paused_executions",
                    ["tenant", "paused_at"])
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("owner", ID, nullable=True))


def downgrade() -> None:
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("owner")
    op.drop_index("ix_paused_executions_tenant_paused_at", table_name="paused_executions")
    op.drop_table("paused_executions")
    op.drop_table("instances")
