"""The one duration grammar: config keys (`approval_ttl`, `[canary] interval`, digest
windows), `since=` in `/aiops audit` and `--since` of the CLI all read durations here, so
they accept the same forms and refuse with the same message.

A duration is one or more `<number><unit>` parts, largest unit first, each unit at most
once, case-insensitive, optionally separated by spaces:

    90s   30m   4h   1h30m   1.5h   7d   2w   1d 12h

Units: `w` weeks, `d` days, `h` hours, `m` minutes, `s` seconds. A bare number is not a
duration (seconds? minutes?): it is refused rather than guessed.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS: dict[str, float] = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
FORMS = "`30m`, `4h`, `1h30m`, `7d` or `2w` (units w, d, h, m, s)"
# 100 years: far beyond any window the bot has, short of timedelta's overflow.
LONGEST = timedelta(days=36500)

# ASCII digits only (`\d` would take `٢h`, other scripts' digits, as 2 hours)
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([wdhms])", re.IGNORECASE)
# JSON Schema pattern of the same grammar (order and repeats are checked in code only).
PATTERN = r"^\s*([0-9]+(\.[0-9]+)?\s*[wdhmsWDHMS]\s*)+$"


class DurationError(ValueError):
    """`str(exc)` is the whole message: what was given and the forms that are accepted."""


def message(text: object) -> str:
    return f"`{text}` is not a duration; write e.g. {FORMS}"


def parse_duration(text: str) -> timedelta:
    """`"1h30m"` → `timedelta(hours=1, minutes=30)`; `DurationError` for anything else
    (wrong type, unknown unit, units out of order or repeated, longer than 100 years)."""
    if not isinstance(text, str) or isinstance(text, bool):
        raise DurationError(message(text))
    pos, seconds, last_rank = 0, 0.0, -1
    order = list(UNITS)
    stripped = text.rstrip()
    if not stripped.strip():
        raise DurationError(message(text))
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None:
            raise DurationError(message(text))
        rank = order.index(match[2].lower())
        if rank <= last_rank:  # `30m1h`, `1h1h`: almost surely a typo
            raise DurationError(message(text))
        last_rank = rank
        seconds += float(match[1]) * UNITS[match[2].lower()]
        pos = match.end()
    if seconds > LONGEST.total_seconds():
        raise DurationError(f"`{text}` is longer than 100 years; write e.g. {FORMS}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest form `parse_duration` reads back to the same whole seconds."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        n, total = divmod(total, int(size))
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
