"""Schedule triggers as a source: the clock is the transport.

Every pipeline with ``trigger: {type: schedule, config: {cron: ..., timezone: ...}}`` gets a
source named ``schedule:<pipeline>`` (``engine.service.schedules``). Its ``run`` sleeps
until the cron's next fire time in the trigger's time zone and delivers one CloudEvent,
``wfstudio.schedule.fired``, whose id is ``<pipeline>@<scheduled time in UTC>``. That id is
the dedup key: every process serving the same store computes the same fires and the same
ids, and the intake records one dedup row per id with the execution's start, so each fire
starts one execution however many processes fire it.

Missed fires (no process was running): ``missed: skip`` (the default) fires only from now
on; ``missed: catch_up`` first fires the latest ``catch_up_limit`` (default 1) fire times
between the last fire the store recorded for this source and now.

Time zones: croniter walks the local wall clock of ``timezone`` (UTC when absent). When
the clock springs forward, a fire time that does not exist happens at the first instant
after the gap; when it falls back, a job with a fixed minute and hour runs once (on the
first pass), while one whose minute or hour field starts with ``*`` runs on both passes
(it is about intervals, and the repeated hour is real time): the rules of Vixie cron.
"""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.connectors import envelope
from engine.connectors.types import (
    ConnectorError,
    Delivery,
    Intake,
    Outcome,
    SourceType,
    source_schema,
)

if TYPE_CHECKING:
    from engine.steps.base import Registry

TYPE = "source.schedule"
FIRED = "wfstudio.schedule.fired"
PREFIX = "schedule:"  # the implicit source of pipeline P is named "schedule:P"
MISSED = ("skip", "catch_up")
MAX_NAP = 30.0  # longest single sleep: a wall-clock step (NTP, suspend) is noticed by then
RETRY_EVERY = 1.0  # seconds between attempts to record a fire the store refused
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}


def source_name(pipeline: str) -> str:
    return f"{PREFIX}{pipeline}"


