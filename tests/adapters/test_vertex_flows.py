"""The product's flows (deploy → approve → run, promote, rollback, faults, restart) through
the domain service, with VertexPlatform talking to the fake Vertex AI over gRPC."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import grpc
import pytest
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import aiplatform_v1 as v1
from google.cloud.aiplatform_v1.services.endpoint_service.transports import (
    EndpointServiceGrpcTransport,
)
from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport
from sqlalchemy import Engine

from bot.platforms.monitoring import read_retry
from bot.platforms.vertex import VertexPlatform
from commands.changes.execute import resume, take_over
from commands.config import Config
from commands.model import ChangeState, change_deployed_model_id
from commands.ports import AuditQuery
from commands.runtime import LEASE_TTL, Runtime
from tests.support.fakes.vertex_server import FakeVertex
from tests.support.harness import (
    ALICE,
    BOB,
    CAROL,
    Bot,
    DiesAfter,
    FakeClock,
    Stopped,
    example_config,
    make_runtime,
)

REGION = "australia-southeast1"
PROJECTS = {"loan-assessor": "lender-aiops-prod", "loan-assessor-stg": "lender-aiops-staging"}
IDS = {"loan-assessor": "1111", "loan-assessor-stg": "2222"}
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1", "1.3.0-rc2"]  # version ids 1–6
DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'


def endpoint_name(slug: str) -> str:
    return f"projects/{PROJECTS[slug]}/locations/{REGION}/endpoints/{IDS[slug]}"


def vertex_config() -> Config:
    config = example_config()
    endpoints = {
        slug: dataclasses.replace(ep, vertex_id=IDS[slug]) for slug, ep in config.endpoints.items()
    }
    return dataclasses.replace(config, endpoints=endpoints)


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex()
    for slug, project in PROJECTS.items():
        registry = f"projects/{project}/locations/{REGION}/models/gemma-3-1b-it"
        server.add_model(registry, VERSIONS)
        dm = "5" + IDS[slug][:2]
        server.add_endpoint(endpoint_name(slug), [(dm, registry, "3")], {dm: 100})  # 1.2.0
    server.serve()
    yield server
    server.stop()


def vertex_runtime(engine: Engine, clock: FakeClock, fake: FakeVertex) -> Runtime:
    """The service's runtime with the Vertex platform on a fresh channel to the fake."""
    config = vertex_config()
    rt = make_runtime(engine, clock, config=config)
    channel = grpc.insecure_channel(fake.address)
    rt.platform = VertexPlatform(
        config,
        endpoint_client=v1.EndpointServiceClient(
            transport=EndpointServiceGrpcTransport(channel=channel)
        ),
        model_client=v1.ModelServiceClient(transport=ModelServiceGrpcTransport(channel=channel)),
        retry=read_retry(timeout=2.0).with_delay(initial=0.01, maximum=0.05),
        polling=DEFAULT_POLLING.with_delay(initial=0.01, maximum=0.05),
    )
    return rt


@pytest.fixture
def vbot(sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex) -> Iterator[Bot]:
    bot = Bot(vertex_runtime(sqlite_engine, clock, fake), clock)
    yield bot
    bot.rt.background.wait_idle(30)


def pending_id(bot: Bot, slug: str = "loan-assessor") -> str:
    change = bot.rt.store.open_change(slug)
    assert change is not None
    return change.id


