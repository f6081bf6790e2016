"""Renderer-neutral replies: the domain says what to show; bot/ turns it into Block Kit
or terminal text. Text is Slack mrkdwn; anything a person typed goes through `escape`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from commands.model import NEW, TrafficSplit

if TYPE_CHECKING:
    from commands.config import Thresholds
    from commands.model import EndpointHealth


def escape(text: str) -> str:
    """Make typed text inert in mrkdwn: no `@channel`, mentions or forged links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ESCAPED = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}


def unescape(text: str) -> str:
    """The inverse of `escape`, in one pass: a message composed as mrkdwn (a refusal that
    quotes what was typed) back as plain text, to be stored and escaped again when shown."""
    return _ESCAPED.sub(lambda m: _UNESCAPED[m[1]], text)


def code(typed: str) -> str:
    """Typed text quoted as inline code: escaped (`escape`), and a backtick in it shown as
    `'` (one would close the code span and let the rest render as mrkdwn)."""
    inert = escape(typed).replace("`", "'")
    return f"`{inert}`"


# A name the typed text begins (nearly: `gema` for `gemma-3-1b-it`) counts from 3 letters,
# at this likeness to as many of the name's first letters (one more, for a letter left out).
_PREFIX_MIN = 3
_PREFIX_CUTOFF = 0.8


def _likeness(typed: str, name: str) -> float:
    whole = difflib.SequenceMatcher(None, typed, name).ratio()
    if len(typed) < _PREFIX_MIN or len(name) <= len(typed):
        return whole
    head = difflib.SequenceMatcher(None, typed, name[: len(typed) + 1]).ratio()
    return max(whole, head if head >= _PREFIX_CUTOFF else 0.0)


def did_you_mean(typed: str, known: Iterable[str]) -> str:
    """`; did you mean `x`?` naming the known names closest to what was typed (up to three,
    closest first, case ignored): close as a whole (difflib's 0.6), or a near prefix of
    one (`gema` → `gemma-3-1b-it`); "" when none is close. The names are escaped like
    typed text; `typed` itself is only compared, the caller quotes it (escaped)."""
    by_folded: dict[str, str] = {}
    for name in known:
        by_folded.setdefault(name.casefold(), name)
    folded = typed.casefold()
    # closest first; ties as difflib's get_close_matches orders them (the larger name first)
    scored = sorted(((_likeness(folded, name), name) for name in by_folded), reverse=True)
    close = [name for score, name in scored if score >= 0.6][:3]
    if not close:
        return ""
    names = [f"`{escape(by_folded[c])}`" for c in close]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"; did you mean {listed}?"


def mention(slack_id: str) -> str:
    if slack_id.startswith("S"):
        return f"<!subteam^{slack_id}>"
    if slack_id[:1] in ("U", "W"):
        return f"<@{slack_id}>"
    return slack_id  # `bot`, `scheduler`


@dataclass(frozen=True)
class Header:
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Fields:
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Context:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Divider:
    pass


@dataclass(frozen=True)
class Confirm:
    """The dialog shown before a button acts: what it does, named plainly (plain text, not
    mrkdwn; the renderer cuts it to Slack's limits: title 100, text 300, labels 30)."""

    title: str  # `Approve CHG-12?`
    text: str  # the change and the traffic it moves
    ok: str  # the confirming button's label
    deny: str = "Go back"


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str  # e.g. `approve`
    value: str  # e.g. the change id
    typed: str  # the typed equivalent, e.g. `/aiops approve CHG-7`
    style: Literal["primary", "danger"] | None = None
    confirm: Confirm | None = None  # asked before the click is sent


@dataclass(frozen=True)
class Buttons:
    buttons: tuple[Button, ...]


Block = Header | Text | Fields | Context | Divider | Buttons


@dataclass
class Reply:
    """What a command answers. `ephemeral` replies are seen by the asker only."""

    text: str  # the notification / fallback text
    blocks: list[Block] = field(default_factory=list)
    ephemeral: bool = True
    ok: bool = True

    @classmethod
    def refusal(cls, text: str, *, hint: str | None = None) -> Reply:
        blocks: list[Block] = [Text(f":no_entry: {text}")]
        if hint:
            blocks.append(Context((hint,)))
        return cls(text=text, blocks=blocks, ephemeral=True, ok=False)

    @classmethod
    def info(cls, text: str) -> Reply:
        return cls(text=text, blocks=[Text(text)], ephemeral=True)


@dataclass
class Post:
    """A message the domain wants in a channel (or a DM), optionally in a change's thread."""

    channel: str
    reply: Reply
    change_id: str | None = None  # the change whose message this is / whose thread it joins
    thread_ts: str | None = None  # reply in this message's thread
    update: bool = False  # replace the message at `ts` rather than post a new one
    ts: str | None = None


# --- how times and health figures are written, wherever they appear --------------------


def when(at: datetime | None, tz: ZoneInfo) -> str:
    if at is None:
        return "—"
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def health_line(h: EndpointHealth | None, th: Thresholds) -> str:
    if h is None:
        return "no figures yet"
    parts = []
    for label, value, limit, fmt in (
        ("P95", h.p95_latency_ms, th.p95_latency_ms, "{:.0f} ms"),
        ("errors", h.error_rate, th.error_rate, "{:.2%}"),
        ("drift", h.drift, th.drift, "{:.3f}"),
    ):
        if value is None:
            parts.append(f"{label} n/a")
        else:
            mark = " :warning:" if value > limit else ""
            parts.append(f"{label} {fmt.format(value)}{mark}")
    return " · ".join(parts)


def breaches(h: EndpointHealth, th: Thresholds) -> list[str]:
    out = []
    if h.p95_latency_ms is not None and h.p95_latency_ms > th.p95_latency_ms:
        out.append(f"P95 {h.p95_latency_ms:.0f} ms > {th.p95_latency_ms:.0f} ms")
    if h.error_rate is not None and h.error_rate > th.error_rate:
        out.append(f"error rate {h.error_rate:.2%} > {th.error_rate:.0%}")
    if h.drift is not None and h.drift > th.drift:
        out.append(f"drift {h.drift:.3f} > {th.drift}")
    return out


def health_score(h: EndpointHealth, th: Thresholds) -> float:
    """How close to (or past) its worst threshold an endpoint is: above 1 it breaches.
    What "worst first" means wherever endpoints are listed (status, digests)."""
    ratios = [0.0]
    if h.p95_latency_ms is not None:
        ratios.append(h.p95_latency_ms / th.p95_latency_ms)
    if h.error_rate is not None:
        ratios.append(h.error_rate / th.error_rate if th.error_rate else 0.0)
    if h.drift is not None:
        ratios.append(h.drift / th.drift if th.drift else 0.0)
    return max(ratios)


def split_text(split: TrafficSplit, labels: dict[str, str], new_label: str | None = None) -> str:
    if not split:
        return "nothing"
    parts = []
    for key, share in sorted(split.items(), key=lambda kv: (-kv[1], kv[0])):
        label = new_label if key == NEW and new_label else labels.get(key, key)
        parts.append(f"{label} {share}%")
    return " · ".join(parts)
