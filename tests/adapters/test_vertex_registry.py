"""VertexRegistry (the model-registry port on Vertex AI's Model Registry) against the fake
Vertex AI over the v1 ModelService client's real gRPC transport."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import Engine

from bot.platforms.vertex import VertexPlatform
from bot.platforms.vertex_registry import VertexRegistry
from commands.model import ChangeState
from commands.models.alias import AliasMove, retry_pending
from commands.models.model import GateOutcome, Review, ValidationStatus
from commands.ports import AuditQuery, PlatformError
from commands.runtime import NullNotifier
from tests.adapters.test_vertex_flows import (
    IDS,
    PROJECTS,
    VERSIONS,
    endpoint_name,
    vertex_runtime,
)
from tests.adapters.test_vertex_platform import REGISTRY, make_platform
from tests.support.fakes.vertex_server import FakeVertex
from tests.support.harness import ALICE, BOB, CAROL, Bot, FakeClock, text_of

PROJECT, REGION = "lender-aiops-prod", "australia-southeast1"
ENDPOINT = f"projects/{PROJECT}/locations/{REGION}/endpoints/1111"
MODEL = "gemma-3-1b-it"
PROD_REGISTRY = f"projects/{PROJECTS['loan-assessor']}/locations/{REGION}/models/{MODEL}"
STG_REGISTRY = f"projects/{PROJECTS['loan-assessor-stg']}/locations/{REGION}/models/{MODEL}"


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex(project_numbers={PROJECT: "123456789012"})
    # version ids 1–5; 5 carries `default`
    server.add_model(REGISTRY, ["1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1", "1.3.0-rc2"])
    server.add_endpoint(ENDPOINT, [("501", REGISTRY, "2")], {"501": 100})
    server.describe_version(
        REGISTRY,
        "3",
        version_description="Bug fix: the tokenizer split currency amounts.\n"
        "Intended use: Drafting assessment notes, reviewed by an assessor\n"
        "Limitations: amounts above $10M are read as text",
        labels={"validation": "approved", "validated_by": "carol", "validated_at": "2026-11-18"},
        pipeline_job=f"projects/{PROJECT}/locations/{REGION}/pipelineJobs/gemma-ft-loans-1112",
        metadata={"dataset": "bq://lender-ml-data.loans.applications_deid_2026q2"},
    )
    server.describe_version(
        REGISTRY,
        "4",
        version_description="Release candidate: longer context",
        metadata={"intended_use": "Staging only", "limitations": "Slow under load"},
        labels={"validation": "rejected", "validated_by": "carol", "validated_at": "1764028800"},
    )
    server.describe_version(REGISTRY, "5", labels={"validation": "looks-fine"})
    # three evaluations of 1.2.1 (two pages): the newest is not the last one added
    server.add_evaluation(REGISTRY, "3", {"auPrc": 0.81}, datetime(2026, 11, 10, tzinfo=UTC))
    server.add_evaluation(
        REGISTRY,
        "3",
        {"accuracy": 0.879, "f1": 0.866, "curves": [{"x": 1}], "slice": {"loans": 0.9}},
        datetime(2026, 11, 14, tzinfo=UTC),
    )
    server.add_evaluation(REGISTRY, "3", {"auPrc": 0.70}, datetime(2026, 11, 1, tzinfo=UTC))
    server.serve()
    yield server
    server.stop()


@pytest.fixture
def platform(fake: FakeVertex) -> VertexPlatform:
    return make_platform(fake)


def test_versions_carry_aliases_card_lineage_evaluation_and_validation(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    found = {v.version: v for v in VertexRegistry(platform).versions(MODEL)}
    assert list(found) == ["1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1", "1.3.0-rc2"]  # oldest first

    fixed = found["1.2.1"]
    assert fixed.aliases == ("v1-2-1",) and fixed.registry_id == "3"
    assert fixed.card.description == "Bug fix: the tokenizer split currency amounts."
    assert fixed.card.intended_use == "Drafting assessment notes, reviewed by an assessor"
    assert fixed.card.limitations == "amounts above $10M are read as text"
    assert fixed.lineage.pipeline_run and fixed.lineage.pipeline_run.endswith("gemma-ft-loans-1112")
    assert fixed.lineage.dataset == "bq://lender-ml-data.loans.applications_deid_2026q2"
    assert fixed.evaluation is not None  # the newest of three, read across two pages
    assert fixed.evaluation.metrics == {"accuracy": 0.879, "f1": 0.866, "slice.loans": 0.9}
    assert fixed.evaluation.at == datetime(2026, 11, 14, tzinfo=UTC)
    assert fixed.validation.status is ValidationStatus.APPROVED
    assert fixed.validation.by == "carol"
    assert (
        fixed.validation.at is not None and fixed.validation.at.date().isoformat() == "2026-11-18"
    )

    rc1 = found["1.3.0-rc1"]
    assert (rc1.card.intended_use, rc1.card.limitations) == ("Staging only", "Slow under load")
    assert rc1.validation.status is ValidationStatus.REJECTED
    assert rc1.validation.at == datetime(2025, 11, 25, tzinfo=UTC)  # epoch seconds in a label

    # nothing recorded: lineage unknown, no evaluation, validation pending
    bare = found["1.1.0"]
    assert bare.lineage.text() == "pipeline run unknown · dataset unknown"
    assert bare.evaluation is None and bare.validation.status is ValidationStatus.PENDING
    # a label the bot does not know is not an approval
    assert found["1.3.0-rc2"].validation.status is ValidationStatus.PENDING
    assert "default" in found["1.3.0-rc2"].aliases
    assert fake.calls["ListModelEvaluations"] >= 5


def test_an_unreadable_evaluation_leaves_the_version_listed(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    fake.fail("ListModelEvaluations", grpc.StatusCode.PERMISSION_DENIED, times=10)
    found = {v.version: v for v in VertexRegistry(platform).versions(MODEL)}
    assert found["1.2.1"].evaluation is None
    assert found["1.2.1"].validation.status is ValidationStatus.APPROVED


def test_an_unknown_model_has_no_versions(platform: VertexPlatform) -> None:
    config = platform.config
    platform.settings.models["missing"] = {"*": "missing"}
    assert VertexRegistry(platform).versions("missing", config.endpoints["loan-assessor"]) == []


def test_move_alias_moves_it_from_the_version_that_held_it(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    registry = VertexRegistry(platform)
    assert registry.serving_alias == "prod"
    assert registry.move_alias(MODEL, "1.2.0", "prod") is None  # nobody held it
    assert fake.aliases(REGISTRY)["prod"] == "2"
    assert registry.move_alias(MODEL, "1.2.1", "prod") == "1.2.0"
    assert fake.aliases(REGISTRY)["prod"] == "3"
    assert "prod" not in [
        a for m in fake.models[REGISTRY] if m.version_id == "2" for a in m.version_aliases
    ]
    merges = fake.calls["MergeVersionAliases"]
    assert registry.move_alias(MODEL, "1.2.1", "prod") == "1.2.1"  # already there: no write
    assert fake.calls["MergeVersionAliases"] == merges
    assert {v.version: v.aliases for v in registry.versions(MODEL)}["1.2.1"] == ("v1-2-1", "prod")


def test_move_alias_of_an_unknown_version_is_not_found(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    with pytest.raises(PlatformError) as raised:
        VertexRegistry(platform).move_alias(MODEL, "9.9.9", "prod")
    assert raised.value.kind == "not_found" and fake.calls["MergeVersionAliases"] == 0


def test_a_refused_move_is_a_platform_error_and_moves_nothing(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    fake.fail("MergeVersionAliases", grpc.StatusCode.PERMISSION_DENIED, "aiplatform.models.update")
    with pytest.raises(PlatformError) as raised:
        VertexRegistry(platform).move_alias(MODEL, "1.2.1", "prod")
    assert raised.value.kind == "permission"
    assert "prod" not in fake.aliases(REGISTRY)


def test_a_move_whose_answer_was_lost_is_decided_by_reading_again(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    registry = VertexRegistry(platform)
    fake.fail("MergeVersionAliases", grpc.StatusCode.UNAVAILABLE, after_apply=True)
    assert registry.move_alias(MODEL, "1.2.1", "prod") is None  # applied; answer lost
    assert fake.aliases(REGISTRY)["prod"] == "3" and fake.calls["MergeVersionAliases"] == 1
    fake.fail("MergeVersionAliases", grpc.StatusCode.UNAVAILABLE)  # lost before applying
    with pytest.raises(PlatformError) as raised:
        registry.move_alias(MODEL, "1.2.0", "prod")
    assert raised.value.kind == "unavailable" and fake.aliases(REGISTRY)["prod"] == "3"


def test_the_fake_refuses_what_the_service_refuses(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    """The fake holds the client to the API's rules: an explicit version id, valid aliases."""
    client = platform._for(REGION).models
    with pytest.raises(Exception, match="explicit version"):
        client.merge_version_aliases(name=REGISTRY, version_aliases=["prod"])
    with pytest.raises(Exception, match="Invalid alias"):
        client.merge_version_aliases(name=f"{REGISTRY}@3", version_aliases=["Prod"])


