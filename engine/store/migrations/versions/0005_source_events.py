"""Events taken in by sources: the dedup record of at-least-once delivery.

``source_events`` holds one row per (tenant, source, CloudEvents id), written in the same
transaction as the execution it starts or the DLQ entry it became: a redelivered event
finds it and starts nothing.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = (sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
        .with_variant(sa.Text(), "sqlite"))
ID = sa.String(64)
NAME = sa.String(200)
SHORT = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "source_events",
        sa.Column("tenant", ID, nullable=False),
        sa.Column("source", NAME, nullable=False),
        sa.Column("event_id", NAME, nullable=False),
        sa.Column("type", NAME, nullable=True),
        sa.Column("pipeline", NAME, nullable=True),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("execution_id", ID, nullable=True),
        sa.Column("dlq_entry", ID, nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("received", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "source", "event_id", name="pk_source_events"),
    )
    op.create_index("ix_source_events_tenant_source_received", "source_events",
                    ["tenant", "source", "received"])
    op.create_index("ix_source_events_execution_id", "source_events", ["execution_id"])


def downgrade() -> None:
    op.drop_index("ix_source_events_execution_id", table_name="source_events")
    op.drop_index("ix_source_events_tenant_source_received", table_name="source_events")
    op.drop_table("source_events")
