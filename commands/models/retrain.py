"""`/aiops retrain <model|endpoint> [reason="…"] [ticket=CHG-N]`: run the model's training
pipeline (IMPROVE: retraining from drift) as a change like any other.

The change is a request → plan → approval → execution, audited, with its card and thread:
- the plan is the model's configured pipeline (`[models.X] retrain_template`), its runtime
  parameters (`retrain_parameters`), where it runs (the project and region of
  `retrain_environment`, by default the strictest environment the model serves in), what
  one run is estimated to cost (`retrain_cost_usd`), and what serves now with the lineage
  it would replace;
- who may request it, the channel, the ticket, the reason and the approvals are that
  environment's rules (`commands/changes/rules.py: check_requester`); break glass is not
  offered and a freeze does not stop it: a training run changes nothing that serves;
- its lock is the model's (`commands.model.model_key`), not an endpoint's: a run that takes
  hours never holds a deploy, promote or rollback of the model's endpoints, and only a
  second retrain of the same model is refused while one is open;
- the executor (`commands/changes/execute.py`) submits the pipeline job under the change's
  lease, stores its name and polls it (a worker taken over looks for the job labelled with
  the change before submitting another); the version the run registers appears in
  `/aiops models`, with validation pending: deploying it where validation is required
  waits for model risk's sign-off, as for every version."""

from __future__ import annotations

import uuid
from dataclasses import replace

from commands.catalog import AIOPS_SUBCOMMANDS
from commands.changes.card import change_card
from commands.changes.lifecycle import Opening, open_change
from commands.changes.request import card_undelivered, required_reason
from commands.changes.rules import check_requester, plan_hash
from commands.config import Environment, Model
from commands.errors import Refusal
from commands.messages import Context, Reply, Text, code, did_you_mean, mention
from commands.model import (
    Change,
    ChangeKind,
    ChangePlan,
    ChangeState,
    Invocation,
    model_key,
    stranded_since,
)
from commands.models.lineage import serving_lineage
from commands.models.model import Lineage, RetrainSpec
from commands.parsing import Args
from commands.ports import Delivery, EndpointLocked
from commands.runtime import Runtime

USAGE = AIOPS_SUBCOMMANDS["retrain"].usage


def find_model(rt: Runtime, ref: str | None) -> Model:
    """The model a retrain names, by its name or by one of its endpoints."""
    if not ref:
        raise Refusal("which model?", f"Usage: `{USAGE}`", code="malformed")
    if ref in rt.config.models:
        return rt.config.models[ref]
    if ref in rt.config.endpoints:
        return rt.config.models[rt.config.endpoints[ref].model]
    known = ", ".join(f"`{m}`" for m in rt.config.models) or "none"
    raise Refusal(
        f"unknown model {code(ref)}{did_you_mean(ref, [*rt.config.models, *rt.config.endpoints])}",
        f"Known models: {known} (an endpoint names its model too). Usage: `{USAGE}`",
        code="unknown_model",
    )


def _spec(rt: Runtime, model: Model, env: Environment) -> RetrainSpec:
    """The plan: the configured pipeline, where it runs, and what serves now (with the
    lineage a new version would follow), read from the environment's first endpoint of
    the model (else any of its endpoints)."""
    assert model.retrain_template is not None
    endpoints = [ep for ep in rt.config.endpoints.values() if ep.model == model.name]
    here = [ep for ep in endpoints if ep.environment == env.name] or endpoints
    base = serving_lineage(rt, here[0]) if here else None
    return RetrainSpec(
        model=model.name,
        template=model.retrain_template,
        parameters=dict(model.retrain_parameters),
        environment=env.name,
        project=env.project,
        region=env.region,
        run_key=uuid.uuid4().hex[:12],
        pipeline_root=model.retrain_pipeline_root,
        cost_usd=model.retrain_cost_usd,
        base_version=base.version if base else None,
        base_lineage=base.lineage if base else Lineage(),
    )


