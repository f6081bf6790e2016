"""Forms instead of syntax: a bare `/deploy`, `/promote` or `/rollback` opens a modal
whose submission becomes the exact typed command (`command_text`), run by the same path,
under the same policy and audit, as if it had been typed.

Pure functions of the config: the view for a person (`open_view`, `form_view`), what a
submission holds (`check_submission`: the command text, or an error per field). They run
in the server process that acks, inside Slack's 3 s (a `trigger_id` lives 3 s), so they
read the config alone and import no store and none of the change machinery
(`tests/edge/test_serve_processes.py`); the domain checks everything again when the
command runs.

The fields that depend on the endpoint follow it through `views.update` on the endpoint
select's `block_actions` (`form_view` with the chosen endpoint), not an external select's
`block_suggestion`: the endpoint decides more than its versions (its environment's reason,
ticket and approval rules, its promote steps, whether a user group's membership is still
to be checked), a static select offers only the config's versions and Slack checks the
choice, and there is no options-load URL to configure (Socket Mode unchanged)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DatePickerElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
    TimePickerElement,
)
from slack_sdk.models.views import View

from commands.canary.model import env_policy
from commands.config import Config, Endpoint, Environment, user_groups
from commands.errors import Refusal
from commands.messages import escape, mention
from commands.model import Strategy
from commands.parsing import TICKET_RE, parse_at
from commands.text import MAX_TEXT, check, cut

FORM_COMMANDS = ("/deploy", "/promote", "/rollback")
CALLBACK_ID = "aiops_form"
ENDPOINT_ACTION = "form_endpoint"  # the endpoint select: its choice redraws the form
VALUE = "value"  # the action id of every other field (block ids tell them apart)

# Block ids: `response_action: errors` names the field by them.
ENDPOINT = "endpoint"
VERSION = "version"
SHARE = "share"
STRATEGY = "strategy"
REASON = "reason"
TICKET = "ticket"
DATE = "date"
TIME = "time"

STRATEGIES = tuple(s.value for s in Strategy)

TITLES = {"/deploy": "Deploy a version", "/promote": "Promote a canary", "/rollback": "Roll back"}
SUBMIT = {"/deploy": "Request", "/promote": "Request", "/rollback": "Roll back"}
MAX_OPTIONS = 100  # a static select's options
OPTION_TEXT = 75
OPTION_VALUE = 150
REASON_MAX = 1000  # leaves room in the command's `MAX_TEXT` for the rest
TICKET_MAX = 30


# ------------------------------------------------------------------------ who may ask


def may_ask(env: Environment, user: str) -> str | None:
    """Whether `user` may request in `env`, as far as the config tells (the rule is
    `commands.changes.rules.may_request`): `"listed"` (no list, or named on it),
    `"group"` (only a user group could hold them: membership is checked when the request
    runs, as for a typed command), None (not at all)."""
    if not env.requesters or user in env.requesters:
        return "listed"
    return "group" if user_groups(env.requesters) else None


def requestable(config: Config, user: str) -> list[Endpoint]:
    """The endpoints `user` may request changes on (or may, once a group is read)."""
    return [
        ep
        for ep in config.endpoints.values()
        if may_ask(config.environment_of(ep), user) is not None
    ]


# ------------------------------------------------------------------------ the views


_CHANNEL = re.compile(r"[CDG][A-Z0-9]{2,30}")


@dataclass(frozen=True)
class FormMeta:
    """What the view carries back (`private_metadata`, kept by Slack, not editable by the
    person): the command, the channel it was typed in (policy may require one) and the
    endpoint the fields were drawn for."""

    command: str
    channel: str | None
    endpoint: str | None = None

    def dumps(self) -> str:
        return json.dumps({"c": self.command, "ch": self.channel, "ep": self.endpoint})

    @classmethod
    def loads(cls, raw: str | None) -> FormMeta | None:
        try:
            data = json.loads(raw or "")
            command = str(data["c"])
        except (ValueError, KeyError, TypeError):
            return None
        if command not in FORM_COMMANDS:
            return None
        channel, endpoint = data.get("ch") or None, data.get("ep") or None
        # Slack keeps it out of people's hands; a forged request (a leaked signing
        # secret) still gets no list or object into the audit row
        if channel is not None and not (isinstance(channel, str) and _CHANNEL.fullmatch(channel)):
            return None
        if endpoint is not None and not isinstance(endpoint, str):
            return None
        return cls(command, channel, endpoint)


def _context(*lines: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=cut(line, 3000)) for line in lines])


def _option(text: str, value: str, description: str | None = None) -> Option:
    return Option(text=cut(text, OPTION_TEXT), value=value, description=description)


def open_view(config: Config, command: str, user: str, channel: str | None) -> View:
    """The view a bare command opens: the form, or why there is none for this person. With
    one endpoint to choose from, it is chosen."""
    allowed = requestable(config, user)
    if not allowed:
        return refused_view(config, command)
    chosen = allowed[0].slug if len(allowed) == 1 else None
    return form_view(config, command, user, channel, chosen)


def refused_view(config: Config, command: str) -> View:
    """Told before filling anything in: this person may not request in any environment."""
    envs = ", ".join(f"`{escape(e)}`" for e in config.environments) or "none configured"
    text = (
        f":no_entry: You may not request changes in any environment ({envs}),"
        " so there is nothing to fill in."
        if config.endpoints
        else ":no_entry: No endpoints are configured, so there is nothing to fill in."
    )
    return View(
        type="modal",
        callback_id=CALLBACK_ID,
        title=TITLES[command],
        close="Close",
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=text)),
            _context(
                "Ask the platform lead to add you to an environment's `requesters`"
                " in the bot's config (people by name, or a Slack user group)."
            ),
        ],
    )


def environment_line(env: Environment, command: str, channel: str | None) -> str:
    """What the chosen endpoint's environment asks of this change, in one line."""
    parts: list[str] = []
    approvers = ", ".join(mention(a) for a in env.approvers)
    if command == "/rollback" and not env.rollback_requires_approval:
        parts.append(
            "runs at once (mitigation first)"
            + (", announced in the approvals channel" if env.needs_approval else "")
        )
    elif env.needs_approval:
        n = env.approvals_required
        parts.append(f"{n} approval{'s' if n > 1 else ''} from {approvers}")
    else:
        parts.append("no approval needed")
    parts.append("a reason is required" if env.require_reason else "a reason is optional")
    if env.require_ticket:
        parts.append("a change ticket is required")
    if env.request_channels:
        where = ", ".join(f"<#{c}>" for c in env.request_channels)
        note = "" if channel in env.request_channels else " (not this one: open the form there)"
        parts.append(f"requested only from {where}{note}")
    return f"*{escape(env.name)}*: " + "; ".join(parts) + "."


