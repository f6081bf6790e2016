"""Capacity that costs money and serves (almost) nobody: idle endpoints and deployed models
at 0 % of traffic, with what each cost yesterday and the change that would save it.

Rules (the morning digest's "Idle and unused capacity"):
- An endpoint is *idle* when all its deployed models together answered fewer than
  `[cost] idle_requests_per_day` requests (default 10) yesterday, the last whole day in the
  config's zone, while holding replicas. The proposal is to scale each deployed model that
  serves it and holds more than one replica down to `min=1` (its `max` stays the
  endpoint's `max_replicas`): one replica answers a handful of requests a day, and
  autoscaling still has the old ceiling if traffic comes back. Scale-to-zero is not
  proposed: it depends on the deployment (`/aiops scale` says where it is allowed).
- A deployed model is *unused* when its share of the endpoint's traffic is 0 % now and it
  held replicas yesterday. The proposal is to undeploy it (`/aiops undeploy` refuses one
  with traffic, and its plan shows what a rollback would then need).
- An endpoint with an open change (a canary, a blue/green switch in progress) gets no
  proposal: its change holds it, and its 0 % model may be the rollback target.

Each proposal is a *request*: the digest's buttons run `/aiops scale` and `/aiops undeploy`,
which open a change that the environment's approval rules govern.

Reading which version serves at what share costs one platform call per endpoint, so only
the candidates are read (endpoints under the idle bound, or with more than one deployed
model yesterday), the costliest first, at most `MAX_STATE_READS` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from commands.config import Endpoint
from commands.model import Change
from commands.ports import DeployedModelCost, Platform, PlatformError

MAX_STATE_READS = 20


@dataclass(frozen=True)
class ModelCapacity:
    """One deployed model: what it is, what it serves now and what it did yesterday."""

    endpoint: str
    deployed_model_id: str
    version: str  # the semantic version, as `/aiops scale` and `/aiops undeploy` take it
    share: int  # percent of the endpoint's traffic now
    replicas: int  # now (its minimum replica count)
    requests: int  # yesterday
    cost_usd: float | None  # yesterday's estimate (replica-hours × price); None: not priced


@dataclass(frozen=True)
class IdleEndpoint:
    endpoint: str
    requests: int  # yesterday, all deployed models
    cost_usd: float | None  # yesterday: billed when the platform has it, else the estimate
    billed: bool
    serving: tuple[ModelCapacity, ...]  # the deployed models with traffic now
    max_replicas: int  # the endpoint's configured ceiling, kept by the proposed scale-down
    held_by: str | None = None  # the open change that holds the endpoint

    @property
    def scalable(self) -> tuple[ModelCapacity, ...]:
        """The serving models a scale-down to one replica would shrink."""
        return tuple(m for m in self.serving if m.replicas > 1)


@dataclass
class Capacity:
    idle: list[IdleEndpoint] = field(default_factory=list)
    unused: list[ModelCapacity] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # endpoint → open change id
    not_read: int = 0  # candidates beyond MAX_STATE_READS
    problems: list[str] = field(default_factory=list)
    idle_requests_per_day: int = 10


def _candidates(
    endpoints: Sequence[Endpoint], usage: dict[str, list[DeployedModelCost]], idle_below: int
) -> list[Endpoint]:
    found = []
    for ep in endpoints:
        models = [m for m in usage.get(ep.slug, []) if m.replica_hours > 0]
        if not models:
            continue
        requests = sum(m.requests for m in usage[ep.slug])
        if requests < idle_below or len(models) > 1:
            found.append((-sum(m.cost_usd or 0.0 for m in models), ep.slug, ep))
    return [ep for *_, ep in sorted(found, key=lambda x: (x[0], x[1]))]


def find_capacity(
    platform: Platform,
    endpoints: Sequence[Endpoint],
    usage: dict[str, list[DeployedModelCost]],
    billed: dict[str, list[float]] | None,
    open_changes: Sequence[Change],
    idle_below: int,
) -> Capacity:
    """Idle endpoints and unused deployed models among `endpoints`, from yesterday's
    `usage` (`CostHistory.deployed_model_costs`), the endpoints' state now and their billed
    cost (`daily_costs`, last value yesterday's; None or absent: the estimate is shown)."""
    out = Capacity(idle_requests_per_day=idle_below)
    holders = {c.endpoint: c.id for c in open_changes}
    candidates = _candidates(endpoints, usage, idle_below)
    out.not_read = max(0, len(candidates) - MAX_STATE_READS)
    for ep in candidates[:MAX_STATE_READS]:
        try:
            state = platform.endpoint_state(ep)
        except PlatformError as exc:
            out.problems.append(f"{ep.slug}: what it serves is unknown: {exc}")
            continue
        held_by = holders.get(ep.slug)
        if held_by:
            out.held[ep.slug] = held_by
        day = {m.deployed_model_id: m for m in usage.get(ep.slug, [])}
        models = []
        for dm in state.deployed:
            used = day.get(dm.id)
            models.append(
                ModelCapacity(
                    endpoint=ep.slug,
                    deployed_model_id=dm.id,
                    version=dm.version.version,
                    share=state.traffic.get(dm.id, 0),
                    replicas=dm.replicas,
                    requests=used.requests if used else 0,
                    cost_usd=used.cost_usd if used else None,
                )
            )
        requests = sum(m.requests for m in day.values())
        if idle_below > 0 and requests < idle_below and state.deployed:
            bill = (billed or {}).get(ep.slug)
            estimates = [m.cost_usd for m in day.values()]
            estimate = (
                round(sum(c for c in estimates if c is not None), 2)
                if estimates and None not in estimates
                else None
            )
            out.idle.append(
                IdleEndpoint(
                    endpoint=ep.slug,
                    requests=requests,
                    cost_usd=bill[-1] if bill else estimate,
                    billed=bool(bill),
                    serving=tuple(m for m in models if m.share > 0),
                    max_replicas=ep.max_replicas,
                    held_by=held_by,
                )
            )
        out.unused += [
            m
            for m in models
            if m.share == 0 and (used := day.get(m.deployed_model_id)) and used.replica_hours > 0
        ]
    out.unused.sort(key=lambda m: (-(m.cost_usd or 0.0), m.endpoint, m.version))
    return out


def scale_down_value(
    endpoint: IdleEndpoint, model: ModelCapacity, *, with_reason: bool = False
) -> str:
    """The `/aiops scale` arguments the digest proposes: `<endpoint> <version> min=1
    max=<the endpoint's max_replicas>`; `with_reason` (what its button sends: a click
    cannot type the reason prod requires) adds `reason="…"` saying why."""
    value = f"{endpoint.endpoint} {model.version} min=1 max={max(1, endpoint.max_replicas)}"
    why = f"idle: {endpoint.requests} request(s) yesterday (morning digest)"
    return f'{value} reason="{why}"' if with_reason else value


def undeploy_value(model: ModelCapacity, *, with_reason: bool = False) -> str:
    """The `/aiops undeploy` arguments the digest proposes: `<endpoint> <version>`; with
    `reason="…"` for its button, as `scale_down_value`."""
    value = f"{model.endpoint} {model.version}"
    why = "at 0 % of traffic, held replicas yesterday (morning digest)"
    return f'{value} reason="{why}"' if with_reason else value


def daily_saving(model: ModelCapacity, replicas_after: int = 1) -> float | None:
    """USD a day a model's scale-down to `replicas_after` saves, at yesterday's rate per
    replica (None when yesterday's cost is not known)."""
    if model.cost_usd is None or model.replicas <= 0:
        return None
    return round(model.cost_usd * (model.replicas - replicas_after) / model.replicas, 2)
