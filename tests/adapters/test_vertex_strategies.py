"""Strategies and cost operations through the domain service with VertexPlatform talking
to the fake Vertex AI over gRPC (and, for the replace soak, to the Cloud Monitoring fake):
a blue-green deploy is DeployModel at 0 % then one UpdateEndpoint; a replace is
DeployModel at 100 %, a soak on Monitoring's figures, then UndeployModel (or, unhealthy,
one UpdateEndpoint back and UndeployModel of the new one); a scale is one
MutateDeployedModel, polled and resumable. Failed steps leave traffic and replicas as
Vertex AI says they are."""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

import grpc
import pytest
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)
from sqlalchemy import Engine

from bot.platforms.monitoring import LATENCY, RESPONSES, CloudMonitoring, read_retry
from bot.platforms.vertex import VertexPlatform
from bot.platforms.vertex_settings import parse_vertex_settings
from commands.changes.execute import resume
from commands.config import Config
from commands.model import Change, ChangeKind, ChangeState, change_deployed_model_id
from commands.ports import AuditQuery
from commands.runtime import Runtime
from tests.adapters.test_vertex_flows import (  # the Vertex fake, as the other flows use it
    IDS,
    PROJECTS,
    endpoint_name,
    fake,  # noqa: F401 - the fixture
    vertex_config,
    vertex_runtime,
)
from tests.support.fakes.monitoring_server import FakeMonitoring, distribution
from tests.support.fakes.vertex_server import FakeVertex
from tests.support.harness import ALICE, BOB, CAROL, Bot, FakeClock, Stopped, text_of

STG, PROD = "loan-assessor-stg", "loan-assessor"
# `[vertex.prices]`: one replica-hour of g2-standard-8 with one NVIDIA L4
PRICES = {"machine": {"g2-standard-8": 0.8536}, "accelerator": {"NVIDIA_L4": 0.7}}


def priced(config: Config, **endpoint_changes: object) -> Config:
    raw = config.raw | {"vertex": {"prices": PRICES}}
    endpoints = {
        slug: dataclasses.replace(ep, **endpoint_changes) for slug, ep in config.endpoints.items()
    }
    return dataclasses.replace(config, raw=raw, endpoints=endpoints)


def runtime(
    engine: Engine, clock: FakeClock, fake_vertex: FakeVertex, **endpoint_changes: object
) -> Runtime:
    rt = vertex_runtime(engine, clock, fake_vertex)
    assert isinstance(rt.platform, VertexPlatform)
    rt.config = priced(vertex_config(), **endpoint_changes)
    rt.platform.config = rt.config
    rt.platform.settings = parse_vertex_settings(rt.config)
    return rt


@pytest.fixture
def vbot(sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex) -> Iterator[Bot]:  # noqa: F811
    bot = Bot(runtime(sqlite_engine, clock, fake), clock)
    yield bot
    bot.rt.background.wait_idle(30)


def last(bot: Bot) -> Change:
    return bot.rt.store.list_changes(limit=1)[0]


def stable_id(slug: str) -> str:
    return "5" + IDS[slug][:2]  # what the fake endpoints serve (1.2.0)


# --- blue-green --------------------------------------------------------------------------