def form_view(
    config: Config, command: str, user: str, channel: str | None, endpoint: str | None = None
) -> View:
    """The form for `command`, drawn for `endpoint` once one is chosen (its versions, its
    environment's rules); before that, the endpoint select alone."""
    allowed = requestable(config, user)
    ep = next((e for e in allowed if e.slug == endpoint), None)
    typed_only = "`force=` and `break_glass=`" if command == "/promote" else "`break_glass=`"
    blocks: list[Block] = [
        _context(
            f"The bot runs this as the typed `{command}`, under the same rules and audit,"
            f" and answers you in a direct message. For {typed_only}, type the command."
        )
    ]
    options = [_option(f"{e.slug} ({e.environment})", e.slug) for e in allowed][:MAX_OPTIONS]
    initial = next((o for o in options if ep is not None and o.value == ep.slug), None)
    more = len(allowed) - len(options)
    blocks.append(
        InputBlock(
            block_id=ENDPOINT,
            label="Endpoint",
            dispatch_action=True,  # a choice redraws the fields below for it
            element=StaticSelectElement(
                action_id=ENDPOINT_ACTION,
                placeholder="Choose an endpoint",
                options=options,
                initial_option=initial,
            ),
            hint=f"{more} more not listed: type the command for those." if more > 0 else None,
        )
    )
    if ep is None:
        blocks.append(_context("Choose an endpoint: its versions and its rules follow."))
    else:
        env = config.environment_of(ep)
        lines = [environment_line(env, command, channel)]
        if may_ask(env, user) == "group":
            groups = ", ".join(mention(g) for g in user_groups(env.requesters))
            lines.append(
                f"You may request here through {groups}: membership is checked when you submit."
            )
        blocks.append(_context(*lines))
        blocks.extend(_fields(config, command, ep, env))
    return View(
        type="modal",
        callback_id=CALLBACK_ID,
        title=TITLES[command],
        submit=SUBMIT[command],
        close="Cancel",
        private_metadata=FormMeta(command, channel, ep.slug if ep else None).dumps(),
        blocks=blocks,
    )


