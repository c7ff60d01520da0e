"""Breakpoints belong to a tenant, like step mocks (hosted mode isolates tenants).

Existing breakpoints become tenant "default": the tenant of every embedded run.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(64)


def upgrade() -> None:
    with op.batch_alter_table("breakpoints") as batch:
        batch.add_column(sa.Column("tenant", ID, nullable=False, server_default="default"))
    op.create_index("ix_breakpoints_tenant_pipeline_step", "breakpoints",
                    ["tenant", "pipeline", "step"])


def downgrade() -> None:
    op.drop_index("ix_breakpoints_tenant_pipeline_step", table_name="breakpoints")
    with op.batch_alter_table("breakpoints") as batch:
        batch.drop_column("tenant")