def test_blue_green_on_vertex_deploys_at_zero_and_switches_in_one_update(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    name = endpoint_name(STG)
    assert vbot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green").ok
    done = last(vbot)
    assert done.state is ChangeState.SUCCEEDED, done.error
    new = done.new_deployed_model_id
    assert new == change_deployed_model_id(done.id)
    assert fake.calls["DeployModel"] == 1 and fake.calls["UpdateEndpoint"] == 1
    assert fake.traffic(name) == {new: 100}
    assert fake.deployed_ids(name) == [stable_id(STG), new]  # blue stays deployed
    assert vbot.split(STG) == {"1.2.0": 0, "1.2.1": 100}

    assert vbot.run(ALICE, f"/promote {STG}").ok
    assert last(vbot).state is ChangeState.SUCCEEDED
    assert fake.calls["UpdateEndpoint"] == 1 and fake.calls["UndeployModel"] == 1
    assert fake.deployed_ids(name) == [new]


def test_blue_green_rollback_on_vertex_is_one_update_then_the_undeploy(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    vbot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green")
    updates = fake.calls["UpdateEndpoint"]
    assert vbot.run(ALICE, f"/rollback {STG}").ok
    assert fake.calls["UpdateEndpoint"] == updates + 1
    assert fake.calls["UndeployModel"] == 1
    assert fake.traffic(endpoint_name(STG)) == {stable_id(STG): 100}
    assert fake.deployed_ids(endpoint_name(STG)) == [stable_id(STG)]


def test_a_refused_blue_green_switch_leaves_traffic_on_blue(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    fake.fail("UpdateEndpoint", grpc.StatusCode.PERMISSION_DENIED, "aiplatform.endpoints.update")
    vbot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green")
    failed = last(vbot)
    assert failed.state is ChangeState.FAILED
    assert failed.error and "switching traffic to 1.2.1 failed" in failed.error
    assert "roles/aiplatform.user" in failed.error  # the platform's reason, in words
    name = endpoint_name(STG)
    assert fake.traffic(name) == {stable_id(STG): 100}  # true: blue serves it all
    assert vbot.split(STG) == {"1.2.0": 100, "1.2.1": 0}


def test_a_failed_blue_green_deploy_operation_leaves_traffic(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    fake.fail_operation("DeployModel", grpc.StatusCode.RESOURCE_EXHAUSTED, "L4 quota exceeded")
    vbot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=blue-green")
    assert last(vbot).state is ChangeState.FAILED
    assert fake.calls["UpdateEndpoint"] == 0
    assert fake.traffic(endpoint_name(STG)) == {stable_id(STG): 100}


# --- replace, soaked on Cloud Monitoring's figures -----------------------------------------


@contextlib.contextmanager
def monitored(rt: Runtime, clock: FakeClock) -> Iterator[FakeMonitoring]:
    metrics = FakeMonitoring().serve()
    try:
        assert isinstance(rt.platform, VertexPlatform)
        rt.platform.monitoring = CloudMonitoring(
            rt.config,
            rt.platform.settings,
            monitoring_v3.MetricServiceClient(
                transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(metrics.address))
            ),
            retry=read_retry(timeout=2.0).with_delay(initial=0.01, maximum=0.05),
            clock=clock,
        )
        yield metrics
    finally:
        metrics.stop()


def traffic(
    metrics: FakeMonitoring, slug: str, dm: str, since: datetime, *, slow: float, bad: int
) -> None:
    """Forty minutes of a deployed model's traffic, a point a minute: latency `slow` ×
    the usual, `bad` of every 20 requests answered 503."""
    rnd = random.Random(dm)
    for minute in range(-10, 30):
        at = since + timedelta(minutes=minute)
        ms = [slow * rnd.lognormvariate(6.2, 0.3) for _ in range(20)]
        metrics.add(PROJECTS[slug], LATENCY, IDS[slug], dm, [(at, distribution(ms))],
                    latency_type="total")  # fmt: skip
        metrics.add(PROJECTS[slug], RESPONSES, IDS[slug], dm, [(at, 20 - bad)],
                    response_code="200")  # fmt: skip
        if bad:
            metrics.add(PROJECTS[slug], RESPONSES, IDS[slug], dm, [(at, bad)],
                        response_code="503")  # fmt: skip


@pytest.mark.parametrize("healthy", [True, False], ids=["healthy", "unhealthy"])
def test_replace_on_vertex_soaks_on_monitoring_then_undeploys_or_rolls_back(
    sqlite_engine: Engine,
    clock: FakeClock,
    fake: FakeVertex,  # noqa: F811
    healthy: bool,
) -> None:
    rt = runtime(sqlite_engine, clock, fake)
    rt.config = dataclasses.replace(
        rt.config, raw=rt.config.raw | {"strategies": {"replace_soak": "3m"}}
    )
    name = endpoint_name(STG)
    with monitored(rt, clock) as metrics:
        new = change_deployed_model_id("CHG-1")  # the deploy's id, known before it runs
        assert new
        # Monitoring's figures for the new model: healthy, or 5× slower with 15 % errors
        traffic(metrics, STG, new, clock.now, slow=1.0 if healthy else 5.0, bad=0 if healthy else 3)
        bot = Bot(rt, clock)
        assert bot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace").ok
    done = last(bot)
    assert done.id == "CHG-1" and done.new_deployed_model_id == new
    soak = [e for e in rt.store.audit(AuditQuery(change_id=done.id)) if e.action == "soak"]
    if healthy:
        assert done.state is ChangeState.SUCCEEDED, done.error
        assert [e.outcome for e in soak] == ["healthy"] and soak[0].parameters["requests"] > 0
        assert fake.calls["UpdateEndpoint"] == 0  # deployed at 100 %: no traffic update
        assert fake.deployed_ids(name) == [new]  # the old one undeployed after the soak
        assert fake.traffic(name) == {new: 100}
    else:
        assert done.state is ChangeState.FAILED
        assert done.error and "unhealthy during the soak" in done.error
        assert "P95" in done.error and "errors 15.00%" in done.error
        assert soak[0].outcome.startswith("unhealthy")
        assert fake.calls["UpdateEndpoint"] == 1  # traffic back in one update
        assert fake.deployed_ids(name) == [stable_id(STG)]  # the new one undeployed
        assert fake.traffic(name) == {stable_id(STG): 100}


def test_a_replace_whose_deploy_fails_on_vertex_keeps_the_old_version(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    fake.fail_operation("DeployModel", grpc.StatusCode.FAILED_PRECONDITION, "image pull failed")
    vbot.run(ALICE, f"/deploy {STG} gemma-3-1b-it@1.2.1 strategy=replace")
    failed = last(vbot)
    assert failed.state is ChangeState.FAILED and failed.plan.soak_until is None
    assert fake.calls["UndeployModel"] == 0
    assert fake.traffic(endpoint_name(STG)) == {stable_id(STG): 100}


# --- scale and undeploy ----------------------------------------------------------------


def test_a_prod_scale_on_vertex_is_one_mutate_after_approval(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    name, dm = endpoint_name(PROD), stable_id(PROD)
    assert fake.replicas(name, dm) == (1, 2)
    reply = vbot.run(ALICE, f'/aiops scale {PROD} 1.2.0 min=2 max=4 reason="peak season"')
    assert reply.ok, text_of(reply)
    pending = last(vbot)
    assert pending.kind is ChangeKind.SCALE and pending.state is ChangeState.PENDING_APPROVAL
    # [vertex.prices]: $1.5536 a replica-hour → $37.29 a day; 1 → 2 replicas at minimum
    assert (pending.plan.cost_before, pending.plan.cost_after) == (37.29, 74.57)
    assert fake.calls["MutateDeployedModel"] == 0  # nothing before approval
    assert vbot.run(BOB, f"/aiops approve {pending.id}").ok
    done = vbot.change(pending.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert fake.calls["MutateDeployedModel"] == 1
    assert fake.replicas(name, dm) == (2, 4)
    assert done.operation and done.operation.startswith(name + "/operations/")
    state = vbot.rt.platform.endpoint_state(vbot.rt.config.endpoints[PROD])
    assert (state.deployed[0].replicas, state.deployed[0].max_replicas) == (2, 4)
    assert fake.traffic(name) == {dm: 100}  # traffic untouched


def test_min_zero_on_vertex_is_refused_without_scale_to_zero_and_says_why(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    reply = vbot.run(ALICE, f"/aiops scale {STG} min=0")
    assert not reply.ok
    said = text_of(reply)
    assert "minReplicaCount" in said and "Scale To Zero preview" in said
    assert fake.calls["MutateDeployedModel"] == 0
    assert vbot.rt.store.list_changes() == []


def test_min_zero_on_vertex_where_the_deployment_scales_to_zero(
    sqlite_engine: Engine,
    clock: FakeClock,
    fake: FakeVertex,  # noqa: F811
) -> None:
    bot = Bot(runtime(sqlite_engine, clock, fake, scale_to_zero=True), clock)
    fake.scale_to_zero.add(endpoint_name(STG))
    assert bot.run(ALICE, f"/aiops scale {STG} min=0").ok
    assert last(bot).state is ChangeState.SUCCEEDED, last(bot).error
    assert fake.replicas(endpoint_name(STG), stable_id(STG)) == (0, 2)


def test_a_scale_vertex_refuses_fails_the_change_and_leaves_replicas(
    sqlite_engine: Engine,
    clock: FakeClock,
    fake: FakeVertex,  # noqa: F811
) -> None:
    # the config claims scale-to-zero, Vertex AI does not agree for this deployment
    bot = Bot(runtime(sqlite_engine, clock, fake, scale_to_zero=True), clock)
    bot.run(ALICE, f"/aiops scale {STG} min=0")
    failed = last(bot)
    assert failed.state is ChangeState.FAILED
    assert failed.error and "rejected the request as invalid" in failed.error
    assert fake.replicas(endpoint_name(STG), stable_id(STG)) == (1, 2)


def test_a_failed_mutate_operation_fails_the_change_and_leaves_replicas(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    fake.fail_operation(
        "MutateDeployedModel", grpc.StatusCode.RESOURCE_EXHAUSTED, "custom_model_serving_nvidia_l4"
    )
    vbot.run(ALICE, f"/aiops scale {STG} max=1")
    failed = last(vbot)
    assert failed.state is ChangeState.FAILED
    assert failed.error and "finish the scale" in failed.error and "quota" in failed.error
    assert fake.replicas(endpoint_name(STG), stable_id(STG)) == (1, 2)


def test_a_restarted_bot_polls_the_stored_mutate_to_its_end(
    sqlite_engine: Engine,
    clock: FakeClock,
    fake: FakeVertex,  # noqa: F811
) -> None:
    fake.hold_operations = True
    first = Bot(runtime(sqlite_engine, clock, fake), clock)

    def stop(_seconds: float) -> None:
        raise Stopped

    first.rt.sleep = stop
    with contextlib.suppress(Stopped):
        first.run(ALICE, f"/aiops scale {STG} max=1")
    running = last(first)
    assert running.state is ChangeState.RUNNING and running.plan.phase == "mutate"
    assert running.operation in fake.operations
    fake.release()  # the mutate finishes while the bot is down
    second = Bot(runtime(sqlite_engine, clock, fake), clock)
    assert resume(second.rt) == 1
    second.rt.background.wait_idle(30)
    assert second.change(running.id).state is ChangeState.SUCCEEDED
    assert fake.calls["MutateDeployedModel"] == 1
    assert fake.replicas(endpoint_name(STG), stable_id(STG)) == (1, 1)


def test_a_prod_undeploy_on_vertex_after_a_blue_green_needs_approval(
    vbot: Bot,
    fake: FakeVertex,  # noqa: F811
) -> None:
    vbot.run(ALICE, f'/deploy {PROD} gemma-3-1b-it@1.2.1 strategy=blue-green reason="x"')
    vbot.run(BOB, f"/aiops approve {last(vbot).id}")
    assert vbot.split(PROD) == {"1.2.0": 0, "1.2.1": 100}
    reply = vbot.run(ALICE, f'/aiops undeploy {PROD} 1.2.0 reason="done with blue"')
    assert reply.ok and "saves $37.29 a day" in text_of(reply)
    assert fake.calls["UndeployModel"] == 0
    assert vbot.run(CAROL, f"/aiops approve {last(vbot).id}").ok
    assert last(vbot).state is ChangeState.SUCCEEDED
    assert fake.calls["UndeployModel"] == 1
    assert vbot.split(PROD) == {"1.2.1": 100}