# --- the flows through the service, with the Vertex platform and its Model Registry ------


@pytest.fixture
def vfake() -> Iterator[FakeVertex]:
    """Both environments' registries and endpoints as in test_vertex_flows; in prod's,
    1.2.1 is validated and 1.3.0-rc1 is not."""
    server = FakeVertex()
    for slug, project in PROJECTS.items():
        registry = f"projects/{project}/locations/{REGION}/models/{MODEL}"
        server.add_model(registry, VERSIONS)
        dm = "5" + IDS[slug][:2]
        server.add_endpoint(endpoint_name(slug), [(dm, registry, "3")], {dm: 100})  # 1.2.0
    labels = {"validation": "approved", "validated_by": "carol", "validated_at": "2026-11-18"}
    for version_id in ("3", "4"):  # 1.2.0, 1.2.1
        server.describe_version(PROD_REGISTRY, version_id, labels=labels)
    server.add_evaluation(
        PROD_REGISTRY, "4", {"accuracy": 0.879}, datetime(2026, 11, 14, tzinfo=UTC)
    )
    server.serve()
    yield server
    server.stop()


@pytest.fixture
def vbot(sqlite_engine: Engine, clock: FakeClock, vfake: FakeVertex) -> Iterator[Bot]:
    rt = vertex_runtime(sqlite_engine, clock, vfake)
    assert isinstance(rt.platform, VertexPlatform)
    rt.registry = VertexRegistry(rt.platform)
    bot = Bot(rt, clock)
    yield bot
    bot.rt.background.wait_idle(30)


