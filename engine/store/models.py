"""The store's tables as SQLAlchemy 2 declarative models (SQLite and PostgreSQL).

Times are float unix seconds everywhere. JSON columns are ``JSON`` on SQLite (stored as
text) and ``JSONB`` on PostgreSQL; Python ``None`` is stored as SQL NULL. The hot tables
(``execution_events``, ``step_runs``) carry no foreign keys on purpose: the recorder
appends them in large batches and must not pay a parent lookup per row, nor depend on
the order in which the executor hands rows over.

The schema itself is created by the Alembic migrations in ``migrations/``; these models
must match them (a test compares the two).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.store.codec import dumps, loads


class JsonText(TypeDecorator[Any]):
    """JSON kept as TEXT on SQLite.

    A column declared ``JSON`` gets NUMERIC affinity in SQLite, which turns the text
    ``100000000000000000000000000000`` into a float; TEXT keeps exactly what was written.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else dumps(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else loads(value)


# JSON on both backends (JSONB on PostgreSQL); None is SQL NULL, not the JSON literal null.
JsonType = (JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
            .with_variant(JsonText(), "sqlite"))
# An auto-increment 64-bit key on PostgreSQL that is still SQLite's rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Deterministic constraint names so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

ID = 64  # execution ids, hashes, uuids
NAME = 200  # pipeline and step names, paths are longer
SHORT = 32  # statuses, types, modes


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Execution(Base):
    """One summary row per execution; lists and filters read this table."""

    __tablename__ = "executions"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(SHORT))
    trigger_type: Mapped[str] = mapped_column(String(SHORT), default="manual")
    trigger_payload: Mapped[Any | None] = mapped_column(JsonType)
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    output: Mapped[Any | None] = mapped_column(JsonType)
    error: Mapped[Any | None] = mapped_column(JsonType)
    definition_hash: Mapped[str] = mapped_column(String(ID), default="")
    parent_id: Mapped[str | None] = mapped_column(String(ID))
    replay_of: Mapped[str | None] = mapped_column(String(ID))
    tenant: Mapped[str] = mapped_column(String(ID), default="default")
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(ID))  # the instance running it

    __table_args__ = (
        # Newest first, keyset-paginated on (started_at, id); one index per common filter.
        Index("ix_executions_started", "started_at", "id"),
        Index("ix_executions_pipeline_started", "pipeline", "started_at", "id"),
        Index("ix_executions_status_started", "status", "started_at", "id"),
        Index("ix_executions_tenant_started", "tenant", "started_at", "id"),
        # Partial: most executions have neither, and their upserts should not pay for it.
        Index("ix_executions_parent", "parent_id", sqlite_where=text("parent_id IS NOT NULL"),
              postgresql_where=text("parent_id IS NOT NULL")),
        Index("ix_executions_replay_of", "replay_of", sqlite_where=text("replay_of IS NOT NULL"),
              postgresql_where=text("replay_of IS NOT NULL")),
    )


class ExecutionEvent(Base):
    """The append-only event stream: the source of truth."""

    __tablename__ = "execution_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(ID))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[str] = mapped_column(Text)  # JSON text, serialized by the recorder
    ts: Mapped[float] = mapped_column(Float)

    # The unique constraint is also the (execution_id, seq) index events are paged by.
    __table_args__ = (UniqueConstraint("execution_id", "seq"),)


class StepRun(Base):
    """One row per step attempt or loop iteration; the timeline reads this table."""

    __tablename__ = "step_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(String(ID))
    path: Mapped[str] = mapped_column(String(1000))
    step: Mapped[str] = mapped_column(String(NAME))
    type: Mapped[str] = mapped_column(String(NAME))
    seq: Mapped[int] = mapped_column(Integer)
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(SHORT))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    output_size: Mapped[int] = mapped_column(Integer, default=0)
    flags: Mapped[Any | None] = mapped_column(JsonType)

    # Keyed by the seq of the step.started event: a step re-entered by a backward jump or a
    # retried composite has the same (path, iteration, attempt) but never the same seq.
    # The unique constraint doubles as the (execution_id, seq) index the timeline reads.
    __table_args__ = (UniqueConstraint("execution_id", "seq"),)


