"""Schedules firing in a real service (SQLite file and PostgreSQL): one execution per fire,
listed as sources that run only when started (or autostarted, as ``wfstudio serve`` does),
missed fires skipped or caught up from the store's last recorded fire, disabled ones never.

Per-second crons (a 6th field) keep the tests quick; every wait is on a condition.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from engine.connectors.schedule import FIRED, event_id, parse_event_id
from engine.service import models
from engine.service.local import LocalService
from engine.service.models import ExecutionFilter, SourceDelivery
from tests.waiting import wait_for_condition

STEP = "steps: [{name: a, type: step.set, config: {values: {at: '{{ .trigger.data.scheduled_time }}'}}}]"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    return path


def fires(deliveries: list[SourceDelivery], label: str) -> dict[datetime, SourceDelivery]:
    """The recorded fires of schedule ``label``, by scheduled time."""
    found = {}
    for delivery in deliveries:
        moment = parse_event_id(label, delivery.event_id)
        if moment is not None:
            found[moment] = delivery
    return found


async def wait_completed(service: LocalService, name: str, label: str, count: int) -> None:
    """Wait until ``count`` fires of the schedule have completed executions; a timeout says
    what the source and its fires looked like."""
    async def done() -> bool:
        recorded = fires(await service.source_deliveries(name, 1000), label).values()
        return sum(d.execution_status == "completed" for d in recorded) >= count
    try:
        seen: bool = await wait_for_condition(done, f"{count} completed fires of {name}")
        assert seen
    except AssertionError as exc:
        sources = await service.list_sources()
        deliveries = await service.source_deliveries(name, 20)
        raise AssertionError(f"{exc}\nsources: {sources}\nfires: {deliveries}") from None


async def test_listed_stopped_then_fires_one_execution_per_second(store_url: str,
                                                                  tmp_path: Path) -> None:
    file = write(tmp_path, f"""\
pipelines:
  tick:
    trigger: {{type: schedule, config: {{cron: "* * * * * *", timezone: Europe/Paris}}}}
    {STEP}
""")
    async with await LocalService.open([file], store=store_url) as service:
        [info] = await service.list_sources()
        assert (info.name, info.type, info.pipelines, info.state) == (
            "schedule:tick", "source.schedule", ["tick"], "stopped")  # the studio starts it
        await service.start_source("schedule:tick")
        await wait_completed(service, "schedule:tick", "tick", 3)
        await service.stop_source("schedule:tick")
        recorded = fires(await service.source_deliveries("schedule:tick", 1000), "tick")
        times = sorted(recorded)
        # one per second, none skipped (a late fire is followed by the next at once)
        assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(times))
        page = await service.list_executions(ExecutionFilter(pipeline="tick", limit=1000))
        started = {r.id: r for r in page.items}
        for moment, delivery in recorded.items():
            assert delivery.type == FIRED and delivery.deliveries == 1
            assert delivery.execution_id is not None
            run = started.pop(delivery.execution_id)
            envelope = run.trigger_payload
            assert run.trigger_type == "schedule"
            assert envelope["id"] == event_id("tick", moment)
            data = envelope["data"]
            assert data["scheduled_time"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            assert data["cron"] == "* * * * * *" and data["timezone"] == "Europe/Paris"
            fired = datetime.fromisoformat(data["fired_time"].replace("Z", "+00:00"))
            assert fired >= moment  # never early
        assert not started  # no execution without its fire


async def test_disabled_schedule_has_no_source_and_never_fires(tmp_path: Path) -> None:
    file = write(tmp_path, f"""\
pipelines:
  on:
    trigger: {{type: schedule, config: {{cron: "* * * * * *"}}}}
    {STEP}
  off:
    trigger: {{type: schedule, config: {{cron: "* * * * * *", enabled: false}}}}
    {STEP}
""")
    async with await LocalService.open([file], store=f"sqlite:///{tmp_path / 's.db'}") as service:
        service.sources.autostart = True  # as `wfstudio serve` does
        await service.sources.refresh()
        assert [s.name for s in await service.list_sources()] == ["schedule:on"]
        await wait_completed(service, "schedule:on", "on", 2)
        page = await service.list_executions(ExecutionFilter(pipeline="off"))
        assert page.items == []


async def seed_last_fire(service: LocalService, name: str, label: str, moment: datetime) -> None:
    """Record a fire of ``moment`` through the source's intake, as a run before a downtime
    would have (the same row a real fire writes)."""
    delivery = await service.send_test_event(name, models.TestEvent(id=event_id(label, moment), data={
        "scheduled_time": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    assert delivery.outcome == "started"


async def test_skip_fires_only_after_the_start(store_url: str, tmp_path: Path) -> None:
    file = write(tmp_path, f"""\
