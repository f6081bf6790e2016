"""The review read from a real store: a prod deploy, an alert, an incident run to its end
with a real rollback, and `review_for` putting the story together from the audit rows the
bot wrote (SQLite; the incident records from a dict-backed store until the SQL one lands)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from commands.audit import AuditAction
from commands.errors import Refusal
from commands.incidents.model import (
    AlertNotice,
    AlertSource,
    AlertState,
    Incident,
    IncidentState,
    Severity,
)
from commands.incidents.review import render_review, review_for
from commands.model import ChangeKind
from commands.ports import AuditQuery
from tests.support.harness import ALICE, BOB, Bot
from tests.support.memory_incidents import MemoryIncidents


def test_the_review_tells_the_incident_from_the_audit(bot: Bot) -> None:
    rt, clock = bot.rt, bot.clock
    incidents = MemoryIncidents()
    bot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="tokenizer fix"')
    deploy = rt.store.open_change("loan-assessor")
    assert deploy is not None
    bot.run(BOB, f"/aiops approve {deploy.id}")

    clock.advance(minutes=30)
    started = clock() - timedelta(minutes=2)
    alert, new = incidents.record_alert(
        AlertNotice(
            key="cloud-monitoring:0.xyz",
            source=AlertSource.CLOUD_MONITORING,
            state=AlertState.OPEN,
            policy="[prod] loan-assessor: error rate > 1 %",
            started_at=started,
            endpoint="loan-assessor",
            environment="prod",
        ),
        clock(),
    )
    assert new
    rt.auditor.record(
        AuditAction.ALERT_RECEIVED,
        "bot",
        "open",
        environment="prod",
        target="loan-assessor",
        parameters={"alert": alert.id},
    )
    clock.advance(minutes=2)
    incident = incidents.create_incident(
        Incident(
            id="",
            severity=Severity.P1,
            state=IncidentState.DECLARED,
            summary="errors on loan-assessor after 1.2.1",
            declared_by=ALICE.id,
            declared_at=clock(),
            endpoint="loan-assessor",
            environment="prod",
            commander=ALICE.id,
            alert_id=alert.id,
            detected_at=started,
        )
    )

    def audit(action: AuditAction, actor: str, outcome: str, **kw: object) -> None:
        rt.auditor.record(
            action,
            actor,
            outcome,
            environment="prod",
            target="loan-assessor",
            parameters={"incident": incident.id, "alert": alert.id},
            **kw,  # type: ignore[arg-type]
        )

    def move(**fields: object) -> None:
        nonlocal incident
        current = incidents.get_incident(incident.id)
        assert current is not None
        moved = incidents.update_incident(incident.id, current.rev, **fields)
        assert moved is not None
        incident = moved

    audit(AuditAction.INCIDENT_DECLARED, ALICE.id, "declared P1")
    clock.advance(minutes=1)
    move(state=IncidentState.ACKNOWLEDGED, acknowledged_at=clock(), on_call=BOB.id)
    audit(AuditAction.INCIDENT_ACKNOWLEDGED, BOB.id, "acknowledged")
    # someone else's incident at the same time: never in this review
    rt.auditor.record(
        AuditAction.INCIDENT_DECLARED, BOB.id, "declared P3", parameters={"incident": "INC-99"}
    )

    bot.run(BOB, '/rollback loan-assessor reason="errors since 1.2.1"')
    rollback = next(
        c for c in rt.store.list_changes(endpoint="loan-assessor") if c.kind is ChangeKind.ROLLBACK
    )
    audit(AuditAction.INCIDENT_LINKED, "bot", "linked", change_id=rollback.id)
    clock.advance(minutes=1)
    move(state=IncidentState.MITIGATED, mitigated_at=clock())
    audit(AuditAction.INCIDENT_MITIGATED, BOB.id, "mitigated")
    clock.advance(minutes=40)
    move(state=IncidentState.RESOLVED, resolved_at=clock(), root_cause="tokenizer regression")
    audit(AuditAction.INCIDENT_RESOLVED, ALICE.id, "resolved", justification="tokenizer regression")

    review = review_for(
        rt.store, incidents, rt.config, incident.id, canary=rt.canary, people=rt.people
    )

    stored = {e.id: e for e in rt.store.audit(AuditQuery())}
    kinds = [e["kind"] for e in review["timeline"]]
    assert kinds == [
        "alert_fired",
        "declared",
        "acknowledged",
        "mitigation",
        "mitigated",
        "resolved",
    ]
    for entry in review["timeline"]:  # every event is a row the chain holds
        assert entry["row"] in stored
    actions = [stored[e["row"]].action for e in review["timeline"]]
    assert (
        actions[3] == "execution_finished"
        and stored[review["timeline"][3]["row"]].change_id == rollback.id
    )
    mitigation = review["timeline"][3]
    assert mitigation["change"] == rollback.id
    assert "approved by rollback runs at once (mitigation first)" in mitigation["text"]

    changes = {c["id"]: c for c in review["changes"]}
    assert changes[rollback.id]["role"] == "linked"
    assert changes[deploy.id]["role"] == "preceding"  # the deploy 30 minutes before
    (approval,) = changes[deploy.id]["approved_by"]
    assert approval["by"] == {"id": BOB.id, "name": "bob"}
    assert stored[approval["row"]].action == "approve"

    times = review["times"]
    assert times["time_to_detect"]["text"] == "2m"
    assert times["time_to_acknowledge"]["text"] == "3m"
    assert (
        times["time_to_resolve"]["seconds"]
        == (incident.resolved_at - alert.received_at).total_seconds()
    )  # type: ignore[operator]
    assert review["root_cause"] == "tokenizer regression"
    assert review["runbook"] == "https://wiki.example.com/aiops/runbooks/loan-assessor"
    assert "INC-99" not in json.dumps(review)
    md = render_review(review, "md")
    assert f"`aiops-bot audit dossier {deploy.id}`" in md

    with pytest.raises(Refusal, match="no incident `INC-404`"):
        review_for(rt.store, incidents, rt.config, "INC-404")