class Definition(Base):
    """Content-addressed snapshot of the pipeline files an execution ran."""

    __tablename__ = "definitions"

    hash: Mapped[str] = mapped_column(String(ID), primary_key=True)
    sources: Mapped[Any] = mapped_column(JsonType)  # {file name: text}
    created: Mapped[float] = mapped_column(Float)


class IdempotencyKey(Base):
    """A step's stored output under an idempotency key; ``pending`` while its owner runs it."""

    __tablename__ = "idempotency_keys"

    pipeline: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    step: Mapped[str] = mapped_column(String(1000), primary_key=True)
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    status: Mapped[str] = mapped_column(String(SHORT))  # pending | done
    owner: Mapped[str | None] = mapped_column(String(ID))
    output: Mapped[Any | None] = mapped_column(JsonType)
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_idempotency_keys_expires", "expires"),)


class DlqEntry(Base):
    __tablename__ = "dlq_entries"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(ID), default="default")
    pipeline: Mapped[str] = mapped_column(String(NAME))
    step: Mapped[str | None] = mapped_column(String(1000))
    execution_id: Mapped[str | None] = mapped_column(String(ID))
    payload: Mapped[Any | None] = mapped_column(JsonType)
    error: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(SHORT), default="pending")
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=3)
    last_retry_id: Mapped[str | None] = mapped_column(String(ID))  # latest retry's execution
    owner: Mapped[str | None] = mapped_column(String(ID))  # the instance retrying it
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    resolved: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_dlq_entries_tenant_status_created", "tenant", "status", "created"),
        Index("ix_dlq_entries_pipeline", "pipeline"),
    )


class StepMock(Base):
    __tablename__ = "step_mocks"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(ID), default="default")
    pipeline: Mapped[str] = mapped_column(String(NAME))
    step: Mapped[str] = mapped_column(String(1000))
    mode: Mapped[str] = mapped_column(String(SHORT))  # fixed | error | recorded
    output: Mapped[Any | None] = mapped_column(JsonType)
    error: Mapped[Any | None] = mapped_column(JsonType)
    delay_ms: Mapped[float] = mapped_column(Float, default=0.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    hit_count: Mapped[int] = mapped_column(Integer, default=0)
    source_execution_id: Mapped[str | None] = mapped_column(String(ID))  # mode "recorded"
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_step_mocks_tenant_pipeline_step", "tenant", "pipeline", "step"),)


class Breakpoint(Base):
    __tablename__ = "breakpoints"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(ID), default="default",
                                        server_default="default")
    pipeline: Mapped[str] = mapped_column(String(NAME))
    step: Mapped[str] = mapped_column(String(1000))
    condition: Mapped[str | None] = mapped_column(Text)  # jq program
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    hit_count: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_breakpoints_pipeline_step", "pipeline", "step"),
                      Index("ix_breakpoints_tenant_pipeline_step", "tenant", "pipeline", "step"))


