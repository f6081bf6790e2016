"""`/aiops status`: each endpoint's versions, traffic, health and open change.

With many endpoints the reply is a page: the breaching ones first (worst first), then the
rest worst-first (closest to a threshold), `PAGE_SIZE` at a time, and "and N more" names
the next page (`page=`). An endpoint takes at most four blocks, so a page stays inside
Slack's 50 blocks however many endpoints there are. Health is read for every endpoint (one
query per metric, needed to order them); versions and traffic only for the page shown."""

from __future__ import annotations

from commands.config import Config, Endpoint
from commands.errors import Refusal
from commands.messages import (
    Block,
    Context,
    Divider,
    Fields,
    Header,
    Reply,
    Text,
    breaches,
    health_score,
)
from commands.model import OPEN_STATES, Change, EndpointHealth, EndpointState, model_key
from commands.runtime import Runtime

PAGE_SIZE = 10  # endpoints a page: 4 blocks each at most, + header, summary and "more"
USAGE = "/aiops status [endpoint] [page=N]"


def worst_first(
    config: Config, endpoints: list[Endpoint], health: dict[str, EndpointHealth]
) -> list[Endpoint]:
    """Breaching endpoints first, then the rest; each group worst first (closest to, or
    furthest past, a threshold); endpoints without figures last; then by name."""
    th = config.thresholds

    def key(ep: Endpoint) -> tuple[bool, bool, float, str]:
        h = health.get(ep.slug)
        if h is None:
            return (True, True, 0.0, ep.slug)
        return (not breaches(h, th), False, -health_score(h, th), ep.slug)

    return sorted(endpoints, key=key)


def status_reply(
    config: Config,
    states: dict[str, EndpointState],
    health: dict[str, EndpointHealth],
    open_changes: dict[str, Change],
    *,
    total: int | None = None,
    breaching: int | None = None,
    page: int = 1,
    pages: int = 1,
) -> Reply:
    """`states` are the endpoints shown, in order; `total` and `breaching` count them all
    (default: those shown). `open_changes`: by endpoint slug, and a model's retrain by its
    `model_key`."""
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
        retrain = open_changes.get(model_key(ep.model))
        if retrain:  # it holds the model, not this endpoint: changes here go ahead
            lines.append(
                f"model retraining: {retrain.state.mark} {retrain.id}"
                f" ({retrain.state.value.replace('_', ' ')})"
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
    total = len(states) if total is None else total
    breaching = flagged if breaching is None else breaching
    first = (page - 1) * PAGE_SIZE
    after = total - first - len(states)
    if after > 0:
        blocks.append(
            Context(
                (
                    f"… and {after} more endpoint(s), {breaching - min(first, breaching) - flagged} of"
                    f" them breaching: `/aiops status page={page + 1}` (page {page} of {pages}),"
                    " or `/aiops status <endpoint>`",
                )
            )
        )
    elif page > 1:
        blocks.append(Context((f"page {page} of {pages}: the last",)))
    summary = f"{total} endpoint(s), {breaching} breaching"
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
    text = f"Status: {summary}" + (f" (page {page} of {pages})" if pages > 1 else "")
    return Reply(text=text, blocks=blocks[:50])


def status(rt: Runtime, slug: str | None, page: int = 1) -> Reply:
    """Every endpoint (or the one named), a page at a time: its state and health from the
    platform, and its open change from the store."""
    cfg = rt.config
    eps = [rt.endpoint(slug, USAGE)] if slug else list(cfg.endpoints.values())
    health = rt.platform.health(eps)
    ordered = worst_first(cfg, eps, health)
    pages = max(1, -(-len(ordered) // PAGE_SIZE))
    if page > pages:
        raise Refusal(
            f"there is no page {page}: {len(ordered)} endpoint(s) make {pages} page(s)",
            f"Usage: `{USAGE}`",
            code="malformed",
        )
    shown = ordered[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    states = {ep.slug: rt.platform.endpoint_state(ep) for ep in shown}
    open_changes: dict[str, Change] = {}
    for change in rt.store.list_changes(states=sorted(OPEN_STATES), limit=500):
        open_changes.setdefault(change.endpoint, change)
    th = cfg.thresholds
    breaching = sum(1 for h in health.values() if breaches(h, th))
    return status_reply(
        cfg,
        states,
        health,
        open_changes,
        total=len(ordered),
        breaching=breaching,
        page=page,
        pages=pages,
    )
