"""Migration 0004: event schemas registered before tenants had their own registry stay the
"default" tenant's (every embedded run's), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from engine.service.local import LocalService
from engine.store.store import HEAD_REVISION, Store, _alembic_config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    fresh: Callable[[], str] = request.getfixturevalue("fresh_pg_url")
    return fresh()


async def test_schemas_registered_before_0004_stay_the_default_tenants(empty_url: str) -> None:
    engine = sa.create_engine(empty_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0003")
            conn.execute(sa.text("INSERT INTO event_schemas (type, version, schema, created) "
                                 "VALUES ('order.created', 1, '{\"required\": [\"id\"]}', 1.0)"))
    finally:
        engine.dispose()
    async with await LocalService.open([], store=empty_url, env={}) as service:
        with service.store.read() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() \
                == HEAD_REVISION
        [kept] = await service.list_schemas()
        assert (kept.type, kept.version, kept.schema_) == ("order.created", 1, {"required": ["id"]})
        assert await service.validate_event("order.created", {}) == [
            "(root): 'id' is a required property"]
        # The default tenant's next version follows on; the old unique rule is gone.
        assert (await service.register_schema("order.created", {})).version == 2
    with Store.open(empty_url):
        pass
