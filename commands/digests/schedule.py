"""When digests are due: the `[digests]` table (per-environment channel, zone, days and
times, late and missed windows), read and checked once at start.

Kept apart from `commands.changes.schedule` (changes scheduled with `at=`), so that the config can
be checked without the execution machinery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from commands.config import Config, ConfigError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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
    items = value if isinstance(value, list) else str(value).replace(" ", "").split(",")
    days: set[int] = set()
    for item in items:
        text = str(item).strip().lower()[:3] if "-" not in str(item) else str(item).lower()
        if text in ("dai", "all", "eve"):
            days.update(range(7))
        elif text in ("wee",):  # "weekdays"
            days.update(range(5))
        elif "-" in text:
            a, _, b = text.partition("-")
            if a[:3] not in DAY_NAMES or b[:3] not in DAY_NAMES:
                raise ConfigError(f"{key}: `{item}` is not a day range; write e.g. `mon-fri`")
            i, j = DAY_NAMES.index(a[:3]), DAY_NAMES.index(b[:3])
            days.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif text in DAY_NAMES:
            days.add(DAY_NAMES.index(text))
        else:
            raise ConfigError(
                f'{key}: `{item}` is not a day; write e.g. `mon-fri`, `daily` or `["mon", "thu"]`'
            )
    if not days:
        raise ConfigError(f"{key}: no days given")
    return tuple(sorted(days))


def _clock_time(value: Any, key: str) -> time | None:
    if value is False or value in ("off", "none", ""):
        return None
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ConfigError(f"{key}: `{value}` is not a time of day; write e.g. `08:30`")
    return time(int(match[1]), int(match[2]))


def _duration(value: Any, key: str) -> timedelta:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", str(value).strip().lower())
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if not match:
        raise ConfigError(f"{key}: `{value}` is not a duration; write e.g. `90s`, `30m` or `2h`")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return timedelta(seconds=float(match[1]) * unit)


def _zone(value: Any, key: str) -> ZoneInfo:
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"{key}: unknown time zone `{value}`") from exc


_SCHEDULE_KEYS = {"channel", "timezone", "days", "morning", "eod", "enabled"}
_TOP_KEYS = _SCHEDULE_KEYS | {
    "environments",
    "misfire_grace",
    "late_after",
    "spike_factor",
    "chart",
    "housekeeping_seconds",
}


def digest_settings(config: Config) -> DigestSettings:
    """The `[digests]` table: defaults, then `[digests.<environment>]` overrides."""
    raw = config.raw.get("digests", {})
    if not isinstance(raw, dict):
        raise ConfigError("`digests` must be a table")
    overrides = {k: v for k, v in raw.items() if isinstance(v, dict)}
    unknown = set(raw) - _TOP_KEYS - set(overrides)
    if unknown:
        raise ConfigError(f"digests: unknown keys {sorted(unknown)}")
    for name in overrides:
        if name not in config.environments:
            raise ConfigError(f"digests.{name}: unknown environment `{name}`")
        extra = set(overrides[name]) - _SCHEDULE_KEYS
        if extra:
            raise ConfigError(f"digests.{name}: unknown keys {sorted(extra)}")
    with_endpoints = [
        n for n in config.environments if any(e.environment == n for e in config.endpoints.values())
    ]
    names = raw.get("environments", with_endpoints)
    if not isinstance(names, list) or any(n not in config.environments for n in names):
        raise ConfigError(
            f"digests.environments: `{names}` must list environments of [environments]"
        )
    schedules: dict[str, DigestSchedule] = {}
    for name in [str(n) for n in names]:
        merged = {k: v for k, v in raw.items() if k in _SCHEDULE_KEYS} | overrides.get(name, {})
        if merged.get("enabled", True) is False:
            continue
        key = f"digests.{name}" if name in overrides else "digests"
        schedules[name] = DigestSchedule(
            environment=name,
            channel=str(merged.get("channel", config.channels.ops)),
            timezone=_zone(merged["timezone"], f"{key}.timezone")
            if "timezone" in merged
            else config.timezone,
            days=parse_days(merged.get("days", "mon-fri"), f"{key}.days"),
            morning=_clock_time(merged.get("morning", "08:30"), f"{key}.morning"),
            eod=_clock_time(merged.get("eod", "17:30"), f"{key}.eod"),
        )
    try:
        spike = float(raw.get("spike_factor", 1.5))
        every = float(raw.get("housekeeping_seconds", 30))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"digests: {exc}") from None
    if spike <= 1 or every <= 0:
        raise ConfigError("digests: spike_factor must be > 1 and housekeeping_seconds > 0")
    return DigestSettings(
        schedules=schedules,
        misfire_grace=_duration(raw.get("misfire_grace", "2h"), "digests.misfire_grace"),
        late_after=_duration(raw.get("late_after", "2m"), "digests.late_after"),
        spike_factor=spike,
        chart=bool(raw.get("chart", True)),
        housekeeping_seconds=every,
    )


def local_time(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`day at` in `tz`; a time the clocks skip (DST) moves forward by the gap."""
    naive = datetime.combine(day, at)
    moment = naive.replace(tzinfo=tz)
    back = moment.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if back.replace(tzinfo=None) != naive:  # skipped: 02:30 on the night clocks go forward
        return back
    return moment
