"""Who may do what, per environment."""

from __future__ import annotations

from collections.abc import Callable

from commands.config import Environment

# Resolves a Slack user-group id to its members at decision time (the edge supplies it).
GroupResolver = Callable[[str], set[str]]


def _member(actor_id: str, allowed: tuple[str, ...], groups: GroupResolver | None) -> bool:
    if actor_id in allowed:
        return True
    for entry in allowed:
        if entry.startswith("S") and groups is not None and actor_id in groups(entry):
            return True
    return False


def may_request(env: Environment, actor_id: str, groups: GroupResolver | None = None) -> bool:
    return not env.requesters or _member(actor_id, env.requesters, groups)


def may_approve(env: Environment, actor_id: str, groups: GroupResolver | None = None) -> bool:
    return _member(actor_id, env.approvers, groups)


def may_break_glass(env: Environment, actor_id: str, groups: GroupResolver | None = None) -> bool:
    return _member(actor_id, env.break_glass, groups)
