"""Plans: the before → after of a change's traffic split (and what a rollback restores),
computed from the endpoint's state before anything is touched."""

from __future__ import annotations

from dataclasses import dataclass, field

from commands.errors import Refusal
from commands.model import NEW, ChangePlan, EndpointState, ModelVersion, TrafficSplit, check_split


@dataclass
class Plan:
    before: TrafficSplit
    after: TrafficSplit
    restore: TrafficSplit
    undeploy: list[str] = field(default_factory=list)  # deployed-model ids to remove after
    stable_id: str | None = None
    canary_id: str | None = None
    mode: str = "shift"  # deploy | shift | redeploy
    redeploy_version: str | None = None
    labels: dict[str, str] = field(default_factory=dict)  # deployed-model id → version

    def recorded(self, *, full_promote: bool = False) -> ChangePlan:
        """What the change keeps of this plan. `full_promote`: a promote to 100 % records
        the version it replaces, so a later rollback can redeploy it."""
        return ChangePlan(
            mode=self.mode,
            labels=dict(self.labels),
            stable_id=self.stable_id or None,
            canary_id=self.canary_id or None,
            undeploy=tuple(self.undeploy),
            redeploy_version=self.redeploy_version or None,
            replaced_version=(
                self.labels.get(self.stable_id, "") if full_promote and self.stable_id else None
            ),
        )


def _labels(state: EndpointState) -> dict[str, str]:
    return {d.id: d.version.version for d in state.deployed}


def find_canary(state: EndpointState, hint_id: str | None) -> tuple[str, str] | None:
    """(stable id, canary id) when the endpoint serves two models, else None."""
    if len(state.deployed) < 2:
        return None
    ids = [d.id for d in state.deployed]
    canary = hint_id if hint_id in ids else ids[-1]
    others = [i for i in ids if i != canary]
    stable = max(others, key=lambda i: state.traffic.get(i, 0))
    return stable, canary


def plan_deploy(state: EndpointState, version: ModelVersion, canary: int) -> Plan:
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
