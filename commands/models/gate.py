"""The model-risk gate: a deploy of a version, or a promote of one, into an environment
with `require_validation = true` needs the version's validation `approved` in the registry
(by one of the environment's `validators`, when it names any). Model risk management in a
regulated lender (APRA CPG 235, SR 11-7): a model is independently validated before it is
used in production.

Decided when the change is requested (`review`) and again when an approval counts
(`recheck`): a version whose sign-off was withdrawn meanwhile is not approved into prod.
Break glass overrides it: the change runs, its review says `overridden`, and a
`validation_override` audit row flags it in the digests. A rollback is never gated
(mitigation first). The review — the version's card summary, lineage, evaluation and
validation as the registry said then, with the outcome — is kept on the change, so its
card, audit and dossier show what was approved."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.config import Endpoint, Environment
from commands.errors import Refusal
from commands.messages import escape, mention
from commands.model import Change, ChangeKind, ModelVersion
from commands.models.model import (
    GateOutcome,
    RegistryVersion,
    Review,
    ValidationStatus,
)
from commands.ports import PlatformError
from commands.runtime import Runtime

GATED_KINDS = (ChangeKind.DEPLOY, ChangeKind.PROMOTE)


def gated_version(change: Change, model: str) -> ModelVersion | None:
    """The version a change brings into service: a deploy's, or the canary a promote moves
    traffic to. None for a rollback, or a promote whose canary is not known."""
    if change.kind is ChangeKind.DEPLOY and change.version:
        return ModelVersion.parse(change.version)
    if change.kind is ChangeKind.PROMOTE and change.plan.canary_id:
        label = change.plan.labels.get(change.plan.canary_id)
        return ModelVersion(model, label) if label else None
    return None


def find(rt: Runtime, version: ModelVersion, ep: Endpoint) -> RegistryVersion | None:
    """The version as the registry holds it for the endpoint's environment; None when it
    does not. Raises `PlatformError` when the registry cannot be read."""
    if rt.registry is None:
        return None
    return rt.registry.version(version.model, version.version, ep)


def _signed_by_validator(found: RegistryVersion, env: Environment, rt: Runtime) -> bool:
    if not env.validators:
        return True
    by = (found.validation.by or "").lstrip("@").casefold()
    names = {v.casefold() for v in env.validators}
    ids = {rt.config.people[v].slack_id.casefold() for v in env.validators if v in rt.config.people}
    return by in names or by in ids


def _validators(rt: Runtime, env: Environment) -> str:
    if env.validators:
        return ", ".join(
            mention(rt.config.people[v].slack_id) if v in rt.config.people else escape(v)
            for v in env.validators
        )
    return "model risk (any sign-off counts: `validators` names nobody)"


def _why_not(rt: Runtime, found: RegistryVersion | None, env: Environment) -> str | None:
    """Why the version does not pass, in words; None when it does."""
    tz = rt.config.timezone
    if found is None:
        return "it is not in the model registry, so nobody has validated it"
    v = found.validation
    if v.status is not ValidationStatus.APPROVED:
        return f"its validation is *{escape(v.text(tz))}*"
    if not _signed_by_validator(found, env, rt):
        return (
            f"it was approved by {escape(v.by or 'nobody named')}, who is not one of its validators"
        )
    return None


def review(
    rt: Runtime, env: Environment, ep: Endpoint, change: Change, *, break_glass: bool
) -> Review | None:
    """The gate for a change being requested: its review (to keep on the change), or a
    `Refusal` saying why the version may not go there, who can sign it off and how break
    glass works. None when the change brings no version in (a rollback with nothing to
    redeploy); a rollback's review says `not gated`."""
    if change.kind is ChangeKind.ROLLBACK:
        version = ModelVersion.parse(change.version) if change.version else None
        if version is None:
            return None
        return Review.of(
            str(version),
            _lookup_quietly(rt, version, ep),
            GateOutcome.NOT_GATED,
            False,
            "a rollback is not gated: mitigation first",
        )
    version = gated_version(change, ep.model)
    if version is None:
        return None
    if not env.require_validation:
        return Review.of(
            str(version),
            _lookup_quietly(rt, version, ep),
            GateOutcome.NOT_REQUIRED,
            False,
            f"`{env.name}` does not require validation",
        )
    found: RegistryVersion | None = None
    if rt.registry is None:
        why: str | None = "no model registry is configured to say whether it is validated"
    else:
        try:
            found = find(rt, version, ep)
            why = _why_not(rt, found, env)
        except PlatformError as exc:
            why = f"its validation could not be read ({exc})"
    if why is None:
        assert found is not None
        v = found.validation
        detail = f"`{env.name}` requires validation: {escape(v.text(rt.config.timezone))}"
        return Review.of(str(version), found, GateOutcome.PASSED, True, detail)
    if break_glass:
        detail = f"`{env.name}` requires a validated version and {why}; break glass ran it anyway"
        return Review.of(str(version), found, GateOutcome.OVERRIDDEN, True, detail)
    raise refusal(rt, env, version, why)


