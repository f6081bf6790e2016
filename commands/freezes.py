"""Change freezes: windows in the config during which deploys and promotes are refused.

```toml
[[freezes]]                      # weekly, in the configured time zone
name = "weekend"
weekly = { from = "fri 16:00", until = "mon 08:00" }
environments = ["prod"]          # default: ["prod"]

[[freezes]]                      # dated, local times in the configured time zone
name = "year-end"
from = 2026-12-23T17:00:00
until = 2027-01-05T08:00:00
```

Times are wall-clock times in `timezone` (a weekly window follows daylight saving, as
people read it). Rollback is never frozen: mitigation first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKLY_RE = re.compile(r"^\s*([a-z]{3})[a-z]*\s+([0-9]{1,2}):([0-9]{2})\s*$", re.IGNORECASE)
_WEEK = 7 * 24 * 60


class FreezeConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Freeze:
    name: str
    environments: tuple[str, ...] = ("prod",)
    # weekly: minutes since Monday 00:00 local; the window may wrap past Sunday
    weekly_from: int | None = None
    weekly_until: int | None = None
    # dated: local wall-clock datetimes in the configured zone (naive)
    start: datetime | None = None
    end: datetime | None = None

    def active(self, now: datetime, tz: ZoneInfo) -> bool:
        local = now.astimezone(tz)
        if self.weekly_from is not None and self.weekly_until is not None:
            minute = local.weekday() * 24 * 60 + local.hour * 60 + local.minute
            if self.weekly_from <= self.weekly_until:
                return self.weekly_from <= minute < self.weekly_until
            return minute >= self.weekly_from or minute < self.weekly_until
        assert self.start is not None and self.end is not None
        wall = local.replace(tzinfo=None)
        return self.start <= wall < self.end

    def describe(self, tz: ZoneInfo) -> str:
        zone = tz.key
        if self.weekly_from is not None and self.weekly_until is not None:
            return f"weekly {_weekly_text(self.weekly_from)} – {_weekly_text(self.weekly_until)} {zone}"
        assert self.start is not None and self.end is not None
        return f"{self.start.strftime('%Y-%m-%d %H:%M')} – {self.end.strftime('%Y-%m-%d %H:%M')} {zone}"


def _weekly_text(minute: int) -> str:
    day, rest = divmod(minute, 24 * 60)
    return f"{_DAYS[day].title()} {rest // 60:02d}:{rest % 60:02d}"


def _weekly(value: Any, key: str) -> int:
    match = _WEEKLY_RE.match(str(value))
    if not match or match[1].lower() not in _DAYS:
        raise FreezeConfigError(f"{key}: `{value}` is not a weekly time; write e.g. `fri 16:00`")
    hour, minute = int(match[2]), int(match[3])
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise FreezeConfigError(f"{key}: `{value}` is not a time of day")
    return (_DAYS.index(match[1].lower()) * 24 * 60 + hour * 60 + minute) % _WEEK


def _local(value: Any, key: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise FreezeConfigError(
                f"{key}: write a local time without an offset; freezes are in the configured"
                " timezone"
            )
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    if isinstance(value, str):
        try:
            return _local(datetime.fromisoformat(value), key)
        except ValueError:
            pass
    raise FreezeConfigError(f"{key}: `{value}` is not a date or local date-time")


def parse_freezes(data: Any, environments: set[str]) -> tuple[Freeze, ...]:
    """The `[[freezes]]` array of the config; errors name the key."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise FreezeConfigError("`freezes` must be an array of tables: write `[[freezes]]`")
    out: list[Freeze] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise FreezeConfigError(f"freezes[{i}] must be a table")
        name = str(item.get("name") or f"freeze-{i + 1}")
        key = f"freezes[{i}] ({name})"
        unknown = set(item) - {"name", "weekly", "from", "until", "environments"}
        if unknown:
            raise FreezeConfigError(f"{key}: unknown keys {sorted(unknown)}")
        envs = tuple(str(e) for e in item.get("environments", ["prod"]))
        for env in envs:
            if env not in environments:
                raise FreezeConfigError(f"{key}.environments: unknown environment `{env}`")
        weekly = item.get("weekly")
        if weekly is not None:
            if not isinstance(weekly, dict) or {"from", "until"} - set(weekly):
                raise FreezeConfigError(
                    f'{key}.weekly: write `weekly = {{ from = "fri 16:00", until = "mon 08:00" }}`'
                )
            if "from" in item or "until" in item:
                raise FreezeConfigError(f"{key}: a freeze is weekly or dated, not both")
            start = _weekly(weekly["from"], f"{key}.weekly.from")
            end = _weekly(weekly["until"], f"{key}.weekly.until")
            if start == end:
                raise FreezeConfigError(f"{key}.weekly: `from` and `until` are the same time")
            out.append(Freeze(name, envs, weekly_from=start, weekly_until=end))
            continue
        if "from" not in item or "until" not in item:
            raise FreezeConfigError(f"{key}: give `weekly = {{…}}`, or both `from` and `until`")
        begin, finish = _local(item["from"], f"{key}.from"), _local(item["until"], f"{key}.until")
        if finish <= begin:
            raise FreezeConfigError(f"{key}: `until` must be after `from`")
        out.append(Freeze(name, envs, start=begin, end=finish))
    return tuple(out)


def active_freeze(
    freezes: tuple[Freeze, ...], environment: str, now: datetime, tz: ZoneInfo
) -> Freeze | None:
    return next((f for f in freezes if environment in f.environments and f.active(now, tz)), None)
