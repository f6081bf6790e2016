"""The `[cost]` table, read and checked once (`cost_settings`), and each environment's
daily budget (`[environments.<name>] daily_budget_usd`, in `commands.config.Environment`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from commands import config_schema
from commands.config import Config
from commands.durations import parse_duration


@dataclass(frozen=True)
class CostSettings:
    """`idle_requests_per_day`: an endpoint that answered fewer requests than this over
    yesterday (a whole local day in the config's zone) is idle; 0 turns idle detection off.
    `budget_alerts`: percentages of an environment's daily budget, rising; each is posted
    once per environment and day. `budget_check_every`: the cadence of the check."""

    idle_requests_per_day: int = 10
    budget_alerts: tuple[int, ...] = (50, 100)
    budget_check_every: timedelta = timedelta(hours=1)


def cost_settings(config: Config) -> CostSettings:
    """`[cost]` checked against the schema (unknown keys and bad values refused with the
    file's name, the table and the key, as `commands.config_schema.validate` does)."""
    table: config_schema.CostTable = config_schema.validate_table(
        config_schema.CostTable, config.raw.get("cost"), ("cost",), config.source
    )
    return CostSettings(
        idle_requests_per_day=table.idle_requests_per_day,
        budget_alerts=tuple(table.budget_alerts),
        budget_check_every=parse_duration(table.budget_check_every),
    )
