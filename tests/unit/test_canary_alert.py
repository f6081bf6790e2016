"""The canary `page` policy's alert: what it says and the severity the team's rules give it
(P1 for a customer-facing prod endpoint whose canary's errors regressed, P2 for latency
alone, P3 outside production)."""

from __future__ import annotations

from datetime import UTC, datetime

from commands.canary.alert import alert_key, regression_notice
from commands.canary.model import Check, Figures, Verdict, Watch, WatchState
from commands.incidents.model import AlertSource, AlertState, Severity
from commands.incidents.severity import suggest_for_alert
from tests.support.harness import example_config

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
LATENCY = "canary P95 +438 % [+352 %, +629 %] vs stable: above the +50 % limit"
ERRORS = "canary errors +4.20 pts [+2.10 pts, +6.00 pts] vs stable: above the +0.50 pts limit"


def watch(endpoint: str = "loan-assessor", environment: str = "prod") -> Watch:
    return Watch(
        id=7,
        endpoint=endpoint,
        environment=environment,
        change_id="CHG-3",
        canary_id="dm-2",
        stable_id="dm-1",
        canary_version="1.3.0-rc1",
        stable_version="1.2.0",
        state=WatchState.ROLLING_BACK,
        started_at=T0,
        next_check_at=T0,
        share_since=T0,
    )


def check(*reasons: str) -> Check:
    return Check(
        watch_id=7,
        seq=3,
        at=T0,
        window_seconds=300,
        source="scheduler",
        canary_share=10,
        canary=Figures(4125.0, 0.045, 341),
        stable=Figures(767.0, 0.0016, 3038),
        verdict=Verdict.REGRESSION,
        reasons=list(reasons),
        consecutive_breaches=1,
    )


def test_the_alert_of_a_regression() -> None:
    n = regression_notice(watch(), check(LATENCY), None)
    assert n.key == alert_key(watch()) == "canary:CAN-7"
    assert (n.source, n.state, n.policy) == (
        AlertSource.CANARY,
        AlertState.OPEN,
        "canary regression",
    )
    assert n.started_at == T0 and n.endpoint == "loan-assessor" and n.environment == "prod"
    assert "regressed against 1.2.0 at 10%" in n.summary and "4125 ms" in n.summary
    assert n.observed == LATENCY
    assert "already rolling this canary back" in n.documentation
    assert n.labels == {"metric": "p95_latency_ms", "canary": "CAN-7", "change": "CHG-3"}


def test_its_severity_follows_the_teams_rules() -> None:
    config = example_config()

    def severity(w: Watch, *reasons: str) -> Severity:
        return suggest_for_alert(config, regression_notice(w, check(*reasons), None))[0]

    assert severity(watch(), LATENCY, ERRORS) is Severity.P1  # customer-facing, errors
    assert severity(watch(), LATENCY) is Severity.P2  # prod, degraded
    assert severity(watch("loan-assessor-stg", "staging"), ERRORS) is Severity.P3