def refusal(rt: Runtime, env: Environment, version: ModelVersion, why: str) -> Refusal:
    source = (
        rt.registry.validation_source(version.model, version.version)
        if rt.registry is not None
        else "the model registry"
    )
    glass = ", ".join(mention(g) for g in env.break_glass) or "nobody (none is configured)"
    return Refusal(
        f"`{escape(str(version))}` may not go into `{env.name}`: {env.name} requires a validated"
        f" version and {why}",
        f"Sign-off is recorded in {source}, by {_validators(rt, env)}; see"
        f" `/aiops models {version.model}`. In an emergency, someone on the break-glass list"
        f' ({glass}) may run it with `break_glass=true reason="…"`: it is audited as a'
        " validation override and flagged in the digests.",
        code="not_validated",
    )


def _lookup_quietly(rt: Runtime, version: ModelVersion, ep: Endpoint) -> RegistryVersion | None:
    """For a review that decides nothing: what the registry says, if it answers."""
    try:
        return find(rt, version, ep)
    except PlatformError:
        return None


def recheck(rt: Runtime, change: Change) -> None:
    """Before an approval counts: a change whose version passed the gate when it was
    requested must still pass it (a sign-off withdrawn since is not approved into the
    environment). Raises `Refusal`; a change that broke glass, or was not gated, passes."""
    current = Review.from_json(change.plan.model_review)
    if current is None or current.outcome is not GateOutcome.PASSED:
        return
    env = rt.config.environments.get(change.environment)
    ep = rt.config.endpoints.get(change.endpoint)
    if env is None or ep is None:
        return
    version = ModelVersion.parse(current.version)
    if not env.require_validation:
        return
    try:
        why = _why_not(rt, find(rt, version, ep), env)
    except PlatformError as exc:
        raise Refusal(
            f"{change.id} cannot be approved now: the validation of `{escape(str(version))}`"
            f" could not be confirmed ({exc}); the approval was not counted",
            "Try again in a moment.",
            code="platform",
        ) from None
    if why is not None:
        raise Refusal(
            f"{change.id} cannot be approved now: `{escape(str(version))}` no longer passes"
            f" the validation gate of `{env.name}`: {why}",
            f"It was validated when {change.id} was requested. Ask model risk why, or"
            f" cancel it with `/aiops cancel {change.id}`.",
            code="not_validated",
        )


def record_override(
    rt: Runtime, change: Change, actor_id: str, reason: str, request_id: str | None
) -> None:
    """A change that broke glass past the gate: audit the override, flagged in the digests
    like every override (its card says so from its review). Nothing for a change that
    passed the gate, or was not gated."""
    current = Review.from_json(change.plan.model_review)
    if current is None or current.outcome is not GateOutcome.OVERRIDDEN:
        return
    rt.auditor.record(
        AuditAction.VALIDATION_OVERRIDE,
        actor_id,
        f"{current.version} went ahead without an approved validation",
        change=change,
        request_id=request_id,
        justification=reason,
        parameters={"validation_gate": current.to_dict()},
    )
