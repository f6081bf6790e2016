"""Deployment strategies (`/deploy … strategy=canary|blue-green|replace`): reading the
option, the `[strategies]` table, and the replace strategy's soak judgement.

How each runs is in `commands/changes/execute.py` (one executor for every change); what
each plans is in `commands/changes/plan.py: plan_deploy`. The canary analysis
(`commands/canary/`) runs only where traffic is split, i.e. for canaries: a blue-green
switch and a replacement never split it, so their deploys start no watch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from commands import config_schema
from commands.config import Config, Thresholds
from commands.durations import parse_duration
from commands.errors import Refusal
from commands.messages import did_you_mean, escape
from commands.model import EndpointHealth, Strategy

# How often a replace's soak reads the new version's health (one Monitoring read of the
# endpoint each time): Monitoring's shortest period.
SOAK_CHECK = timedelta(minutes=1)


@dataclass(frozen=True)
class StrategySettings:
    replace_soak: timedelta = timedelta(minutes=10)


def strategy_settings(config: Config) -> StrategySettings:
    """`[strategies]`, checked against the schema (the soak's 1m floor)."""
    table: config_schema.StrategiesTable = config_schema.validate_table(
        config_schema.StrategiesTable, config.raw.get("strategies"), ("strategies",), config.source
    )
    return StrategySettings(replace_soak=parse_duration(table.replace_soak))


def parse_strategy(raw: str | None) -> Strategy:
    """`strategy=` of `/deploy` (default canary); unknown words are refused with the three."""
    if raw is None:
        return Strategy.CANARY
    text = raw.strip().lower().replace("_", "-").replace("bluegreen", "blue-green")
    try:
        return Strategy(text)
    except ValueError:
        names = [s.value for s in Strategy]
        raise Refusal(
            f"`strategy={escape(raw)}` is not a deployment strategy" + did_you_mean(text, names),
            "Write `strategy=canary` (the default: a share of traffic, judged by the canary"
            " analysis), `strategy=blue-green` (deploy at 0 %, switch 100 % once ready, the old"
            " version kept until promoted) or `strategy=replace` (deploy at 100 %, the old one"
            " undeployed after the soak).",
            code="malformed",
        ) from None


def describe(strategy: Strategy, *, canary: int | None, old: str, soak: timedelta) -> str:
    """What a strategy does to traffic, in one line for the card's *How*."""
    if strategy is Strategy.BLUE_GREEN:
        return (
            f"blue/green: deployed at 0 %, switched to 100 % in one traffic update once"
            f" ready; {old} stays deployed and ready until `/promote` undeploys it"
        )
    if strategy is Strategy.REPLACE:
        return (
            f"replace: deployed at 100 %; {old} is undeployed once the new version has been"
            f" healthy for {_minutes(soak)} (P95 and errors within the thresholds), else"
            f" traffic goes back to {old}"
        )
    return f"canary {canary}%" + (
        "; the canary analysis judges it against " + old if canary and canary < 100 else ""
    )


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"


def soak_breach(
    health: EndpointHealth | None, deployed_model_id: str, thresholds: Thresholds
) -> tuple[str | None, int]:
    """Judge the new version during a replace's soak against `[thresholds]`: (why it is
    unhealthy, or None; how many of its requests the figures cover). Its own figures
    where the platform splits them by deployed model (it serves all traffic, so the
    endpoint's otherwise). No requests is no evidence either way: not a breach."""
    if health is None:
        return None, 0
    mine = health.by_model.get(deployed_model_id)
    p95 = mine.p95_latency_ms if mine else health.p95_latency_ms
    errors = mine.error_rate if mine else health.error_rate
    count = mine.request_count if mine else health.request_count
    if not count:
        return None, 0
    reasons = []
    if p95 is not None and p95 > thresholds.p95_latency_ms:
        reasons.append(f"P95 {p95:,.0f} ms > {thresholds.p95_latency_ms:,.0f} ms")
    if errors is not None and errors > thresholds.error_rate:
        reasons.append(f"errors {errors:.2%} > {thresholds.error_rate:.2%}")
    return ("; ".join(reasons) or None), count
