"""Schedule fire times (time zones, DST, catch-up windows) and the schedule trigger's checks.

Every expected instant is written out by hand in UTC from the zone's rules, not computed
with the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.connectors.schedule import Schedule, ScheduleSource, event_id, parse_event_id
from engine.connectors.types import ConnectorError

try:
    from tests.engine.test_config_support import errors, load
except ImportError:
    from test_config_support import errors, load  # type: ignore[no-redef]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[arg-type, misc]


def fires(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    found, cursor = [], after
    for _ in range(count):
        cursor = schedule.next_after(cursor)
        found.append(cursor)
    return found


# ---------------------------------------------------------------- time zones


def test_utc_by_default_and_seconds_field() -> None:
    assert fires(Schedule.of("*/5 * * * *"), utc(2026, 6, 1, 10, 3, 20), 2) == [
        utc(2026, 6, 1, 10, 5), utc(2026, 6, 1, 10, 10)]
    # a 6th field is seconds: every 20 s
    assert fires(Schedule.of("* * * * * */20"), utc(2026, 6, 1, 10, 3, 20), 3) == [
        utc(2026, 6, 1, 10, 3, 40), utc(2026, 6, 1, 10, 4, 0), utc(2026, 6, 1, 10, 4, 20)]


def test_fixed_offset_zone() -> None:
    # Asia/Kolkata is UTC+05:30 all year: 09:00 there is 03:30 UTC, in June and December
    kolkata = Schedule.of("0 9 * * *", "Asia/Kolkata")
    assert kolkata.next_after(utc(2026, 6, 1)) == utc(2026, 6, 1, 3, 30)
    assert kolkata.next_after(utc(2026, 12, 1, 4)) == utc(2026, 12, 2, 3, 30)
    # Etc/GMT-3 is UTC+3 (POSIX signs are inverted): midnight there is 21:00 UTC the day before
    assert Schedule.of("@daily", "Etc/GMT-3").next_after(utc(2026, 3, 1, 22)) == \
        utc(2026, 3, 2, 21)


def test_dst_zone_follows_the_local_clock() -> None:
    paris = Schedule.of("0 9 * * *", "Europe/Paris")
    assert paris.next_after(utc(2026, 1, 15)) == utc(2026, 1, 15, 8)  # CET, UTC+1
    assert paris.next_after(utc(2026, 7, 15)) == utc(2026, 7, 15, 7)  # CEST, UTC+2
    # across the spring change (29 March 2026, 02:00 -> 03:00): still 09:00 local each day
    assert fires(paris, utc(2026, 3, 28, 9), 2) == [utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]


def test_spring_forward_gap_fires_right_after_it() -> None:
    # 02:30 does not exist in Paris on 29 March 2026: the fire is at 03:00 CEST (01:00 UTC)
    assert fires(Schedule.of("30 2 * * *", "Europe/Paris"), utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    # hourly: 01:00 CET, then 03:00 CEST (one real hour later), 04:00 CEST
    assert fires(Schedule.of("0 * * * *", "Europe/Paris"), utc(2026, 3, 28, 23, 30), 3) == [
        utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)]


def test_fall_back_fixed_time_runs_once() -> None:
    # 02:30 happens twice in Paris on 25 October 2026 (CEST then CET): a daily job runs once
    assert fires(Schedule.of("30 2 * * *", "Europe/Paris"), utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # New York falls back on 1 November 2026 (01:00-02:00 twice): 01:15 runs at EDT only
    assert fires(Schedule.of("15 1 * * *", "America/New_York"), utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 15), utc(2026, 11, 2, 6, 15)]
    # southern hemisphere: Sydney goes from AEDT (+11) to AEST (+10) on 5 April 2026
    assert fires(Schedule.of("30 2 * * *", "Australia/Sydney"), utc(2026, 4, 4, 12), 2) == [
        utc(2026, 4, 4, 15, 30), utc(2026, 4, 5, 16, 30)]
    # Dublin's tz data calls winter the "DST" period (a negative save): the rule still holds
    assert fires(Schedule.of("30 1 * * *", "Europe/Dublin"), utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_fall_back_interval_job_runs_in_both_passes() -> None:
    # hourly: 02:00 CEST (00:00 UTC) and 02:00 CET (01:00 UTC) are both real hours
    assert fires(Schedule.of("0 * * * *", "Europe/Paris"), utc(2026, 10, 24, 22, 30), 4) == [
        utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2)]
    # every 30 minutes during the 02 hour: both passes
    assert fires(Schedule.of("*/30 2 * * *", "Europe/Paris"), utc(2026, 10, 24, 12), 4) == [
        utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 1, 30)]


# ---------------------------------------------------------------- missed fires


def test_latest_missed_fires_are_bounded_and_ordered() -> None:
    hourly = Schedule.of("0 * * * *")
    last, now = utc(2026, 5, 1, 6), utc(2026, 5, 1, 10, 20)
    assert hourly.latest(last, now, 1) == [utc(2026, 5, 1, 10)]
    assert hourly.latest(last, now, 3) == [utc(2026, 5, 1, 8), utc(2026, 5, 1, 9),
                                           utc(2026, 5, 1, 10)]
    # never at or before the last recorded fire, however large the limit
    assert hourly.latest(last, now, 100) == [utc(2026, 5, 1, h) for h in (7, 8, 9, 10)]
    assert hourly.latest(utc(2026, 5, 1, 10), now, 5) == []
    # a fire exactly at "now" is missed too (the future loop starts strictly after now)
    assert hourly.latest(last, utc(2026, 5, 1, 10), 1) == [utc(2026, 5, 1, 10)]
    # a year of per-second fires: walked backwards, only the limit is computed
    every_second = Schedule.of("* * * * * *")
    assert every_second.latest(utc(2025, 1, 1), utc(2026, 1, 1, 0, 0, 0, 500), 2) == [
        utc(2025, 12, 31, 23, 59, 59), utc(2026, 1, 1)]


def test_catch_up_across_a_repeated_hour_follows_the_same_rules() -> None:
    # walking backwards over Paris's fall-back night: the daily job once, hourly both passes
    daily = Schedule.of("30 2 * * *", "Europe/Paris")
    assert daily.latest(utc(2026, 10, 24, 12), utc(2026, 10, 26, 12), 5) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    hourly = Schedule.of("0 * * * *", "Europe/Paris")
    assert hourly.latest(utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 2, 30), 10) == [
        utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2)]


def test_event_ids_are_stable_and_parse_back() -> None:
    moment = datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
    assert event_id("nightly", moment) == "nightly@2026-10-25T02:30:00Z"
    assert parse_event_id("nightly", "nightly@2026-10-25T02:30:00Z") == moment
    assert parse_event_id("nightly", "other@2026-10-25T02:30:00Z") is None
    assert parse_event_id("nightly", "nightly@yesterday") is None
    source = ScheduleSource("schedule:nightly", {"cron": "30 2 * * *", "timezone": "Europe/Paris"})
    event = source.event(moment, datetime(2026, 10, 25, 2, 30, 0, 12000, tzinfo=UTC))
    assert event["id"] == "nightly@2026-10-25T02:30:00Z"
    assert event["type"] == "wfstudio.schedule.fired"
    assert event["time"] == "2026-10-25T02:30:00Z"
    assert event["data"] == {"scheduled_time": "2026-10-25T02:30:00Z",
                             "fired_time": "2026-10-25T02:30:00.012Z",
                             "cron": "30 2 * * *", "timezone": "Europe/Paris"}


def test_source_refuses_bad_settings_with_what_to_do() -> None:
    # made without raising (a factory must not), the error comes from run() via .settings
    with pytest.raises(ConnectorError, match="invalid cron expression '61 \\* \\* \\* \\*'"):
        assert ScheduleSource("schedule:p", {"cron": "61 * * * *"}).settings
    with pytest.raises(ConnectorError, match="'missed' must be one of skip, catch_up"):
        assert ScheduleSource("schedule:p", {"cron": "* * * * *", "missed": "later"}).settings
    with pytest.raises(ConnectorError, match="unknown time zone 'Mars/Olympus'"):
        assert ScheduleSource("schedule:p", {"cron": "* * * * *", "timezone": "Mars/Olympus"}).settings


# ---------------------------------------------------------------- the trigger's checks


def test_bad_schedule_settings_are_errors_at_their_position() -> None:
    found = errors("""\
