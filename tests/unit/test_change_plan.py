"""The new plan fields (strategy, scale target, replicas, cost a day, soak) survive the
flat string map a change is stored as, and a plan without them is stored key for key as
before (so the plan hash of an old approval does not move)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from commands.changes.rules import plan_hash
from commands.model import Change, ChangeKind, ChangePlan, ChangeState


def test_strategy_scale_cost_and_soak_round_trip_through_the_stored_map() -> None:
    plan = ChangePlan(
        mode="mutate",
        strategy="replace",
        target_id="5111",
        replicas_before=(2, 6),
        replicas_after=(0, 2),
        cost_before=62.88,
        cost_during=None,
        cost_after=0.0,
        soak_until=datetime(2026, 11, 27, 0, 10, tzinfo=UTC),
        soak="1.3.0-rc1 was unhealthy during the soak: P95 3,308 ms > 2,000 ms",
    )
    stored = plan.to_extra()
    assert all(isinstance(v, str) for v in stored.values())
    assert stored["replicas_before"] == "2:6" and stored["replicas_after"] == "0:2"
    assert "cost_during" not in stored
    assert ChangePlan.from_extra(stored) == plan


def test_a_plan_without_them_is_stored_and_hashed_as_before() -> None:
    old = {"mode": "deploy", "label:5111": "1.2.0", "stable_id": "5111"}
    assert ChangePlan.from_extra(old).to_extra() == old
    change = Change(
        id="CHG-1",
        kind=ChangeKind.DEPLOY,
        endpoint="loan-assessor",
        environment="prod",
        requester_id="U0ALICE",
        state=ChangeState.PENDING_APPROVAL,
        created_at=datetime(2026, 11, 26, tzinfo=UTC),
        version="gemma-3-1b-it@1.2.1",
        canary_percent=10,
        split_before={"5111": 100},
        split_after={"5111": 90, "0": 10},
        plan=ChangePlan.from_extra(old),
    )
    # the hash as it was computed before strategies and scaling existed
    legacy = {
        "kind": "deploy",
        "endpoint": "loan-assessor",
        "environment": "prod",
        "version": "gemma-3-1b-it@1.2.1",
        "canary_percent": 10,
        "split_before": {"5111": 100},
        "split_after": {"5111": 90, "0": 10},
        "restore_split": {},
        "undeploy": None,
        "redeploy_version": None,
    }
    before = plan_hash(change)
    assert (
        before
        == hashlib.sha256(
            json.dumps(legacy, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    )
    change.plan.strategy = "blue-green"
    assert plan_hash(change) != before  # … and a strategy is part of what was approved
    change.plan.strategy = None
    assert plan_hash(change) == before
