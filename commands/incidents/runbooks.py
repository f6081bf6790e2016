"""Runbooks: the link that says what to do about an alert, from `[runbooks]`.

The alert message, the incident and the post-incident review show it; an alert with none
says so, and its review lists "add a runbook" as an action item (issue 17).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from commands.config import Config
from commands.text import outbound

V = TypeVar("V")


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def by_policy(table: Mapping[str, V], policy: str) -> V | None:
    """`table[policy]` for a config table keyed by alert policy name: the exact key, else
    the one equal ignoring case and runs of spaces (Cloud Monitoring shows display names as
    people typed them); the exact key wins when both would match."""
    if policy in table:
        return table[policy]
    wanted = _norm(policy)
    for name in sorted(table):
        if _norm(name) == wanted:
            return table[name]
    return None


def runbook_for(config: Config, policy: str | None, endpoint: str | None) -> str | None:
    """The runbook link for an alert of `policy` on `endpoint` (a config slug), or None.

    Order: the policy first, since a policy names the failure and its runbook says what to
    do about that failure, wherever it happens; then the endpoint, whose runbook is the
    general one for the service. A policy matches `[runbooks.policies]` by its exact name,
    else ignoring case and runs of spaces (Cloud Monitoring shows display names as people
    typed them); the exact key wins when both would match. Links are https, checked when
    the config is loaded."""
    if policy:
        found = by_policy(config.runbooks.policies, policy)
        if found is not None:
            return found
    if endpoint:
        return config.runbooks.endpoints.get(endpoint)
    return None


def missing_runbook(policy: str | None, endpoint: str | None) -> str:
    """What to add to the config when an alert has no runbook: one sentence naming the
    table and key (plain text: the caller escapes it for Slack or Markdown)."""
    policy = outbound(policy) if policy else policy
    if policy:
        return (
            f'add a runbook for the alert policy "{policy}": `[runbooks.policies]'
            f' "{policy}" = "https://…"`'
        )
    if endpoint:
        return f'add a runbook for {endpoint}: `[runbooks.endpoints] {endpoint} = "https://…"`'
    return "add a runbook for this alert under `[runbooks]` (`policies` or `endpoints`)"
