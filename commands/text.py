"""Typed text at the bot's edges: taken in once, let out once.

Why: people type free text (reasons, ids, names of things) and Slack hands it over
encoded — `&`, `<`, `>` as `&amp;`, `&lt;`, `&gt;`, mentions as `<@U1|alice>`, links as
`<https://x|label>`. Decoding it in one place, exactly once, is what keeps `p95 < 2s &
errors ok` from being stored as `p95 &lt; 2s &amp; errors ok` and shown double-encoded;
checking it in one place is what
keeps a NUL byte, an escape sequence or a right-to-left override out of the database, the
audit and every reply; masking it as it comes in is what keeps a date of birth typed
where a reason was expected out of an error message that quotes it.

In: `from_slack` (the Slack edge, for a slash command's text) undoes Slack's encoding;
`admit` (the first thing `Service.handle` does, so that a refusal is audited like any
other) enforces the limits and masks PII, so that the domain only ever sees masked,
plain text.

Out: `outbound` / `outbound_value` for everything that is stored or exported as text
(audit fields, free-text columns): PII masked, invisible characters made visible.
Slack's own limits are met with `cut`, which never splits an entity, a mention or a link.
Replies are Slack mrkdwn: typed text in them goes through `messages.escape` once, where
the reply is composed; `messages.unescape` turns such a message back into plain text
before it is stored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from commands.errors import Refusal
from commands.model import Invocation

# `commands.redaction` is imported where it is used: the server process that only acks
# decodes with `from_slack` and must not pay for compiling the redaction patterns.

MAX_TEXT: Final = 2000
"""Characters of a command's text (after Slack's encoding is undone): a reason of a
paragraph fits; longer belongs in the change ticket."""
MAX_COMMAND: Final = 40
"""Characters of the command word itself (`/deploy`)."""
STORED_MAX: Final = 10 * MAX_TEXT
"""Characters of one stored text field; more (a refused, over-long text's audit copy) is
cut, saying how much was left out."""

# --------------------------------------------------------------------------------- in

_SLACK = re.compile(r"<([^<>]*)>|&(amp|lt|gt);")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_CHARS: Final = {"amp": "&", "lt": "<", "gt": ">"}
_SPECIAL: Final = {"here", "channel", "everyone"}


def _entities(text: str) -> str:
    return _ENTITY.sub(lambda m: _CHARS[m[1]], text)


def _markup(inner: str) -> str:
    """One `<…>` of Slack's as plain readable text."""
    target, bar, label = inner.partition("|")
    target, label = _entities(target), _entities(label).strip()
    if target.startswith("@"):  # <@U123|alice>
        return "@" + (label.lstrip("@") or target[1:])
    if target.startswith("#"):  # <#C123|ops>
        return "#" + (label.lstrip("#") or target[1:])
    if target.startswith("!"):
        word = target[1:]
        if word.startswith("subteam^"):  # <!subteam^S123|@oncall>
            return "@" + (label.lstrip("@") or word.removeprefix("subteam^"))
        if word in _SPECIAL:  # <!here>
            return "@" + word
        return label or word  # <!date^…|fallback>
    if not bar or not label:  # <https://x>
        return target
    bare = re.sub(r"^(?:[a-z][a-z0-9+.-]*:(?://)?)", "", target, flags=re.IGNORECASE)
    if label in (target, bare, bare.rstrip("/")):  # auto-linked as typed: example.com
        return label
    return f"{label} ({target})"


def from_slack(raw: str) -> str:
    """Slack's encoding of typed text undone, exactly once, in one pass.

    `&lt;` `&gt;` `&amp;` become `<` `>` `&` (so `&amp;lt;` becomes `&lt;`, as typed);
    `<@U1|alice>` → `@alice`, `<#C1|ops>` → `#ops`, `<!subteam^S1|@oncall>` → `@oncall`,
    `<!here>` → `@here`, `<https://x|label>` → `label (https://x)`, `<https://x>` →
    `https://x`. Text far over `MAX_TEXT` is left as it is: `admit` refuses it unread.
    """
    if len(raw) > 4 * MAX_TEXT:
        return raw
    return _SLACK.sub(lambda m: _markup(m[1]) if m[1] is not None else _CHARS[m[2]], raw)


# C0 and C1 controls and DEL, except tab and newline; the Unicode Bidi_Control set; and
# the invisible format characters (soft hyphen, zero-width space / joiners, word joiner
# and invisible operators, byte-order mark, Mongolian vowel separator), which split a
# card number or a name so that no pattern sees it, and show nothing.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f"
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_INVISIBLE = "\u00ad\u180e\u200b-\u200d\u2060-\u2064\ufeff"
_FORBIDDEN = re.compile(f"[{_CONTROL}{_BIDI}{_INVISIBLE}]")
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
# Fullwidth ASCII (`４１１１`, `＠`) and the ideographic space as the plain characters, so
# that the masking sees the card number or address they spell. Only these: a wider
# normalisation (NFKC) would also rewrite `…` and `²` in what people wrote.
_FULLWIDTH: Final = str.maketrans(
    {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
)
_CONTROL_NAMES: Final = {
    0x00: "NUL",
    0x07: "BEL",
    0x08: "backspace",
    0x0B: "vertical tab",
    0x0C: "form feed",
    0x0D: "carriage return",
    0x1B: "ESC",
    0x7F: "DEL",
}


def char_name(ch: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`, `U+0000 NUL`."""
    code = ord(ch)
    name = _CONTROL_NAMES.get(code) or unicodedata.name(ch, "control character")
    return f"U+{code:04X} {name}"


def check(text: str, what: str = "the command's text", limit: int = MAX_TEXT) -> None:
    """Refuse text over `limit` characters, or holding a control character (other than tab
    and newline), a bidirectional-override mark or an invisible format character. Length
    first, before anything reads it."""
    if len(text) > limit:
        raise Refusal(
            f"{what} is {len(text):,} characters long; the limit is {limit:,}",
            "Shorten it: a reason of a few sentences, with the details in the change ticket"
            " (`ticket=CHG-1234`).",
            code="too_long",
        )
    found = _FORBIDDEN.search(text)
    if found is None:
        return
    ch = found.group()
    where = f"at character {found.start() + 1}"
    if re.fullmatch(f"[{_BIDI}]", ch):
        raise Refusal(
            f"{what} holds a bidirectional-override mark ({char_name(ch)}) {where}; it can"
            " make text read differently from what it is, so it is refused",
            "Retype the text without it (it is invisible: paste as plain text, or type it).",
            code="bidi_character",
        )
    if re.fullmatch(f"[{_INVISIBLE}]", ch):
        raise Refusal(
            f"{what} holds an invisible character ({char_name(ch)}) {where}; it can hide"
            " what the text says from the masking and from people, so it is refused",
            "Retype the text, or paste it as plain text.",
            code="invisible_character",
        )
    raise Refusal(
        f"{what} holds a control character ({char_name(ch)}) {where}; only tab and"
        " newline are allowed",
        "Retype the text, or paste it as plain text: invisible characters are refused so that"
        " what is shown and audited is what was typed.",
        code="control_character",
    )


def admit(inv: Invocation) -> Invocation:
    """The invocation as the domain may see it: within the limits (else a `Refusal`,
    raised before any parsing) and with PII masked, so that nothing downstream — a parse
    error quoting a fragment, a stored reason, a log line — can hold it unmasked."""
    check(inv.command, "the command", MAX_COMMAND)
    check(inv.text)
    from commands.redaction import redact

    masked = redact(inv.text.translate(_FULLWIDTH))  # `４１１１ …` is a card number too
    return inv if masked == inv.text else replace(inv, text=masked)


# -------------------------------------------------------------------------------- out


def visible(text: str) -> str:
    """Control and bidirectional-override characters as `[U+0000]`: they never reach a
    database (PostgreSQL refuses NUL in text), a terminal or an auditor's screen. Invisible
    format characters are dropped (they show nothing, and left in they would split a value
    so that the masking does not see it); the refusal that names them says where they
    were. Fullwidth ASCII becomes plain ASCII (`４` → `4`), as on the way in."""
    text = _INVISIBLE_RE.sub("", text).translate(_FULLWIDTH)
    if _FORBIDDEN.search(text) is None:
        return text
    return _FORBIDDEN.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def _capped(text: str) -> str:
    if len(text) <= STORED_MAX:
        return text
    return text[:STORED_MAX] + f"… [{len(text) - STORED_MAX:,} more characters]"


def outbound(text: str) -> str:
    """Text as it may be stored or exported: PII masked, invisible characters visible,
    at most `STORED_MAX` characters (cut after the masking, so no cut splits a value)."""
    from commands.redaction import redact

    return _capped(redact(visible(text)))


def _each_string(obj: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {(fn(k) if isinstance(k, str) else k): _each_string(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_each_string(v, fn) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_each_string(v, fn) for v in obj)
    return obj


def outbound_value(obj: Any) -> Any:
    """`outbound` for a JSON-like value; a dict key labels its value for the masking."""
    from commands.redaction import redact_value

    return _each_string(redact_value(_each_string(obj, visible)), _capped)


_ENTITY_AT = re.compile(r"&(?:amp|lt|gt|#?[0-9A-Za-z]{1,8});")


def cut(text: str, limit: int, ellipsis: str = "…") -> str:
    """Slack mrkdwn in at most `limit` characters, ending in `ellipsis` when shortened.

    The cut never falls inside an entity (`&amp;`) or a `<…>` — a mention (`<@U1>`), a
    channel or a link (`<https://x|label>`): in mrkdwn a `<` always opens one (typed `<`
    arrive escaped), so the cut moves back to before it. Nor does it separate a letter
    from the combining mark after it.
    """
    if len(text) <= limit:
        return text
    end = max(0, limit - len(ellipsis))
    opened = text.rfind("<", 0, end)
    if opened != -1 and text.find(">", opened, end) == -1:
        end = opened
    amp = text.rfind("&", max(0, end - 9), end)
    if amp != -1:
        entity = _ENTITY_AT.match(text, amp)
        if entity is not None and entity.end() > end:
            end = amp
    while 0 < end < len(text) and unicodedata.combining(text[end]):
        end -= 1
    return text[:end] + ellipsis
