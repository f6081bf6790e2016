"""When digests are due: the `[digests]` table (per-environment channel, zone, days and
times, late and missed windows), read and checked once at start.

Kept apart from `commands.changes.schedule` (changes scheduled with `at=`), so that the config can
be checked without the execution machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from commands import config_schema
from commands.config import Config, ConfigError
from commands.durations import parse_duration

DAY_NAMES = config_schema.DAY_NAMES


class DigestKind(StrEnum):
    MORNING = "morning"
    EOD = "eod"

    @property
    def heading(self) -> str:
        return "Morning digest" if self is DigestKind.MORNING else "End-of-day digest"


# --- the [digests] table ---------------------------------------------------------------


@dataclass(frozen=True)
class DigestSchedule:
    """When and where one environment's digests are posted."""

    environment: str
    channel: str
    timezone: ZoneInfo
    days: tuple[int, ...]  # 0 = Monday
    morning: time | None
    eod: time | None

    def at(self, kind: DigestKind) -> time | None:
        return self.morning if kind is DigestKind.MORNING else self.eod

    @property
    def cron_days(self) -> str:
        return ",".join(DAY_NAMES[d] for d in self.days)

    def occurrences(self, kind: DigestKind, start: datetime, end: datetime) -> list[datetime]:
        """Every scheduled time of `kind` in [start, end], as aware datetimes in the zone."""
        at = self.at(kind)
        if at is None or end < start:
            return []
        out = []
        day = start.astimezone(self.timezone).date() - timedelta(days=1)
        last = end.astimezone(self.timezone).date()
        while day <= last:
            if day.weekday() in self.days:
                moment = local_time(day, at, self.timezone)
                if start <= moment <= end:
                    out.append(moment)
            day += timedelta(days=1)
        return out

    def local_date_key(self, kind: DigestKind, moment: datetime) -> datetime:
        """The one run time of `kind` on `moment`'s local date: what a run is keyed by, so
        that a digest posts once per local date even when the clocks repeat an hour (the
        second 02:30 maps to the first) or skip one (02:30 → 03:30, as `local_time`)."""
        at = self.at(kind)
        if at is None:
            return moment
        return local_time(moment.astimezone(self.timezone).date(), at, self.timezone)

    def previous(
        self, kind: DigestKind, before: datetime, lookback_days: int = 14
    ) -> datetime | None:
        found = self.occurrences(kind, before - timedelta(days=lookback_days), before)
        return found[-1] if found else None

    def next_day(self, after: date) -> date:
        """The next digest day after `after` (the "tomorrow" an end-of-day digest looks at)."""
        day = after + timedelta(days=1)
        for _ in range(7):
            if day.weekday() in self.days:
                return day
            day += timedelta(days=1)
        return after + timedelta(days=1)


@dataclass(frozen=True)
class DigestSettings:
    schedules: dict[str, DigestSchedule] = field(default_factory=dict)
    misfire_grace: timedelta = timedelta(hours=2)  # a missed digest is still posted this late
    late_after: timedelta = timedelta(minutes=2)  # a run this far past its time is marked late
    spike_factor: float = 1.5  # yesterday's cost above this × the 7-day average is a spike
    chart: bool = True
    housekeeping_seconds: float = 30.0  # approval expiry and scheduled changes


def parse_days(value: Any, key: str) -> tuple[int, ...]:
    """The `days` grammar of `commands.config_schema.parse_days`, errors naming `key`."""
    try:
        return config_schema.parse_days(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def digest_settings(config: Config) -> DigestSettings:
    """The `[digests]` table (checked against the schema): defaults, then
    `[digests.<environment>]` overrides."""
    raw = config.raw.get("digests", {})
    table: config_schema.DigestsTable = config_schema.validate_table(
        config_schema.DigestsTable, raw, ("digests",), config.source
    )
    overrides = table.overrides
    problems = [
        f"{config.source}: [digests.{name}] unknown environment `{name}`"
        for name in overrides
        if name not in config.environments
    ] + [
        f"{config.source}: [digests] environments: `{name}` is not an environment"
        for name in table.environments or []
        if name not in config.environments
    ]
    if problems:
        raise ConfigError(problems[0], problems)
    with_endpoints = [
        n for n in config.environments if any(e.environment == n for e in config.endpoints.values())
    ]
    schedules: dict[str, DigestSchedule] = {}
    for name in table.environments if table.environments is not None else with_endpoints:
        over = overrides.get(name)

        def pick(key: str, over: config_schema.DigestOverride | None = over) -> Any:
            value = getattr(over, key) if over is not None else None
            return value if value is not None else getattr(table, key)

        if not (over.enabled if over is not None else table.enabled):
            continue
        zone_name = pick("timezone")
        schedules[name] = DigestSchedule(
            environment=name,
            channel=pick("channel") or config.channels.ops,
            timezone=ZoneInfo(zone_name) if zone_name else config.timezone,
            days=config_schema.parse_days(pick("days") or "mon-fri"),
            morning=config_schema.parse_clock(pick("morning") or "08:30"),
            eod=config_schema.parse_clock(pick("eod") or "17:30"),
        )
    return DigestSettings(
        schedules=schedules,
        misfire_grace=parse_duration(table.misfire_grace),
        late_after=parse_duration(table.late_after),
        spike_factor=float(table.spike_factor),
        chart=table.chart,
        housekeeping_seconds=float(table.housekeeping_seconds),
    )


def local_time(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`day at` in `tz`: a time the clocks skip (DST) moves forward by the gap; a time that
    occurs twice is its first occurrence (the rule in `commands.config_schema`)."""
    naive = datetime.combine(day, at)
    moment = naive.replace(tzinfo=tz)
    back = moment.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if back.replace(tzinfo=None) != naive:  # skipped: 02:30 on the night clocks go forward
        return back
    return moment
