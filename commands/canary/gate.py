"""The promote gate: `/promote` shows the analysis so far and, where the environment
says so, refuses a canary without a "no regression" verdict at its current share unless
forced."""

from __future__ import annotations

from dataclasses import dataclass

from commands.audit import AuditAction
from commands.canary.act import settle
from commands.canary.model import (
    Check,
    EnvCanaryPolicy,
    Verdict,
    Watch,
    WatchState,
    canary_settings,
    env_policy,
)
from commands.canary.records import store_of
from commands.canary.steps import next_step, parse_steps, plan_text, step_key
from commands.canary.text import summary
from commands.canary.watch import ensure_watch, update_watch
from commands.config import Endpoint, Environment
from commands.errors import Refusal
from commands.model import Actor, Change, ChangePlan
from commands.parsing import Args, ParseError
from commands.runtime import Runtime

# --- /promote ---------------------------------------------------------------------------


@dataclass
class PromoteGate:
    """What `/promote` learnt from the analysis before planning."""

    watch: Watch | None
    summary: str
    steps: tuple[int, ...] = ()
    overridden: str | None = None  # why the gate would have refused, when force=true overrode it
    analysis: str | None = None  # the analysis summary when the promote was requested
    step_key: str | None = None  # a step plan's first step: the watch action it fulfils

    def mark(self, plan: ChangePlan) -> None:
        """Record on the promote change what the gate saw and decided."""
        if self.steps:
            plan.canary_steps = self.steps
            plan.canary_key = self.step_key
        if self.overridden is not None:
            plan.forced_promote = self.overridden
        if self.analysis is not None:
            plan.canary = self.analysis


def _failing(w: Watch | None, checks: list[Check]) -> str | None:
    """Why a canary may not be promoted in a gated environment, or None: only a "no
    regression" verdict on evidence gathered at the canary's current share opens the gate."""
    if w is None:
        return None
    if w.state is WatchState.ROLLING_BACK:
        return "the bot is rolling it back"
    if w.state is WatchState.AWAITING_DECISION:
        return f"it waits for a decision ({w.note or 'see the analysis'})"
    if not checks:
        return "undecided: no analysis window has been judged yet"
    if w.last_verdict is None:
        return "undecided: no window judged at its current share yet"
    last = checks[-1]
    if w.last_verdict is Verdict.REGRESSION:
        return f"regression ({'; '.join(last.reasons)})"
    if w.last_verdict is Verdict.UNDECIDED:
        return f"undecided ({'; '.join(last.reasons)})"
    return None


def before_promote(
    rt: Runtime, ep: Endpoint, env: Environment, args: Args, actor: Actor
) -> PromoteGate:
    """Read the analysis, apply the gate (prod: "no regression" or `force=true`) and turn
    `steps=` into the first step's `to=`. Raises `Refusal`."""
    policy: EnvCanaryPolicy = env_policy(rt.config, env)
    try:
        forced = args.flag("force")
    except ParseError as exc:
        raise Refusal(
            str(exc), "Write `force=true` to override the analysis.", code="malformed"
        ) from None
    if forced and not args.options.get("reason"):
        raise Refusal(
            "`force=true` needs a reason",
            'Add `reason="…"`: a forced promote is audited and flagged in the next digest.',
            code="missing_reason",
        )
    plan: tuple[int, ...] = ()
    if "steps" in args.options:
        if "to" in args.options:
            raise Refusal(
                "give either `to=` or `steps=`, not both",
                '`steps=10,25,50,100` moves one step after each "no regression"; `to=N` moves once.',
                code="malformed",
            )
        plan = parse_steps(args.options["steps"], policy)
    w = ensure_watch(rt, ep) if rt.canary is not None else None
    if w is not None:
        w = settle(rt, w)  # book a finished step first: its share needs its own window
    if w is not None and not w.state.is_active:
        w = None
    settings = canary_settings(rt.config)
    checks = store_of(rt).checks(w.id, 500) if w is not None else []
    text = summary(w, checks, settings, rt) if w is not None else "no canary analysis"
    gate = PromoteGate(w, text, plan)
    if w is not None and w.action is not None and w.action_change_id is None:
        raise Refusal(
            f"the bot is moving the canary on `{ep.slug}` right now ({w.action})",
            "Try again in a minute; see `/aiops canary " + ep.slug + "`.",
            code="locked",
        )
    if plan and w is not None:
        share = rt.platform.endpoint_state(ep).traffic.get(w.canary_id, 0)
        first = next_step(plan, share)
        if first is None:
            raise Refusal(
                f"the canary on `{ep.slug}` already takes {share}%; no step of"
                f" {plan_text(plan)} is ahead of it",
                "Promote with `to=100`, or give steps above its share.",
                code="malformed",
            )
        args.options["to"] = str(first)
        gate.step_key = step_key(w, first)
    why = _failing(w, checks) if policy.promote_gate else None
    if why is not None:
        if not forced:
            raise Refusal(
                f"the canary on `{ep.slug}` may not be promoted in `{env.name}`: {why}",
                f'Wait for a "no regression" verdict (`/aiops canary {ep.slug}` shows the'
                " analysis), or"
                ' override with `force=true reason="…"` (audited and flagged in the next digest).'
                f"\n{text}",
                code="canary_gate",
            )
        gate.overridden = why
    if w is not None:
        gate.analysis = text
    return gate


def after_promote_created(
    rt: Runtime, change: Change, gate: PromoteGate, actor: Actor, request_id: str | None
) -> None:
    """Audit a forced promote; put a step plan on the watch (the change is its first step)."""
    w = gate.watch
    if gate.overridden is not None:
        rt.auditor.record(
            AuditAction.FORCED_PROMOTE,
            actor.id,
            "promote despite the canary analysis",
            change=change,
            request_id=request_id,
            justification=change.reason,
            parameters={
                "overrode": gate.overridden,
                "canary": w.ref if w else None,
                "last_verdict": w.last_verdict.value if w and w.last_verdict else None,
                "consecutive_breaches": w.consecutive_breaches if w else None,
                "to": change.canary_percent,
            },
        )
    if w is not None and gate.steps:
        update_watch(
            rt,
            w,
            steps=list(gate.steps),
            plan_change_id=change.id,
            action="step",
            action_key=change.plan.canary_key,
            action_change_id=change.id,
            note=None,
            updated_at=rt.clock(),
        )
    elif w is not None:
        # Any promote is an action the watch follows: the next window is judged at the new share.
        update_watch(
            rt,
            w,
            action="promote",
            action_key=f"{w.ref}:promote:{change.id}",
            action_change_id=change.id,
            updated_at=rt.clock(),
        )