pipelines:
  a:
    trigger: {type: schedule, config: {cron: "61 * * * *"}}
    steps: [{name: a, type: step.log, config: {message: x}}]
  b:
    trigger: {type: schedule, config: {cron: "every minute"}}
    steps: [{name: a, type: step.log, config: {message: x}}]
  c:
    trigger: {type: schedule, config: {cron: "@daily", missed: later, catch_up_limit: 0, enabled: "yes", timezon: UTC}}
    steps: [{name: a, type: step.log, config: {message: x}}]
""")
    assert found == [
        "p.yaml:3:46: error: invalid cron expression '61 * * * *': a field is out of range or "
        "malformed (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6, an optional 6th "
        "field for seconds 0-59)",
        "p.yaml:6:46: error: invalid cron expression 'every minute': use five fields 'minute hour "
        "day month weekday' (e.g. '*/5 * * * *') or one of @yearly, @annually, @monthly, "
        "@weekly, @daily, @midnight, @hourly",
        "p.yaml:9:64: error: 'missed' must be one of skip, catch_up, got \"later\"",
        "p.yaml:9:87: error: 'catch_up_limit' must be a whole number of at least 1, got 0",
        "p.yaml:9:99: error: 'enabled' must be true or false, got \"yes\"",
        "p.yaml:9:106: error: unknown schedule trigger key 'timezon' (did you mean 'timezone'?)",
    ]


def test_valid_schedule_settings_load() -> None:
    definition = load("""\
pipelines:
  s:
    trigger: {type: schedule, config: {cron: "*/5 * * * *", timezone: Europe/Paris, missed: catch_up, catch_up_limit: 3, enabled: false}}
    steps: [{name: a, type: step.log, config: {message: x}}]
""")
    assert definition.pipelines["s"].trigger.config == {
        "cron": "*/5 * * * *", "timezone": "Europe/Paris", "missed": "catch_up",
        "catch_up_limit": 3, "enabled": False}
