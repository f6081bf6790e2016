"""The one entry point the edges call: a typed command in, a reply out. Every command is
audited, refused ones too."""

from __future__ import annotations

import logging
from datetime import timedelta

from commands import approvals, canary, digests
from commands.catalog import AIOPS_SUBCOMMANDS, SLASH_COMMANDS
from commands.durations import FORMS as DURATION_FORMS
from commands.durations import DurationError, parse_duration
from commands.errors import Refusal
from commands.messages import Reply, escape
from commands.model import OPEN_STATES, Change, ChangeKind, ChangeState, Invocation
from commands.parsing import ParseError, parse
from commands.platform import PlatformError
from commands.requests import endpoint_of, request_change
from commands.runtime import Runtime
from commands.store import AuditQuery
from commands.views import audit_reply, changes_reply, help_reply, status_reply

log = logging.getLogger(__name__)

_KINDS = {
    "/deploy": ChangeKind.DEPLOY,
    "/promote": ChangeKind.PROMOTE,
    "/rollback": ChangeKind.ROLLBACK,
}


def parse_since(text: str) -> timedelta:
    """`since=` of `/aiops audit`: the one duration grammar (`commands.durations`)."""
    try:
        return parse_duration(text)
    except DurationError:
        raise Refusal(
            f"`since={escape(text)}` is not a duration",
            f"Write e.g. {DURATION_FORMS}.",
            code="malformed",
        ) from None


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
            reply = self._dispatch(command, inv)
        except Refusal as refusal:
            self._audit(inv, f"refused: {refusal.message}", refusal.code)
            return Reply.refusal(refusal.message, hint=refusal.hint)
        except ParseError as exc:  # a malformed option no command caught (already escaped)
            self._audit(inv, f"refused: {exc}", "malformed")
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
            "command",
            inv.actor.id,
            outcome,
            parameters=params,
            target=target,
            environment=env,
            request_id=inv.request_id,
        )

    def _dispatch(self, command: str, inv: Invocation) -> Reply:
        words = inv.text.split()
        if command in _KINDS:
            if words[:1] in (["help"], []):
                return (
                    help_reply(command)
                    if words
                    else Reply.refusal(
                        f"`{command}` needs arguments",
                        hint=f"Usage: `{SLASH_COMMANDS[command].usage}`",
                    )
                )
            return request_change(self.rt, _KINDS[command], inv)
        if command != "/aiops":
            raise Refusal(
                f"unknown command `{escape(command)}`", "Try `/aiops help`.", code="unknown_command"
            )
        sub = words[0].lower() if words else "help"
        rest = inv.text.strip()[len(words[0]) :] if words else ""
        spec = AIOPS_SUBCOMMANDS.get(sub)
        if spec is None:
            raise Refusal(
                f"unknown subcommand `{escape(sub)}`",
                "Try one of: " + ", ".join(f"`{s}`" for s in AIOPS_SUBCOMMANDS) + ".",
                code="unknown_command",
            )
        try:
            args = parse(rest, set(spec.options), spec.positionals)
        except ParseError as exc:
            raise Refusal(str(exc), f"Usage: `{spec.usage}`", code="malformed") from None
        pos = args.positionals[0] if args.positionals else None
        if sub == "help":
            return help_reply(pos)
        if sub == "status":
            return self.status(pos)
        if sub == "changes":
            try:
                limit = args.integer("limit", 20, 1, 100)
            except ParseError as exc:
                raise Refusal(str(exc), code="malformed") from None
            if pos:
                endpoint_of(self.rt, pos, spec.usage)
            changes = self.rt.store.list_changes(endpoint=pos, limit=limit)
            changes.sort(key=lambda c: (c.state not in OPEN_STATES, -int(c.id.split("-")[1])))
            return changes_reply(changes, self.rt.config)
        if sub == "audit":
            return self.audit(
                pos,
                args.options.get("since", "24h"),
                args.options.get("change"),
                args.integer("limit", 50, 1, 500) if "limit" in args.options else 50,
            )
        if sub in ("approve", "reject"):
            return approvals.decide(
                self.rt, inv.actor, pos, sub, args.options.get("reason"), inv.request_id
            )
        if sub == "cancel":
            return approvals.cancel(
                self.rt, inv.actor, pos, args.options.get("reason"), inv.request_id
            )
        if sub == "canary":
            return canary.canary_command(self.rt, inv.actor, pos)
        if sub in ("pause", "resume"):
            act = canary.pause if sub == "pause" else canary.resume
            return act(self.rt, inv.actor, pos, args.options.get("reason"))
        if sub in ("canary-rollback", "canary-promote"):
            decide = canary.decide_rollback if sub == "canary-rollback" else canary.decide_promote
            return decide(self.rt, inv.actor, pos, args.options.get("reason"), inv.request_id)
        if sub == "digest":
            return digests.on_demand(self.rt, inv.actor, args.positionals, inv.request_id)
        raise Refusal(f"`{sub}` is not available yet", code="unknown_command")

    def status(self, slug: str | None) -> Reply:
        cfg = self.rt.config
        eps = (
            [endpoint_of(self.rt, slug, "/aiops status [endpoint]")]
            if slug
            else list(cfg.endpoints.values())
        )
        states = {ep.slug: self.rt.platform.endpoint_state(ep) for ep in eps}
        health = self.rt.platform.health(eps)
        open_changes: dict[str, Change] = {}
        for change in self.rt.store.list_changes(states=sorted(OPEN_STATES), limit=500):
            open_changes.setdefault(change.endpoint, change)
        return status_reply(cfg, states, health, open_changes)

    def audit(self, slug: str | None, since: str, change_id: str | None, limit: int) -> Reply:
        if slug:
            endpoint_of(self.rt, slug, "/aiops audit [endpoint] [since=24h]")
        start = self.rt.clock() - parse_since(since)
        events = self.rt.store.audit(
            AuditQuery(
                since=None if change_id else start, endpoint=slug, change_id=change_id, limit=limit
            )
        )
        title = (change_id or slug or "all endpoints") + ("" if change_id else f", last {since}")
        return audit_reply(events, self.rt.config, title)

    def pending(self) -> list[str]:
        return [c.id for c in self.rt.store.list_changes(states=[ChangeState.PENDING_APPROVAL])]
