"""Command text: positionals, then `key=value` pairs; values may be quoted. And the
grammar of two values, pure and shared by the domain and the Slack forms (which check
them in the server process that acks): `at=` times (`parse_at`) and ticket references
(`TICKET_RE`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from commands.errors import Refusal
from commands.messages import escape


class ParseError(ValueError):
    """Malformed command text; the message says what was wrong.

    Messages quote what was typed, so they are escaped here, once, for every caller:
    echoing a bad token can never post a mention or a link.
    """

    def __init__(self, message: str) -> None:
        super().__init__(escape(message))


# A whole number as people type one: ASCII digits only. Python's `int()` also takes other
# scripts' digits (`٢`, `२`, `²`), underscores (`1_0`), signs and spaces; an option that
# reads `min=٢` as 2 acts on what most readers of the log cannot check.
_WHOLE = re.compile(r"-?[0-9]+", re.ASCII)


def whole_number(text: str) -> int | None:
    """`"25"` → 25, `"-1"` → -1 (the caller's range refuses it, saying so); None for
    anything but ASCII digits (a trailing `%` is the caller's)."""
    return int(text) if _WHOLE.fullmatch(text) else None


@dataclass
class Args:
    positionals: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        """`key=` as a whole number in [low, high] (ASCII digits, `%` allowed after), or
        `default` when absent; `ParseError` saying what to write otherwise."""
        raw = self.options.get(key)
        if raw is None:
            return default
        value = whole_number(raw.removesuffix("%"))
        if value is None:
            raise ParseError(
                f"`{key}={raw}` is not a whole number (digits 0–9); write e.g. `{key}={default}`"
            )
        if not low <= value <= high:
            raise ParseError(f"`{key}={raw}` is out of range; it must be {low}–{high}")
        return value

    def flag(self, key: str) -> bool:
        raw = self.options.get(key, "false").lower()
        if raw in ("true", "yes", "1"):
            return True
        if raw in ("false", "no", "0"):
            return False
        raise ParseError(f"`{key}={raw}` must be true or false")


# Slack turns straight quotes into curly ones when people type them; accept both.
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


def _show(fragment: str, width: int = 40) -> str:
    return fragment if len(fragment) <= width else fragment[: width - 1] + "…"


def _closing(text: str, quote: str, start: int) -> int:
    """Where the quote opened before `start` closes: the first `quote` followed by a space
    or the end (so `reason='it's fine'` keeps its apostrophe), else the first at all."""
    first = -1
    i = text.find(quote, start)
    while i != -1:
        if quote == '"' and text[i - 1] == "\\" and i - 1 >= start:
            i = text.find(quote, i + 1)
            continue
        if first == -1:
            first = i
        if i + 1 == len(text) or text[i + 1].isspace():
            return i
        i = text.find(quote, i + 1)
    return first


def tokens(text: str) -> list[str]:
    """The words of `text` (see `_words`)."""
    return [word for word, _ in _words(text)]


def _words(text: str) -> list[tuple[str, bool]]:
    """Words separated by spaces; a value may be quoted with `"` or `'`.

    A quote opens a quoted part only at the start of a word or of a value (`reason="…"`):
    elsewhere it is a character like any other, so `reason=can't` and `O'Brien` need no
    quoting. Inside double quotes `\\"` is a quote. An opened quote that is never closed is
    a `ParseError` that says how to write the value.
    """
    text = text.translate(_QUOTES)
    out: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, word, quoted = i, [], False
        while i < n and not text[i].isspace():
            ch = text[i]
            opens = ch in "\"'" and (
                i == start or (text[i - 1] == "=" and "=" not in text[start : i - 1])
            )
            if not opens:
                word.append(ch)
                i += 1
                continue
            close = _closing(text, ch, i + 1)
            if close == -1:
                key = text[start:i]
                typed = _show(text[start:].split("\n")[0])
                other = "'" if ch == '"' else '"'
                raise ParseError(
                    f"the `{ch}` that opens `{typed}` is never closed; end the value with"
                    f" `{ch}`, e.g. `{key}{ch}…{ch}`"
                    + (
                        f" (an apostrophe at the start of a value: quote it with `{other}`)"
                        if ch == "'"
                        else ""
                    )
                )
            inner = text[i + 1 : close]
            if ch == '"':
                inner = inner.replace('\\"', '"')
            word.append(inner)
            quoted = True
            i = close + 1
        out.append(("".join(word), quoted))
    return out


def parse(text: str, allowed: set[str], max_positionals: int) -> Args:
    args = Args()
    words = _words(text)
    last: tuple[str, str, bool] | None = None  # the last option: key, value, was it quoted
    for at, (token, quoted) in enumerate(words):
        key, sep, value = token.partition("=")
        if sep:
            key = key.strip().lower()
            if not key:
                raise ParseError(f"`{_show(token)}` has no name before `=`")
            if key not in allowed:
                names = ", ".join(f"`{a}=`" for a in sorted(allowed)) or "none"
                raise ParseError(f"unknown option `{_show(key)}=`; this command takes {names}")
            if key in args.options:
                raise ParseError(f"`{key}=` is given twice")
            args.options[key] = value.strip()
            last = (key, value, quoted)
        else:
            if last is not None:
                k, v, was_quoted = last
                if not was_quoted:  # `reason=can't deploy today`: the rest of the value
                    rest = [v]
                    for word, _ in words[at:]:
                        if "=" in word:
                            break
                        rest.append(word)
                    raise ParseError(
                        f"`{_show(token)}` comes after an option, `{k}={_show(v)}`: a value"
                        f' with spaces needs quotes, e.g. `{k}="{_show(" ".join(rest), 60)}"`'
                    )
                raise ParseError(
                    f"`{_show(token)}` comes after an option; put it before the `key=value` pairs"
                )
            args.positionals.append(token)
    if len(args.positionals) > max_positionals:
        extra = " ".join(args.positionals[max_positionals:])
        raise ParseError(f'unexpected `{_show(extra)}`; quote a reason, e.g. `reason="…"`')
    return args


# --- times and tickets: `at=` and `ticket=` values --------------------------------------

TICKET_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}-?[0-9]{1,12}$")
_AT_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S")
MAX_AHEAD = timedelta(days=60)


def parse_at(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """`2026-12-01 11:00` (or `11:00` for today) in the configured zone, as UTC.

    Refuses a time in the past, one the clocks skip or repeat (daylight saving: which of
    the two 02:30s would be a guess), or one more than 60 days ahead.
    """
    raw = " ".join(text.strip().split())
    local_now = now.astimezone(tz)
    naive: datetime | None = None
    if re.fullmatch(r"[0-9]{1,2}:[0-9]{2}", raw):
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
    if moment.utcoffset() != naive.replace(tzinfo=tz, fold=1).utcoffset():
        raise Refusal(
            f"{naive:%Y-%m-%d %H:%M} occurs twice in {zone} (the clocks go back over it)",
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
