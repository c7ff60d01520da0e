"""The initial schema: every table of events-and-store.md section 1.

Written out in full (not derived from the models) so that later model changes never
rewrite history; a test checks that models and migrations agree.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# JSONB on PostgreSQL; TEXT on SQLite (a column declared JSON would get NUMERIC affinity).
JSON = (sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
        .with_variant(sa.Text(), "sqlite"))
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(64)
NAME = sa.String(200)
PATH = sa.String(1000)
SHORT = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("id", ID, nullable=False),
        sa.Column("pipeline", NAME, nullable=False),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("trigger_type", SHORT, nullable=False),
        sa.Column("trigger_payload", JSON, nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("definition_hash", ID, nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("replay_of", ID, nullable=True),
        sa.Column("tenant", ID, nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
    )
    op.create_index("ix_executions_started", "executions", ["started_at", "id"])
    op.create_index("ix_executions_pipeline_started", "executions",
                    ["pipeline", "started_at", "id"])
    op.create_index("ix_executions_status_started", "executions", ["status", "started_at", "id"])
    op.create_index("ix_executions_tenant_started", "executions", ["tenant", "started_at", "id"])
    for column in ("parent_id", "replay_of"):  # partial: most executions have neither
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_executions_{column.removesuffix('_id')}", "executions", [column],
                        sqlite_where=where, postgresql_where=where)

    op.create_table(
        "execution_events",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("execution_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_execution_events"),
        sa.UniqueConstraint("execution_id", "seq", name="uq_execution_events_execution_id_seq"),
    )

    op.create_table(
        "step_runs",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("execution_id", ID, nullable=False),
        sa.Column("path", PATH, nullable=False),
        sa.Column("step", NAME, nullable=False),
        sa.Column("type", NAME, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output_size", sa.Integer(), nullable=False),
        sa.Column("flags", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_step_runs"),
        sa.UniqueConstraint("execution_id", "seq", name="uq_step_runs_execution_id_seq"),
    )

    op.create_table(
        "definitions",
        sa.Column("hash", ID, nullable=False),
        sa.Column("sources", JSON, nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_definitions"),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("pipeline", NAME, nullable=False),
        sa.Column("step", PATH, nullable=False),
        sa.Column("key", PATH, nullable=False),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("owner", ID, nullable=True),
        sa.Column("output", JSON, nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "step", "key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires"])

    op.create_table(
        "dlq_entries",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant", ID, nullable=False),
        sa.Column("pipeline", NAME, nullable=False),
        sa.Column("step", PATH, nullable=True),
        sa.Column("execution_id", ID, nullable=True),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("last_retry_id", ID, nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.Column("resolved", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dlq_entries"),
    )
    op.create_index("ix_dlq_entries_tenant_status_created", "dlq_entries",
                    ["tenant", "status", "created"])
    op.create_index("ix_dlq_entries_pipeline", "dlq_entries", ["pipeline"])

    op.create_table(
        "step_mocks",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant", ID, nullable=False),
        sa.Column("pipeline", NAME, nullable=False),
        sa.Column("step", PATH, nullable=False),
        sa.Column("mode", SHORT, nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", JSON, nullable=True),
        sa.Column("delay_ms", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("hit_count", sa.Integer(), nullable=False),
        sa.Column("source_execution_id", ID, nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_step_mocks"),
    )
    op.create_index("ix_step_mocks_tenant_pipeline_step", "step_mocks",
                    ["tenant", "pipeline", "step"])

    op.create_table(
        "breakpoints",
        sa.Column("id", ID, nullable=False),
        sa.Column("pipeline", NAME, nullable=False),
        sa.Column("step", PATH, nullable=False),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("hit_count", sa.Integer(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_breakpoints"),
    )
    op.create_index("ix_breakpoints_pipeline_step", "breakpoints", ["pipeline", "step"])

    op.create_table(
        "api_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("prefix", SHORT, nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("tenant", ID, nullable=False),
        sa.Column("scopes", JSON, nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=True),
        sa.Column("last_used", sa.Float(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_sha256", name="uq_api_keys_key_sha256"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"])

    op.create_table(
        "event_schemas",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("type", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema", JSON, nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_schemas"),
        sa.UniqueConstraint("type", "version", name="uq_event_schemas_type_version"),
    )

    op.create_table(
        "backfills",
        sa.Column("id", ID, nullable=False),
        sa.Column("tenant", ID, nullable=False),
        sa.Column("pipeline", NAME, nullable=False),
        sa.Column("source", JSON, nullable=False),
        sa.Column("range_start", sa.Float(), nullable=True),
        sa.Column("range_end", sa.Float(), nullable=True),
        sa.Column("status", SHORT, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.Column("ended", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backfills"),
    )
    op.create_index("ix_backfills_tenant_created", "backfills", ["tenant", "created"])


def downgrade() -> None:
    for table in ("backfills", "event_schemas", "api_keys", "breakpoints", "step_mocks",
                  "dlq_entries", "idempotency_keys", "definitions", "step_runs",
                  "execution_events", "executions"):
        op.drop_table(table)
