"""A CDC source may not read the event store's own database: it holds every tenant's
executions and the API keys' digests (the same rule as database.sql modules, see
engine/store/identity.py). On the machine's PostgreSQL, the store and the source's dsn
being one database."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.service.local import LocalService
from tests.connectors.pg_cdc_support import CdcDatabase, cdc_db, pipeline_file  # noqa: F401
from tests.waiting import wait_for_condition


@pytest.mark.postgres
async def test_a_cdc_source_on_the_event_stores_database_is_refused(
        tmp_path: Path, cdc_db: CdcDatabase) -> None:  # noqa: F811
    db = cdc_db
    db.sql("CREATE TABLE items (id int PRIMARY KEY, name text)")
    file = tmp_path / "spy.yaml"
    file.write_text(pipeline_file(db))
    # the store is the very database the source's dsn names
    async with await LocalService.open([file], store=db.dsn) as service:
        await service.start_source("changes")

        async def refused() -> str | None:
            [info] = await service.list_sources()
            return info.last_error
        error = await wait_for_condition(refused, "the source to be refused")
        assert "event store" in error and "application's database" in error
        [info] = await service.list_sources()
        assert info.state == "failing" and info.started == 0
        assert db.slots() == {}  # nothing made on the store's database
        await service.stop_source("changes")
