"""The team's severity rules, as a suggestion a person confirms or overrides.

The rule (DESIGN.md, "Respond"; the operating framework's incident flow):

- **P1**: a production endpoint that customers depend on (`[endpoints.<slug>]
  customer_facing = true`) failing or breaching its error threshold;
- **P2**: any other trouble in production (latency, drift, a non-customer-facing
  endpoint's errors: degraded);
- **P3**: outside production, or no endpoint named (no known customer impact).

"Failing or breaching errors" is read from what was measured, never from free text (a
policy named "errors …" on a latency metric is about latency):

- the bot's own alerts (the health watch, the canary `page` policy): label `metric`, the
  metric that breached (`error_rate` is errors; the canary's is set from its judge's
  reasons);
- Cloud Monitoring's: label `metric_type` (the notification's `incident.metric.type`,
  put there by `bot/alerts/cloud_monitoring.py`): a type whose name is about errors or
  failure (Vertex AI's `prediction/online/error_count`, an uptime check's `check_passed`,
  any `…error…`), or a `response_count` whose `metric.response_code` label is 5xx;
- an alert that names no metric is not taken as errors (P2 at most: the person who
  declares decides).

For an endpoint with no alert, its error rate against `[thresholds] error_rate`. A
suggestion is shown with its reason; the person who declares decides (`sev=`)."""

from __future__ import annotations

import re

from commands.config import Config
from commands.errors import Refusal
from commands.incidents.model import AlertNotice, Severity
from commands.messages import escape
from commands.model import EndpointHealth

PROD = "prod"
METRIC_LABEL = "metric"  # the bot's own alerts: the metric that breached
METRIC_TYPE_LABEL = "metric_type"  # Cloud Monitoring's `incident.metric.type`
METRIC_LABEL_PREFIX = "metric."  # Cloud Monitoring's `incident.metric.labels`, prefixed
ERROR_METRICS = frozenset({"error_rate"})  # the bot's own metric names that are errors
# the last segment of a Cloud Monitoring metric type that is about errors or failure
_ERROR_TYPE = re.compile(r"error|fail|check_passed", re.IGNORECASE)


def suggest(config: Config, endpoint: str | None, errors: bool) -> tuple[Severity, str]:
    """The suggested severity and why, in words, for trouble on `endpoint` (None: no
    endpoint named) that is (`errors`) or is not about errors."""
    ep = config.endpoints.get(endpoint or "")
    if ep is None:
        return Severity.P3, "no endpoint named: no known customer impact"
    if ep.environment != PROD:
        return Severity.P3, f"`{ep.slug}` is in {ep.environment}, not production"
    if ep.customer_facing and errors:
        return Severity.P1, f"`{ep.slug}` is a customer-facing production endpoint with errors"
    if errors:
        return Severity.P2, f"`{ep.slug}` is production but not customer-facing"
    return Severity.P2, f"`{ep.slug}` is production, degraded (not errors)"


def about_errors(notice: AlertNotice) -> bool:
    """Whether an alert is about errors or failure, from the metric that breached (the
    module's docstring says which labels); never from its policy's or condition's text."""
    metric = notice.labels.get(METRIC_LABEL)
    if metric:
        return metric in ERROR_METRICS
    kind = notice.labels.get(METRIC_TYPE_LABEL, "").rsplit("/", 1)[-1]
    if kind == "response_count":
        return notice.labels.get(f"{METRIC_LABEL_PREFIX}response_code", "").startswith("5")
    return bool(kind) and bool(_ERROR_TYPE.search(kind))


def suggest_for_alert(config: Config, notice: AlertNotice) -> tuple[Severity, str]:
    return suggest(config, notice.endpoint, about_errors(notice))


def suggest_for_health(
    config: Config, endpoint: str | None, health: EndpointHealth | None
) -> tuple[Severity, str]:
    """For a declaration with no alert: the endpoint's error rate now decides "errors"."""
    errors = bool(
        health is not None
        and health.error_rate is not None
        and health.error_rate > config.thresholds.error_rate
    )
    return suggest(config, endpoint, errors)


def parse_severity(text: str | None, usage: str) -> Severity:
    """`P1`, `p2`, `3` → the severity; a refusal naming the three otherwise."""
    raw = (text or "").strip().upper()
    if raw in ("1", "2", "3"):
        raw = "P" + raw
    try:
        return Severity(raw)
    except ValueError:
        shown = f" `{escape(text)}`" if text else ""
        raise Refusal(
            f"the severity{shown} is not one of P1, P2, P3",
            "P1: a customer-facing production endpoint failing or breaching errors;"
            f" P2: production degraded; P3: outside production, no customer impact. `{usage}`",
            code="malformed",
        ) from None
