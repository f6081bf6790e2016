"""Time in the domain: when digests are due (the `[digests]` config) and changes scheduled
with `at=` — parsed in the configured zone, approved before their time, started at it.

The scheduler in `bot/scheduler.py` decides *that* a job runs once; this module decides
*what* the job means.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from commands import execution
from commands.config import Config, ConfigError
from commands.errors import Refusal
from commands.messages import escape
from commands.model import OPEN_STATES, SCHEDULER, Change, ChangeState
from commands.runtime import Runtime
from commands.views import when

RUN_AT = "run_at"  # the key in `change.extra` holding a scheduled change's time (UTC, ISO)

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


# --- scheduled changes -----------------------------------------------------------------


def local_time(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`day at` in `tz`; a time the clocks skip (DST) moves forward by the gap."""
    naive = datetime.combine(day, at)
    moment = naive.replace(tzinfo=tz)
    back = moment.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if back.replace(tzinfo=None) != naive:  # skipped: 02:30 on the night clocks go forward
        return back
    return moment


_AT_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S")
MAX_AHEAD = timedelta(days=60)


def parse_at(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """`2026-12-01 11:00` (or `11:00` for today) in the configured zone, as UTC.

    Refuses a time in the past, one the clocks skip, or one more than 60 days ahead.
    """
    raw = " ".join(text.strip().split())
    local_now = now.astimezone(tz)
    naive: datetime | None = None
    if re.fullmatch(r"\d{1,2}:\d{2}", raw):
        hour, minute = (int(x) for x in raw.split(":"))
        if hour < 24 and minute < 60:
            naive = datetime.combine(local_now.date(), time(hour, minute))
    else:
        for fmt in _AT_FORMATS:
            try:
                naive = datetime.strptime(raw, fmt)
                break
            except ValueError:
                continue
    zone = getattr(tz, "key", str(tz))
    if naive is None:
        raise Refusal(
            f"`at={escape(text)}` is not a time",
            f'Write `at="2026-12-01 11:00"` (in {zone}), or `at=11:00` for today.',
            code="malformed",
        )
    moment = naive.replace(tzinfo=tz)
    if moment.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) != naive:
        raise Refusal(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks skip it)",
            "Pick a time outside the daylight-saving change.",
            code="malformed",
        )
    utc = moment.astimezone(ZoneInfo("UTC"))
    if utc <= now:
        raise Refusal(
            f"`at={escape(text)}` is in the past (it is {local_now:%Y-%m-%d %H:%M %Z} now)",
            "Give a future time, or leave `at=` out to run it now.",
            code="malformed",
        )
    if utc - now > MAX_AHEAD:
        raise Refusal(
            f"`at={escape(text)}` is more than 60 days ahead",
            "Schedule changes at most 60 days out; plans go stale.",
            code="malformed",
        )
    return utc


def run_at(change: Change) -> datetime | None:
    value = change.extra.get(RUN_AT)
    return datetime.fromisoformat(value) if value else None


def is_later(change: Change, now: datetime) -> bool:
    """A scheduled change whose time has not come: approval must not start it."""
    at = run_at(change)
    return at is not None and at > now


def scheduled_changes(
    rt: Runtime,
    environment: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Change]:
    """Open changes scheduled in [start, end), soonest first."""
    out = []
    for change in rt.store.list_changes(states=sorted(OPEN_STATES), limit=1000):
        at = run_at(change)
        if at is None or (environment and change.environment != environment):
            continue
        if (start is None or at >= start) and (end is None or at < end):
            out.append(change)
    return sorted(out, key=lambda c: run_at(c) or c.created_at)


def _fail_scheduled(
    rt: Runtime, change: Change, old: ChangeState, new: ChangeState, why: str
) -> Change | None:
    now = rt.clock()
    fields: dict[str, Any] = {"error": why, "updated_at": now}
    if new is ChangeState.EXPIRED:
        fields |= {"decided_by": SCHEDULER.id, "decided_at": now}
    done = rt.store.transition(change.id, old, new, **fields)
    if done is None:
        return None
    rt.auditor.record(
        "scheduled_run",
        SCHEDULER.id,
        new.value,
        change=done,
        parameters={RUN_AT: change.extra.get(RUN_AT), "state_before": old.value, "why": why},
    )
    execution.refresh_card(rt, done)
    execution.thread(rt, done, f":x: {why}")
    execution.tell(rt, done.requester_id, f"{done.id} ({done.kind.value} {done.endpoint}): {why}")
    return done


def start_due_changes(rt: Runtime, grace: timedelta = timedelta(hours=2)) -> list[tuple[str, str]]:
    """Start scheduled changes whose time has come, if approved; fail the rest, clearly.

    Returns (change id, what happened) pairs. Safe to call from every replica: every move
    is a compare-and-set, and the run itself is `execution.execute`'s approved → running.
    """
    now = rt.clock()
    out: list[tuple[str, str]] = []
    for change in rt.store.list_changes(
        states=[ChangeState.PENDING_APPROVAL, ChangeState.APPROVED], limit=1000
    ):
        at = run_at(change)
        if at is None or at > now:
            continue
        stamp = when(at, rt.config.timezone)
        if change.state is not ChangeState.APPROVED:
            why = (
                f"{change.id} was scheduled for {stamp} but was not approved by then; it did not"
                " run. Plan it again with a new `at=`."
            )
            if _fail_scheduled(rt, change, change.state, ChangeState.EXPIRED, why):
                out.append((change.id, "expired"))
            continue
        if now - at > grace:
            why = (
                f"{change.id} was scheduled for {stamp} and missed its time by more than"
                f" {_span(grace)} (the bot was not running); it did not run. Plan it again."
            )
            if _fail_scheduled(rt, change, ChangeState.APPROVED, ChangeState.FAILED, why):
                out.append((change.id, "failed"))
            continue
        holder = rt.store.open_change(change.endpoint)
        if holder is not None and holder.id != change.id:
            why = f"{change.id} could not run at {stamp}: `{change.endpoint}` is busy with {holder.id}."
            if _fail_scheduled(rt, change, ChangeState.APPROVED, ChangeState.FAILED, why):
                out.append((change.id, "failed"))
            continue
        rt.auditor.record(
            "scheduled_run",
            SCHEDULER.id,
            "starting",
            change=change,
            parameters={
                RUN_AT: change.extra.get(RUN_AT),
                "late_by_s": int((now - at).total_seconds()),
            },
        )
        execution.thread(rt, change, f":alarm_clock: {stamp}: starting {change.id} as scheduled.")
        rt.background.submit(functools.partial(execution.execute, rt, change.id))
        out.append((change.id, "started"))
    return out


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def describe_runs(pairs: Sequence[tuple[str, str]]) -> str:
    return ", ".join(f"{cid} {what}" for cid, what in pairs) or "nothing due"
