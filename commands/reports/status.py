"""`/aiops status`: each endpoint's versions, traffic, health and open change."""

from __future__ import annotations

from commands.config import Config
from commands.messages import (
    Block,
    Context,
    Divider,
    Fields,
    Header,
    Reply,
    Text,
    breaches,
)
from commands.model import OPEN_STATES, Change, EndpointHealth, EndpointState
from commands.runtime import Runtime


def status_reply(
    config: Config,
    states: dict[str, EndpointState],
    health: dict[str, EndpointHealth],
    open_changes: dict[str, Change],
) -> Reply:
    th = config.thresholds
    blocks: list[Block] = [Header("Endpoint status")]
    flagged = 0
    for slug, state in states.items():
        ep = config.endpoints[slug]
        h = health.get(slug)
        found = breaches(h, th) if h else []
        flagged += bool(found)
        mark = ":red_circle:" if found else ":large_green_circle:"
        lines = [f"{mark} *{slug}* ({ep.environment}) — {state.describe()}"]
        if found:
            lines.append(":warning: " + "; ".join(found))
        change = open_changes.get(slug)
        if change:
            lines.append(
                f"open change: {change.state.mark} {change.id} {change.kind.value} ({change.state.value.replace('_', ' ')})"
            )
        blocks.append(Text("\n".join(lines)))
        if h:
            pairs = [
                (
                    "P95 latency",
                    f"{h.p95_latency_ms:.0f} ms" if h.p95_latency_ms is not None else "n/a",
                ),
                ("Error rate", f"{h.error_rate:.2%}" if h.error_rate is not None else "n/a"),
                ("Drift", f"{h.drift:.3f}" if h.drift is not None else "not monitored"),
                ("Replicas", f"{h.replicas} / {h.max_replicas}"),
                (
                    # a billed (non-estimate) figure is yesterday's: the export lags by hours
                    "Cost today" if h.cost_is_estimate else "Cost yesterday (billed)",
                    (f"${h.cost_today_usd:,.2f}" + (" (estimate)" if h.cost_is_estimate else ""))
                    if h.cost_today_usd is not None
                    else "n/a",
                ),
                ("Requests (1 h)", f"{h.request_count:,}"),
            ]
            blocks.append(Fields(tuple(pairs)))
            labels = {d.id: d.version.version for d in state.deployed}
            per_model = [
                f"{labels.get(dm, dm)}: "
                f"P95 {m.p95_latency_ms:.0f} ms, errors {m.error_rate:.2%}, {m.request_count:,} req"
                for dm, m in h.by_model.items()
                if m.p95_latency_ms is not None and m.error_rate is not None and len(h.by_model) > 1
            ]
            if per_model:
                blocks.append(Context(tuple(per_model[:10])))
        blocks.append(Divider())
    summary = f"{len(states)} endpoint(s), {flagged} breaching"
    shown = {config.endpoints[slug].environment for slug in states}
    dashboards = [
        f"<{env.dashboard_url}|{env.name} dashboard>"
        for env in config.environments.values()
        if env.name in shown and env.dashboard_url
    ]
    blocks.append(
        Context(
            (
                summary
                + f" · thresholds P95 {th.p95_latency_ms:.0f} ms, errors {th.error_rate:.0%}, drift {th.drift:g}"
                + "".join(f" · {d}" for d in dashboards),
            )
        )
    )
    return Reply(text=f"Status: {summary}", blocks=blocks[:50])


def status(rt: Runtime, slug: str | None) -> Reply:
    """Every endpoint (or the one named): its state and health from the platform, and its
    open change from the store."""
    cfg = rt.config
    eps = [rt.endpoint(slug, "/aiops status [endpoint]")] if slug else list(cfg.endpoints.values())
    states = {ep.slug: rt.platform.endpoint_state(ep) for ep in eps}
    health = rt.platform.health(eps)
    open_changes: dict[str, Change] = {}
    for change in rt.store.list_changes(states=sorted(OPEN_STATES), limit=500):
        open_changes.setdefault(change.endpoint, change)
    return status_reply(cfg, states, health, open_changes)