class ApiKey(Base):
    """Hosted mode: the key itself is never stored, only its sha256 and a display prefix."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    prefix: Mapped[str] = mapped_column(String(SHORT))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    tenant: Mapped[str] = mapped_column(String(ID), default="default")
    scopes: Mapped[Any | None] = mapped_column(JsonType)  # list of scope names
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float | None] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (Index("ix_api_keys_tenant", "tenant"),)


class EventSchema(Base):
    __tablename__ = "event_schemas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(NAME))
    version: Mapped[int] = mapped_column(Integer)
    schema: Mapped[Any] = mapped_column(JsonType)
    created: Mapped[float] = mapped_column(Float)
    # Whose registry this is: versions are numbered per tenant and type (migration 0004).
    tenant: Mapped[str] = mapped_column(String(ID), default="default", server_default="default")

    __table_args__ = (UniqueConstraint("tenant", "type", "version"),)


class Backfill(Base):
    __tablename__ = "backfills"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(ID), default="default")
    pipeline: Mapped[str] = mapped_column(String(NAME))
    source: Mapped[Any] = mapped_column(JsonType)  # {"kind": "executions"|"file", ...}
    range_start: Mapped[float | None] = mapped_column(Float)
    range_end: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(SHORT))  # pending|running|completed|failed|cancelled
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    ended: Mapped[float | None] = mapped_column(Float)
    owner: Mapped[str | None] = mapped_column(String(ID))  # the instance running it

    __table_args__ = (Index("ix_backfills_tenant_created", "tenant", "created"),)


class Instance(Base):
    """An open store (an engine process); see engine/store/presence.py."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    host: Mapped[str] = mapped_column(String(NAME))
    pid: Mapped[int] = mapped_column(Integer)
    started: Mapped[float] = mapped_column(Float)


class PausedExecution(Base):
    """A debugger pause, visible to every process; ``command`` is a resume sent from another."""

    __tablename__ = "paused_executions"

    execution_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(ID))
    pipeline: Mapped[str] = mapped_column(String(NAME))
    step: Mapped[str] = mapped_column(String(NAME))
    path: Mapped[str] = mapped_column(String(1000))
    reason: Mapped[str] = mapped_column(String(SHORT))
    breakpoint_id: Mapped[str | None] = mapped_column(String(ID))
    paused_at: Mapped[float] = mapped_column(Float)
    context: Mapped[Any | None] = mapped_column(JsonType)
    owner: Mapped[str | None] = mapped_column(String(ID))
    command: Mapped[Any | None] = mapped_column(JsonType)  # {action, patch, by, request}

    __table_args__ = (Index("ix_paused_executions_tenant_paused_at", "tenant", "paused_at"),)


class SourceEvent(Base):
    """One row per event a source took in: the dedup record (a redelivered event, same
    source and id, finds it and starts nothing) and the delivery the Sources pane lists.

    Written in the same transaction as the execution row it starts (or the DLQ entry it
    became), so an acknowledged event always has one or the other.
    """

    __tablename__ = "source_events"

    tenant: Mapped[str] = mapped_column(String(ID), primary_key=True)
    source: Mapped[str] = mapped_column(String(NAME), primary_key=True)  # the connector's name
    event_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)  # CloudEvents id
    type: Mapped[str | None] = mapped_column(String(NAME))  # CloudEvents type
    pipeline: Mapped[str | None] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(SHORT))  # started | done | dead
    execution_id: Mapped[str | None] = mapped_column(String(ID))  # the latest attempt's
    dlq_entry: Mapped[str | None] = mapped_column(String(ID))
    deliveries: Mapped[int] = mapped_column(Integer, default=1)  # times the transport sent it
    # The envelope as received, kept until its execution ends (an interrupted one is run
    # again from it: the execution's own row holds it redacted).
    payload: Mapped[Any | None] = mapped_column(JsonType)
    received: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_source_events_tenant_source_received", "tenant", "source", "received"),
        Index("ix_source_events_execution_id", "execution_id"),
    )


executions = Base.metadata.tables["executions"]
execution_events = Base.metadata.tables["execution_events"]
step_runs = Base.metadata.tables["step_runs"]
definitions = Base.metadata.tables["definitions"]
idempotency_keys = Base.metadata.tables["idempotency_keys"]
dlq_entries = Base.metadata.tables["dlq_entries"]
step_mocks = Base.metadata.tables["step_mocks"]
breakpoints = Base.metadata.tables["breakpoints"]
api_keys = Base.metadata.tables["api_keys"]
event_schemas = Base.metadata.tables["event_schemas"]
backfills = Base.metadata.tables["backfills"]
instances = Base.metadata.tables["instances"]
paused_executions = Base.metadata.tables["paused_executions"]
source_events = Base.metadata.tables["source_events"]
