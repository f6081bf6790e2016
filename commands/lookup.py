"""Finding what a command names: an endpoint by its slug, a change by its id or its
endpoint. One refusal text for each, so every command says the same thing."""

from __future__ import annotations

from commands.config import Endpoint
from commands.errors import Refusal
from commands.messages import escape
from commands.model import (
    Change,
)
from commands.runtime import Runtime


def find_change(rt: Runtime, ref: str | None, usage: str) -> Change:
    if not ref:
        raise Refusal(
            "which change?",
            f"Usage: `{usage}` — a change id like `CHG-12`, or an endpoint.",
            code="malformed",
        )
    change = rt.store.get_change(ref)
    if change is None and ref in rt.config.endpoints:
        change = rt.store.open_change(ref)
        if change is None:
            raise Refusal(f"`{ref}` has no open change", "See `/aiops changes`.", code="not_found")
    if change is None:
        raise Refusal(
            f"no change `{escape(ref)}`", "See `/aiops changes` for change ids.", code="not_found"
        )
    return change


def endpoint_of(rt: Runtime, slug: str | None, usage: str) -> Endpoint:
    if not slug:
        raise Refusal("which endpoint?", f"Usage: `{usage}`", code="malformed")
    ep = rt.config.endpoints.get(slug)
    if ep is None:
        known = ", ".join(f"`{s}`" for s in rt.config.endpoints) or "none"
        raise Refusal(
            f"unknown endpoint `{escape(slug)}`",
            f"Known endpoints: {known}.",
            code="unknown_endpoint",
        )
    return ep
