"""The team's severity rules, as a suggestion a person confirms or overrides.

The rule (DESIGN.md, "Respond"; the operating framework's incident flow):

- **P1**: a production endpoint that customers depend on (`[endpoints.<slug>]
  customer_facing = true`) failing or breaching its error threshold;
- **P2**: any other trouble in production (latency, drift, a non-customer-facing
  endpoint's errors: degraded);
- **P3**: outside production, or no endpoint named (no known customer impact).

"Failing or breaching errors" reads, for an alert, its policy, condition, observed figure
and metric labels for errors (`error`, `5xx`, `unavailable`, `failing`, `down`); for an
endpoint with no alert, its error rate against `[thresholds] error_rate`. A suggestion is
shown with its reason; the person who declares decides (`sev=`)."""

from __future__ import annotations

import re

from commands.config import Config
from commands.errors import Refusal
from commands.incidents.model import AlertNotice, Severity
from commands.messages import escape
from commands.model import EndpointHealth

PROD = "prod"
_ERRORS = re.compile(r"error|5xx|\bunavailable\b|\bfailing\b|\bfailed\b|\bdown\b", re.IGNORECASE)


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
    """Whether an alert is about errors or failure (its policy, condition, observed figure
    or metric labels say so)."""
    words = [notice.policy, notice.condition, notice.observed]
    words += [v for k, v in notice.labels.items() if "metric" in k.lower()]
    return any(_ERRORS.search(w) for w in words if w)


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
