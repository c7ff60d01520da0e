"""Alembic environment for the store. The store runs migrations programmatically:

``Store.open`` builds an ``alembic.config.Config`` in code, puts its open connection (already
inside a transaction) in ``config.attributes["connection"]`` and calls ``command.upgrade``.
No alembic.ini is needed at runtime.
"""

from __future__ import annotations

from alembic import context

from engine.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable from the alembic CLI
    raise RuntimeError("the store's migrations run through Store.open(), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
