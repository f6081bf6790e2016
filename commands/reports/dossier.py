"""The evidence for a model-risk review of one change, in Markdown and JSON.

`aiops-bot audit dossier CHG-12` puts together: the request (who, when, why, ticket), the
plan (version, traffic before → after, the plan hash approvers were bound to), every
decision with who and when, the execution and its long-running operation, canary
figures where the audit has any, and the audit rows with their chain hashes — each row's
hash recomputed, and the whole chain's verification — so a reviewer can show the rows
are the ones that were written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from commands.audit import DECISIONS, EXECUTION, AuditAction
from commands.changes.rules import plan_hash
from commands.config import Config
from commands.errors import Refusal
from commands.models.alias import AliasMove
from commands.models.model import Review
from commands.ports import AuditEvent, AuditQuery, People, Store
from commands.redaction import redact


def _text(value: str | None) -> str | None:
    return redact(value) if value else value


class Stamp:
    """A moment as evidence shows it: `{"utc": ISO 8601, "local": ISO 8601 in the
    configured zone}` (None stays None). The dossier and the incident review use it."""

    def __init__(self, config: Config) -> None:
        self.tz = config.timezone

    def __call__(self, at: datetime | None) -> dict[str, str] | None:
        if at is None:
            return None
        return {"utc": at.isoformat(), "local": at.astimezone(self.tz).isoformat()}


def person(
    config: Config, people: People | None, slack_id: str | None
) -> dict[str, str | None] | None:
    """`{"id": …, "name": …}` for a Slack id: the name from the person directory, else
    the config's `[people]`, else None; a `policy: …` decider has no name."""
    if slack_id is None:
        return None
    if slack_id.startswith("policy:"):
        return {"id": slack_id, "name": None}
    name = people.name(slack_id) if people else None
    if name is None and config.person_by_id(slack_id):
        name = config.display_name(slack_id)
    return {"id": slack_id, "name": name}


