"""Plans: the before → after of a change's traffic split (and what a rollback restores),
its replicas and its cost a day, computed from the endpoint's state before anything is
touched.

Strategies (`/deploy … strategy=`, `commands.model.Strategy`) are planned here
(`plan_deploy`) and run by `commands/changes/execute.py`; the canary analysis
(`commands/canary/`) runs only where traffic is split, i.e. for canaries.

Cost a day is at the deployed models' minimum replicas (what they hold however quiet the
endpoint is), priced by the platform's replica-hour estimate (`ReplicaPricing`:
`[vertex.prices]` on Vertex AI, the sandbox's own price). A plan records the figures when
it is made (`ChangePlan.cost_before / cost_during / cost_after`), so the card, the audit
and the dossier show what the approver was shown. They are list-price estimates, never
the bill: autoscaling above the minimum and discounts are not in them."""

from __future__ import annotations

from dataclasses import dataclass, field

from commands.errors import Refusal
from commands.messages import escape
from commands.model import (
    NEW,
    ChangePlan,
    DeployedModel,
    EndpointState,
    InvalidModelVersion,
    ModelVersion,
    Strategy,
    TrafficSplit,
    check_split,
)
from commands.ports import ScaleLimits


@dataclass
class Plan:
    before: TrafficSplit
    after: TrafficSplit
    restore: TrafficSplit
    undeploy: list[str] = field(default_factory=list)  # deployed-model ids to remove after
    stable_id: str | None = None
    canary_id: str | None = None
    mode: str = "shift"  # deploy | shift | redeploy | mutate
    redeploy_version: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # deployed-model id → version
    strategy: Strategy | None = None  # a deploy's
    target_id: str | None = None  # a scale's or undeploy's deployed model
    replicas_before: tuple[int, int] | None = None  # a scale's (min, max)
    replicas_after: tuple[int, int] | None = None
    replicas: dict[str, int] = field(default_factory=dict)  # deployed-model id → its min
    # the version this plan removes that a later rollback would redeploy (an undeploy of the
    # version a blue/green switched from: the only one left to roll back to)
    replaced: str | None = None

    def recorded(
        self, *, full_promote: bool = False, day: float | None = None, new_replicas: int = 0
    ) -> ChangePlan:
        """What the change keeps of this plan. `full_promote`: a promote to 100 % records
        the version it replaces, so a later rollback can redeploy it. `day`: USD one
        replica costs a day, to price a deploy (its new model holds `new_replicas`), a
        scale or an undeploy (`_price`)."""
        plan = ChangePlan(
            mode=self.mode,
            labels=dict(self.labels),
            stable_id=self.stable_id or None,
            canary_id=self.canary_id or None,
            undeploy=tuple(self.undeploy),
            redeploy_version=self.redeploy_version or None,
            replaced_version=self.replaced
            or (self.labels.get(self.stable_id, "") if full_promote and self.stable_id else None),
            strategy=self.strategy.value if self.strategy is not None else None,
            target_id=self.target_id,
            replicas_before=self.replicas_before,
            replicas_after=self.replicas_after,
        )
        if day is not None:
            self._price(plan, day, new_replicas)
        return plan

    def _price(self, plan: ChangePlan, day: float, new_replicas: int) -> None:
        """Cost a day before → after: a deploy also while old and new are both deployed
        (`cost_during`; after: once the old one is undeployed); a scale with the model's
        new minimum; an undeploy without the model. Promotes and rollbacks: not priced."""
        now = sum(self.replicas.values())
        if self.mode == "deploy":
            old = self.replicas.get(self.stable_id or "", 0)
            plan.cost_before = round(now * day, 2)
            plan.cost_during = round((now + new_replicas) * day, 2)
            plan.cost_after = round((now - old + new_replicas) * day, 2)
        elif self.mode == "mutate" and self.replicas_before and self.replicas_after:
            plan.cost_before = round(now * day, 2)
            scaled = now - self.replicas_before[0] + self.replicas_after[0]
            plan.cost_after = round(scaled * day, 2)
        elif self.target_id is not None and self.target_id in self.undeploy:
            plan.cost_before = round(now * day, 2)
            plan.cost_after = round((now - self.replicas.get(self.target_id, 0)) * day, 2)


def _labels(state: EndpointState) -> dict[str, str]:
    return {d.id: d.version.version for d in state.deployed}


def _replicas(state: EndpointState) -> dict[str, int]:
    return {d.id: d.replicas for d in state.deployed}


def find_canary(state: EndpointState, hint_id: str | None) -> tuple[str, str] | None:
    """(stable id, canary id) when the endpoint serves two models, else None."""
    if len(state.deployed) < 2:
        return None
    ids = [d.id for d in state.deployed]
    canary = hint_id if hint_id in ids else ids[-1]
    others = [i for i in ids if i != canary]
    stable = max(others, key=lambda i: state.traffic.get(i, 0))
    return stable, canary