def test_prod_deploy_approve_promote_to_100_on_vertex(vbot: Bot, fake: FakeVertex) -> None:
    assert vbot.run(ALICE, DEPLOY).ok
    change_id = pending_id(vbot)
    assert fake.calls["DeployModel"] == 0  # nothing runs before approval
    assert vbot.run(BOB, f"/aiops approve {change_id}").ok
    done = vbot.change(change_id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.operation and done.operation.startswith(endpoint_name("loan-assessor"))
    assert vbot.split("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}
    new_id = done.new_deployed_model_id
    assert new_id and fake.traffic(endpoint_name("loan-assessor"))[new_id] == 10

    # No Monitoring fake here, so no canary analysis: prod needs the override.
    assert vbot.run(ALICE, '/promote loan-assessor to=50 force=true reason="canary healthy"').ok
    vbot.run(CAROL, f"/aiops approve {pending_id(vbot)}")
    assert vbot.split("loan-assessor") == {"1.2.0": 50, "1.2.1": 50}

    vbot.run(ALICE, '/promote loan-assessor force=true reason="all good"')
    vbot.run(BOB, f"/aiops approve {pending_id(vbot)}")
    assert vbot.split("loan-assessor") == {"1.2.1": 100}
    assert fake.deployed_ids(endpoint_name("loan-assessor")) == [new_id]  # old one undeployed


def test_rollback_on_vertex_restores_in_one_call_then_undeploys(
    vbot: Bot, fake: FakeVertex
) -> None:
    vbot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    assert vbot.split("loan-assessor-stg") == {"1.2.0": 75, "1.2.1": 25}
    updates, undeploys = fake.calls["UpdateEndpoint"], fake.calls["UndeployModel"]
    reply = vbot.run(ALICE, "/rollback loan-assessor-stg")
    assert reply.ok
    assert vbot.split("loan-assessor-stg") == {"1.2.0": 100}
    assert fake.calls["UpdateEndpoint"] == updates + 1
    assert fake.calls["UndeployModel"] == undeploys + 1


def test_a_failed_deploy_operation_fails_the_change_and_keeps_traffic(
    vbot: Bot, fake: FakeVertex
) -> None:
    fake.fail_operation(
        "DeployModel",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "The following quota metrics exceed quota limits: custom_model_serving_nvidia_l4_gpus",
    )
    vbot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    change = vbot.rt.store.list_changes(limit=1)[0]
    assert change.state is ChangeState.FAILED
    assert change.error and "quota" in change.error
    assert vbot.split("loan-assessor-stg") == {"1.2.0": 100}
    finished = [
        e
        for e in vbot.rt.store.audit(AuditQuery(change_id=change.id))
        if e.action == "execution_finished"
    ]
    assert finished and "quota" in finished[0].outcome


def test_a_refused_write_fails_the_change_with_the_reason(vbot: Bot, fake: FakeVertex) -> None:
    fake.fail("DeployModel", grpc.StatusCode.PERMISSION_DENIED, "aiplatform.endpoints.deploy")
    vbot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    change = vbot.rt.store.list_changes(limit=1)[0]
    assert change.state is ChangeState.FAILED
    assert change.error and "roles/aiplatform.user" in change.error
    assert fake.calls["DeployModel"] == 1
    assert vbot.split("loan-assessor-stg") == {"1.2.0": 100}


class _Stopped(BaseException):
    """The bot's process ends mid-poll (not an Exception: nothing may catch it)."""


def test_a_restarted_bot_resumes_the_stored_operation(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    fake.hold_operations = True
    first = Bot(vertex_runtime(sqlite_engine, clock, fake), clock)

    def stop(_seconds: float) -> None:
        raise _Stopped

    first.rt.sleep = stop
    with pytest.raises(_Stopped):
        first.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    running = first.rt.store.list_changes(limit=1)[0]
    assert running.state is ChangeState.RUNNING
    assert running.operation and running.operation in fake.operations

    fake.release()  # the deploy finishes while the bot is down
    second = Bot(vertex_runtime(sqlite_engine, clock, fake), clock)
    assert resume(second.rt) == 1
    second.rt.background.wait_idle(30)
    done = second.change(running.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert second.split("loan-assessor-stg") == {"1.2.0": 75, "1.2.1": 25}
    actions = [e.action for e in second.rt.store.audit(AuditQuery(change_id=running.id))]
    assert "execution_resumed" in actions


def test_a_slow_canary_on_vertex_is_rolled_back_from_cloud_monitoring_distributions(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    """The canary analysis end to end on the Google side: the windows are read from the
    Monitoring fake (latency distributions and response counts per deployed model, over
    gRPC, lagging 5 minutes), the judge finds the regression, the rollback runs on the
    Vertex fake."""
    import random
    from datetime import timedelta

    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import (
        MetricServiceGrpcTransport,
    )

    from bot.platforms.monitoring import LATENCY, RESPONSES, CloudMonitoring
    from bot.platforms.vertex_settings import parse_vertex_settings
    from commands.canary.loop import check_due
    from commands.model import BOT, ChangeKind
    from tests.support.fakes.monitoring_server import FakeMonitoring, distribution

    metrics = FakeMonitoring().serve()
    try:
        rt = vertex_runtime(sqlite_engine, clock, fake)
        assert isinstance(rt.platform, VertexPlatform)
        rt.platform.monitoring = CloudMonitoring(
            rt.config,
            parse_vertex_settings(rt.config),
            monitoring_v3.MetricServiceClient(
                transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(metrics.address))
            ),
            retry=read_retry(timeout=2.0).with_delay(initial=0.01, maximum=0.05),
            clock=clock,
        )
        bot = Bot(rt, clock)
        slug = "loan-assessor-stg"
        assert bot.run(ALICE, f'/deploy {slug} gemma-3-1b-it@1.3.0-rc1 canary=10 reason="rc"').ok
        deployed = bot.change(rt.store.list_changes(endpoint=slug, limit=1)[0].id)
        assert deployed.state is ChangeState.SUCCEEDED, deployed.error
        canary, stable = deployed.new_deployed_model_id, "5" + IDS[slug][:2]
        assert canary
        # an hour of traffic, one point a minute: the canary 4× slower, 3 % errors
        rnd = random.Random(3)
        project = PROJECTS[slug]
        for minute in range(1, 61):
            at = clock.now + timedelta(minutes=minute)
            for dm, slow, n, bad in ((stable, 1.0, 75, 0), (canary, 4.0, 8, minute % 4 == 0)):
                ms = [slow * rnd.lognormvariate(6.2, 0.4) for _ in range(n)]
                metrics.add(project, LATENCY, IDS[slug], dm, [(at, distribution(ms))],
                            latency_type="total")  # fmt: skip
                metrics.add(project, RESPONSES, IDS[slug], dm, [(at, n - int(bad))],
                            response_code="200")  # fmt: skip
                if bad:
                    metrics.add(project, RESPONSES, IDS[slug], dm, [(at, 1)], response_code="503")
        for _ in range(12):
            clock.advance(minutes=5)
            check_due(rt)
            rt.background.wait_idle(30)
            if bot.split(slug) == {"1.2.0": 100}:
                break
        assert bot.split(slug) == {"1.2.0": 100}
        rollback = rt.store.list_changes(endpoint=slug, limit=1)[0]
        assert rollback.kind is ChangeKind.ROLLBACK and rollback.requester_id == BOT.id
        assert rt.canary is not None
        w = rt.canary.latest_watch(slug)
        assert w is not None and w.last_verdict == "regression"
        [last] = rt.canary.checks(w.id, 1)
        assert last.canary.requests >= 30 and last.stable.requests >= 100
        assert any("above the" in r for r in last.reasons), last.reasons
        # the windows read end 5 minutes before the check (Monitoring's lag)
        ends = [r.interval.end_time for r in metrics.requests if LATENCY in r.filter]
        assert ends and all(e <= clock.now - timedelta(minutes=5) for e in ends)
    finally:
        metrics.stop()


@pytest.mark.parametrize("landed", [True, False], ids=["deployed", "still-deploying"])
def test_a_taker_adopts_the_deploy_of_a_dead_worker_on_vertex(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex, landed: bool
) -> None:
    """Look before leaping: the worker died right after DeployModel reached Vertex AI, before
    it stored the operation. The taker finds the deployed model by the id the change gave
    it (or, still deploying, is told the id exists and waits for it): one deploy in all."""
    fake.hold_operations = True
    first = Bot(vertex_runtime(sqlite_engine, clock, fake), clock)
    first.rt.platform = DiesAfter(first.rt.platform, "begin_deploy")  # type: ignore[assignment]
    with contextlib.suppress(Stopped):
        first.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    change = first.rt.store.list_changes(limit=1)[0]
    assert change.state is ChangeState.RUNNING and not change.plan.phase
    ours = change_deployed_model_id(change.id)
    assert ours == "9000000001"
    if landed:
        fake.release()
    clock.advance(LEASE_TTL.total_seconds() + 1)

    second = Bot(vertex_runtime(sqlite_engine, clock, fake), clock)
    sleeps: list[float] = []

    def poll(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            fake.release()  # the dead worker's deploy finishes on Vertex AI
        clock.advance(seconds)

    second.rt.sleep = poll
    assert take_over(second.rt) == 1
    second.rt.background.wait_idle(30)
    done = second.change(change.id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert done.new_deployed_model_id == ours
    deploys = [op for op in fake.operations.values() if op.method == "DeployModel"]
    assert len(deploys) == 1  # Vertex AI ran one deploy for the change
    assert fake.calls["DeployModel"] == (1 if landed else 2)  # the second one refused
    endpoint = fake.endpoints[endpoint_name("loan-assessor-stg")]
    [mine] = [d for d in endpoint.deployed_models if d.id == ours]
    assert change.id in mine.display_name
    assert second.split("loan-assessor-stg") == {"1.2.0": 75, "1.2.1": 25}
