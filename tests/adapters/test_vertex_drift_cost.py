"""Drift from Vertex AI model monitoring (the real JobServiceClient over gRPC to the fake
Vertex AI), billed cost from the BigQuery billing export (jobs.query over an
AuthorizedSession to a fake HTTP server), the metrics' lag, and the digest's history."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import aiplatform_v1 as v1
from google.cloud import monitoring_v3
from google.cloud.aiplatform_v1.services.endpoint_service.transports import (
    EndpointServiceGrpcTransport,
)
from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport
from google.cloud.aiplatform_v1.services.model_service.transports import ModelServiceGrpcTransport
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)

from bot.platforms.monitoring import LATENCY, REPLICAS, RESPONSES, CloudMonitoring, read_retry
from bot.platforms.vertex import VertexPlatform
from bot.platforms.vertex_settings import parse_vertex_settings
from commands.config import ConfigError, parse_config
from commands.messages import breaches
from commands.ports import CostHistory, DeployedModelCost, MetricHistory, PlatformError
from tests.support.fakes.http_fakes import FakeGoogleHTTP
from tests.support.fakes.monitoring_server import FakeMonitoring, distribution
from tests.support.fakes.vertex_server import FakeVertex

PROD, STG, REGION = "lender-aiops-prod", "lender-aiops-staging", "australia-southeast1"
# 02:00 UTC is 13:00 in Sydney (AEDT): "yesterday" is 2026-11-15 13:00 → 11-16 13:00 UTC.
NOW = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)
TABLE = "finops-prj.billing.gcp_billing_export_resource_v1_0A1B2C_3D4E5F_6A7B8C"
HOUR = timedelta(hours=1)


def _endpoint(env: str, vertex_id: str) -> dict[str, Any]:
    return {"environment": env, "model": "gemma", "vertex_id": vertex_id, "max_replicas": 4}


RAW: dict[str, Any] = {
    "platform": "vertex",
    "timezone": "Australia/Sydney",
    "environments": {
        "prod": {"project": PROD, "region": REGION},
        "staging": {"project": STG, "region": REGION},
    },
    "models": {"gemma": {"versions": ["1.0.0"]}},
    "endpoints": {
        "loan-assessor": _endpoint("prod", "111"),
        "card-assessor": _endpoint("prod", "112"),
        "fraud-triage": _endpoint("prod", "113"),
        "loan-assessor-stg": _endpoint("staging", "221"),
    },
    "vertex": {
        "prices": {"machine": {"g2-standard-8": 0.85}, "accelerator": {"NVIDIA_L4": 0.70}},
        "billing_export_table": TABLE,
    },
}


def ep_name(project: str, vertex_id: str) -> str:
    return f"projects/{project}/locations/{REGION}/endpoints/{vertex_id}"


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    fake = FakeVertex(project_numbers={PROD: "123456789012"})
    fake.serve()
    yield fake
    fake.stop()


@pytest.fixture
def metrics() -> Iterator[FakeMonitoring]:
    fake = FakeMonitoring().serve()
    yield fake
    fake.stop()


@pytest.fixture
def http() -> Iterator[FakeGoogleHTTP]:
    fake = FakeGoogleHTTP().serve()
    yield fake
    fake.stop()


def make_platform(
    vertex: FakeVertex,
    metrics: FakeMonitoring,
    http: FakeGoogleHTTP,
    raw: dict[str, Any] | None = None,
) -> VertexPlatform:
    raw = copy.deepcopy(raw or RAW)
    raw["vertex"] = {**raw["vertex"], "bigquery_url": http.url, "monitoring_url": http.url}
    config = parse_config(raw)
    settings = parse_vertex_settings(config)
    retry = read_retry(timeout=2.0).with_delay(initial=0.01, maximum=0.05)
    monitoring = CloudMonitoring(
        config,
        settings,
        monitoring_v3.MetricServiceClient(
            transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(metrics.address))
        ),
        session=AuthorizedSession(AnonymousCredentials()),
        retry=retry,
        clock=lambda: NOW,
    )
    channel = grpc.insecure_channel(vertex.address)
    return VertexPlatform(
        config,
        endpoint_client=v1.EndpointServiceClient(
            transport=EndpointServiceGrpcTransport(channel=channel)
        ),
        model_client=v1.ModelServiceClient(transport=ModelServiceGrpcTransport(channel=channel)),
        job_client=v1.JobServiceClient(transport=JobServiceGrpcTransport(channel=channel)),
        monitoring=monitoring,
        billing_session=AuthorizedSession(AnonymousCredentials()),
        settings=settings,
        retry=retry,
    )


@pytest.fixture
def platform(vertex: FakeVertex, metrics: FakeMonitoring, http: FakeGoogleHTTP) -> VertexPlatform:
    return make_platform(vertex, metrics, http)


def seed_jobs(vertex: FakeVertex) -> None:
    parent = f"projects/{PROD}/locations/{REGION}"
    # 111: drift on both deployed models; the newest window counts, not the worst ever
    vertex.add_monitoring_job(
        parent,
        ep_name(PROD, "111"),
        {
            "501": {
                "income": [(NOW - 25 * HOUR, 0.5), (NOW - HOUR, 0.18)],
                "age": [(NOW - HOUR, 0.04)],
            },
            "502": {"income": [(NOW - HOUR, 0.12)]},
            "499": {"income": [(NOW - 72 * HOUR, 0.9)]},  # undeployed long ago: too old
        },
    )
    # an older, paused job on the same endpoint must not win over the running one
    vertex.add_monitoring_job(
        parent,
        ep_name(PROD, "111"),
        {"501": {"income": [(NOW - HOUR, 0.99)]}},
        state="JOB_STATE_PAUSED",
    )
    # 112: skew detection only, no drift objective: not monitored for drift
    vertex.add_monitoring_job(
        parent, ep_name(PROD, "112"), {"601": {"income": [(NOW - HOUR, 0.7)]}}, drift_models=[]
    )


# -- drift ---------------------------------------------------------------------------------


def test_drift_where_a_monitoring_job_exists_and_none_where_not(
    platform: VertexPlatform, vertex: FakeVertex
) -> None:
    seed_jobs(vertex)
    health = platform.health(list(platform.config.endpoints.values()))
    loan = health["loan-assessor"]
    assert loan.drift == pytest.approx(0.18)
    assert "drift 0.180 > 0.1" in breaches(loan, platform.config.thresholds)
    assert health["card-assessor"].drift is None  # a job, but no drift objective
    assert health["fraud-triage"].drift is None  # no job
    assert health["loan-assessor-stg"].drift is None
    # one list per project/region (prod's three jobs come in two pages of two), never
    # one per endpoint; one search per drift-monitored deployed model (+ its pages)
    assert vertex.calls["ListModelDeploymentMonitoringJobs"] == 2 + 1
    assert vertex.calls["SearchModelDeploymentMonitoringStatsAnomalies"] == 2 + 1 + 1


def test_a_lower_drift_does_not_breach(platform: VertexPlatform, vertex: FakeVertex) -> None:
    vertex.add_monitoring_job(
        f"projects/{PROD}/locations/{REGION}",
        ep_name(PROD, "113"),
        {"801": {"income": [(NOW - HOUR, 0.07)]}},
    )
    h = platform.health([platform.config.endpoints["fraud-triage"]])["fraud-triage"]
    assert h.drift == pytest.approx(0.07)
    assert breaches(h, platform.config.thresholds) == []


def test_a_job_service_fault_reads_not_monitored_with_a_warning(
    platform: VertexPlatform, vertex: FakeVertex, caplog: pytest.LogCaptureFixture
) -> None:
    seed_jobs(vertex)
    loan = platform.config.endpoints["loan-assessor"]
    vertex.fail("ListModelDeploymentMonitoringJobs", grpc.StatusCode.PERMISSION_DENIED)
    with caplog.at_level(logging.WARNING, logger="bot.platforms.drift"):
        h = platform.health([loan])["loan-assessor"]
    assert h.drift is None and h.request_count == 0  # health itself still answered
    assert any("not monitored" in r.getMessage() for r in caplog.records)

    # UNAVAILABLE is retried like every read
    vertex.fail("ListModelDeploymentMonitoringJobs", grpc.StatusCode.UNAVAILABLE)
    assert platform.health([loan])["loan-assessor"].drift == pytest.approx(0.18)

    # a failing search loses that deployed model's figure only
    caplog.clear()
    vertex.fail("SearchModelDeploymentMonitoringStatsAnomalies", grpc.StatusCode.INTERNAL)
    with caplog.at_level(logging.WARNING, logger="bot.platforms.drift"):
        h = platform.health([loan])["loan-assessor"]
    assert h.drift == pytest.approx(0.12)  # 501 (0.18) failed; 502 read
    assert any("deployed model 501" in r.getMessage() for r in caplog.records)


# -- cost from the billing export ---------------------------------------------------------


def _row(project: str, start: datetime, cost: float, **where: Any) -> dict[str, Any]:
    return {"project": project, "service": "Vertex AI", "start": start, "cost": cost, **where}


GLOBAL_111 = "//aiplatform.googleapis.com/" + ep_name("123456789012", "111")


def seed_billing(http: FakeGoogleHTTP) -> None:
    day = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # 12:00 yesterday in Sydney
    http.billing_rows = [
        _row(PROD, day, 30.0, global_name=GLOBAL_111, credits=[-5.0]),
        _row(PROD, day + 11.5 * HOUR, 10.0, global_name=GLOBAL_111),  # 23:30 yesterday
        _row(PROD, day + 12.5 * HOUR, 99.0, global_name=GLOBAL_111),  # 00:30 today: not yet
        _row(PROD, day - 13 * HOUR, 20.0, global_name=GLOBAL_111),  # the day before
        _row(PROD, day, 12.5, resource_name=ep_name(PROD, "112")),
        _row(PROD, day, 7.0, labels={"aiops_endpoint": "fraud-triage"}),  # by label (slug)
        _row(STG, day, 3.0, global_name="//aiplatform.googleapis.com/" + ep_name(STG, "221")),
        {**_row(PROD, day, 1000.0, global_name=GLOBAL_111), "service": "Compute Engine"},
        _row("someone-else", day, 500.0, global_name=GLOBAL_111),
        _row(PROD, day, 400.0, global_name="//aiplatform.googleapis.com/" + ep_name(PROD, "999")),
    ]


def test_yesterdays_cost_per_endpoint_from_one_bigquery_query(
    platform: VertexPlatform, http: FakeGoogleHTTP
) -> None:
    seed_billing(http)
    http.queries_incomplete = 1  # the first answer is "not complete yet": poll for results
    health = platform.health(list(platform.config.endpoints.values()))
    costs = {slug: (h.cost_today_usd, h.cost_is_estimate) for slug, h in health.items()}
    assert costs == {
        "loan-assessor": (35.0, False),
        "card-assessor": (12.5, False),
        "fraud-triage": (7.0, False),
        "loan-assessor-stg": (3.0, False),
    }
    assert http.calls["POST queries"] == 1  # one query for every endpoint and project
    assert http.calls["GET getQueryResults"] >= 2  # polled, then the pages were followed

    body = next(r.body for r in http.requests if r.path.endswith("/queries"))
    assert r_path_project(http) == "finops-prj"
    sql = body["query"]
    assert f"`{TABLE}`" in sql and "@projects" in sql and "@keys" in sql
    for literal in (PROD, STG, "111", "fraud-triage", "Vertex AI", "Australia/Sydney"):
        assert literal not in sql  # every value is a query parameter
    assert body["useLegacySql"] is False and body["parameterMode"] == "NAMED"

    # the digest's CostHistory: 8 days, oldest first, from the same (cached) query
    assert isinstance(platform, CostHistory)
    daily = platform.daily_costs([platform.config.endpoints["loan-assessor"]], 8)
    assert daily == {"loan-assessor": [0.0] * 6 + [20.0, 35.0]}
    platform.health([platform.config.endpoints["loan-assessor"]])
    assert http.calls["POST queries"] == 1


def r_path_project(http: FakeGoogleHTTP) -> str:
    path = next(r.path for r in http.requests if r.path.endswith("/queries"))
    return path.split("/")[4]  # /bigquery/v2/projects/P/queries


def test_an_endpoint_without_billed_rows_keeps_the_estimate(
    platform: VertexPlatform, http: FakeGoogleHTTP, metrics: FakeMonitoring
) -> None:
    seed_billing(http)
    http.billing_rows = [r for r in http.billing_rows if "labels" not in r]
    metrics.add(PROD, "aiplatform.googleapis.com/prediction/online/replicas", "113", "801",
                [(NOW - timedelta(minutes=10), 1)])  # fmt: skip
    h = platform.health([platform.config.endpoints["fraud-triage"]])["fraud-triage"]
    assert h.cost_is_estimate and h.cost_today_usd is not None


def test_without_a_billing_table_cost_is_the_labelled_estimate(
    vertex: FakeVertex, metrics: FakeMonitoring, http: FakeGoogleHTTP
) -> None:
    raw = copy.deepcopy(RAW)
    del raw["vertex"]["billing_export_table"]
    platform = make_platform(vertex, metrics, http, raw)
    h = platform.health([platform.config.endpoints["loan-assessor"]])["loan-assessor"]
    assert h.cost_is_estimate
    assert platform.daily_costs(list(platform.config.endpoints.values()), 8) == {}
    assert http.calls["POST queries"] == 0


def test_a_bigquery_403_gives_the_estimate_and_a_warning(
    platform: VertexPlatform, http: FakeGoogleHTTP, caplog: pytest.LogCaptureFixture
) -> None:
    seed_billing(http)
    http.fail("queries", 403)
    with caplog.at_level(logging.WARNING, logger="bot.platforms.vertex"):
        h = platform.health([platform.config.endpoints["loan-assessor"]])["loan-assessor"]
    assert h.cost_is_estimate
    warning = next(r.getMessage() for r in caplog.records if "estimate" in r.getMessage())
    assert "roles/bigquery.jobUser" in warning

    http.fail("queries", 403)
    with pytest.raises(PlatformError) as err:  # the digest shows "costs unavailable: …"
        platform.daily_costs([platform.config.endpoints["loan-assessor"]], 8)
    assert err.value.kind == "permission"


def test_a_bigquery_503_is_retried(platform: VertexPlatform, http: FakeGoogleHTTP) -> None:
    seed_billing(http)
    http.fail("queries", 503)
    h = platform.health([platform.config.endpoints["loan-assessor"]])["loan-assessor"]
    assert (h.cost_today_usd, h.cost_is_estimate) == (35.0, False)
    ids = {r.body["requestId"] for r in http.requests if r.path.endswith("/queries")}
    assert len(ids) == 1  # the retry resent the same request id: one query, not two


# -- the metrics' lag ---------------------------------------------------------------------


def test_health_windows_end_at_now_minus_the_metrics_lag(
    vertex: FakeVertex, metrics: FakeMonitoring, http: FakeGoogleHTTP
) -> None:
    platform = make_platform(vertex, metrics, http)
    platform.health([platform.config.endpoints["loan-assessor"]], timedelta(minutes=15))
    ends = {r.interval.end_time for r in metrics.requests}
    assert ends == {NOW - timedelta(seconds=300)}  # the default lag
    latency = next(r for r in metrics.requests if LATENCY in r.filter)
    assert latency.interval.start_time == NOW - timedelta(minutes=20)

    raw = copy.deepcopy(RAW)
    raw["vertex"]["metrics_lag_seconds"] = 0
    metrics.requests.clear()
    make_platform(vertex, metrics, http, raw).health([platform.config.endpoints["loan-assessor"]])
    assert {r.interval.end_time for r in metrics.requests} == {NOW}


@pytest.mark.parametrize(
    "bad",
    [
        {"metrics_lag_seconds": -1},
        {"metrics_lag_seconds": "5m"},
        {"billing_export_table": "proj.dataset.t`; DROP TABLE x; --"},
        {"billing_export_table": "dataset.table"},
        {"billing_label": "Has Spaces"},
        {"bigquery_url": "ftp://x"},
        {"drift_lookback_hours": 0},
    ],
)
def test_new_vertex_settings_refuse_mistakes(bad: dict[str, Any]) -> None:
    raw = {**RAW, "vertex": {**RAW["vertex"], **bad}}
    with pytest.raises(ConfigError):
        parse_vertex_settings(parse_config(raw))


# -- the digest's chart -------------------------------------------------------------------


def test_health_series_from_monitoring_two_queries_per_project(
    platform: VertexPlatform, metrics: FakeMonitoring
) -> None:
    minute = timedelta(minutes=1)
    # two 15-minute periods ending at now − lag (01:55): 01:25–01:40 and 01:40–01:55
    metrics.add(PROD, LATENCY, "111", "501", [(NOW - 30 * minute, distribution([100.0] * 40))],
                latency_type="total")  # fmt: skip
    metrics.add(PROD, LATENCY, "111", "502", [(NOW - 10 * minute, distribution([900.0] * 40))],
                latency_type="total")  # fmt: skip
    metrics.add(PROD, RESPONSES, "111", "501", [(NOW - 30 * minute, 100)], response_code="200")
    metrics.add(PROD, RESPONSES, "111", "501", [(NOW - 10 * minute, 90)], response_code="200")
    metrics.add(PROD, RESPONSES, "111", "502", [(NOW - 10 * minute, 10)], response_code="503")
    assert isinstance(platform, MetricHistory)
    eps = [platform.config.endpoints[s] for s in ("loan-assessor", "card-assessor")]
    series = platform.health_series(eps, NOW - 24 * HOUR, NOW, timedelta(minutes=15))
    assert metrics.calls[LATENCY] == metrics.calls[RESPONSES] == 1
    points = series["loan-assessor"]
    assert [p.at for p in points] == [NOW - 20 * minute, NOW - 5 * minute]  # period ends
    assert points[0].p95_latency_ms == pytest.approx(100, rel=0.2)
    assert points[0].error_rate == 0.0
    assert points[1].p95_latency_ms == pytest.approx(900, rel=0.2)
    assert points[1].error_rate == pytest.approx(0.1)
    assert series["card-assessor"] == []


# -- yesterday per deployed model (the digest's idle capacity) -----------------------------


def test_yesterday_per_deployed_model_from_two_queries_a_project(
    platform: VertexPlatform, metrics: FakeMonitoring
) -> None:
    # Yesterday in Sydney: Mon 16 Nov 00:00 → Tue 17 Nov 00:00 AEDT = 15 Nov 13:00 → 16 Nov 13:00 UTC
    start = datetime(2026, 11, 15, 13, 0, tzinfo=UTC)
    five = timedelta(minutes=5)
    # 501: 2 replicas all day; 502: 1 replica from noon (deployed then); a point of today too
    metrics.add(PROD, REPLICAS, "111", "501", [(start + i * five, 2) for i in range(1, 289)])
    metrics.add(PROD, REPLICAS, "111", "502", [(start + i * five, 1) for i in range(145, 289)])
    metrics.add(PROD, REPLICAS, "111", "501", [(NOW - five, 2)])
    # 601 (card-assessor) held 3 replicas and answered nothing: the idle case
    metrics.add(PROD, REPLICAS, "112", "601", [(start + i * five, 3) for i in range(1, 289)])
    for hour in range(1, 25):
        at = start + hour * HOUR - timedelta(minutes=1)
        metrics.add(PROD, RESPONSES, "111", "501", [(at, 10)], response_code="200")
    metrics.add(PROD, RESPONSES, "111", "501", [(start + 2 * HOUR, 4)], response_code="503")
    metrics.add(PROD, RESPONSES, "111", "502", [(start + 20 * HOUR, 3)], response_code="200")
    metrics.add(PROD, RESPONSES, "111", "501", [(NOW - five, 99)], response_code="200")  # today
    prod = [
        platform.config.endpoints[s] for s in ("loan-assessor", "card-assessor", "fraud-triage")
    ]
    metrics.calls.clear()

    assert isinstance(platform, CostHistory)
    found = platform.deployed_model_costs(prod)

    price = 0.85 + 0.70  # g2-standard-8 + one NVIDIA_L4, from [vertex.prices]
    assert found == {
        "loan-assessor": [
            DeployedModelCost("501", 244, 48.0, round(48 * price, 2)),
            DeployedModelCost("502", 3, 12.0, round(12 * price, 2)),
        ],
        "card-assessor": [DeployedModelCost("601", 0, 72.0, round(72 * price, 2))],
    }  # fraud-triage has no series: absent, not zero
    assert metrics.calls == {REPLICAS: 1, RESPONSES: 1}  # one each for the whole project
    replicas = next(r for r in metrics.requests if REPLICAS in r.filter)
    assert (replicas.interval.start_time, replicas.interval.end_time) == (
        start,
        start + 24 * HOUR,
    )
    assert replicas.aggregation.alignment_period == timedelta(minutes=5)


def test_yesterday_per_deployed_model_without_a_price_has_no_cost(
    vertex: FakeVertex, metrics: FakeMonitoring, http: FakeGoogleHTTP
) -> None:
    raw = copy.deepcopy(RAW)
    raw["vertex"]["prices"] = {"machine": {"n1-standard-4": 0.2}}
    platform = make_platform(vertex, metrics, http, raw)
    start = datetime(2026, 11, 15, 13, 0, tzinfo=UTC)
    metrics.add(PROD, REPLICAS, "111", "501", [(start + timedelta(hours=1), 1)])
    found = platform.deployed_model_costs([platform.config.endpoints["loan-assessor"]])
    assert found == {"loan-assessor": [DeployedModelCost("501", 0, 0.08, None)]}
