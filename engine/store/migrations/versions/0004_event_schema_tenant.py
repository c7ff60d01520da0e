"""Registered event schemas belong to a tenant, like everything else a key can write.

A tenant lists, reads, versions and validates against its own schemas only; two tenants
may each register ``order.created`` and number its versions independently. Existing
schemas become tenant "default": the tenant of every embedded run.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(64)


def upgrade() -> None:
    with op.batch_alter_table("event_schemas") as batch:
        batch.add_column(sa.Column("tenant", ID, nullable=False, server_default="default"))
        batch.drop_constraint("uq_event_schemas_type_version", type_="unique")
        batch.create_unique_constraint("uq_event_schemas_tenant_type_version",
                                       ["tenant", "type", "version"])


def downgrade() -> None:
    with op.batch_alter_table("event_schemas") as batch:
        batch.drop_constraint("uq_event_schemas_tenant_type_version", type_="unique")
        batch.create_unique_constraint("uq_event_schemas_type_version", ["type", "version"])
        batch.drop_column("tenant")