def _fields(config: Config, command: str, ep: Endpoint, env: Environment) -> list[Block]:
    out: list[Block] = []
    if command == "/deploy":
        model = config.models.get(ep.model)
        versions = [v for v in (model.versions if model else ()) if len(v) <= OPTION_VALUE]
        shown = versions[-MAX_OPTIONS:]  # the newest, when the list is longer
        out.append(
            InputBlock(
                block_id=VERSION,
                label=f"Version of {ep.model}",
                element=StaticSelectElement(
                    action_id=VALUE,
                    placeholder="Choose a version",
                    options=[_option(f"{ep.model}@{v}", v) for v in shown],
                ),
                hint=(
                    f"The {MAX_OPTIONS} newest of {len(versions)}; type the command for older."
                    if len(versions) > len(shown)
                    else None
                ),
            )
        )
        canary = _option(
            "Canary", "canary", "A share of traffic beside the serving version, analysed."
        )
        out.append(
            InputBlock(
                block_id=STRATEGY,
                label="Strategy",
                element=StaticSelectElement(
                    action_id=VALUE,
                    options=[
                        canary,
                        _option("Blue/green", "blue-green", "At 0 %, then all traffic at once."),
                        _option("Replace", "replace", "All traffic now; the old one goes later."),
                    ],
                    initial_option=canary,
                ),
                hint="Blue/green keeps the old version deployed until promoted; replace"
                " undeploys it once the new one has stayed healthy (and rolls back if not).",
            )
        )
        out.append(
            _share("Canary share (%)", 10, "Of the endpoint's traffic, 1–100; a canary only.")
        )
    if command == "/promote":
        steps = env_policy(config, env).promote_steps
        straight = _option("Straight to a share", "to", "Moves the canary at once.")
        stepped = _option(
            "Steps: " + " → ".join(f"{s}%" for s in steps),
            "steps",
            "The first step now, then one after each “no regression” verdict.",
        )
        out.append(
            InputBlock(
                block_id=STRATEGY,
                label="How",
                element=RadioButtonsElement(
                    action_id=VALUE, options=[straight, stepped], initial_option=straight
                ),
            )
        )
        out.append(
            _share(
                "New share (%)",
                100,
                "For a straight promote; at 100 the replaced version is undeployed.",
            )
        )
    out.append(
        InputBlock(
            block_id=REASON,
            label="Reason",
            optional=not env.require_reason,
            element=PlainTextInputElement(
                action_id=VALUE,
                multiline=True,
                max_length=REASON_MAX,
                placeholder="What and why, for the approvers and the audit",
            ),
        )
    )
    if env.require_ticket:
        out.append(
            InputBlock(
                block_id=TICKET,
                label="Change ticket",
                element=PlainTextInputElement(
                    action_id=VALUE, max_length=TICKET_MAX, placeholder="CHG-1234"
                ),
            )
        )
    if command in ("/deploy", "/promote"):
        zone = getattr(config.timezone, "key", str(config.timezone))
        out.append(
            InputBlock(
                block_id=DATE,
                label=f"Run on (date, {zone})",
                optional=True,
                element=DatePickerElement(action_id=VALUE),
            )
        )
        out.append(
            InputBlock(
                block_id=TIME,
                label=f"Run at (time, {zone})",
                optional=True,
                element=TimePickerElement(action_id=VALUE, timezone=zone),
                hint="Leave both empty to run now (once approved). A time alone is today;"
                " at most 60 days ahead.",
            )
        )
    return out


def _share(label: str, initial: int, hint: str) -> InputBlock:
    return InputBlock(
        block_id=SHARE,
        label=label,
        element=NumberInputElement(
            action_id=VALUE,
            is_decimal_allowed=False,
            initial_value=str(initial),
            min_value="1",
            max_value="100",
        ),
        hint=hint,
    )


# ------------------------------------------------------------------------ a submission


@dataclass(frozen=True)
class Checked:
    """A submission checked: the typed command's text, or an error per field (block id)."""

    text: str | None
    errors: dict[str, str]


def field_state(values: dict[str, Any], block: str) -> dict[str, Any]:
    """The state of a block's one element (`view.state.values[block][action]`)."""
    actions = values.get(block)
    if not isinstance(actions, dict) or not actions:
        return {}
    state = next(iter(actions.values()))
    return state if isinstance(state, dict) else {}


def selected(values: dict[str, Any], block: str) -> str | None:
    option = field_state(values, block).get("selected_option")
    return str(option["value"]) if isinstance(option, dict) and option.get("value") else None


def typed(values: dict[str, Any], block: str) -> str:
    value = field_state(values, block).get("value")
    return value.strip() if isinstance(value, str) else ""


def _plain(refusal: Refusal) -> str:
    """A refusal as a field's error: plain text, no markup."""
    return refusal.message.replace("`", "").replace("&lt;", "<").replace("&gt;", ">")