def event_id(label: str, scheduled: datetime) -> str:
    """The fire's CloudEvents id: fixed-width UTC text, so ids of one source sort by time."""
    return f"{label}@{utc_text(scheduled)}"


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_event_id(label: str, text: str) -> datetime | None:
    """The scheduled time in an id made by ``event_id`` (None for any other id)."""
    head, _, stamp = text.rpartition("@")
    if head != label:
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class Schedule:
    """A cron expression read on the wall clock of ``zone``; every time it gives is UTC."""

    cron: str
    zone: zoneinfo.ZoneInfo

    @classmethod
    def of(cls, cron: str, timezone: str | None = None) -> Schedule:
        from croniter import croniter

        text = MACROS.get(cron.strip(), cron.strip())
        if not croniter.is_valid(text):
            raise ConnectorError(f"invalid cron expression {cron!r}: use 'minute hour day "
                                 "month weekday' with an optional 6th field for seconds")
        try:
            zone = zoneinfo.ZoneInfo(timezone or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ConnectorError(f"unknown time zone {timezone!r}: {exc}") from None
        return cls(text, zone)

    @property
    def fixed_time(self) -> bool:
        """Neither minute nor hour starts with '*': runs once when an hour repeats."""
        minute, hour = self.cron.split()[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    def _repeat(self, moment: datetime) -> bool:
        """Whether ``moment`` (local, aware) is on the second pass of a repeated hour."""
        wall = moment.replace(tzinfo=None)
        first = wall.replace(fold=0, tzinfo=self.zone).utcoffset()
        second = wall.replace(fold=1, tzinfo=self.zone).utcoffset()
        # the clock went back: the earlier pass has the larger offset (in a gap, the smaller)
        repeated = first is not None and second is not None and first > second
        return repeated and moment.utcoffset() == second

    def _walk(self, start: datetime, forward: bool) -> Iterator[datetime]:
        from croniter import croniter

        walker = croniter(self.cron, start.astimezone(self.zone))
        step = walker.get_next if forward else walker.get_prev
        while True:
            moment: datetime = step(datetime)
            if self.fixed_time and self._repeat(moment):
                continue
            yield moment.astimezone(UTC)

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment``."""
        return next(self._walk(moment, forward=True))

    def latest(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Up to ``limit`` of the last fire times in (after, until], oldest first (walked
        backwards from ``until``, so a long outage costs ``limit`` steps, not one per fire)."""
        found: list[datetime] = []
        # get_prev is strictly before its start: start a second past ``until``'s second
        start = until.replace(microsecond=0) + timedelta(seconds=1)
        for moment in self._walk(start, forward=False):
            if len(found) >= limit or moment <= after:
                break
            found.append(moment)
        return found[::-1]


@dataclass(frozen=True)
class Settings:
    schedule: Schedule
    timezone: str
    missed: str
    catch_up_limit: int
    enabled: bool


def settings(config: dict[str, Any]) -> Settings:
    cron = config.get("cron")
    if not isinstance(cron, str):
        raise ConnectorError("a schedule needs 'cron' (e.g. '*/5 * * * *')")
    timezone = config.get("timezone") or "UTC"
    missed = config.get("missed", "skip")
    if missed not in MISSED:
        raise ConnectorError(f"'missed' must be one of {', '.join(MISSED)}, got {missed!r}")
    limit = config.get("catch_up_limit", 1)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConnectorError(f"'catch_up_limit' must be a whole number of at least 1, got {limit!r}")
    return Settings(Schedule.of(cron, timezone), str(timezone), str(missed), limit,
                    bool(config.get("enabled", True)))


async def sleep_until(moment: datetime) -> None:
    """Sleep until the wall clock reaches ``moment`` (in naps, so a clock step is seen)."""
    target = moment.timestamp()
    while True:
        left = target - time.time()
        if left <= 0:
            return
        await asyncio.sleep(min(left, MAX_NAP))


class ScheduleSource:
    """Fires one pipeline's schedule (``name`` is ``schedule:<pipeline>``)."""

    def __init__(self, name: str, config: dict[str, Any]):
        self.name = name
        self.label = name.removeprefix(PREFIX)
        try:
            self._settings: Settings | ConnectorError = settings(config)
        except ConnectorError as exc:
            self._settings = exc  # raised by run(): the runtime shows it as the source's error

    @property
    def settings(self) -> Settings:
        if isinstance(self._settings, ConnectorError):
            raise self._settings
        return self._settings

    def event(self, scheduled: datetime, fired: datetime) -> dict[str, Any]:
        s = self.settings
        data = {"scheduled_time": utc_text(scheduled),
                "fired_time": fired.astimezone(UTC).isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "cron": s.schedule.cron, "timezone": s.timezone}
        return envelope.make(f"wfstudio:schedule/{self.label}", FIRED, data,
                             id=event_id(self.label, scheduled), subject=self.label,
                             time=scheduled)

    async def run(self, intake: Intake) -> None:
        if not self.settings.enabled:
            return  # never fires (the source manager does not even make one)
        schedule = self.settings.schedule
        now = datetime.now(UTC)
        if self.settings.missed == "catch_up":
            last = await self.last_fire(intake)
            missed = (schedule.latest(last, now, self.settings.catch_up_limit)
                      if last is not None else [])
            if missed:  # one batch: one transaction records them all (or none)
                await self.fire(intake, missed, deadline=schedule.next_after(now), catch_up=True)
        cursor = now
        while True:
            due = schedule.next_after(cursor)
            await sleep_until(due)
            await self.fire(intake, [due], deadline=schedule.next_after(due))
            cursor = due

    async def fire(self, intake: Intake, times: list[datetime], deadline: datetime,
                   catch_up: bool = False) -> None:
        """Deliver these fires; those the store refuses are tried again until the next fire
        is due (then they are lost, and said so: catch_up only looks after the last fire
        recorded)."""
        pending = times
        while True:
            fired = datetime.now(UTC)
            outcomes = await intake.deliver([Delivery(self.event(t, fired)) for t in pending])
            refused = [t for t, o in zip(pending, outcomes, strict=True) if o is Outcome.REFUSED]
            if len(refused) < len(pending):
                intake.acknowledged(len(pending) - len(refused))
                if not catch_up:  # lag: how late an on-time fire started (catch-up is late by design)
                    intake.report_lag(max(0.0, fired.timestamp() - pending[-1].timestamp()))
            if not refused:
                return
            if time.time() + RETRY_EVERY >= deadline.timestamp():
                intake.report_error(f"{len(refused)} fire(s) from {utc_text(refused[0])} could "
                                    "not be recorded before the next one was due; skipped")
                return
            pending = refused
            await asyncio.sleep(RETRY_EVERY)

    async def last_fire(self, intake: Intake) -> datetime | None:
        """The latest scheduled time this source's rows record (any process, any run)."""
        latest = await intake.last_event_id(f"{self.label}@")
        return parse_event_id(self.label, latest) if latest else None

    async def close(self) -> None:
        pass


SCHEMA = source_schema({
    "cron": {"type": "string", "description": "when to fire: 'minute hour day month weekday', "
             "a 6th field for seconds, or @hourly, @daily…"},
    "timezone": {"type": "string", "default": "UTC",
                 "description": "the IANA time zone the cron is read in (e.g. Europe/Paris)"},
    "missed": {"enum": list(MISSED), "default": "skip",
               "description": "fires missed while no process ran: skip them, or catch_up"},
    "catch_up_limit": {"type": "integer", "minimum": 1, "default": 1,
                       "description": "catch_up: at most this many missed fires (the latest)"},
    "enabled": {"type": "boolean", "default": True, "description": "false: never fires"},
}, required=["cron"])


def register(registry: Registry) -> None:
    kind = SourceType(
        name=TYPE, factory=ScheduleSource,
        description="Fires a pipeline on a cron schedule (one execution per fire, however "
                    "many processes serve the store)",
        schema=SCHEMA, example={"cron": "*/5 * * * *", "timezone": "Europe/Paris"},
        trigger_type="schedule", lag_unit="seconds", lag_alert=60)  # the lag: how late the last fire was
    registry.add_source(kind)
