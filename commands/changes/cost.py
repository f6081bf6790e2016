"""What a change does to cost: USD a day at the deployed models' minimum replicas (what
they hold however quiet the endpoint is), priced by the platform's replica-hour estimate
(`commands.ports.ReplicaPricing`: `[vertex.prices]` on Vertex AI, the sandbox's own price).

A plan records the figures when it is made (`ChangePlan.cost_before / cost_during /
cost_after`), so the card, the audit and the dossier show what the approver was shown.
They are estimates from list prices, never the bill: autoscaling above the minimum, and
discounts, are not in them."""

from __future__ import annotations

from commands.config import Endpoint
from commands.model import ChangePlan, EndpointState, Strategy
from commands.ports import PlatformError, ReplicaPricing
from commands.runtime import Runtime

HOURS_A_DAY = 24


def replica_day_usd(rt: Runtime, ep: Endpoint) -> float | None:
    """USD one replica of `ep` costs a day; None when the platform prices nothing."""
    if not isinstance(rt.platform, ReplicaPricing):
        return None
    try:
        hourly = rt.platform.replica_hour_usd(ep)
    except PlatformError:
        return None
    return None if hourly is None else hourly * HOURS_A_DAY


def money(usd: float) -> str:
    """`$62.88`, `$1,509.12`."""
    return f"${usd:,.2f}"


def price_deploy(rt: Runtime, ep: Endpoint, state: EndpointState, plan: ChangePlan) -> None:
    """A deploy's cost a day: now, while the new version runs beside the old one (its
    replicas are the endpoint's `min_replicas`), and once the old one is undeployed (a
    full promote, a blue-green promote, a replace's soak passed)."""
    day = replica_day_usd(rt, ep)
    if day is None:
        return
    now = sum(d.replicas for d in state.deployed)
    old = sum(d.replicas for d in state.deployed if d.id == plan.stable_id)
    plan.cost_before = round(now * day, 2)
    plan.cost_during = round((now + ep.min_replicas) * day, 2)
    plan.cost_after = round((now - old + ep.min_replicas) * day, 2)


def price_scale(rt: Runtime, ep: Endpoint, state: EndpointState, plan: ChangePlan) -> None:
    """A scale's cost a day before → after: the endpoint's models at their minimums, the
    scaled one's minimum changed."""
    day = replica_day_usd(rt, ep)
    if day is None or plan.replicas_before is None or plan.replicas_after is None:
        return
    now = sum(d.replicas for d in state.deployed)
    plan.cost_before = round(now * day, 2)
    plan.cost_after = round((now - plan.replicas_before[0] + plan.replicas_after[0]) * day, 2)


def price_undeploy(rt: Runtime, ep: Endpoint, state: EndpointState, plan: ChangePlan) -> None:
    """An undeploy's cost a day before → after: the removed model's replicas saved."""
    day = replica_day_usd(rt, ep)
    if day is None:
        return
    now = sum(d.replicas for d in state.deployed)
    gone = sum(d.replicas for d in state.deployed if d.id == plan.target_id)
    plan.cost_before = round(now * day, 2)
    plan.cost_after = round((now - gone) * day, 2)


def cost_line(plan: ChangePlan, kind: str) -> str | None:
    """The card's cost line, in words; None when the plan carries no price."""
    before, during, after = plan.cost_before, plan.cost_during, plan.cost_after
    if before is None or after is None:
        return None
    if during is None:  # a scale or an undeploy: one step
        delta = after - before
        change = (
            f"saves {money(-delta)} a day"
            if delta < 0
            else (f"adds {money(delta)} a day" if delta > 0 else "no change")
        )
        return f"{money(before)} → {money(after)} a day ({change})"
    strategy = plan.strategy or Strategy.CANARY.value
    until = {
        Strategy.CANARY.value: "while the canary runs beside it",
        Strategy.BLUE_GREEN.value: "while both are deployed (until the promote)",
        Strategy.REPLACE.value: "during the soak",
    }.get(strategy, "while both are deployed")
    if kind == "deploy" and during == after:
        return f"{money(before)} → {money(after)} a day"
    return f"{money(before)} → {money(during)} a day {until} → {money(after)} once the old one goes"
