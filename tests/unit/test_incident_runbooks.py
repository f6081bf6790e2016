"""`runbook_for`: the alert's policy first, then its endpoint, from `[runbooks]`."""

from __future__ import annotations

import copy

from commands.config import Config, parse_config
from commands.incidents.runbooks import missing_runbook, runbook_for
from tests.support.harness import example_config

LATENCY = "[prod] loan-assessor: P95 prediction latency > 2000 ms"


def config(**runbooks: dict[str, str]) -> Config:
    raw = copy.deepcopy(example_config().raw)
    raw["runbooks"] = runbooks
    return parse_config(raw, source="test")


def test_the_policy_wins_over_the_endpoint() -> None:
    cfg = config(
        policies={LATENCY: "https://wiki/p95"},
        endpoints={"loan-assessor": "https://wiki/loan", "loan-assessor-stg": "https://wiki/stg"},
    )
    assert runbook_for(cfg, LATENCY, "loan-assessor") == "https://wiki/p95"
    assert runbook_for(cfg, "[prod] loan-assessor: error rate > 1 %", "loan-assessor") == (
        "https://wiki/loan"
    )
    assert runbook_for(cfg, None, "loan-assessor-stg") == "https://wiki/stg"


def test_a_policy_matches_ignoring_case_and_spacing_but_the_exact_key_first() -> None:
    cfg = config(
        policies={
            "Health watch:  Drift": "https://wiki/drift-a",
            "health watch: drift": "https://wiki/b",
        }
    )
    assert runbook_for(cfg, "health watch: drift", None) == "https://wiki/b"
    assert runbook_for(cfg, "HEALTH WATCH: DRIFT", None) == "https://wiki/drift-a"


def test_nothing_named_gives_none_and_says_what_to_add() -> None:
    cfg = config()
    assert runbook_for(cfg, LATENCY, "loan-assessor") is None
    assert runbook_for(cfg, None, None) is None
    assert "[runbooks.policies]" in missing_runbook(LATENCY, "loan-assessor")
    assert LATENCY in missing_runbook(LATENCY, "loan-assessor")
    assert "[runbooks.endpoints] loan-assessor" in missing_runbook(None, "loan-assessor")
    # free text leaving here is masked like every other exit
    assert "jane@example.com" not in missing_runbook("errors for jane@example.com", None)
