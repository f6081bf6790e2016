"""Budget alerts: the ops channel hears once when an environment's billed cost for a day
reaches each of `[cost] budget_alerts` (percentages of the environment's
`daily_budget_usd`; default 50 % and 100 %).

When: the scheduler runs `check` every `[cost] budget_check_every` (default an hour) on
one replica at a time. Each check reads the billed cost of the last two whole days in the
config's zone (one `CostHistory.daily_costs` call for every endpoint; the platform caches
it). The billing export lags by hours and fills a day in over the next one, so a day's
total rises through the morning after: an hourly check posts a threshold soon after the
export shows it crossed, and looking two days back catches rows that arrive after
midnight. Rows for older days that arrive later still are not alerted on.

Once: before posting, each (environment, day, percentage) is claimed through the caller's
`Claim` — the scheduler's run keys (`scheduler_run`, a primary key on (job, scheduled
time)): `budget:<environment>:<percent>` at the day's local midnight. Whoever inserts the
key posts; every other replica, a later check and a restarted process find it taken. One
message names every percentage the check claimed at once (a day first seen at 120 % is one
message for 50 % and 100 %). A post Slack refuses is audited as failed and not retried, as
for digests (NOTES.md).

Cost is billed cost only (Vertex AI: the BigQuery billing export; the sandbox simulates
it): without it there is nothing to alert on. A budget of 0 means any cost crosses every
percentage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from commands.audit import AuditAction
from commands.cost.settings import CostSettings, cost_settings
from commands.messages import Context, Post, Reply, Text
from commands.model import SCHEDULER
from commands.ports import CostHistory
from commands.runtime import Runtime

DAYS_CHECKED = 2

# (run key's job, the day's local midnight) → True for exactly one caller, ever.
Claim = Callable[[str, datetime], bool]


@dataclass(frozen=True)
class BudgetAlert:
    environment: str
    day: date
    cost_usd: float
    budget_usd: float
    thresholds: tuple[int, ...]  # the percentages this alert announces
    delivered: bool


def run_key(environment: str, percent: int) -> str:
    """The run key's job for one environment and percentage (its time is the day's)."""
    return f"budget:{environment[:100]}:{percent}"


def _money(x: float) -> str:
    return f"${x:,.2f}"


def percent_of(cost: float, budget: float) -> float | None:
    """`cost` as a percentage of `budget`; None for a zero budget."""
    return cost * 100 / budget if budget > 0 else None


def crossed(cost: float, budget: float, thresholds: tuple[int, ...]) -> tuple[int, ...]:
    """The percentages of `budget` that `cost` has reached (≥). Nothing for no cost."""
    if cost <= 0:
        return ()
    return tuple(p for p in thresholds if cost * 100 >= p * budget)


def message(
    environment: str,
    day: date,
    cost: float,
    budget: float,
    thresholds: tuple[int, ...],
    top: list[tuple[str, float]],
) -> Reply:
    share = percent_of(cost, budget)
    over = share is None or share >= 100
    mark = ":rotating_light:" if over else ":money_with_wings:"
    of = f"{share:.0f} % of its {_money(budget)} daily budget" if share is not None else "no budget"
    said = ", ".join(f"{p} %" for p in thresholds)
    head = (
        f"{mark} *Budget · {environment}*: {_money(cost)} billed on {day:%a %d %b}"
        f" — {of} (reached {said})."
    )
    if over:
        head += f" Over by {_money(cost - budget)}: tell finance."
    blocks: list[Text | Context] = [Text(head)]
    if top:
        blocks.append(Text("Top: " + ", ".join(f"`{s}` {_money(v)}" for s, v in top)))
    blocks.append(
        Context(
            (
                "Billed cost from the billing export, which lags by hours: the day's total may"
                " still grow. Each percentage of `[cost] budget_alerts` is posted once per"
                " environment and day. The morning digest lists idle capacity to cut.",
            )
        )
    )
    text = f"Budget {environment}: {_money(cost)} on {day:%d %b}, {of} (reached {said})"
    return Reply(text=text, blocks=list(blocks), ephemeral=False)


def check(
    rt: Runtime,
    claim: Claim,
    settings: CostSettings | None = None,
    *,
    now: datetime | None = None,
) -> list[BudgetAlert]:
    """Post what the last `DAYS_CHECKED` days' billed cost has crossed and nobody posted
    yet (see the module's docstring); each alert audited (`budget_alert`, as the
    scheduler). Returns the alerts this call posted (or tried to). Raises the platform's
    `PlatformError` when costs cannot be read (the scheduler records the run as failed
    and the next one tries again)."""
    settings = settings or cost_settings(rt.config)
    if not settings.budget_alerts or not isinstance(rt.platform, CostHistory):
        return []
    cfg = rt.config
    endpoints = list(cfg.endpoints.values())
    if not endpoints:
        return []
    costs = rt.platform.daily_costs(endpoints, DAYS_CHECKED)
    tz = cfg.timezone
    today = (now or rt.clock()).astimezone(tz).date()
    alerts = []
    for name, env in cfg.environments.items():
        slugs = [ep.slug for ep in endpoints if ep.environment == name and ep.slug in costs]
        for back in range(DAYS_CHECKED, 0, -1):
            index = DAYS_CHECKED - back
            values = {s: costs[s][index] for s in slugs if len(costs[s]) > index}
            if not values:
                continue  # no billed figure for this environment and day
            day = today - timedelta(days=back)
            total = round(sum(values.values()), 2)
            reached = crossed(total, env.daily_budget_usd, settings.budget_alerts)
            midnight = datetime.combine(day, time(0), tz)
            mine = tuple(p for p in reached if claim(run_key(name, p), midnight))
            if not mine:
                continue
            top = sorted(values.items(), key=lambda kv: -kv[1])[:3]
            reply = message(name, day, total, env.daily_budget_usd, mine, top)
            channel = cfg.channels.ops
            delivery = rt.notifier.deliver(Post(channel, reply))
            rt.auditor.record(
                AuditAction.BUDGET_ALERT,
                SCHEDULER.id,
                "posted" if delivery.delivered else f"post failed: {delivery.error}",
                environment=name,
                parameters={
                    "day": day.isoformat(),
                    "cost_usd": total,
                    "budget_usd": env.daily_budget_usd,
                    "percent": round(p, 1)
                    if (p := percent_of(total, env.daily_budget_usd)) is not None
                    else None,
                    "thresholds": list(mine),
                    "channel": channel,
                    "ts": delivery.ref.ts if delivery.ref else None,
                },
            )
            alerts.append(
                BudgetAlert(name, day, total, env.daily_budget_usd, mine, delivery.delivered)
            )
    return alerts


def describe(alerts: list[BudgetAlert]) -> str:
    """The scheduler's one-line outcome of a check."""
    if not alerts:
        return "no threshold newly crossed"
    return "; ".join(
        f"{a.environment} {a.day.isoformat()} {'/'.join(map(str, a.thresholds))} %"
        + ("" if a.delivered else " (post failed)")
        for a in alerts
    )
