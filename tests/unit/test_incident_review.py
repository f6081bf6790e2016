"""The post-incident review draft from hand-made inputs: its timeline traced to audit rows,
its response times, the changes and canary figures, the empty sections, both renderings."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.audit import AuditAction
from commands.canary.model import Check, Figures, Verdict
from commands.config import Config
from commands.incidents.metrics import incident_times
from commands.incidents.model import (
    AlertNotice,
    AlertRecord,
    AlertSource,
    AlertState,
    Incident,
    IncidentState,
    Severity,
)
from commands.incidents.review import build_review, render_review
from commands.model import Change, ChangeKind, ChangeState
from commands.ports import AuditEvent
from tests.support.harness import example_config

T = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 14:00 in Sydney (AEDT)
POLICY = "[prod] loan-assessor: error rate > 1 %"


def at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def row(
    n: int, minutes: float, action: AuditAction, actor: str = "U0ALICE", **kw: Any
) -> AuditEvent:
    return AuditEvent(
        id=n,
        action=action.value,
        actor_id=actor,
        outcome=kw.pop("outcome", action.value.replace("_", " ")),
        at=at(minutes),
        **kw,
    )


ALERT = AlertRecord(
    id="ALERT-3",
    notice=AlertNotice(
        key="cloud-monitoring:0.abc",
        source=AlertSource.CLOUD_MONITORING,
        state=AlertState.OPEN,
        policy=POLICY,
        started_at=at(-4),
        endpoint="loan-assessor",
        environment="prod",
        observed="error rate 3.2 % > 1 %",
        url="https://console.cloud.google.com/monitoring/alerting/incidents/0.abc",
    ),
    received_at=at(-1),
    updated_at=at(-1),
)
INCIDENT = Incident(
    id="INC-4",
    severity=Severity.P1,
    suggested_severity=Severity.P2,
    state=IncidentState.RESOLVED,
    summary="loan-assessor errors after 1.2.1; reported by jane.citizen@example.com",
    declared_by="U0ALICE",
    declared_at=at(2),
    endpoint="loan-assessor",
    environment="prod",
    commander="U0ALICE",
    on_call="U0BOB",
    alert_id="ALERT-3",
    detected_at=at(-4),
    acknowledged_at=at(3),
    mitigated_at=at(9),
    resolved_at=at(60),
    root_cause="tokenizer 1.2.1 drops unicode; call 0412 345 678 for details",
)
DEPLOY = Change(
    id="CHG-7",
    kind=ChangeKind.DEPLOY,
    endpoint="loan-assessor",
    environment="prod",
    requester_id="U0ALICE",
    state=ChangeState.SUCCEEDED,
    created_at=at(-90),
    version="gemma-3-1b-it@1.2.1",
    decided_by="U0BOB",
)
ROLLBACK = Change(
    id="CHG-8",
    kind=ChangeKind.ROLLBACK,
    endpoint="loan-assessor",
    environment="prod",
    requester_id="U0BOB",
    state=ChangeState.SUCCEEDED,
    created_at=at(5),
    decided_by="policy: rollback runs at once (mitigation first)",
)
ROWS = [
    row(10, -80, AuditAction.APPROVE, "U0BOB", change_id="CHG-7"),
    row(11, -75, AuditAction.EXECUTION_FINISHED, "bot", change_id="CHG-7", outcome="succeeded"),
    row(
        12,
        -60,
        AuditAction.CANARY_CHECK,
        "scheduler",
        change_id="CHG-7",
        outcome="no regression",
        parameters={
            "canary": "CAN-2",
            "seq": 1,
            "share": 10,
            "canary_figures": {"p95_ms": 900.0, "error_rate": 0.004, "requests": 1200},
            "stable_figures": {"p95_ms": 850.0, "error_rate": 0.003, "requests": 11000},
        },
    ),
    row(20, -1, AuditAction.ALERT_RECEIVED, "bot", outcome="open", parameters={"alert": "ALERT-3"}),
    row(21, 2, AuditAction.INCIDENT_DECLARED, parameters={"incident": "INC-4", "alert": "ALERT-3"}),
    row(22, 3, AuditAction.INCIDENT_ACKNOWLEDGED, "U0BOB", parameters={"incident": "INC-4"}),
    row(23, 3.5, AuditAction.PAGE_SENT, "bot", parameters={"incident": "INC-4"}),
    row(30, 5, AuditAction.PLAN, "U0BOB", change_id="CHG-8"),
    row(
        31,
        5,
        AuditAction.INCIDENT_LINKED,
        "bot",
        change_id="CHG-8",
        parameters={"incident": "INC-4"},
    ),
    row(32, 8, AuditAction.EXECUTION_FINISHED, "bot", change_id="CHG-8", outcome="succeeded"),
    row(33, 9, AuditAction.INCIDENT_MITIGATED, "U0BOB", parameters={"incident": "INC-4"}),
    row(
        34,
        20,
        AuditAction.INCIDENT_UPDATED,
        "U0BOB",
        parameters={"incident": "INC-4"},
        justification="customer jane.citizen@example.com saw | errors\nsecond line",
    ),
    row(35, 60, AuditAction.INCIDENT_RESOLVED, parameters={"incident": "INC-4"}),
    # rows about something else entirely: never in the review
    row(40, 6, AuditAction.INCIDENT_DECLARED, parameters={"incident": "INC-5"}),
    row(41, 7, AuditAction.EXECUTION_FINISHED, "bot", change_id="CHG-9"),
]


@pytest.fixture(scope="module")
def config() -> Config:
    return example_config()


def review(config: Config, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"alert": ALERT} | kw
    return build_review(
        kw.pop("incident", INCIDENT),
        kw.pop("rows", ROWS),
        [DEPLOY, ROLLBACK],
        config,
        **{k: v for k, v in args.items() if k not in ("incident", "rows")},
    )


def test_the_timeline_is_the_story_in_order_and_each_event_names_its_row(config: Config) -> None:
    r = review(config)
    kinds = [(e["kind"], e["row"]) for e in r["timeline"]]
    assert kinds == [
        ("alert_fired", 20),
        ("declared", 21),
        ("acknowledged", 22),
        ("page_sent", 23),
        ("mitigation", 32),
        ("mitigated", 33),
        ("update", 34),
        ("resolved", 35),
    ]
    fired = r["timeline"][0]
    assert fired["at"]["utc"] == at(-4).isoformat()  # when it fired, not when it arrived
    assert fired["at"]["local"].endswith("+11:00")
    assert "received 13:59:00 AEDT" in fired["text"]
    mitigation = r["timeline"][4]
    assert mitigation["change"] == "CHG-8" and mitigation["actor"]["id"] == "U0BOB"
    assert "rollback CHG-8 on `loan-assessor` (prod): succeeded" in mitigation["text"]
    assert "approved by rollback runs at once (mitigation first)" in mitigation["text"]
    assert r["audit_rows"] == [10, 11, 12, 20, 21, 22, 23, 30, 31, 32, 33, 34, 35]
    assert r["untraced"] == []


def test_the_response_times_follow_the_definitions(config: Config) -> None:
    t = review(config)["times"]
    assert t["time_to_detect"] == {"seconds": 180, "text": "3m"}  # began −4 → received −1
    assert t["time_to_acknowledge"] == {"seconds": 240, "text": "4m"}  # → ack at +3
    assert t["time_to_mitigate"] == {"seconds": 600, "text": "10m"}  # → mitigated +9
    assert t["time_to_resolve"] == {"seconds": 3660, "text": "1h1m"}  # → resolved +60
    assert t["rows"] == {"declared": 21, "acknowledged": 22, "mitigated": 33, "resolved": 35}


def test_an_open_incident_shows_what_is_not_reached(config: Config) -> None:
    open_ = replace(
        INCIDENT,
        state=IncidentState.ACKNOWLEDGED,
        mitigated_at=None,
        resolved_at=None,
        root_cause=None,
    )
    r = review(config, incident=open_, rows=[x for x in ROWS if x.id not in (33, 35)])
    assert r["times"]["time_to_mitigate"] == {"seconds": None, "text": "—"}
    assert r["times"]["time_to_resolve"]["text"] == "—"
    assert r["root_cause"] is None
    md = render_review(r, "md")
    assert "| Time to resolve | — |" in md
    assert "_Not recorded yet" in md


def test_without_an_alert_nothing_says_when_it_began(config: Config) -> None:
    declared = replace(INCIDENT, alert_id=None, detected_at=at(2))
    times = incident_times(declared)
    assert times.time_to_detect is None and times.detected == at(2)
    assert times.time_to_acknowledge == timedelta(minutes=1)
    # a resolved incident never marked mitigated: mitigation is its resolution
    assert incident_times(replace(declared, mitigated_at=None)).time_to_mitigate == timedelta(
        minutes=58
    )
    # an alert id without its record: the alert's start stands for its arrival
    unknown = incident_times(INCIDENT)
    assert unknown.time_to_detect is None and unknown.time_to_acknowledge == timedelta(minutes=7)
    # another alert's record is not this incident's
    assert incident_times(INCIDENT, replace(ALERT, id="ALERT-9")) == unknown


def test_changes_point_to_their_dossiers_with_who_approved_them(config: Config) -> None:
    changes = {c["id"]: c for c in review(config)["changes"]}
    assert changes["CHG-8"]["role"] == "linked"
    assert changes["CHG-8"]["approved_by"] == [
        {
            "by": {"id": "policy: rollback runs at once (mitigation first)", "name": None},
            "row": None,
            "text": "rollback runs at once (mitigation first)",
        }
    ]
    assert changes["CHG-7"]["role"] == "preceding"
    assert changes["CHG-7"]["approved_by"] == [
        {"by": {"id": "U0BOB", "name": "bob"}, "row": 10, "text": "bob (U0BOB)"}
    ]
    assert changes["CHG-7"]["dossier"] == "aiops-bot audit dossier CHG-7"
    assert changes["CHG-7"]["rows"] == [10, 11, 12]


def test_canary_figures_come_from_the_audit_then_from_the_checks_given(config: Config) -> None:
    extra = Check(
        watch_id=2,
        seq=2,
        at=at(-55),
        window_seconds=300,
        source="scheduler",
        canary_share=10,
        canary=Figures(2400.0, 0.03, 1300),
        stable=Figures(860.0, 0.003, 11500),
        verdict=Verdict.REGRESSION,
        reasons=["errors"],
        consecutive_breaches=1,
    )
    same = replace(extra, seq=1)  # the check row 12 already shows
    r = review(config, canary_checks={"CHG-7": [same, extra], "CHG-99": [extra]})
    assert [(c["seq"], c["row"], c["verdict"]) for c in r["canary"]] == [
        (1, 12, "no regression"),
        (2, None, "regression"),
    ]
    md = render_review(r, "md")
    assert "| CHG-7 | CAN-2 |" in md and "P95 2,400 ms, errors 3.00%, 1,300 req" in md
    assert "not in the audit" in md


def test_review_sections_are_empty_for_people_to_fill_but_a_missing_runbook(
    config: Config,
) -> None:
    r = review(config)
    assert r["runbook"] == "https://wiki.example.com/aiops/runbooks/loan-assessor"
    assert r["contributing_factors"] == [] and r["action_items"] == []
    staging = replace(INCIDENT, endpoint="loan-assessor-stg", environment="staging")
    r = review(config, incident=staging)
    assert r["runbook"] is None
    assert r["action_items"] == [
        {
            "text": f'add a runbook for the alert policy "{POLICY}": `[runbooks.policies]'
            f' "{POLICY}" = "https://…"`',
            "source": "no runbook",
        }
    ]
    md = render_review(r, "md")
    assert "- Runbook: **none** (see action items)" in md
    assert "- [ ] add a runbook for the alert policy" in md
    assert "## Contributing factors\n\n_To be written at the review._" in md


def test_moments_without_a_row_are_said_not_shown(config: Config) -> None:
    r = review(config, rows=[x for x in ROWS if x.id != 22])
    assert "acknowledged" not in [e["kind"] for e in r["timeline"]]
    assert r["untraced"] == [
        f"acknowledged at {at(3).isoformat()}: no `incident_acknowledged` row in the audit"
    ]
    assert r["times"]["time_to_acknowledge"]["text"] == "4m"  # the incident still says when


def test_both_renderings_are_masked_stable_and_complete(config: Config) -> None:
    r = review(config)
    text = render_review(r, "json")
    md = render_review(r, "md")
    for out in (text, md):
        assert "jane.citizen@example.com" not in out
        assert "0412 345 678" not in out
    assert text == render_review(json.loads(text), "json")  # stable keys, round-trips
    assert list(json.loads(text)) == sorted(json.loads(text))
    for section in (
        "# Post-incident review (draft): INC-4",
        "## Timeline",
        "## Response times",
        "## Changes involved",
        "## Canary figures",
        "## Root cause",
        "## Contributing factors",
        "## Action items",
    ):
        assert section in md
    assert "(suggested from the alert: P2)" in md
    assert "saw \\| errors second line" in md  # a table cell stays one cell
    assert "| 2026-12-01 14:08:00 AEDT | rollback CHG-8" in md
    assert "`aiops-bot audit dossier CHG-8`" in md
    with pytest.raises(ValueError, match="`pdf` is not a review format"):
        render_review(r, "pdf")


def test_an_alert_url_that_is_not_a_plain_https_link_is_not_made_clickable(
    config: Config,
) -> None:
    odd = replace(ALERT, notice=replace(ALERT.notice, url="javascript:alert(1)"))
    md = render_review(review(config, alert=odd), "md")
    assert "](javascript" not in md and "`javascript:alert(1)`" in md
    assert "[in Cloud Monitoring](https://console.cloud.google.com/" in render_review(
        review(config), "md"
    )