pipelines:
  tick:
    trigger: {{type: schedule, config: {{cron: "* * * * * *", missed: skip}}}}
    {STEP}
  fresh:
    trigger: {{type: schedule, config: {{cron: "* * * * * *", missed: catch_up, catch_up_limit: 5}}}}
    {STEP}
""")
    async with await LocalService.open([file], store=store_url) as service:
        old = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) - 30, UTC)
        await seed_last_fire(service, "schedule:tick", "tick", old)
        since = {}
        for name in ("schedule:tick", "schedule:fresh"):
            info = await service.start_source(name)
            assert info.since is not None
            since[name] = datetime.fromtimestamp(info.since, UTC)
        # the first on-time fire comes after any catch-up (same task, in that order)
        await wait_completed(service, "schedule:tick", "tick", 2)
        await wait_completed(service, "schedule:fresh", "fresh", 1)
        for name in since:
            await service.stop_source(name)
        tick = fires(await service.source_deliveries("schedule:tick", 1000), "tick")
        assert old in tick
        # skip: nothing between the seeded fire and the start (29 seconds were missed)
        assert all(t > since["schedule:tick"] for t in tick if t != old)
        # catch_up with no recorded fire: nothing to catch up
        fresh = fires(await service.source_deliveries("schedule:fresh", 1000), "fresh")
        assert fresh and all(t > since["schedule:fresh"] for t in fresh)


async def test_catch_up_fires_the_latest_missed_up_to_the_limit(store_url: str,
                                                                tmp_path: Path) -> None:
    # New Year fires: the last recorded one is 2020's, so every one since was missed
    file = write(tmp_path, f"""\
pipelines:
  yearly:
    trigger: {{type: schedule, config: {{cron: "0 0 1 1 *", missed: catch_up, catch_up_limit: 2}}}}
    {STEP}
  paris:
    trigger: {{type: schedule, config: {{cron: "0 0 1 1 *", timezone: Europe/Paris, missed: catch_up}}}}
    {STEP}
""")
    async with await LocalService.open([file], store=store_url) as service:
        await seed_last_fire(service, "schedule:yearly", "yearly", datetime(2020, 1, 1, tzinfo=UTC))
        await seed_last_fire(service, "schedule:paris", "paris",
                             datetime(2019, 12, 31, 23, tzinfo=UTC))
        year = datetime.now(UTC).year
        await service.start_source("schedule:yearly")
        await service.start_source("schedule:paris")
        # the missed fires of a source are recorded in one transaction: all or none
        await wait_completed(service, "schedule:yearly", "yearly", 3)
        await wait_completed(service, "schedule:paris", "paris", 2)
        yearly = fires(await service.source_deliveries("schedule:yearly"), "yearly")
        assert sorted(yearly) == [datetime(2020, 1, 1, tzinfo=UTC),
                                  datetime(year - 1, 1, 1, tzinfo=UTC),
                                  datetime(year, 1, 1, tzinfo=UTC)]
        # midnight on 1 January in Paris (CET, UTC+1) is 23:00 UTC on 31 December
        paris = fires(await service.source_deliveries("schedule:paris"), "paris")
        assert sorted(paris) == [datetime(2019, 12, 31, 23, tzinfo=UTC),
                                 datetime(year - 1, 12, 31, 23, tzinfo=UTC)]
        [info] = [s for s in await service.list_sources() if s.name == "schedule:yearly"]
        assert info.started == 2 and info.last_error is None


async def test_declared_schedule_connector_fires_and_reports_a_bad_cron(tmp_path: Path) -> None:
    """source.schedule can also be declared as a connector that an event trigger names; a
    cron the file check cannot see (connector configs are checked by their JSON Schema
    only) is the source's error, not a crash."""
    file = write(tmp_path, f"""\
connectors:
  - {{name: ticks, type: source.schedule, config: {{cron: "* * * * * *"}}}}
  - {{name: broken, type: source.schedule, config: {{cron: "61 * * * *"}}}}
pipelines:
  on-tick:
    trigger: {{type: event, config: {{connector: ticks, type: {FIRED}}}}}
    {STEP}
  never:
    trigger: {{type: event, config: {{connector: broken}}}}
    {STEP}
""")
    async with await LocalService.open([file], store=f"sqlite:///{tmp_path / 's.db'}") as service:
        await service.start_source("ticks")
        await service.start_source("broken")
        await wait_completed(service, "ticks", "ticks", 2)

        async def failing() -> str:
            [info] = [s for s in await service.list_sources() if s.name == "broken"]
            return (info.last_error or "") if info.state == "failing" else ""
        error: str = await wait_for_condition(failing, "the broken schedule to report its error")
        assert "invalid cron expression '61 * * * *'" in error