def build(
    store: Store,
    config: Config,
    change_id: str,
    *,
    people: People | None = None,
    row_ok: Callable[[AuditEvent], bool] | None = None,
    chain: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dossier as plain data; `row_ok` recomputes one row's hash, `chain` is the
    result of verifying the whole chain (both supplied by the store's side)."""
    change = store.get_change(change_id)
    if change is None:
        raise Refusal(f"no change `{redact(change_id)}`", code="not_found")
    stamp = Stamp(config)

    def who(slack_id: str | None) -> dict[str, str | None] | None:
        return person(config, people, slack_id)

    events = store.audit(AuditQuery(change_id=change.id))
    shown = change.plan.plan_hash
    approvals = store.approvals(change.id)
    rows = [
        {
            "id": e.id,
            "at": stamp(e.at),
            "actor": who(e.actor_id),
            "action": e.action,
            "outcome": _text(e.outcome),
            "justification": _text(e.justification),
            "parameters": e.parameters,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
            "hash_ok": row_ok(e) if row_ok else None,
        }
        for e in events
    ]
    return {
        "change": change.id,
        "generated_for": "model-risk review",
        "timezone": config.timezone.key,
        "request": {
            "kind": change.kind.value,
            "endpoint": change.endpoint,
            "model": change.model_retrained,  # a retrain: the model, not an endpoint
            "environment": change.environment,
            "requester": who(change.requester_id),
            "at": stamp(change.created_at),
            "reason": _text(change.reason),
            "ticket": change.plan.ticket,
            "break_glass": change.plan.break_glass,
        },
        "plan": {
            "version": change.version,
            "canary_percent": change.canary_percent,
            "mode": change.plan.mode,
            "strategy": change.plan.strategy,
            "deployed_model": change.plan.target_id,
            "replicas_before": list(change.plan.replicas_before or ()) or None,
            "replicas_after": list(change.plan.replicas_after or ()) or None,
            "cost_per_day_usd": {
                "before": change.plan.cost_before,
                "during": change.plan.cost_during,
                "after": change.plan.cost_after,
            },
            "split_before": change.split_before,
            "split_after": change.split_after,
            "restore_split": change.restore_split,
            "labels": change.labels,
            "health_when_planned": change.plan.health,
            # a retrain: the training pipeline, its parameters and where it ran
            "pipeline": json.loads(change.plan.pipeline) if change.plan.pipeline else None,
            "plan_hash_shown": shown,
            "plan_hash_now": plan_hash(change),
            "plan_unchanged": shown is None or shown == plan_hash(change),
        },
        "decisions": {
            "state": change.state.value,
            "decided_by": who(change.decided_by),
            "decided_at": stamp(change.decided_at),
            "approvals": [
                {
                    "by": who(a.approver_id),
                    "decision": a.decision,
                    "at": stamp(a.at),
                    "reason": _text(a.reason),
                    "plan_hash": a.plan_hash,
                    "bound_to_plan_shown": a.plan_hash is not None and a.plan_hash == shown,
                }
                for a in approvals
            ],
            "audit": [r for r in rows if r["action"] in DECISIONS],
        },
        "execution": {
            "operation": change.operation,
            "new_deployed_model_id": change.new_deployed_model_id,
            # a retrain's outcome: the version its run registered (not part of the plan)
            "registered_version": change.plan.registered_version,
            "error": _text(change.error),
            "finished_at": stamp(change.updated_at),
            "audit": [r for r in rows if r["action"] in EXECUTION],
        },
        "model": _model_section(change.plan.model_review, change.plan.serving_alias, rows),
        "canary": [r for r in rows if str(r["action"]).startswith("canary")],
        "audit_rows": rows,
        "chain": chain,
    }


_MODEL_ACTIONS = (
    AuditAction.VALIDATION_OVERRIDE,
    AuditAction.ALIAS_MOVED,
    AuditAction.ALIAS_MOVE_FAILED,
)


def _model_section(
    review: str | None, alias: str | None, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The version under review as the change was planned and approved with it (its card
    summary, lineage, evaluation, validation and the gate's outcome), and what became of
    the serving alias."""
    found = Review.from_json(review)
    move = AliasMove.from_json(alias)
    return {
        "review": found.to_dict() if found else None,
        "serving_alias": vars(move) if move else None,
        "audit": [r for r in rows if r["action"] in _MODEL_ACTIONS],
    }


def _when(value: dict[str, str] | None) -> str:
    if not value:
        return "—"
    return f"{value['utc']} (UTC) / {value['local']}"


def _person(value: dict[str, str | None] | None) -> str:
    if not value:
        return "—"
    return f"{value['name']} ({value['id']})" if value.get("name") else str(value["id"])


def _md_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(d: dict[str, Any]) -> str:
    req, plan, dec, ex = d["request"], d["plan"], d["decisions"], d["execution"]
    out = [
        f"# Change dossier: {d['change']}",
        "",
        f"Times are UTC and {d['timezone']}.",
        "",
        "## Request",
        "",
        f"- What: {req['kind']} "
        + (f"of model `{req['model']}`" if req.get("model") else f"on `{req['endpoint']}`")
        + f" ({req['environment']})",
        f"- Requested by: {_person(req['requester'])}",
        f"- When: {_when(req['at'])}",
        f"- Why: {req['reason'] or '—'}",
        f"- Ticket: {req['ticket'] or '—'}",
        f"- Break glass: {'yes' if req['break_glass'] else 'no'}",
        "",
        "## Plan",
        "",
        f"- Version: {plan['version'] or '—'}"
        + (f" · canary {plan['canary_percent']}%" if plan["canary_percent"] is not None else "")
        + f" · mode {plan['mode'] or '—'} · strategy {plan['strategy'] or '—'}",
        f"- Replicas (min, max): {plan['replicas_before'] or '—'} → {plan['replicas_after'] or '—'}"
        f" · cost a day (USD, estimate at min replicas): {_md_cell(plan['cost_per_day_usd'])}",
        f"- Traffic before: `{json.dumps(plan['split_before'], sort_keys=True)}`",
        f"- Traffic after: `{json.dumps(plan['split_after'], sort_keys=True)}`",
        f"- Rollback restores: `{json.dumps(plan['restore_split'], sort_keys=True)}`",
        f"- Deployed-model labels: `{json.dumps(plan['labels'], sort_keys=True)}`",
        f"- Health when planned: {plan['health_when_planned'] or '—'}",
        *_pipeline_markdown(plan.get("pipeline")),
        f"- Plan hash shown to approvers: `{plan['plan_hash_shown']}`",
        f"- Plan unchanged since: {'yes' if plan['plan_unchanged'] else '**NO**'}",
        "",
        "## Decisions",
        "",
        f"- State: {dec['state']}; decided by {_person(dec['decided_by'])}"
        f" at {_when(dec['decided_at'])}",
    ]
    for a in dec["approvals"]:
        bound = "bound to the plan shown" if a["bound_to_plan_shown"] else "NOT bound to the plan"
        out.append(
            f"- {a['decision']} by {_person(a['by'])} at {_when(a['at'])}"
            f" ({bound}){': ' + a['reason'] if a['reason'] else ''}"
        )
    out += [
        "",
        "## Execution",
        "",
        f"- Operation: `{ex['operation'] or '—'}`",
        f"- New deployed model: `{ex['new_deployed_model_id'] or '—'}`",
        *(
            [f"- Registered version: `{ex['registered_version']}`"]
            if ex.get("registered_version")
            else []
        ),
        f"- Error: {ex['error'] or '—'}",
        f"- Last update: {_when(ex['finished_at'])}",
        "",
        "## Model version under review",
        "",
    ]
    out += _model_markdown(d["model"])
    out += [
        "",
        "## Canary",
        "",
    ]
    if d["canary"]:
        out += [
            f"- {r['at']['utc']} {r['action']}: {r['outcome']} `{_md_cell(r['parameters'])}`"
            for r in d["canary"]
        ]
    else:
        out.append("- no canary figures in the audit for this change")
    out += [
        "",
        "## Audit rows and chain hashes",
        "",
        "| id | at (UTC) | actor | action | outcome | prev_hash | hash | hash ok |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in d["audit_rows"]:
        ok = {True: "yes", False: "**NO**", None: "—"}[r["hash_ok"]]
        out.append(
            f"| {r['id']} | {r['at']['utc']} | {_md_cell(_person(r['actor']))} |"
            f" {_md_cell(r['action'])} | {_md_cell(r['outcome'])} | `{r['prev_hash']}` |"
            f" `{r['hash']}` | {ok} |"
        )
    chain = d.get("chain")
    out += ["", "## Chain verification", ""]
    if chain:
        out.append(f"- {chain.get('message')}")
    else:
        out.append("- not verified")
    return "\n".join(out) + "\n"


def _pipeline_markdown(p: dict[str, Any] | None) -> list[str]:
    """A retrain's plan: the pipeline that ran, with what, where, and what served then."""
    if not p:
        return []
    cost = p.get("cost_usd")
    return [
        f"- Training pipeline: `{p.get('template')}` in `{p.get('project')}`"
        f" ({p.get('region')}, environment {p.get('environment')})"
        + (f" · artifacts `{p['pipeline_root']}`" if p.get("pipeline_root") else ""),
        f"- Pipeline parameters: `{json.dumps(p.get('parameters') or {}, sort_keys=True)}`"
        f" · estimated cost {'—' if cost is None else f'${cost:,.2f}'}",
        f"- Serving when requested: {p.get('base_version') or '—'}"
        f" (lineage {_md_cell(p.get('base_lineage') or {})})",
    ]


def _model_markdown(m: dict[str, Any]) -> list[str]:
    """The version under review (a deploy's), then what became of the serving alias and
    the model's audit rows: for every change kind that moves the alias (a rollback or a
    promote has no review of its own, and still moves it)."""
    r = m.get("review")
    out: list[str] = []
    if r:
        card, lineage, ev, val = r["card"], r["lineage"], r["evaluation"], r["validation"]
        metrics = ", ".join(f"{k} {v:g}" for k, v in ev["metrics"].items()) or "none recorded"
        out += [
            f"- Version: `{r['version']}`{'' if r['in_registry'] else ' (not in the registry)'}",
            f"- Description: {card['description'] or '—'}",
            f"- Intended use: {card['intended_use'] or '—'}",
            f"- Limitations: {card['limitations'] or '—'}",
            f"- Lineage: pipeline run {lineage['pipeline_run']} · dataset {lineage['dataset']}",
            f"- Latest evaluation: {metrics}{' (' + ev['at'] + ')' if ev['at'] else ''}",
            f"- Validation: {val['status']}"
            + (f" by {val['by']}" if val["by"] else "")
            + (f" at {val['at']}" if val["at"] else ""),
            f"- Validation gate: **{r['gate']}** — {r['detail']}",
        ]
    else:
        out.append("- no model version review on record for this change")
    move = m.get("serving_alias")
    if move:
        out.append(
            f"- Serving alias `{move['alias']}` → {move['version']}: {move['state']}"
            f" after {move['attempts']} attempt(s)"
            + (f" (was {move['previous']})" if move.get("previous") else "")
            + (f"; last error: {move['error']}" if move.get("error") else "")
        )
    out += [f"- {row['at']['utc']} {row['action']}: {row['outcome']}" for row in m.get("audit", [])]
    return out


def to_json(d: dict[str, Any]) -> str:
    return json.dumps(d, indent=2, sort_keys=True, default=str) + "\n"
