"""Command text: positionals, then `key=value` pairs; values may be quoted."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from commands.messages import escape


class ParseError(ValueError):
    """Malformed command text; the message says what was wrong.

    Messages quote what was typed, so they are escaped here, once, for every caller:
    echoing a bad token can never post a mention or a link.
    """

    def __init__(self, message: str) -> None:
        super().__init__(escape(message))


@dataclass
class Args:
    positionals: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            value = int(raw.rstrip("%"))
        except ValueError:
            raise ParseError(
                f"`{key}={raw}` is not a whole number; write e.g. `{key}={default}`"
            ) from None
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


def parse(text: str, allowed: set[str], max_positionals: int) -> Args:
    try:
        tokens = shlex.split(text.translate(_QUOTES))
    except ValueError as exc:
        raise ParseError(f"cannot read the arguments ({exc}); close every quote") from None
    args = Args()
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep:
            key = key.strip().lower()
            if not key:
                raise ParseError(f"`{token}` has no name before `=`")
            if key not in allowed:
                names = ", ".join(f"`{a}=`" for a in sorted(allowed)) or "none"
                raise ParseError(f"unknown option `{key}=`; this command takes {names}")
            if key in args.options:
                raise ParseError(f"`{key}=` is given twice")
            args.options[key] = value.strip()
        else:
            if args.options:
                raise ParseError(
                    f"`{token}` comes after an option; put it before the `key=value` pairs"
                )
            args.positionals.append(token)
    if len(args.positionals) > max_positionals:
        extra = " ".join(args.positionals[max_positionals:])
        raise ParseError(f'unexpected `{extra}`; quote a reason, e.g. `reason="…"`')
    return args