def plan_deploy(
    state: EndpointState,
    version: ModelVersion,
    canary: int,
    strategy: Strategy = Strategy.CANARY,
) -> Plan:
    """A deploy beside the one serving version. `canary` (1–100) is a canary's share; a
    blue-green or replace deploy ends with the new version at 100 %: blue-green keeps the
    old one deployed at 0 % (it shows in the split after), replace undeploys it after
    the soak."""
    if state.by_version(version):
        raise Refusal(
            f"`{state.slug}` already serves {version} ({state.describe()})",
            "Use `/promote` to move its traffic, or deploy another version.",
        )
    serving = [dm_id for dm_id, share in state.traffic.items() if share > 0]
    if len(state.deployed) > 1 or len(serving) != 1:
        raise Refusal(
            f"`{state.slug}` already has a canary in flight ({state.describe()})",
            f"Finish it first: `/promote {state.slug}` or `/rollback {state.slug}`.",
        )
    stable = serving[0]
    before = dict(state.traffic)
    if strategy is Strategy.BLUE_GREEN:
        return Plan(
            before=before,
            after={stable: 0, NEW: 100},  # old stays deployed and ready until promoted
            restore=before,
            stable_id=stable,
            mode="deploy",
            labels=_labels(state),
            strategy=strategy,
            replicas=_replicas(state),
        )
    if strategy is Strategy.REPLACE:
        canary = 100
    after = {stable: 100 - canary, NEW: canary} if canary < 100 else {NEW: 100}
    return Plan(
        before=before,
        after=after,
        restore=before,
        # all traffic to the new version: the old one is undeployed once it serves (a
        # later rollback redeploys it), not left at 0 % holding replicas
        undeploy=[stable] if canary >= 100 else [],
        stable_id=stable,
        mode="deploy",
        labels=_labels(state),
        strategy=strategy,
        replicas=_replicas(state),
    )


def plan_promote(state: EndpointState, canary_hint: str | None, to: int) -> Plan:
    pair = find_canary(state, canary_hint)
    if pair is None:
        raise Refusal(
            f"`{state.slug}` has no canary to promote ({state.describe()})",
            f"Deploy one first: `/deploy {state.slug} <model>@<version>`.",
        )
    stable, canary = pair
    current = state.traffic.get(canary, 0)
    if current == to == 100 and not state.traffic.get(stable, 0):
        # A blue-green deploy switched (or a full promote stopped before its undeploy):
        # the old version waits at 0 %; promoting finishes by undeploying it.
        return Plan(
            before=dict(state.traffic),
            after=dict(state.traffic),
            restore=dict(state.traffic),
            undeploy=[stable],
            stable_id=stable,
            canary_id=canary,
            labels=_labels(state),
            replicas=_replicas(state),
            target_id=stable,  # priced as the undeploy it is
        )
    if current == to:
        raise Refusal(f"the canary on `{state.slug}` already takes {to}%", "Pick another `to=`.")
    after = check_split({canary: to, stable: 100 - to})
    return Plan(
        before=dict(state.traffic),
        after=after,
        restore=dict(state.traffic),
        undeploy=[stable] if to == 100 else [],
        stable_id=stable,
        canary_id=canary,
        labels=_labels(state),
    )


def plan_rollback(
    state: EndpointState,
    canary_hint: str | None,
    previous_version: ModelVersion | None,
) -> Plan:
    pair = find_canary(state, canary_hint)
    labels = _labels(state)
    if pair is not None:
        stable, canary = pair
        return Plan(
            before=dict(state.traffic),
            after={stable: 100},
            restore=dict(state.traffic),
            undeploy=[canary],
            stable_id=stable,
            canary_id=canary,
            labels=labels,
        )
    # One model left: the previous version must be deployed again, then take all traffic.
    if previous_version is None or len(state.deployed) != 1:
        raise Refusal(
            f"`{state.slug}` has no canary and no earlier version on record to roll back to"
            f" ({state.describe()})",
            f"Deploy the version you want with `/deploy {state.slug} <model>@<version> canary=100`.",
        )
    current = state.deployed[0]
    if current.version == previous_version:
        raise Refusal(f"`{state.slug}` already serves {previous_version}")
    return Plan(
        before=dict(state.traffic),
        after={NEW: 100},
        restore=dict(state.traffic),
        undeploy=[current.id],
        stable_id=None,
        canary_id=current.id,
        mode="redeploy",
        redeploy_version=str(previous_version),
        labels=labels,
    )


