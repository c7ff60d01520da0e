"""Two ``wfstudio serve`` processes on one PostgreSQL store fire the same schedule: each
fire starts exactly one execution (the fire's id is the dedup key, recorded with the start).

The servers start the schedule by themselves (serve autostarts its files' sources). Proof
that both really fired: a fire's dedup row counts two deliveries (the second one found the
row and started nothing).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.store import intake
from engine.store.store import Store
from tests.connectors.kill_harness import Server
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres

FILE = """\
pipelines:
  tick:
    trigger: {type: schedule, config: {cron: "* * * * * *", timezone: Europe/Paris}}
    steps: [{name: a, type: step.set, config: {values: {at: '{{ .trigger.data.scheduled_time }}'}}}]
"""


def rows(url: str) -> list[intake.DeliveryRow]:
    with Store.open(url) as store:
        return intake.recent(store, "default", "schedule:tick", 1000)


def executions_per_fire(url: str) -> Counter[str]:
    with Store.open(url) as store, store.read() as conn:
        found = conn.exec_driver_sql(
            "SELECT trigger_payload FROM executions WHERE pipeline = 'tick'").all()
    counts: Counter[str] = Counter()
    for (payload,) in found:
        envelope = json.loads(payload) if isinstance(payload, str) else payload
        counts[str(envelope["id"])] += 1
    return counts


def test_two_servers_start_one_execution_per_fire(fresh_pg_url: Callable[[], str],
                                                  tmp_path: Path) -> None:
    url = fresh_pg_url()
    file = tmp_path / "tick.yaml"
    file.write_text(FILE)
    servers = [Server(file, url, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.start()
        wait_until(lambda: sum(r.deliveries >= 2 for r in rows(url)) >= 5,
                   "five fires delivered by both servers", timeout=120, interval=0.2)
    finally:
        for server in servers:
            server.stop()
    recorded = rows(url)
    assert all(r.event_id.startswith("tick@") for r in recorded)
    # a server's own fire is never delivered twice; two deliveries means both fired it
    assert all(r.deliveries in (1, 2) for r in recorded)
    per_fire = executions_per_fire(url)
    assert set(per_fire) == {r.event_id for r in recorded}
    assert max(per_fire.values()) == 1, [k for k, v in per_fire.items() if v > 1]
    # every fire's row points at the one execution it started
    assert len({r.execution_id for r in recorded}) == len(recorded)