def quoted(value: str) -> str:
    """A value for `key="…"` that `commands.parsing.parse` reads back as written: every
    double quote (curly ones too: the parser straightens them) escaped, and a trailing
    backslash kept off the closing quote (the parser strips the space)."""
    body = re.sub(r"[\"“”]", lambda m: "\\" + m.group(), value)
    if body.endswith("\\"):
        body += " "
    return f'"{body}"'


def check_submission(
    config: Config, meta: FormMeta, user: str, values: dict[str, Any], now: datetime
) -> Checked:
    """Check a submission as far as the config can (the domain checks it all again when
    it runs) and build the command's text, exactly as it would be typed. Errors never
    quote what was typed."""
    errors: dict[str, str] = {}
    slug = selected(values, ENDPOINT)
    ep = config.endpoints.get(slug or "")
    if ep is None:
        return Checked(None, {ENDPOINT: "Choose an endpoint this bot knows."})
    env = config.environment_of(ep)
    if may_ask(env, user) is None:
        return Checked(None, {ENDPOINT: f"You may not request changes in {env.name}."})
    if env.request_channels and meta.channel not in env.request_channels:
        return Checked(
            None,
            {
                ENDPOINT: f"Changes in {env.name} are requested only from its request channels:"
                " open the form there."
            },
        )
    if meta.endpoint != ep.slug:  # chosen, but the fields below were drawn for another
        return Checked(
            None,
            {
                ENDPOINT: "The form is still updating for this endpoint;"
                " check the fields below and submit again."
            },
        )
    words = [ep.slug]
    if meta.command == "/deploy":
        version = selected(values, VERSION)
        model = config.models.get(ep.model)
        if version is None or model is None or version not in model.versions:
            errors[VERSION] = f"Choose one of the versions of {ep.model}."
        else:
            words.append(f"{ep.model}@{version}")
        strategy = selected(values, STRATEGY) or "canary"
        if strategy not in STRATEGIES:
            errors[STRATEGY] = "Choose canary, blue/green or replace."
        elif strategy == "canary":
            share = _share_of(values, errors, "The canary share")
            words.append(f"canary={share}")
        else:  # the share is a canary's; the other strategies end at 100 %
            words.append(f"strategy={strategy}")
    if meta.command == "/promote":
        how = selected(values, STRATEGY) or "to"
        if how == "steps":
            steps = env_policy(config, env).promote_steps
            words.append("steps=" + ",".join(map(str, steps)))
        else:
            words.append(f"to={_share_of(values, errors, 'The new share')}")
    reason = typed(values, REASON)
    if env.require_reason and not reason:
        errors[REASON] = f"A {meta.command.lstrip('/')} in {env.name} needs a reason."
    elif reason:
        try:
            check(reason, "the reason", REASON_MAX)
        except Refusal as refusal:
            errors[REASON] = _plain(refusal)
        else:
            words.append(f"reason={quoted(reason)}")
    ticket = typed(values, TICKET)
    if env.require_ticket and not ticket:
        errors[TICKET] = f"A change in {env.name} needs a change ticket, e.g. CHG-1234."
    elif ticket:
        if TICKET_RE.match(ticket):
            words.append(f"ticket={ticket}")
        else:
            errors[TICKET] = "Write the change ticket's id, e.g. CHG-1234."
    at = _at(config, values, now, errors)
    if at:
        words.append(f'at="{at}"')
    if errors:
        return Checked(None, errors)
    text = " ".join(words)
    if len(text) > MAX_TEXT:
        return Checked(None, {REASON: f"Too long: the command may hold {MAX_TEXT} characters."})
    return Checked(text, {})


def _share_of(values: dict[str, Any], errors: dict[str, str], what: str) -> int:
    raw = typed(values, SHARE)
    try:
        share = int(raw)
    except ValueError:
        share = 0
    if not 1 <= share <= 100:
        errors[SHARE] = f"{what} is a whole percent, 1–100."
    return share


def _at(config: Config, values: dict[str, Any], now: datetime, errors: dict[str, str]) -> str:
    """`YYYY-MM-DD HH:MM` in the config's zone, or "" to run now; a time alone is today."""
    day = field_state(values, DATE).get("selected_date")
    clock = field_state(values, TIME).get("selected_time")
    if not day and not clock:
        return ""
    if not clock:
        errors[TIME] = "Choose a time too, or clear the date to run now."
        return ""
    moment_text = f"{day} {clock}" if day else str(clock)
    try:
        moment = parse_at(moment_text, config.timezone, now)
    except Refusal as refusal:
        errors[TIME] = _plain(refusal)
        return ""
    return moment.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M")
