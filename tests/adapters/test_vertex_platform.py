"""VertexPlatform against a fake Vertex AI over the v1 clients' real gRPC transport."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api_core.future.polling import DEFAULT_POLLING
from google.cloud import aiplatform_v1 as v1
from google.cloud.aiplatform_v1.services.endpoint_service.transports import (
    EndpointServiceGrpcTransport,
)
from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport
from hypothesis import given
from hypothesis import strategies as st

from bot.platforms.monitoring import read_retry
from bot.platforms.vertex import VertexPlatform, regional_clients
from bot.platforms.vertex_settings import alias_version, parse_vertex_settings, version_alias
from commands.config import Config, ConfigError, parse_config
from commands.model import ModelVersion
from commands.ports import PlatformError, UnknownVersion
from tests.support.fakes.vertex_server import FakeVertex

PROJECT, REGION = "lender-aiops-prod", "australia-southeast1"
REGISTRY = f"projects/{PROJECT}/locations/{REGION}/models/gemma-3-1b-it"
ENDPOINT = f"projects/{PROJECT}/locations/{REGION}/endpoints/1111"
MODEL = "gemma-3-1b-it"
FAST_POLLING = DEFAULT_POLLING.with_delay(initial=0.01, maximum=0.05)

RAW: dict[str, Any] = {
    "platform": "vertex",
    "environments": {
        "prod": {"project": PROJECT, "region": REGION},
        "staging": {"project": "lender-aiops-staging", "region": REGION},
    },
    "models": {MODEL: {"versions": ["1.2.0"], "initial": "1.2.0"}},
    "endpoints": {
        "loan-assessor": {
            "environment": "prod",
            "model": MODEL,
            "vertex_id": "1111",
            "machine_type": "g2-standard-8",
            "accelerator_type": "NVIDIA_L4",
            "accelerator_count": 1,
            "min_replicas": 2,
            "max_replicas": 6,
        },
    },
}


def make_config(raw: dict[str, Any] | None = None) -> Config:
    return parse_config(raw or RAW)


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex(project_numbers={PROJECT: "123456789012"})
    server.add_model(REGISTRY, ["1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1"])  # version ids 1–4
    server.add_endpoint(ENDPOINT, [("501", REGISTRY, "2")], {"501": 100})
    server.serve()
    yield server
    server.stop()


def make_platform(fake: FakeVertex, config: Config | None = None) -> VertexPlatform:
    """A platform on its own fresh channel, as a (re)started bot would have."""
    channel = grpc.insecure_channel(fake.address)
    return VertexPlatform(
        config or make_config(),
        endpoint_client=v1.EndpointServiceClient(
            transport=EndpointServiceGrpcTransport(channel=channel)
        ),
        model_client=v1.ModelServiceClient(transport=ModelServiceGrpcTransport(channel=channel)),
        retry=read_retry(timeout=2.0).with_delay(initial=0.01, maximum=0.05),
        polling=FAST_POLLING,
    )


@pytest.fixture
def platform(fake: FakeVertex) -> VertexPlatform:
    return make_platform(fake)


@pytest.fixture
def endpoint(platform: VertexPlatform) -> Any:
    return platform.config.endpoints["loan-assessor"]


def v(text: str) -> ModelVersion:
    return ModelVersion.parse(f"{MODEL}@{text}")


def deploy_canary(platform: VertexPlatform, endpoint: Any, share: int = 10) -> str:
    name = platform.begin_deploy(endpoint, v("1.2.1"), {"501": 100 - share, "0": share})
    status = platform.wait(name)
    assert status.done and status.error is None and status.deployed_model_id
    return status.deployed_model_id


# -- reading -------------------------------------------------------------------------------


def test_endpoint_state_names_versions_from_registry_aliases(
    platform: VertexPlatform, endpoint: Any
) -> None:
    state = platform.endpoint_state(endpoint)
    assert state.traffic == {"501": 100}
    assert [(d.id, str(d.version)) for d in state.deployed] == [("501", f"{MODEL}@1.2.0")]


def test_model_versions_come_from_the_registry_across_pages(
    platform: VertexPlatform, fake: FakeVertex
) -> None:
    assert platform.model_versions(MODEL) == ["1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1"]
    assert fake.calls["ListModelVersions"] == 2  # pages of two, followed by the pager


def test_reads_retry_on_unavailable_and_deadline(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    fake.fail("GetEndpoint", grpc.StatusCode.UNAVAILABLE)
    fake.fail("GetEndpoint", grpc.StatusCode.DEADLINE_EXCEEDED)
    assert platform.endpoint_state(endpoint).traffic == {"501": 100}
    assert fake.calls["GetEndpoint"] == 3


def test_a_read_that_keeps_failing_ends_as_retryable_unavailable(
    fake: FakeVertex, endpoint: Any
) -> None:
    platform = make_platform(fake)
    platform.retry = read_retry(timeout=0.2).with_delay(initial=0.01, maximum=0.02)
    fake.fail("GetEndpoint", grpc.StatusCode.UNAVAILABLE, times=1000)
    with pytest.raises(PlatformError) as err:
        platform.endpoint_state(endpoint)
    assert err.value.kind == "unavailable" and err.value.retryable
    assert fake.calls["GetEndpoint"] > 1


# -- the flows -----------------------------------------------------------------------------


def test_deploy_canary_then_promote_to_100_and_undeploy_the_old_model(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    new_id = deploy_canary(platform, endpoint)
    assert fake.traffic(ENDPOINT) == {"501": 90, new_id: 10}  # "0" became the new id
    deployed = {d.id: d for d in fake.endpoints[ENDPOINT].deployed_models}[new_id]
    assert deployed.model == REGISTRY.replace(PROJECT, "123456789012")  # as Vertex AI answers
    assert deployed.model_version_id == "3"
    resources = deployed.dedicated_resources
    assert resources.machine_spec.machine_type == "g2-standard-8"
    assert resources.machine_spec.accelerator_type == v1.AcceleratorType.NVIDIA_L4
    assert resources.machine_spec.accelerator_count == 1
    assert (resources.min_replica_count, resources.max_replica_count) == (2, 6)

    platform.set_traffic(endpoint, {"501": 50, new_id: 50})
    assert fake.traffic(ENDPOINT) == {"501": 50, new_id: 50}
    platform.set_traffic(endpoint, {"501": 0, new_id: 100})
    assert fake.traffic(ENDPOINT) == {new_id: 100}

    done = platform.wait(platform.begin_undeploy(endpoint, "501", {new_id: 100}))
    assert done.done and done.error is None and done.progress == 100
    state = platform.endpoint_state(endpoint)
    assert [str(d.version) for d in state.deployed] == [f"{MODEL}@1.2.1"]
    assert state.traffic == {new_id: 100}


def test_rollback_restores_traffic_in_one_call_then_undeploys_the_canary(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    new_id = deploy_canary(platform, endpoint, share=25)
    before = fake.calls["UpdateEndpoint"]
    platform.set_traffic(endpoint, {"501": 100, new_id: 0})
    assert fake.calls["UpdateEndpoint"] == before + 1
    assert fake.traffic(ENDPOINT) == {"501": 100}
    platform.wait(platform.begin_undeploy(endpoint, new_id, {"501": 100}))
    assert fake.deployed_ids(ENDPOINT) == ["501"]


def test_an_operation_is_resumed_by_name_from_a_new_platform_after_a_restart(
    fake: FakeVertex, endpoint: Any
) -> None:
    fake.hold_operations = True
    first = make_platform(fake)
    name = first.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10})
    polls = [first.operation(name) for _ in range(3)]
    assert not any(p.done for p in polls)
    assert 0 < polls[0].progress < polls[-1].progress < 100  # stages reported as progress
    del first  # the bot stops; only the operation's name survives, in the store

    fake.release(name)
    restarted = make_platform(fake)
    status = restarted.operation(name)
    assert status.done and status.error is None and status.progress == 100
    assert status.deployed_model_id in fake.traffic(ENDPOINT)
    assert fake.traffic(ENDPOINT)[status.deployed_model_id] == 10


def test_a_change_deploys_with_its_own_id_once_and_its_deploy_can_be_cancelled(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    fake.hold_operations = True
    name = platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10}, "CHG-12")
    with pytest.raises(PlatformError) as running:  # a second deploy while the first runs
        platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10}, "CHG-12")
    assert running.value.kind == "already_exists"
    platform.cancel_operation(name)
    cancelled = platform.operation(name)
    assert cancelled.done and cancelled.error and "cancel" in cancelled.error.lower()
    assert fake.deployed_ids(ENDPOINT) == ["501"]  # nothing landed

    fake.hold_operations = False
    platform.wait(platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10}, "CHG-12"))
    state = platform.endpoint_state(endpoint)
    assert [(d.id, d.version.version) for d in state.deployed] == [
        ("501", "1.2.0"),
        ("9000000012", "1.2.1"),  # the change's id; the version still from the registry
    ]
    [mine] = [d for d in fake.endpoints[ENDPOINT].deployed_models if d.id == "9000000012"]
    assert mine.display_name == f"{MODEL}@1.2.1 CHG-12"
    with pytest.raises(PlatformError) as deployed:
        platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10}, "CHG-12")
    assert deployed.value.kind == "already_exists"
    platform.cancel_operation(name)  # one that has ended stays as it ended


def test_a_refused_cancel_is_a_platform_error(platform: VertexPlatform, fake: FakeVertex) -> None:
    fake.hold_operations = True
    name = platform.begin_deploy(
        platform.config.endpoints["loan-assessor"], v("1.2.1"), {"501": 90, "0": 10}, "CHG-3"
    )
    fake.fail("CancelOperation", grpc.StatusCode.PERMISSION_DENIED, "aiplatform.operations.cancel")
    with pytest.raises(PlatformError) as refused:
        platform.cancel_operation(name)
    assert refused.value.kind == "permission"
    assert not platform.operation(name).done


def test_an_unknown_operation_name_is_not_found(platform: VertexPlatform) -> None:
    with pytest.raises(PlatformError) as err:
        platform.operation(f"{ENDPOINT}/operations/404")
    assert err.value.kind == "not_found"
    with pytest.raises(PlatformError):
        platform.operation("not-an-operation")


# -- refusals before anything is sent ----------------------------------------------------


def test_unknown_version_is_refused_with_the_versions_that_exist(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    with pytest.raises(UnknownVersion) as err:
        platform.begin_deploy(endpoint, v("9.9.9"), {"501": 90, "0": 10})
    assert err.value.known == ("1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1")
    assert "1.3.0-rc1" in str(err.value)
    assert fake.calls["DeployModel"] == 0


@pytest.mark.parametrize(
    "split", [{"501": 80, "0": 10}, {"501": 101, "0": -1}, {"501": 100, "0": 10}]
)
def test_a_split_that_does_not_sum_to_100_is_never_sent(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any, split: dict[str, int]
) -> None:
    with pytest.raises(PlatformError) as err:
        platform.begin_deploy(endpoint, v("1.2.1"), split)
    assert err.value.kind == "precondition"
    with pytest.raises(PlatformError):
        platform.set_traffic(endpoint, {"501": split["501"] - 10})
    assert fake.calls["DeployModel"] == fake.calls["UpdateEndpoint"] == 0
    assert fake.traffic(ENDPOINT) == {"501": 100}


def test_undeploying_a_model_that_keeps_traffic_is_refused_locally(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    with pytest.raises(PlatformError) as err:
        platform.begin_undeploy(endpoint, "501", {"501": 100})
    assert err.value.kind == "precondition" and "100 %" in str(err.value)
    assert fake.calls["UndeployModel"] == 0


def test_an_unknown_accelerator_is_refused(fake: FakeVertex) -> None:
    raw = {**RAW, "endpoints": {"loan-assessor": {**RAW["endpoints"]["loan-assessor"]}}}
    raw["endpoints"]["loan-assessor"]["accelerator_type"] = "NVIDIA_Q9000"
    platform = make_platform(fake, make_config(raw))
    with pytest.raises(PlatformError, match="NVIDIA_Q9000"):
        platform.begin_deploy(
            platform.config.endpoints["loan-assessor"], v("1.2.1"), {"0": 100, "501": 0}
        )
    assert fake.calls["DeployModel"] == 0


# -- faults --------------------------------------------------------------------------------

FAULTS = [
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota", "quota is exhausted"),
    (grpc.StatusCode.PERMISSION_DENIED, "permission", "roles/aiplatform.user"),
    (grpc.StatusCode.NOT_FOUND, "not_found", "vertex_id"),
    (grpc.StatusCode.FAILED_PRECONDITION, "precondition", "current state"),
]


def _write(platform: VertexPlatform, endpoint: Any, method: str) -> None:
    if method == "DeployModel":
        platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10})
    elif method == "UpdateEndpoint":
        platform.set_traffic(endpoint, {"501": 100})
    else:
        platform.begin_undeploy(endpoint, "501", {})


@pytest.mark.parametrize("method", ["DeployModel", "UpdateEndpoint", "UndeployModel"])
@pytest.mark.parametrize(("code", "kind", "words"), FAULTS, ids=[f[1] for f in FAULTS])
def test_each_fault_gives_its_own_message_and_leaves_traffic_as_it_was(
    platform: VertexPlatform,
    fake: FakeVertex,
    endpoint: Any,
    method: str,
    code: grpc.StatusCode,
    kind: str,
    words: str,
) -> None:
    fake.fail(method, code, f"injected {code.name}")
    with pytest.raises(PlatformError) as err:
        _write(platform, endpoint, method)
    assert err.value.kind == kind
    assert words in str(err.value) and f"injected {code.name}" in str(err.value)
    assert "`loan-assessor`" in str(err.value)
    assert fake.calls[method] == 1  # a write is never retried
    assert fake.traffic(ENDPOINT) == {"501": 100}
    assert fake.deployed_ids(ENDPOINT) == ["501"]


def test_a_failed_deploy_operation_reports_why_and_changes_nothing(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    fake.fail_operation(
        "DeployModel",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "The following quota metrics exceed quota limits: custom_model_serving_nvidia_l4_gpus",
    )
    name = platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10})
    status = platform.operation(name)
    assert status.done and status.deployed_model_id is None
    assert (
        status.error is not None and "quota" in status.error and "`loan-assessor`" in status.error
    )
    with pytest.raises(PlatformError) as err:
        platform.wait(name)
    assert err.value.kind == "operation" and "nvidia_l4_gpus" in str(err.value)
    assert fake.traffic(ENDPOINT) == {"501": 100}
    assert fake.deployed_ids(ENDPOINT) == ["501"]


def test_a_lost_answer_to_set_traffic_is_decided_by_re_reading(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    new_id = deploy_canary(platform, endpoint)
    fake.fail("UpdateEndpoint", grpc.StatusCode.UNAVAILABLE, after_apply=True)
    platform.set_traffic(endpoint, {"501": 50, new_id: 50})  # applied: no error, no resend
    assert fake.calls["UpdateEndpoint"] == 1
    assert fake.traffic(ENDPOINT) == {"501": 50, new_id: 50}

    fake.fail("UpdateEndpoint", grpc.StatusCode.DEADLINE_EXCEEDED)  # not applied
    with pytest.raises(PlatformError) as err:
        platform.set_traffic(endpoint, {"501": 0, new_id: 100})
    assert err.value.kind == "unavailable" and err.value.retryable
    assert "safe to try again" in str(err.value)
    assert fake.calls["UpdateEndpoint"] == 2
    assert fake.traffic(ENDPOINT) == {"501": 50, new_id: 50}


def test_a_deploy_whose_answer_is_lost_is_not_resent(
    platform: VertexPlatform, fake: FakeVertex, endpoint: Any
) -> None:
    fake.fail("DeployModel", grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(PlatformError) as err:
        platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10})
    assert err.value.kind == "unavailable" and not err.value.retryable
    assert "may or may not" in str(err.value)
    assert fake.calls["DeployModel"] == 1


# -- construction and conventions ----------------------------------------------------------


def test_every_endpoint_needs_a_vertex_id() -> None:
    raw = {**RAW, "endpoints": {"x": {"environment": "prod", "model": MODEL}}}
    with pytest.raises(ConfigError, match=r"endpoints\.x\.vertex_id"):
        VertexPlatform(make_config(raw), endpoint_client=object(), model_client=object())


def test_regional_clients_use_the_regional_api_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr("google.auth.default", lambda *a, **k: (AnonymousCredentials(), "p"))
    clients = regional_clients("australia-southeast1")
    assert clients.endpoints.api_endpoint == "australia-southeast1-aiplatform.googleapis.com"
    assert clients.models.api_endpoint == "australia-southeast1-aiplatform.googleapis.com"


def test_vertex_settings_parse_and_refuse_mistakes() -> None:
    raw = {
        **RAW,
        "vertex": {
            "models": {MODEL: {"prod": "123", "staging": "projects/s/locations/r/models/9"}},
            "prices": {"machine": {"g2-standard-8": 0.85}, "accelerator": {"NVIDIA_L4": 0.7}},
            "alerts": {"severity": {"CRITICAL": "p1"}, "label": "priority"},
        },
    }
    settings = parse_vertex_settings(make_config(raw))
    assert settings.registry_ref(MODEL, "prod") == "123"
    assert settings.registry_ref("other", "prod") == "other"
    ep = make_config(raw).endpoints["loan-assessor"]
    assert settings.prices.replica_hour(ep) == pytest.approx(1.55)
    assert settings.alerts.severity == {"CRITICAL": "P1"}
    for bad in (
        {"prices": {"machine": {"g2-standard-8": "cheap"}}},
        {"alerts": {"severity": {"CRITICAL": "urgent"}}},
        {"models": {MODEL: {"qa": "1"}}},
        {"read_timeout_s": 0},
    ):
        with pytest.raises(ConfigError):
            parse_vertex_settings(make_config({**RAW, "vertex": bad}))


def test_a_per_environment_registry_id_is_resolved_in_that_environment(fake: FakeVertex) -> None:
    numbered = f"projects/{PROJECT}/locations/{REGION}/models/777"
    fake.add_model(numbered, ["2.0.0"])
    raw = {**RAW, "vertex": {"models": {MODEL: {"prod": "777"}}}}
    platform = make_platform(fake, make_config(raw))
    assert platform.model_versions(MODEL) == ["2.0.0"]


@given(
    st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
    st.none() | st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
)
def test_version_aliases_round_trip(core: tuple[int, int, int], pre: str | None) -> None:
    version = ".".join(map(str, core)) + (f"-{pre}" if pre else "")
    alias = version_alias(version)
    assert "." not in alias and alias.startswith("v")
    assert alias_version(alias) == version


def test_a_read_of_an_operation_that_outlives_wait_is_reported(
    fake: FakeVertex, endpoint: Any
) -> None:
    fake.hold_operations = True
    platform = make_platform(fake)
    name = platform.begin_deploy(endpoint, v("1.2.1"), {"501": 90, "0": 10})
    with pytest.raises(PlatformError) as err:
        platform.wait(name, timeout=0.1)
    assert err.value.kind == "unavailable" and err.value.retryable
    assert "still running" in str(err.value)


def test_other_bot_modules_do_not_import_googles_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bot.platforms, bot.gcp_logging, bot.wiring;"
        "loaded = [m for m in ('google.cloud.aiplatform_v1', 'google.cloud.monitoring_v3',"
        " 'google.cloud.logging') if m in sys.modules];"
        "print(','.join(loaded))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
