"""Step plans and the changes the bot makes for a canary.

A step plan (`/promote <endpoint> steps=10,25,50,100`, or the environment's
`promote_steps` with `steps=default`) lives on the canary's watch: the shares, the last
step reached, and at most one action in flight. Every step is an ordinary promote change
(planned, audited, run by `commands.changes.execute`), so it shows in `/aiops changes` and the
audit like any other. Exactly once: the watch row is claimed first by compare-and-set
(`action_key` = `CAN-7:step:50`), the change carries the same key in its plan (`canary_key`), and the
endpoint's one-open-change lock makes a second creator find the first one's change. A bot
that dies between the claim and the change finds its key unfulfilled on the next tick and
creates the change then, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from commands.canary.model import EnvCanaryPolicy, Watch, check_steps
from commands.changes.lifecycle import Opening, open_change
from commands.changes.plan import plan_promote, plan_rollback
from commands.config import ConfigError, Endpoint
from commands.errors import Refusal
from commands.messages import escape
from commands.model import Actor, Change, ChangeKind, ChangeState
from commands.parsing import whole_number
from commands.ports import EndpointLocked
from commands.runtime import Runtime


def parse_steps(text: str, policy: EnvCanaryPolicy) -> tuple[int, ...]:
    """`10,25,50,100` (percent signs allowed), or `default` for the environment's plan."""
    raw = text.strip().lower()
    if raw in ("default", "yes", "true"):
        return policy.promote_steps
    try:
        values = [whole_number(part.strip().removesuffix("%")) for part in raw.split(",")]
        if None in values:
            raise ValueError("not a whole number")
        return check_steps([v for v in values if v is not None], "steps")
    except (ValueError, ConfigError):
        raise Refusal(
            f"`steps={escape(text)}` is not a step plan",
            "Write rising whole percents ending where you want the canary, e.g."
            " `steps=10,25,50,100`, or `steps=default` for the environment's plan"
            f" ({','.join(map(str, policy.promote_steps))}).",
            code="malformed",
        ) from None


def next_step(steps: list[int] | tuple[int, ...], share: int) -> int | None:
    """The first step above the canary's current share."""
    return next((s for s in steps if s > share), None)


def plan_text(steps: list[int] | tuple[int, ...], share: int | None = None) -> str:
    parts = [f"*{s}%*" if s == share else f"{s}%" for s in steps]
    return " → ".join(parts)


def step_key(watch: Watch, target: int) -> str:
    return f"{watch.ref}:step:{target}"


def rollback_key(watch: Watch) -> str:
    return f"{watch.ref}:rollback"


def find_keyed(rt: Runtime, endpoint: str, key: str) -> Change | None:
    """The change that fulfils a watch action, if one was made (also by another replica)."""
    for change in rt.store.list_changes(endpoint=endpoint, limit=50):
        if change.plan.canary_key == key:
            return change
    return None


@dataclass(frozen=True)
class Made:
    """What `make_change` did: a change (made now or found), or why there is none."""

    change: Change | None
    blocked_by: Change | None = None  # another open change holds the endpoint
    nothing_to_do: bool = False  # the endpoint is already where the action would take it


def make_change(
    rt: Runtime,
    watch: Watch,
    *,
    kind: ChangeKind,
    key: str,
    requester: Actor,
    decided_by: str,
    reason: str,
    target: int | None = None,
    note: str | None = None,
    forced_promote: str | None = None,
) -> Made:
    """Plan, record, approve (by policy or by the person who decided) and start a change
    on the watch's canary: a promote to `target`, or a rollback. Idempotent by `key`."""
    ep: Endpoint = rt.config.endpoints[watch.endpoint]
    env = rt.config.environment_of(ep)
    holder = rt.store.open_change(ep.slug)
    if holder is not None:
        if holder.plan.canary_key == key:
            return Made(holder)
        return Made(None, blocked_by=holder)
    done = find_keyed(rt, ep.slug, key)
    if done is not None:
        return Made(done)
    state = rt.platform.endpoint_state(ep)
    if state.model(watch.canary_id) is None:
        return Made(None, nothing_to_do=True)
    try:
        if kind is ChangeKind.PROMOTE:
            assert target is not None
            if state.traffic.get(watch.canary_id, 0) >= target:
                return Made(None, nothing_to_do=True)
            plan = plan_promote(state, watch.canary_id, target)
        else:
            plan = plan_rollback(state, watch.canary_id, None)
    except Refusal:
        return Made(None, nothing_to_do=True)
    recorded = plan.recorded(full_promote=kind is ChangeKind.PROMOTE and target == 100)
    recorded.canary_key = key
    recorded.forced_promote = forced_promote
    change = Change(
        id="",
        kind=kind,
        endpoint=ep.slug,
        environment=env.name,
        requester_id=requester.id,
        state=ChangeState.REQUESTED,
        created_at=rt.clock(),
        reason=reason,
        canary_percent=target,
        split_before=plan.before,
        split_after=plan.after,
        restore_split=plan.restore,
        plan=recorded,
    )
    channel = rt.config.channels.approvals if env.needs_approval else rt.config.channels.ops
    try:
        change = open_change(
            rt,
            change,
            requester.id,
            Opening(channel=channel, decided_by=decided_by, note=note),
            parameters={"canary": watch.ref, "key": key},
        )
    except EndpointLocked as locked:
        if locked.holder.plan.canary_key == key:
            return Made(locked.holder)
        return Made(None, blocked_by=locked.holder)
    return Made(change)
