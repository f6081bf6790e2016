"""The one entry point the edges call: a typed command in, a reply out. Every command is
audited, refused ones too.

Dispatch is one table per command family, bound to the catalog: `CHANGE_COMMANDS` for the
slash commands that open a change, `HANDLERS` for the `/aiops` subcommands. Adding a
subcommand is one spec in `commands.catalog`, one handler, one entry here; a test holds
the tables and the catalog equal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from commands.audit import AuditAction
from commands.canary.commands import (
    canary_command,
    decide_promote,
    decide_rollback,
    pause,
    resume,
)
from commands.catalog import AIOPS_SUBCOMMANDS, SLASH_COMMANDS
from commands.changes.approve import cancel, decide
from commands.changes.request import request_change
from commands.digests.post import on_demand
from commands.errors import Refusal
from commands.incidents.commands import incident_command
from commands.incidents.handoff import handoff
from commands.messages import Reply, escape, unescape
from commands.model import ChangeKind, ChangeState, Invocation
from commands.models.retrain import request_retrain
from commands.models.show import models
from commands.parsing import Args, ParseError, parse
from commands.ports import PlatformError
from commands.reports import audit, changes, status
from commands.reports.help import help_reply
from commands.runtime import Runtime
from commands.text import admit

log = logging.getLogger(__name__)

# Slash commands that open a change: the command → the kind of change.
CHANGE_COMMANDS: dict[str, ChangeKind] = {
    "/deploy": ChangeKind.DEPLOY,
    "/promote": ChangeKind.PROMOTE,
    "/rollback": ChangeKind.ROLLBACK,
}


@dataclass(frozen=True)
class Call:
    """One parsed `/aiops` subcommand, as its handler gets it."""

    rt: Runtime
    inv: Invocation
    args: Args

    @property
    def target(self) -> str | None:
        """The first positional (an endpoint, a change id, a topic…), if any."""
        return self.args.positionals[0] if self.args.positionals else None

    def option(self, key: str) -> str | None:
        return self.args.options.get(key)

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        try:
            return self.args.integer(key, default, low, high)
        except ParseError as exc:
            raise Refusal(str(exc), code="malformed") from None


Handler = Callable[[Call], Reply]


def _request(call: Call, kind: ChangeKind) -> Reply:
    """An `/aiops` subcommand that opens a change (`/aiops scale help`: its usage)."""
    if call.target == "help":
        return help_reply(kind.value)
    return request_change(call.rt, kind, call.inv, call.args)


HANDLERS: dict[str, Handler] = {
    "status": lambda c: status.status(c.rt, c.target, c.integer("page", 1, 1, 10_000)),
    "changes": lambda c: changes.changes(c.rt, c.target, c.integer("limit", 20, 1, 100)),
    "audit": lambda c: audit.audit(
        c.rt,
        c.target,
        c.option("since") or "24h",
        c.option("change"),
        c.integer("limit", 50, 1, 500),
    ),
    "approve": lambda c: decide(
        c.rt, c.inv.actor, c.target, "approve", c.option("reason"), c.inv.request_id
    ),
    "reject": lambda c: decide(
        c.rt, c.inv.actor, c.target, "reject", c.option("reason"), c.inv.request_id
    ),
    "cancel": lambda c: cancel(c.rt, c.inv.actor, c.target, c.option("reason"), c.inv.request_id),
    "digest": lambda c: on_demand(c.rt, c.inv.actor, c.args.positionals, c.inv.request_id),
    "canary": lambda c: canary_command(c.rt, c.inv.actor, c.target),
    "pause": lambda c: pause(c.rt, c.inv.actor, c.target, c.option("reason")),
    "resume": lambda c: resume(c.rt, c.inv.actor, c.target, c.option("reason")),
    "canary-rollback": lambda c: decide_rollback(
        c.rt, c.inv.actor, c.target, c.option("reason"), c.inv.request_id
    ),
    "canary-promote": lambda c: decide_promote(
        c.rt, c.inv.actor, c.target, c.option("reason"), c.inv.request_id
    ),
    "incident": lambda c: incident_command(c.rt, c.inv, c.args),
    "handoff": lambda c: handoff(
        c.rt, c.inv.actor, c.target, c.option("environment"), c.inv.request_id
    ),
    "scale": lambda c: _request(c, ChangeKind.SCALE),
    "undeploy": lambda c: _request(c, ChangeKind.UNDEPLOY),
    "models": lambda c: models(c.rt, c.target),
    "retrain": lambda c: (
        help_reply("retrain") if c.target == "help" else request_retrain(c.rt, c.inv, c.args)
    ),
    "help": lambda c: help_reply(c.target),
}


class Service:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        # Slack id → the name last handed to the person directory by this service, so a
        # repeat costs no database round trip (`remember` would find it and do nothing).
        self._remembered: dict[str, str] = {}

    def handle(self, inv: Invocation) -> Reply:
        command = inv.command.strip().lower()
        self._remember(inv)
        try:
            inv = admit(inv)  # limits checked, PII masked: all the domain ever sees
            reply = self._dispatch(command, inv)
        except Refusal as refusal:
            return self.refused(inv, refusal)
        except ParseError as exc:  # a malformed option no command caught (already escaped)
            self._audit(inv, f"refused: {unescape(str(exc))}", "malformed")
            return Reply.refusal(str(exc), hint="See `/aiops help`.")
        except PlatformError as exc:
            self._audit(inv, f"failed: {exc}", exc.kind)
            return Reply.refusal(
                f"the platform said no: {exc}",
                hint="Nothing was changed. Try again, or see `/aiops status`.",
            )
        except Exception:
            log.exception("command %s failed", command)
            self._audit(inv, "failed: internal error", "error")
            return Reply.refusal(
                "something went wrong on our side; nothing was changed",
                hint="The error is logged; try again or ask the platform team.",
            )
        self._audit(inv, "ok" if reply.ok else "refused", None)
        return reply

    def refused(self, inv: Invocation, refusal: Refusal) -> Reply:
        """A command refused before it ran (here, or at the edge's admission when it was
        queued: `bot/serve/queue.py`): audited, and answered with the refusal."""
        self._audit(inv, f"refused: {unescape(refusal.message)}", refusal.code)
        return Reply.refusal(refusal.message, hint=refusal.hint)

    def _remember(self, inv: Invocation) -> None:
        """The name behind a Slack id goes to the person directory, never to the audit."""
        name = inv.actor.name
        if name and self.rt.people is not None and self._remembered.get(inv.actor.id) != name:
            try:
                self.rt.people.remember(inv.actor.id, name, self.rt.clock())
            except Exception:
                log.exception("could not record the name of %s", inv.actor.id)
                return
            if len(self._remembered) >= 10_000:
                self._remembered.clear()
            self._remembered[inv.actor.id] = name

    def _audit(self, inv: Invocation, outcome: str, code: str | None) -> None:
        params = {"command": inv.command, "text": inv.text, "channel": inv.channel_id}
        if code:
            params["code"] = code
        first = inv.text.split()[0] if inv.text.split() else None
        target = first if first in self.rt.config.endpoints else None
        env = self.rt.config.endpoints[target].environment if target else None
        self.rt.auditor.record(
            AuditAction.COMMAND,
            inv.actor.id,
            outcome,
            parameters=params,
            target=target,
            environment=env,
            request_id=inv.request_id,
        )

    def _dispatch(self, command: str, inv: Invocation) -> Reply:
        words = inv.text.split()
        if command in CHANGE_COMMANDS:
            if words[:1] == ["help"]:
                return help_reply(command)
            if not words:
                raise Refusal(
                    f"`{command}` needs arguments",
                    f"Usage: `{SLASH_COMMANDS[command].usage}`",
                    code="malformed",
                )
            return request_change(self.rt, CHANGE_COMMANDS[command], inv)
        if command != "/aiops":
            raise Refusal(
                f"unknown command `{escape(command)}`", "Try `/aiops help`.", code="unknown_command"
            )
        sub = words[0].lower() if words else "help"
        rest = inv.text.strip()[len(words[0]) :] if words else ""
        spec = AIOPS_SUBCOMMANDS.get(sub)
        handler = HANDLERS.get(sub)
        if spec is None or handler is None:
            raise Refusal(
                f"unknown subcommand `{escape(sub)}`",
                "Try one of: " + ", ".join(f"`{s}`" for s in AIOPS_SUBCOMMANDS) + ".",
                code="unknown_command",
            )
        try:
            args = parse(rest, set(spec.options), spec.positionals)
        except ParseError as exc:
            raise Refusal(str(exc), f"Usage: `{spec.usage}`", code="malformed") from None
        return handler(Call(self.rt, inv, args))

    def pending(self) -> list[str]:
        return [c.id for c in self.rt.store.list_changes(states=[ChangeState.PENDING_APPROVAL])]
