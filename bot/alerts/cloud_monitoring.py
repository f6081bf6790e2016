"""Cloud Monitoring's webhook notifications, read into `AlertNotice`s.

A webhook notification channel POSTs one JSON document per incident event. Schema version
1.2 (Google Cloud, "Create and manage notification channels", Webhooks, schema structure:
https://cloud.google.com/monitoring/support/notification-options#webhooks), of which this
module reads:

    {"version": "1.2",
     "incident": {
        "incident_id": "0.opqiw61fsv7p",              required: the alert's id
        "scoping_project_id": "lender-aiops-prod",
        "url": "https://console.cloud.google.com/monitoring/alerting/incidents/…",
        "state": "open" | "closed",                   required (the console's test: "OPEN")
        "started_at": 1577840461,                     required, Unix seconds
        "ended_at": 1577877071 | null,                Unix seconds, null while open
        "policy_name": "…",                           required: the policy's display name
        "condition_name": "…",
        "condition": {"conditionThreshold": {"comparison": "COMPARISON_GT", …}, …},
        "resource": {"type": "aiplatform.googleapis.com/Endpoint",
                     "labels": {"endpoint_id": "…", …}},
        "metric": {"type": "…", "displayName": "…", "labels": {…}},
        "policy_user_labels": {"aiops_endpoint": "loan-assessor", …},
        "observed_value": "2340", "threshold_value": "2000",
        "summary": "…",
        "documentation": {"content": "…", "mime_type": "text/markdown", "subject": "…"}}}

Any other field is allowed and ignored. The console's "Send test notification" sends
`"version": "test"`: like any version other than 1.2 it is refused (`AlertPayloadError`).
A channel retries non-2xx answers, so the same incident may arrive more than once: the
notice's `key` (`cloud-monitoring:<incident_id>`) is what deduplicates it.

Authentication (the channel's two kinds): `webhook_tokenauth` puts a token in the URL's
query (`?auth_token=…`); `webhook_basicauth` sends HTTP Basic credentials. Both are checked
against `AIOPS_ALERT_WEBHOOK_TOKEN` (the Basic password; the user name is
`AIOPS_ALERT_WEBHOOK_USER`, default `cloud-monitoring`), read from the environment or from
Secret Manager through `AIOPS_ALERT_WEBHOOK_TOKEN_SECRET` (bot/secrets.py), in constant
time. No token configured refuses every request. Prefer Basic: a token in a URL also
lands in the platform's request logs.

Endpoint: the first of (1) the resource label `endpoint_id` equal to an endpoint's
`vertex_id` (Vertex AI's `aiplatform.googleapis.com/Endpoint` resource), (2) the policy
user label `aiops_endpoint` naming an endpoint's slug, (3) `[alerts] policies` in the
config (policy name → slug, matched as `[runbooks.policies]` is: exactly, else ignoring case
and runs of spaces). The environment is the endpoint's, or else the one whose
project is the incident's `scoping_project_id`.

The notice's labels are the policy's user labels and the resource's, plus `metric_type`
(`incident.metric.type`) and the metric's own labels as `metric.<name>`: what breached,
from which the severity is suggested (`commands.incidents.severity.about_errors`).

Every free text (policy and condition names, summary, documentation, the figures, labels)
is masked with `commands.text.outbound` / `outbound_value` before it is put in the notice:
an alert's summary or a label can quote a customer's details.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from commands.config import Config, Endpoint
from commands.config_schema import AlertsTable, validate_table
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from commands.incidents.runbooks import by_policy
from commands.incidents.severity import METRIC_LABEL_PREFIX, METRIC_TYPE_LABEL
from commands.text import outbound, outbound_value, visible

MAX_BODY: Final = 64 * 1024
"""Bytes of a notification. A policy's documentation is at most 10,240 bytes (Cloud
Monitoring's `AlertPolicy.Documentation.content` limit) and its user labels at most 64
pairs of 63 characters (about 8 KiB); with names, summary, labels and the condition a real
notification is a few KiB, 20 KiB at the very most. 64 KiB leaves room for templated
documentation that grows when its variables expand, while a body beyond it — something that
is not a notification — is refused before it is read."""
VERSION: Final = "1.2"
TOKEN_VAR: Final = "AIOPS_ALERT_WEBHOOK_TOKEN"  # noqa: S105 (a variable name, not its value)
USER_VAR: Final = "AIOPS_ALERT_WEBHOOK_USER"
DEFAULT_USER: Final = "cloud-monitoring"
KEY_PREFIX: Final = f"{AlertSource.CLOUD_MONITORING.value}:"
MAX_INCIDENT_ID: Final = 200
"""Characters of `incident.incident_id`. Cloud Monitoring's ids are about 14 (`0.nqk3xu7d9f2a`);
the alert's key (`cloud-monitoring:` + id, 17 + 200) must fit its column (`alert.key`,
255, migration 0010), so a longer id is refused (400) rather than answered 200 and failing
in the worker. The other fields are stored in unbounded columns (`TEXT`, `JSON`) and the
body is at most `MAX_BODY`; Slack's limits are kept when the message is drawn
(`bot/slack/blocks.py` cuts every text)."""
MAX_DEPTH: Final = 32
"""Levels of nested objects and arrays a body may have. A notification is five deep (the
body, `incident`, `condition`, `conditionThreshold`, `aggregations` and its items); a body
nested thousands deep is not one, and would exhaust the parser's recursion (Python's
`json` raises `RecursionError` past about 1,000 levels) — refused as not JSON (400)."""
ENDPOINT_LABEL: Final = "aiops_endpoint"
_MAX_REASONS: Final = 3
_UNITS: Final = {"aiplatform.googleapis.com/prediction/online/prediction_latencies": " ms"}
_COMPARISONS: Final = {
    "COMPARISON_GT": ">",
    "COMPARISON_GE": "≥",
    "COMPARISON_LT": "<",
    "COMPARISON_LE": "≤",
    "COMPARISON_EQ": "=",
    "COMPARISON_NE": "≠",
}


class AlertPayloadError(ValueError):
    """A body that is not a notification this module reads (answer 400). `str()` is one
    line that says why and never quotes the body (it may hold personal information)."""


class AlertAuthError(PermissionError):
    """A request without valid credentials, or no credentials configured (answer 401).
    `str()` is one line and never quotes what was sent."""


# --------------------------------------------------------------------------- the payload


def _labels(value: Any) -> Any:
    """Label values as strings (Google sends strings; a number is read as its text)."""
    if not isinstance(value, dict):
        return value  # the dict validation says it is the wrong type
    return {
        k: (str(v).lower() if isinstance(v, bool) else str(v))
        if isinstance(v, str | int | float | bool)
        else v
        for k, v in value.items()
    }


def _figure(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]
Figure = Annotated[str, BeforeValidator(_figure)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Resource(_Part):
    type: str = ""
    labels: Labels = Field(default_factory=dict)


class Metric(_Part):
    type: str = ""
    displayName: str = ""  # Google's spelling
    labels: Labels = Field(default_factory=dict)


class Documentation(_Part):
    content: str = ""
    mime_type: str = ""
    subject: str = ""


class Threshold(_Part):
    comparison: str = ""


class Condition(_Part):
    conditionThreshold: Threshold | None = None  # Google's spelling


class Incident(_Part):
    incident_id: str = Field(min_length=1, max_length=MAX_INCIDENT_ID)
    scoping_project_id: str = ""
    url: str | None = None
    state: Annotated[
        Literal["open", "closed"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ]
    started_at: int = Field(ge=0)
    ended_at: int | None = Field(None, ge=0)
    policy_name: str = Field(min_length=1)
    condition_name: str = ""
    condition: Condition | None = None
    resource: Resource = Field(default_factory=Resource)
    metric: Metric = Field(default_factory=Metric)
    policy_user_labels: Labels = Field(default_factory=dict)
    observed_value: Figure = ""
    threshold_value: Figure = ""
    summary: str = ""
    documentation: Documentation | str | None = None


class Notification(_Part):
    version: str
    incident: Incident


_WHY: Final = {
    "missing": "missing",
    "string_too_short": "empty",
    "string_too_long": "too long",
    "greater_than_equal": "negative",
    "literal_error": "not one of the allowed values",
    "string_type": "not a string",
    "int_type": "not a whole number",
    "int_parsing": "not a whole number",
    "int_from_float": "not a whole number",
    "dict_type": "not an object",
    "model_type": "not an object",
    "model_attributes_type": "not an object",
}


def _reasons(exc: ValidationError) -> str:
    """Where and what, never the value: `incident.incident_id missing; …`."""
    seen: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        line = f"{where} {_WHY.get(err['type'], 'invalid')}"
        most = (err.get("ctx") or {}).get("max_length")
        if err["type"] == "string_too_long" and most is not None:
            line += f" (at most {most} characters)"
        if line not in seen:
            seen.append(line)
    more = len(seen) - _MAX_REASONS
    return "; ".join(seen[:_MAX_REASONS]) + (f"; and {more} more" if more > 0 else "")


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise AlertPayloadError(
            f"the body is {len(body):,} bytes; a Cloud Monitoring notification is at most"
            f" {MAX_BODY:,} here"
        )


_TOO_DEEP: Final = object()


def _too_deep(data: Any) -> bool:
    """Whether `data` nests objects and arrays more than `MAX_DEPTH` levels (walked without
    recursion, so that the check cannot exhaust the stack it protects)."""
    level: list[tuple[Any, int]] = [(data, 1)]
    while level:
        value, depth = level.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return True
            items = value.values() if isinstance(value, dict) else value
            level.extend((v, depth + 1) for v in items if isinstance(v, dict | list))
    return False


def parse_notification(body: bytes) -> Notification:
    """The notification in `body`, or `AlertPayloadError` (size, encoding, JSON, version,
    required fields) with a one-line reason that quotes nothing of the body."""
    _check_size(body)
    if not body.strip():
        raise AlertPayloadError("the body is empty; a Cloud Monitoring notification is JSON")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AlertPayloadError(f"the body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise AlertPayloadError(
            f"the body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        data = _TOO_DEEP  # deeper than the parser goes: said below, as any body too deep
    if data is _TOO_DEEP or _too_deep(data):
        raise AlertPayloadError(
            f"the body is not JSON: nested too deep (more than {MAX_DEPTH} levels of objects"
            " and arrays; a notification has five)"
        )
    if not isinstance(data, dict):
        raise AlertPayloadError("the body is not a JSON object")
    version = data.get("version")
    if version != VERSION:
        said = f'"{version}"' if isinstance(version, str) and len(version) <= 16 else "absent"
        if version is not None and not isinstance(version, str):
            said = "not a string"
        hint = " (the console's test notification)" if version == "test" else ""
        raise AlertPayloadError(
            f"schema version {said}{hint} is not read; only {VERSION} is (set the"
            " channel's notification schema to 1.2)"
        )
    try:
        return Notification.model_validate(data)
    except ValidationError as exc:
        raise AlertPayloadError(f"not a Cloud Monitoring incident: {_reasons(exc)}") from None


# ------------------------------------------------------------------------ authentication


def _one(values: Mapping[str, Any], name: str, *, case_insensitive: bool = False) -> str | None:
    """The single value of `name` (a header or a query parameter); None when absent or
    given more than once (two tokens are not a token)."""
    if case_insensitive:
        found = [v for k, v in values.items() if k.lower() == name]
    else:
        found = [values[name]] if name in values else []
    flat: list[str] = []
    for value in found:
        if isinstance(value, str):
            flat.append(value)
        elif isinstance(value, Sequence):
            flat.extend(str(v) for v in value)
    return flat[0] if len(flat) == 1 else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def check_auth(
    headers: Mapping[str, Any],
    query: Mapping[str, Any],
    expected_token: str | None,
    basic_user_pass: tuple[str, str] | None,
) -> bool:
    """True when the request carries the channel's credentials: `?auth_token=` equal to
    `expected_token` (webhook_tokenauth), or `Authorization: Basic` equal to
    `basic_user_pass` (webhook_basicauth). Compared in constant time. Neither configured
    (None or empty) refuses everything. `headers` may be any case; `query` values may be
    strings or lists of strings (`parse_qs`)."""
    ok = False
    if expected_token:
        token = _one(query, "auth_token")
        ok = token is not None and _same(token, expected_token)
    if basic_user_pass and basic_user_pass[1] and not ok:
        header = _one(headers, "authorization", case_insensitive=True) or ""
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, colon, password = decoded.partition(":")
            # both compared whatever the first gives: no early exit to time
            user_ok = _same(user, basic_user_pass[0])
            pass_ok = _same(password, basic_user_pass[1])
            ok = bool(colon) and user_ok and pass_ok
    return ok


# ------------------------------------------------------------------------------ mapping


def alert_policies(config: Config) -> dict[str, str]:
    """`[alerts] policies` (policy name → endpoint slug), validated like the whole file."""
    table: AlertsTable = validate_table(
        AlertsTable, config.raw.get("alerts"), ("alerts",), config.source
    )
    return dict(table.policies)


def _by_vertex_id(incident: Incident, config: Config) -> Endpoint | None:
    endpoint_id = incident.resource.labels.get("endpoint_id")
    if not endpoint_id:
        return None
    found = [
        ep
        for ep in config.endpoints.values()
        if ep.vertex_id and ep.vertex_id.rsplit("/", 1)[-1] == endpoint_id
    ]
    if len(found) > 1:  # the same id in two projects: the incident's project decides
        found = [
            ep for ep in found if config.environment_of(ep).project == incident.scoping_project_id
        ]
    return found[0] if len(found) == 1 else None


def endpoint_of(incident: Incident, config: Config, policies: Mapping[str, str]) -> Endpoint | None:
    """The endpoint an incident concerns (see the module's docstring for the order), or
    None when nothing names one unambiguously."""
    found = _by_vertex_id(incident, config)
    if found is not None:
        return found
    slug = incident.policy_user_labels.get(ENDPOINT_LABEL)
    if slug and slug in config.endpoints:
        return config.endpoints[slug]
    slug = by_policy(policies, incident.policy_name)
    return config.endpoints.get(slug) if slug else None


def _environment(incident: Incident, config: Config, endpoint: Endpoint | None) -> str | None:
    if endpoint is not None:
        return endpoint.environment
    names = [n for n, e in config.environments.items() if e.project == incident.scoping_project_id]
    return names[0] if len(names) == 1 else None


def _moment(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _number(text: str) -> str:
    """`2340.512` → `2,341`, `0.01234` → `0.01234`, `12.5` → `12.5`; not a number: as sent."""
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _observed(incident: Incident) -> str:
    """`Prediction latencies 2,341 ms > 2,000 ms`, from what the notification says."""
    observed = _number(incident.observed_value.strip())
    threshold = _number(incident.threshold_value.strip())
    if not observed:
        return ""
    unit = _UNITS.get(incident.metric.type, "")
    name = incident.metric.displayName or incident.metric.type.rsplit("/", 1)[-1]
    text = f"{name} {observed}{unit}".strip()
    if threshold:
        threshold_ = incident.condition.conditionThreshold if incident.condition else None
        op = _COMPARISONS.get(threshold_.comparison if threshold_ else "", "vs threshold")
        text += f" {op} {threshold}{unit}"
    return text


def _documentation(incident: Incident) -> str:
    doc = incident.documentation
    if isinstance(doc, Documentation):
        return doc.content
    return doc or ""


def to_notice(notification: Notification, config: Config) -> AlertNotice:
    """The notice for a parsed notification: mapped to an endpoint and environment, every
    text masked. (`[alerts]` was validated with the whole config at start.)"""
    incident = notification.incident
    endpoint = endpoint_of(incident, config, alert_policies(config))
    labels = {**incident.policy_user_labels, **incident.resource.labels}
    if incident.metric.type:  # what breached: the severity rule reads it (not the names)
        labels[METRIC_TYPE_LABEL] = incident.metric.type
        labels |= {f"{METRIC_LABEL_PREFIX}{k}": v for k, v in incident.metric.labels.items()}
    url = incident.url if incident.url and incident.url.startswith("https://") else None
    return AlertNotice(
        key=KEY_PREFIX + visible(incident.incident_id),
        source=AlertSource.CLOUD_MONITORING,
        state=AlertState(incident.state),
        policy=outbound(incident.policy_name),
        condition=outbound(incident.condition_name),
        started_at=_moment(incident.started_at),
        ended_at=_moment(incident.ended_at),
        endpoint=endpoint.slug if endpoint else None,
        environment=_environment(incident, config, endpoint),
        summary=outbound(incident.summary),
        observed=outbound(_observed(incident)),
        url=visible(url) if url else None,
        documentation=outbound(_documentation(incident)),
        labels={str(k): str(v) for k, v in outbound_value(labels).items()},
    )


# ------------------------------------------------------------------------ the one call


def read_notification(
    body: bytes,
    headers: Mapping[str, Any],
    query: Mapping[str, Any],
    config: Config,
    secrets: Mapping[str, str],
) -> AlertNotice:
    """One webhook request → its notice: size, then credentials, then the payload, then
    the endpoint. `secrets` is where `AIOPS_ALERT_WEBHOOK_TOKEN` (and
    `AIOPS_ALERT_WEBHOOK_USER`) are read, normally `os.environ`.

    Raises `AlertAuthError` (answer 401: no token configured, or the request's do not
    match) or `AlertPayloadError` (answer 400); both messages are one line, safe to log."""
    _check_size(body)  # before any credential is read or compared
    token = (secrets.get(TOKEN_VAR) or "").strip()
    if not token:
        raise AlertAuthError(
            f"no webhook token is configured: set {TOKEN_VAR} (or {TOKEN_VAR}_SECRET to its"
            " Secret Manager secret); every notification is refused until then"
        )
    user = (secrets.get(USER_VAR) or "").strip() or DEFAULT_USER
    if not check_auth(headers, query, token, (user, token)):
        raise AlertAuthError(
            "the request's credentials do not match the channel's (auth_token in the URL or"
            " HTTP Basic)"
        )
    return to_notice(parse_notification(body), config)