def _open(bot: Bot) -> str:
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    return change.id


def test_on_vertex_the_gate_reads_the_registry_labels(vbot: Bot, vfake: FakeVertex) -> None:
    refused = vbot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.3.0-rc1 reason="rc"')
    assert not refused.ok and "pending (no sign-off recorded)" in refused.text
    assert "Model Registry labels of `gemma-3-1b-it@1.3.0-rc1`" in text_of(refused)
    assert vfake.calls["DeployModel"] == 0
    assert vbot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="fix"').ok
    change = vbot.change(_open(vbot))
    review = Review.from_json(change.plan.model_review)
    assert review is not None and review.outcome is GateOutcome.PASSED
    assert review.metrics == {"accuracy": 0.879} and review.validation.by == "carol"


def test_on_vertex_the_serving_alias_follows_a_promote_and_a_rollback(
    vbot: Bot, vfake: FakeVertex
) -> None:
    assert vbot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="fix"').ok
    vbot.run(BOB, f"/aiops approve {_open(vbot)}")
    assert "prod" not in vfake.aliases(PROD_REGISTRY)  # a canary split moves nothing
    assert vbot.run(ALICE, '/promote loan-assessor force=true reason="all good"').ok
    promote = _open(vbot)
    vbot.run(CAROL, f"/aiops approve {promote}")
    assert vbot.split("loan-assessor") == {"1.2.1": 100}
    assert vfake.aliases(PROD_REGISTRY)["prod"] == "4"  # 1.2.1, in prod's registry only
    assert "prod" not in vfake.aliases(STG_REGISTRY)
    assert vfake.calls["MergeVersionAliases"] == 1
    moved = [
        e for e in vbot.rt.store.audit(AuditQuery(change_id=promote)) if e.action == "alias_moved"
    ]
    assert len(moved) == 1 and moved[0].parameters["previous"] is None

    assert vbot.run(CAROL, '/rollback loan-assessor reason="P95 above 2 s"').ok
    assert vbot.split("loan-assessor") == {"1.2.0": 100}
    assert vfake.aliases(PROD_REGISTRY)["prod"] == "3"  # back on 1.2.0
    assert vfake.calls["MergeVersionAliases"] == 2


def test_on_vertex_a_refused_alias_move_is_reported_and_retried(
    vbot: Bot, vfake: FakeVertex
) -> None:
    assert vbot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=100 reason="fix"').ok
    deploy = _open(vbot)
    vfake.fail("MergeVersionAliases", grpc.StatusCode.UNAVAILABLE, "backend unavailable", times=3)
    vbot.run(BOB, f"/aiops approve {deploy}")
    done = vbot.change(deploy)
    assert done.state is ChangeState.SUCCEEDED and vbot.split("loan-assessor") == {"1.2.1": 100}
    move = AliasMove.from_json(done.plan.serving_alias)
    assert move is not None and move.state == "pending" and "did not answer" in (move.error or "")
    notifier = vbot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    lines = [p.reply.text for p in notifier.posts if p.change_id == deploy and p.thread_ts]
    assert any("Could not move registry alias `prod`" in line for line in lines)
    assert "prod" not in vfake.aliases(PROD_REGISTRY)
    retry_pending(vbot.rt)  # the lost answer is read again: not applied, still pending
    assert AliasMove.from_json(vbot.change(deploy).plan.serving_alias).state == "pending"  # type: ignore[union-attr]
    retry_pending(vbot.rt)
    retry_pending(vbot.rt)  # the registry answers again
    assert vfake.aliases(PROD_REGISTRY)["prod"] == "4"
    assert AliasMove.from_json(vbot.change(deploy).plan.serving_alias).state == "moved"  # type: ignore[union-attr]


def test_one_version_reads_only_its_own_evaluations(
    fake: FakeVertex, platform: VertexPlatform
) -> None:
    registry = VertexRegistry(platform)
    found = registry.version(MODEL, "1.2.1")
    assert found is not None and found.evaluation is not None
    assert found.evaluation.metrics["accuracy"] == 0.879
    assert fake.calls["ListModelEvaluations"] == 2  # one version's two pages, not five versions'
    assert registry.version(MODEL, "9.9.9") is None
