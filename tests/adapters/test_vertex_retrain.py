"""`/aiops retrain` on Vertex AI: the registry adapter's pipeline jobs against the fake
Vertex AI over the v1 PipelineService and ModelService clients' real gRPC transport (and a
compiled spec read from Cloud Storage with google-cloud-storage over HTTP): submitted with
its template, parameters and labels, polled, the version it registered found by its
lineage; a failed run; look-before-leap adoption after a worker died; a run that
registered nothing the bot can name."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api_core.future.polling import DEFAULT_POLLING
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1 as v1
from google.cloud import storage  # type: ignore[attr-defined]
from google.cloud.aiplatform_v1.services.endpoint_service.transports import (
    EndpointServiceGrpcTransport,
)
from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport
from google.cloud.aiplatform_v1.services.pipeline_service.transports import (
    PipelineServiceGrpcTransport,
)
from sqlalchemy import Engine

from bot.platforms.monitoring import read_retry
from bot.platforms.vertex import VertexPlatform
from bot.platforms.vertex_registry import VertexRegistry
from commands.changes.execute import take_over
from commands.config import Config, parse_config
from commands.model import ChangeState, model_key
from commands.models.model import PipelineState, ValidationStatus
from commands.ports import AuditQuery, PlatformError
from commands.runtime import LEASE_TTL, Runtime
from tests.adapters.test_vertex_flows import IDS, PROJECTS, VERSIONS, endpoint_name
from tests.support.fakes.http_fakes import FakeGoogleHTTP
from tests.support.fakes.vertex_server import FakeVertex
from tests.support.harness import (
    ALICE,
    BOB,
    Bot,
    DiesAfter,
    FakeClock,
    Stopped,
    example_config,
    make_runtime,
)

REGION = "australia-southeast1"
MODEL = "gemma-3-1b-it"
PROD = PROJECTS["loan-assessor"]
PROD_REGISTRY = f"projects/{PROD}/locations/{REGION}/models/{MODEL}"
PARENT = f"projects/{PROD}/locations/{REGION}"
TEMPLATE = (
    "https://australia-southeast1-kfp.pkg.dev/lender-ml-pipelines/pipelines/gemma-ft-loans/v3"
)
RETRAIN = f'/aiops retrain {MODEL} reason="drift 0.14 on loan-assessor"'
DEAD = "deadhost:4242:deadbeef"
SPEC = {
    "pipelineSpec": {
        "pipelineInfo": {"name": "gemma-ft-loans"},
        "schemaVersion": "2.1.0",
        "root": {
            "inputDefinitions": {"parameters": {"epochs": {"parameterType": "NUMBER_INTEGER"}}}
        },
    }
}


def vertex_config(**model: Any) -> Config:
    raw = copy.deepcopy(example_config().raw)
    raw["models"][MODEL].update(model)
    raw.setdefault("vertex", {})["pipeline_service_account"] = (
        "pipelines@lender-aiops-prod.iam.gserviceaccount.com"
    )
    config = parse_config(raw, source="test.toml")
    endpoints = {
        slug: dataclasses.replace(ep, vertex_id=IDS[slug]) for slug, ep in config.endpoints.items()
    }
    return dataclasses.replace(config, endpoints=endpoints)


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex(project_numbers={PROD: "123456789012"})
    for slug, project in PROJECTS.items():
        registry = f"projects/{project}/locations/{REGION}/models/{MODEL}"
        server.add_model(registry, VERSIONS)
        dm = "5" + IDS[slug][:2]
        server.add_endpoint(endpoint_name(slug), [(dm, registry, "3")], {dm: 100})  # 1.2.0
    server.describe_version(
        PROD_REGISTRY,
        "3",
        pipeline_job=f"projects/123456789012/locations/{REGION}/pipelineJobs/gemma-ft-loans-0904",
        metadata={"dataset": "bq://lender-ml-data.loans.applications_deid_2026q2"},
        labels={"validation": "approved", "validated_by": "carol", "validated_at": "2026-09-15"},
    )
    server.pipeline_registers = (PROD_REGISTRY, "1.2.2")
    server.serve()
    yield server
    server.stop()


@pytest.fixture
def gcs() -> Iterator[FakeGoogleHTTP]:
    server = FakeGoogleHTTP().serve()
    yield server
    assert server._server is not None
    server._server.shutdown()


def vertex_runtime(
    engine: Engine, clock: FakeClock, fake: FakeVertex, config: Config, gcs: Any = None
) -> Runtime:
    """The service's runtime with the Vertex platform and its Model Registry on a fresh
    channel to the fake (a restarted process has its own)."""
    rt = make_runtime(engine, clock, config=config)
    channel = grpc.insecure_channel(fake.address)
    storage_client = None
    if gcs is not None:
        assert gcs._server is not None
        storage_client = storage.Client(
            project=PROD,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": f"http://127.0.0.1:{gcs._server.server_address[1]}"},
        )
    platform = VertexPlatform(
        config,
        endpoint_client=v1.EndpointServiceClient(
            transport=EndpointServiceGrpcTransport(channel=channel)
        ),
        model_client=v1.ModelServiceClient(transport=ModelServiceGrpcTransport(channel=channel)),
        pipeline_client=v1.PipelineServiceClient(
            transport=PipelineServiceGrpcTransport(channel=channel)
        ),
        storage_client=storage_client,
        retry=read_retry(timeout=2.0).with_delay(initial=0.01, maximum=0.05),
        polling=DEFAULT_POLLING.with_delay(initial=0.01, maximum=0.05),
    )
    rt.platform = platform
    rt.registry = VertexRegistry(platform)
    return rt


def vbot(engine: Engine, clock: FakeClock, fake: FakeVertex, **model: Any) -> Bot:
    gcs = model.pop("gcs", None)
    return Bot(vertex_runtime(engine, clock, fake, vertex_config(**model), gcs), clock)


def open_retrain(bot: Bot) -> str:
    change = bot.rt.store.open_change(model_key(MODEL))
    assert change is not None
    return change.id


def test_a_retrain_submits_the_template_as_a_pipeline_job_and_finds_the_version_it_registered(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    bot = vbot(sqlite_engine, clock, fake)
    reply = bot.run(ALICE, RETRAIN)
    assert reply.ok, reply.text
    change_id = open_retrain(bot)
    assert fake.calls["CreatePipelineJob"] == 0  # nothing before approval
    assert bot.run(BOB, f"/aiops approve {change_id}").ok
    done = bot.change(change_id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    (job,) = fake.pipeline_jobs.values()
    # what was submitted, where: the template, the parameters, the labels, the identity
    assert job.name.startswith("projects/123456789012/locations/australia-southeast1/pipelineJobs/")
    assert done.operation == job.name
    assert job.template_uri == TEMPLATE and not job.pipeline_spec
    assert dict(job.runtime_config.parameter_values) == {
        "base_model": MODEL,
        "dataset": "bq://lender-ml-data.loans.applications_deid_latest",
        "epochs": 3,
        "learning_rate": 0.0002,
    }
    assert (
        job.runtime_config.gcs_output_directory == "gs://lender-aiops-prod-pipelines/gemma-ft-loans"
    )
    assert job.service_account == "pipelines@lender-aiops-prod.iam.gserviceaccount.com"
    assert job.display_name == f"retrain {MODEL} {change_id}"
    assert job.labels["aiops_change"] == change_id.lower() and job.labels["aiops_model"] == MODEL
    assert len(job.labels["aiops_run"]) == 12
    assert fake.calls["ListPipelineJobs"] == 1  # looked before it leapt
    assert fake.calls["GetPipelineJob"] >= 3  # pending → running → succeeded
    # the registered version, by its lineage (its `pipeline_job` names this run)
    assert done.plan.registered_version == f"{MODEL}@1.2.2"
    assert bot.rt.registry is not None
    found = bot.rt.registry.version(MODEL, "1.2.2", bot.rt.config.endpoints["loan-assessor"])
    assert found is not None and found.lineage.pipeline_run == job.name
    assert found.validation.status is ValidationStatus.PENDING
    models = json.dumps(
        [b.__dict__ for b in bot.run(ALICE, f"/aiops models {MODEL}").blocks], default=str
    )
    assert f"pipeline run {job.name}" in models
    # prod's gate refuses it until model risk labels it validated
    refused = bot.run(ALICE, f'/deploy loan-assessor {MODEL}@1.2.2 reason="retrained"')
    assert not refused.ok and "may not go into `prod`" in refused.text
    assert fake.calls["DeployModel"] == 0


def test_a_failed_pipeline_job_fails_the_change_with_the_services_error(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    fake.fail_pipeline("The DAG failed because some tasks failed. The failed tasks are: [train].")
    bot = vbot(sqlite_engine, clock, fake)
    assert bot.run(ALICE, RETRAIN).ok
    change_id = open_retrain(bot)
    assert bot.run(BOB, f"/aiops approve {change_id}").ok
    done = bot.change(change_id)
    assert done.state is ChangeState.FAILED
    assert done.error == (
        "the pipeline job failed: The DAG failed because some tasks failed. The failed tasks"
        " are: [train]."
    )
    assert done.version is None
    assert len(fake.models[PROD_REGISTRY]) == len(VERSIONS)  # nothing registered


def test_a_run_that_registers_nothing_nameable_fails_saying_what_to_do(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    fake.pipeline_registers = None
    bot = vbot(sqlite_engine, clock, fake)
    assert bot.run(ALICE, RETRAIN).ok
    change_id = open_retrain(bot)
    assert bot.run(BOB, f"/aiops approve {change_id}").ok
    done = bot.change(change_id)
    assert done.state is ChangeState.FAILED
    assert done.error is not None
    assert done.error.startswith("the pipeline job succeeded but the registry holds no version")


def test_a_taker_adopts_the_job_its_dead_worker_submitted_instead_of_submitting_another(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    dead = vbot(sqlite_engine, clock, fake)
    assert dead.run(ALICE, RETRAIN).ok
    change_id = open_retrain(dead)
    dead.rt.registry = DiesAfter(dead.rt.registry, "begin_pipeline")  # type: ignore[assignment]
    with contextlib.suppress(Stopped):
        dead.run(BOB, f"/aiops approve {change_id}")
    assert fake.calls["CreatePipelineJob"] == 1
    stranded = dead.change(change_id)
    assert stranded.state is ChangeState.RUNNING and stranded.operation is None
    assert dead.rt.store.take_lease(change_id, DEAD, clock(), LEASE_TTL) is not None
    clock.advance(LEASE_TTL.total_seconds() + 1)

    taker = vbot(sqlite_engine, clock, fake)  # another process, its own channel
    assert take_over(taker.rt) == 1
    taker.rt.background.wait_idle(30)
    done = taker.change(change_id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    assert fake.calls["CreatePipelineJob"] == 1  # adopted, not submitted again
    (job,) = fake.pipeline_jobs.values()
    assert done.operation == job.name and done.plan.registered_version == f"{MODEL}@1.2.2"
    submitted = [
        e.outcome
        for e in taker.rt.store.audit(AuditQuery(change_id=change_id))
        if e.action == "pipeline_submitted"
    ]
    assert submitted == ["adopted"]


def test_a_submit_whose_answer_was_lost_is_found_by_its_labels_not_sent_again(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    fake.fail("CreatePipelineJob", grpc.StatusCode.UNAVAILABLE, "lost", after_apply=True)
    bot = vbot(sqlite_engine, clock, fake)
    assert bot.run(ALICE, RETRAIN).ok
    change_id = open_retrain(bot)
    assert bot.run(BOB, f"/aiops approve {change_id}").ok
    done = bot.change(change_id)
    assert done.state is ChangeState.SUCCEEDED, done.error
    (job,) = fake.pipeline_jobs.values()
    assert done.operation == job.name and fake.calls["CreatePipelineJob"] == 1
    assert fake.calls["ListPipelineJobs"] == 2  # before the leap, and after the lost answer


def test_a_compiled_spec_on_cloud_storage_is_read_and_sent_as_the_pipeline_spec(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex, gcs: FakeGoogleHTTP
) -> None:
    gcs.objects["lender-ml-pipelines/gemma-ft-loans/pipeline.json"] = json.dumps(SPEC).encode()
    bot = vbot(
        sqlite_engine,
        clock,
        fake,
        gcs=gcs,
        retrain_template="gs://lender-ml-pipelines/gemma-ft-loans/pipeline.json",
    )
    assert bot.run(ALICE, RETRAIN).ok
    assert bot.run(BOB, f"/aiops approve {open_retrain(bot)}").ok
    (job,) = fake.pipeline_jobs.values()
    assert not job.template_uri
    spec = json.loads(v1.PipelineJob.to_json(job))["pipelineSpec"]
    assert spec == SPEC["pipelineSpec"]
    assert gcs.calls["GET objects.get"] == 1

    # a spec that is not there fails the change saying so; nothing is submitted
    missing = vbot(
        sqlite_engine,
        clock,
        fake,
        gcs=gcs,
        retrain_template="gs://lender-ml-pipelines/gemma-ft-loans/missing.json",
    )
    assert missing.run(ALICE, RETRAIN).ok
    change_id = open_retrain(missing)
    assert missing.run(BOB, f"/aiops approve {change_id}").ok
    failed = missing.change(change_id)
    assert failed.state is ChangeState.FAILED
    assert failed.error == (
        "the pipeline spec `gs://lender-ml-pipelines/gemma-ft-loans/missing.json` does not"
        " exist (or the bot may not read it)"
    )
    assert len(fake.pipeline_jobs) == 1


def test_the_adapter_finds_jobs_by_every_label_and_reads_states(
    sqlite_engine: Engine, clock: FakeClock, fake: FakeVertex
) -> None:
    rt = vertex_runtime(sqlite_engine, clock, fake, vertex_config())
    registry = rt.registry
    assert isinstance(registry, VertexRegistry)
    env = rt.config.environments["prod"]
    labels = {"aiops_change": "chg-7", "aiops_run": "abc", "aiops_model": MODEL}
    assert registry.find_pipeline(MODEL, labels, env) is None
    names = [
        registry.begin_pipeline(
            MODEL, TEMPLATE, {}, labels | {"aiops_run": run}, env, display_name=run
        )
        for run in ("old", "abc", "new")
    ]
    assert registry.find_pipeline(MODEL, labels, env) == names[1]
    assert registry.find_pipeline(MODEL, {"aiops_change": "chg-7"}, env) == names[2]  # newest
    staging = rt.config.environments["staging"]
    assert registry.find_pipeline(MODEL, labels, staging) is None  # another project
    fake.hold_operations = True
    assert registry.pipeline_status(names[0], MODEL, env).state is PipelineState.RUNNING
    with pytest.raises(PlatformError) as unknown:
        registry.pipeline_status(f"{PARENT}/pipelineJobs/nope", MODEL, env)
    assert unknown.value.kind == "not_found"
    with pytest.raises(PlatformError) as refused:  # the service refuses a bad label
        registry.begin_pipeline(MODEL, TEMPLATE, {}, {"Bad": "x"}, env, display_name="x")
    assert refused.value.kind != "unavailable"
    assert fake.calls["CreatePipelineJob"] == 4