def _locked(rt: Runtime, model: Model, holder: Change) -> Refusal:
    state = holder.state.value.replace("_", " ")
    if (
        holder.state is ChangeState.RUNNING
        and stranded_since(holder, rt.clock(), rt.approved_settle) is not None
    ):
        state += ", no live worker: another takes it over within a minute"
    return Refusal(
        f"`{model.name}` is being retrained by {holder.id} (requested by"
        f" {mention(holder.requester_id)}, {state})",
        f"One retrain per model at a time: wait for {holder.id} (`/aiops changes`), or, before"
        f" it runs, cancel it with `/aiops cancel {holder.id}`. Deploys and rollbacks of"
        f" `{model.name}`'s endpoints are not held by it.",
        code="locked",
    )


def request_retrain(rt: Runtime, inv: Invocation, args: Args) -> Reply:
    """Plan, check and open a retrain of the model `args` names (see the module)."""
    model = find_model(rt, args.positionals[0] if args.positionals else None)
    if model.retrain_template is None or model.retrain_environment is None:
        raise Refusal(
            f"`{model.name}` has no training pipeline configured",
            f"Set `retrain_template` (and `retrain_parameters`) under `[models.{model.name}]`"
            " in the bot's config: a compiled pipeline spec (`gs://…json`) or an Artifact"
            " Registry template (`https://<region>-kfp.pkg.dev/…`).",
            code="no_pipeline",
        )
    if rt.registry is None:
        raise Refusal(
            "no model registry is configured for this platform",
            "The sandbox and Vertex AI each have one; check the bot's wiring.",
            code="no_registry",
        )
    env = rt.config.environments[model.retrain_environment]
    check_requester(rt, env, ChangeKind.RETRAIN, args, inv.actor, inv.channel_id)
    reason = required_reason(args, env, ChangeKind.RETRAIN.value)
    holder = rt.store.open_change(model_key(model.name))
    if holder is not None:  # say so before planning; the insert below is what enforces it
        raise _locked(rt, model, holder)
    spec = _spec(rt, model, env)
    change = Change(
        id="",
        kind=ChangeKind.RETRAIN,
        endpoint=model_key(model.name),
        environment=env.name,
        requester_id=inv.actor.id,
        state=ChangeState.REQUESTED,
        created_at=rt.clock(),
        reason=reason,
        plan=ChangePlan(pipeline=spec.to_json(), ticket=args.options.get("ticket") or None),
    )
    change.plan.plan_hash = plan_hash(change)  # what approvers are shown
    if env.needs_approval:
        opening = Opening(
            channel=rt.config.channels.approvals,
            expires_at=rt.clock() + env.approval_ttl,
            approval={"approvers": list(env.approvers), "required": env.approvals_required},
        )
    else:
        opening = Opening(
            channel=rt.config.channels.ops,
            decided_by="policy: no approval needed in " + env.name,
        )
    undelivered: list[Delivery] = []
    opening = replace(opening, on_undelivered=lambda _, d: undelivered.append(d))
    try:
        change = open_change(
            rt,
            change,
            inv.actor.id,
            opening,
            request_id=inv.request_id,
            parameters={
                "model": model.name,
                "template": spec.template,
                "pipeline_parameters": spec.parameters,
                "project": spec.project,
                "region": spec.region,
                "cost_usd": spec.cost_usd,
                "serving_version": spec.base_version,
                "ticket": change.plan.ticket,
            },
        )
    except EndpointLocked as locked:
        raise _locked(rt, model, locked.holder) from None
    reply = change_card(change, rt.config)
    reply.ephemeral = True
    pending = change.state is ChangeState.PENDING_APPROVAL
    if undelivered:
        reply.blocks.append(
            Text(card_undelivered(opening.channel, undelivered[0], change, pending))
        )
        doing = "waiting for approval" if pending else "running"
        reply.text = f"{change.id} is {doing}; its card did not reach <#{opening.channel}>"
        return reply
    if pending:
        reply.blocks.append(
            Context(
                (
                    f"Posted for approval in <#{opening.channel}>; you'll hear back here when"
                    f" {', '.join(mention(a) for a in env.approvers)} decide.",
                )
            )
        )
        reply.text = f"{change.id} is waiting for approval"
    else:
        reply.blocks.append(
            Context(("Running now: the pipeline job's progress goes to the change's thread.",))
        )
        reply.text = f"{change.id} is running"
    return reply