def find_target(state: EndpointState, model: str, version: str | None, usage: str) -> DeployedModel:
    """The deployed model a scale or undeploy names: by `version` (`1.2.0` or
    `<model>@1.2.0`), or the only one deployed when none is given."""
    versions = ", ".join(f"`{d.version.version}`" for d in state.deployed) or "none"
    if version is None:
        if len(state.deployed) == 1:
            return state.deployed[0]
        raise Refusal(
            f"`{state.slug}` has {len(state.deployed)} deployed models ({state.describe()});"
            " which version?",
            f"Name it: `{usage}`; deployed: {versions}.",
            code="malformed",
        )
    text = version if "@" in version else f"{model}@{version}"
    try:
        wanted = ModelVersion.parse(text)
    except InvalidModelVersion as exc:
        raise Refusal(escape(str(exc)), f"Usage: `{usage}`", code="malformed") from None
    found = state.by_version(wanted)
    if found is None:
        raise Refusal(
            f"`{escape(wanted.version)}` is not deployed on `{state.slug}` ({state.describe()})",
            f"Deployed versions: {versions}.",
            code="not_found",
        )
    return found


def plan_scale(
    state: EndpointState,
    target: DeployedModel,
    min_replicas: int | None,
    max_replicas: int | None,
    limits: ScaleLimits,
    config_max: int,
) -> Plan:
    """A deployed model's (min, max) replicas → the new ones; traffic stays as it is.
    Unset bounds keep their current value. Refused: nothing given, min > max, min below
    what the platform allows there (0 without scale-to-zero: `limits.zero_refused` says
    why), max above the endpoint's `max_replicas` in the config (the ceiling the team set
    for it) or the platform's."""
    label = target.version.version
    old = (target.replicas, target.max_replicas if target.max_replicas is not None else config_max)
    if min_replicas is None and max_replicas is None:
        raise Refusal(
            "say what to scale to: `min=N`, `max=M` or both",
            f"{label} on `{state.slug}` now runs min {old[0]} · max {old[1]} replicas.",
            code="malformed",
        )
    new = (
        old[0] if min_replicas is None else min_replicas,
        old[1] if max_replicas is None else max_replicas,
    )
    if new[0] > new[1]:
        raise Refusal(
            f"min {new[0]} is above max {new[1]}: a deployed model cannot keep more replicas"
            " than it may scale to",
            "Give `min=` no higher than `max=`"
            + ("" if max_replicas is not None else f" (max stays {old[1]} unless you give it)")
            + ".",
            code="malformed",
        )
    if new[0] < limits.lowest_min:
        if new[0] == 0 and limits.zero_refused:
            raise Refusal(
                f"`{state.slug}` cannot scale {label} to zero replicas: {limits.zero_refused}",
                "Scale to `min=1` to halve what an idle model holds, or, if it serves 0 %,"
                f" remove it with `/aiops undeploy {state.slug} {label}`.",
                code="scale_to_zero",
            )
        raise Refusal(
            f"min {new[0]} is below {limits.lowest_min}, the least the platform allows here",
            f"Give `min={limits.lowest_min}` or more.",
            code="malformed",
        )
    ceiling = min(config_max, limits.highest_max)
    if new[1] > ceiling:
        where = (
            f"the endpoint's `max_replicas` in the config ({config_max})"
            if config_max <= limits.highest_max
            else f"the most the platform allows ({limits.highest_max})"
        )
        raise Refusal(
            f"max {new[1]} is above {where}",
            f"Give `max={ceiling}` or less; a higher ceiling is a config change"
            f" (`[endpoints.{state.slug}] max_replicas`), reviewed like any other.",
            code="malformed",
        )
    if new == old:
        raise Refusal(
            f"{label} on `{state.slug}` already runs min {old[0]} · max {old[1]} replicas;"
            " nothing to change",
            code="malformed",
        )
    traffic = dict(state.traffic)
    return Plan(
        before=traffic,
        after=traffic,
        restore=traffic,
        mode="mutate",
        labels=_labels(state),
        replicas=_replicas(state),
        target_id=target.id,
        replicas_before=old,
        replicas_after=new,
    )


def plan_undeploy(
    state: EndpointState, target: DeployedModel, canary_hint: str | None = None
) -> Plan:
    """Remove a deployed model that serves 0 %; one with traffic is refused (move its
    traffic first: a promote, a rollback). Removing the version a blue/green switched from
    (the newer one, `canary_hint`, serves 100 %) removes what `/rollback` would switch back
    to: the plan records it as `replaced`, so a later rollback redeploys it, as after the
    promote that finishes a blue/green."""
    share = state.traffic.get(target.id, 0)
    label = target.version.version
    if share > 0:
        raise Refusal(
            f"{label} serves {share}% of `{state.slug}` ({state.describe()}); only a model"
            " at 0 % may be undeployed",
            f"Move its traffic first: `/promote {state.slug}` or `/rollback {state.slug}`"
            " (each undeploys the model it leaves at 0 %).",
            code="has_traffic",
        )
    traffic = dict(state.traffic)
    pair = find_canary(state, canary_hint)
    previous = pair is not None and pair[0] == target.id and state.traffic.get(pair[1], 0) == 100
    return Plan(
        before=traffic,
        after=traffic,
        restore=traffic,
        undeploy=[target.id],
        mode="shift",
        labels=_labels(state),
        replicas=_replicas(state),
        target_id=target.id,
        replaced=label if previous else None,
    )
