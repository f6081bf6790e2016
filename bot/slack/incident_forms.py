"""The respond forms: an alert's Declare incident button and an incident's Resolve button
open a modal; its submission becomes the exact typed command
(`/aiops incident declare … alert=ALERT-N`, `/aiops incident resolve INC-N cause="…"`),
run by the same path, under the same rules and audit, as if it had been typed.

Pure functions of the config and of what the button carries (the Declare button's value
holds the alert's id, endpoint, suggested severity and summary: `commands.incidents.cards
.declare_value`). They run in the server process that acks, inside the 3 s a trigger
lives, so they read no store; the domain checks everything again when the command runs
(an alert declared meanwhile, a double submission, who may declare)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.forms import (
    MAX_OPTIONS,
    OPTION_TEXT,
    Checked,
    field_state,
    quoted,
    selected,
    typed,
)
from commands.config import Config
from commands.errors import Refusal
from commands.text import MAX_TEXT, check, cut

DECLARE_BUTTON = "incident.declare"  # `commands.catalog`: the alert's Declare incident
RESOLVE_BUTTON = "incident.resolve"  # the incident's Resolve
DECLARE_CALLBACK = "aiops_incident_declare"
RESOLVE_CALLBACK = "aiops_incident_resolve"
VALUE = "value"  # every field's action id (block ids tell them apart)

# Block ids: `response_action: errors` names the field by them.
ENDPOINT = "inc_endpoint"
SEVERITY = "inc_severity"
SUMMARY = "inc_summary"
COMMANDER = "inc_commander"
ONCALL = "inc_oncall"
CAUSE = "inc_cause"

SUMMARY_MAX = 500  # `commands.incidents.cards.SUMMARY_MAX`
NO_ENDPOINT = "-"
SEVERITIES = {
    "P1": "A customer-facing production endpoint failing or breaching errors",
    "P2": "Production degraded",
    "P3": "Outside production, or no customer impact",
}
_ALERT = re.compile(r"ALERT-[0-9]{1,12}")
_INCIDENT = re.compile(r"INC-[0-9]{1,12}")
_CHANNEL = re.compile(r"[CDG][A-Z0-9]{2,30}")
_USER = re.compile(r"[UW][A-Z0-9]{2,30}")


@dataclass(frozen=True)
class Prefill:
    """What the Declare button carries (all of it checked again by the domain)."""

    alert: str | None = None
    endpoint: str | None = None
    severity: str | None = None
    summary: str = ""
    rule: str = ""

    @classmethod
    def from_value(cls, raw: str | None) -> Prefill:
        """The button's JSON value; what is not as expected is left out (the person fills
        it in), never trusted into the command."""
        try:
            data = json.loads(raw or "")
        except ValueError:
            return cls()
        if not isinstance(data, dict):
            return cls()

        def text(key: str, limit: int) -> str:
            value = data.get(key)
            return value[:limit] if isinstance(value, str) else ""

        alert = text("alert", 40)
        severity = text("severity", 4)
        return cls(
            alert=alert if _ALERT.fullmatch(alert) else None,
            endpoint=text("endpoint", 128) or None,
            severity=severity if severity in SEVERITIES else None,
            summary=text("summary", SUMMARY_MAX),
            rule=text("rule", 300),
        )


@dataclass(frozen=True)
class IncidentMeta:
    """What a respond form carries back (`private_metadata`): which form, the alert it
    declares from or the incident it resolves, and the channel it was opened from."""

    form: str  # "declare" | "resolve"
    channel: str | None = None
    alert: str | None = None
    incident: str | None = None

    def dumps(self) -> str:
        return json.dumps({"f": self.form, "ch": self.channel, "a": self.alert, "i": self.incident})

    @classmethod
    def loads(cls, raw: str | None) -> IncidentMeta | None:
        try:
            data = json.loads(raw or "")
            form = str(data["f"])
        except (ValueError, KeyError, TypeError):
            return None
        channel, alert, incident = data.get("ch"), data.get("a"), data.get("i")
        # Slack keeps it out of people's hands; a forged request still gets nothing odd in
        if form not in ("declare", "resolve"):
            return None
        if channel is not None and not (isinstance(channel, str) and _CHANNEL.fullmatch(channel)):
            return None
        if alert is not None and not (isinstance(alert, str) and _ALERT.fullmatch(alert)):
            return None
        if incident is not None and not (
            isinstance(incident, str) and _INCIDENT.fullmatch(incident)
        ):
            return None
        if form == "resolve" and incident is None:
            return None
        return cls(form, channel, alert, incident)


def _context(*lines: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=cut(line, 3000)) for line in lines])


def _option(text: str, value: str, description: str | None = None) -> Option:
    return Option(text=cut(text, OPTION_TEXT), value=value, description=description)


def declare_view(config: Config, prefill: Prefill, user: str, channel: str | None) -> View:
    """The Declare incident form, filled in from the alert: endpoint, the suggested
    severity (the rule's reason beside it), the summary, the person who clicked as
    commander."""
    endpoints = [
        _option(f"{ep.slug} ({ep.environment})", ep.slug) for ep in config.endpoints.values()
    ][: MAX_OPTIONS - 1]
    endpoints.append(_option("No endpoint", NO_ENDPOINT))
    initial_ep = next((o for o in endpoints if o.value == prefill.endpoint), None)
    severities = [_option(p, p, words) for p, words in SEVERITIES.items()]
    initial_sev = next((o for o in severities if o.value == prefill.severity), None)
    lines = [
        "The bot runs this as the typed `/aiops incident declare`, under the same rules"
        " and audit, and answers you in a direct message."
    ]
    if prefill.alert:
        lines.append(f"From alert *{prefill.alert}*.")
    if prefill.severity:
        lines.append(
            f"Suggested *{prefill.severity}*: {prefill.rule or 'the team rules'}. You decide."
        )
    blocks: list[Block] = [
        _context(*lines),
        InputBlock(
            block_id=ENDPOINT,
            label="Endpoint",
            element=StaticSelectElement(
                action_id=VALUE,
                placeholder="Choose the endpoint",
                options=endpoints,
                initial_option=initial_ep,
            ),
        ),
        InputBlock(
            block_id=SEVERITY,
            label="Severity",
            element=RadioButtonsElement(
                action_id=VALUE, options=severities, initial_option=initial_sev
            ),
        ),
        InputBlock(
            block_id=SUMMARY,
            label="Summary",
            element=PlainTextInputElement(
                action_id=VALUE,
                initial_value=prefill.summary or None,
                max_length=SUMMARY_MAX,
                placeholder="What is wrong, in a line",
            ),
        ),
        InputBlock(
            block_id=COMMANDER,
            label="Commander",
            element=UserSelectElement(action_id=VALUE, initial_user=user),
        ),
        InputBlock(
            block_id=ONCALL,
            label="On-call",
            optional=True,
            element=UserSelectElement(action_id=VALUE, placeholder="Who is on call"),
        ),
    ]
    return View(
        type="modal",
        callback_id=DECLARE_CALLBACK,
        title="Declare incident",
        submit="Declare",
        close="Cancel",
        private_metadata=IncidentMeta("declare", channel, alert=prefill.alert).dumps(),
        blocks=blocks,
    )


def resolve_view(incident: str, channel: str | None) -> View | None:
    """The Resolve form: the root cause, required. None for a value that is not an
    incident id (a forged click)."""
    if not _INCIDENT.fullmatch(incident):
        return None
    return View(
        type="modal",
        callback_id=RESOLVE_CALLBACK,
        title=f"Resolve {incident}"[:24],
        submit="Resolve",
        close="Cancel",
        private_metadata=IncidentMeta("resolve", channel, incident=incident).dumps(),
        blocks=[
            _context(
                "Resolving needs the root cause: the post-incident review starts from it."
                f" Not known yet? Mark it mitigated: `/aiops incident mitigated {incident}`."
            ),
            InputBlock(
                block_id=CAUSE,
                label="Root cause",
                element=PlainTextInputElement(
                    action_id=VALUE,
                    multiline=True,
                    max_length=SUMMARY_MAX,
                    placeholder="e.g. 1.3.0-rc1's tokenizer change doubled latency",
                ),
            ),
        ],
    )


# ------------------------------------------------------------------------ a submission


def _user(values: dict[str, Any], block: str) -> str | None:
    value = field_state(values, block).get("selected_user")
    return value if isinstance(value, str) and _USER.fullmatch(value) else None


def _text_error(text: str, what: str) -> str | None:
    try:
        check(text, what, SUMMARY_MAX)
    except Refusal as refusal:
        return refusal.message.replace("`", "")
    return None


def check_declare(config: Config, meta: IncidentMeta, values: dict[str, Any]) -> Checked:
    """The Declare form's command text (`incident declare …`, as typed after `/aiops`),
    or an error per field. Errors never quote what was typed."""
    errors: dict[str, str] = {}
    words = ["incident", "declare"]
    endpoint = selected(values, ENDPOINT)
    if endpoint is None:
        errors[ENDPOINT] = "Choose the endpoint, or No endpoint."
    elif endpoint != NO_ENDPOINT:
        if endpoint not in config.endpoints:
            errors[ENDPOINT] = "Choose an endpoint this bot knows."
        else:
            words.append(endpoint)
    severity = selected(values, SEVERITY)
    if severity not in SEVERITIES:
        errors[SEVERITY] = "Choose P1, P2 or P3."
    else:
        words.append(f"sev={severity}")
    summary = typed(values, SUMMARY)
    problem = _text_error(summary, "the summary") if summary else "What is wrong, in a line."
    if problem:
        errors[SUMMARY] = problem
    else:
        words.append(f"summary={quoted(summary)}")
    commander = _user(values, COMMANDER)
    if commander is None:
        errors[COMMANDER] = "Choose who leads the response."
    else:
        words.append(f"commander={commander}")
    on_call = _user(values, ONCALL)
    if on_call:
        words.append(f"oncall={on_call}")
    if meta.alert:
        words.append(f"alert={meta.alert}")
    if errors:
        return Checked(None, errors)
    text = " ".join(words)
    if len(text) > MAX_TEXT:
        return Checked(None, {SUMMARY: f"Too long: the command may hold {MAX_TEXT} characters."})
    return Checked(text, {})


def check_resolve(meta: IncidentMeta, values: dict[str, Any]) -> Checked:
    """The Resolve form's command text (`incident resolve INC-N cause="…"`), or the cause's
    error."""
    cause = typed(values, CAUSE)
    problem = _text_error(cause, "the root cause") if cause else "The root cause, in a line."
    if problem:
        return Checked(None, {CAUSE: problem})
    return Checked(f"incident resolve {meta.incident} cause={quoted(cause)}", {})
