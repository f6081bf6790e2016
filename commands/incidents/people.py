"""Who may respond, and the people a command names as commander or on-call."""

from __future__ import annotations

import re

from commands.changes.rules import may_request
from commands.errors import Refusal
from commands.messages import did_you_mean, escape, mention
from commands.model import Actor
from commands.runtime import Runtime

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def require_responder(rt: Runtime, actor: Actor, environment: str | None, verb: str) -> None:
    """Responding (declaring, acknowledging, resolving, paging someone) is for the people
    who may request changes where the incident is: those who would mitigate it. An
    incident on no endpoint: anyone who may request in some environment. Read-only people
    (an auditor) see incidents but do not move them."""
    envs = (
        [rt.config.environments[environment]]
        if environment in rt.config.environments
        else list(rt.config.environments.values())
    )
    if any(may_request(env, actor.id, rt.groups) for env in envs):
        return
    where = f"`{environment}`" if environment else "any environment"
    raise Refusal(
        f"{mention(actor.id)} may not {verb} incidents in {where}",
        "Responders are the environment's requesters; ask one of them, or the platform lead.",
        code="not_allowed",
    )


def person(rt: Runtime, ref: str | None, role: str) -> str | None:
    """A role's Slack id from `bob`, `@bob` or a Slack user id (`U…`); None when not
    given; a refusal naming the closest people otherwise."""
    if ref is None or not ref.strip():
        return None
    bare = ref.strip().lstrip("@")
    found = rt.config.resolve_person(bare)
    if found is not None:
        return found
    if _SLACK_USER.fullmatch(bare):
        return bare
    known = ", ".join(f"`{p}`" for p in rt.config.people) or "none configured"
    raise Refusal(
        f"unknown {role} `{escape(ref)}`{did_you_mean(bare, rt.config.people)}",
        f"Name a person of the config ({known}) or mention them (`{role}=@name`).",
        code="unknown_person",
    )
