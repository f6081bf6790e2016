"""Health, cost and alerts from Cloud Monitoring: the real MetricService client over gRPC
to a fake, and the alerts REST API over an AuthorizedSession to a fake HTTP server."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.api import distribution_pb2
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)

from bot.platforms.monitoring import (
    DUTY_CYCLE,
    LATENCY,
    METRICS,
    REPLICAS,
    RESPONSES,
    CloudMonitoring,
    Histogram,
    read_retry,
)
from bot.platforms.vertex_settings import parse_vertex_settings
from commands.config import Config, parse_config
from commands.ports import PlatformError
from tests.support.fakes.http_fakes import FakeGoogleHTTP
from tests.support.fakes.monitoring_server import FakeMonitoring, distribution

PROD, STG = "lender-aiops-prod", "lender-aiops-staging"
# 02:00 UTC is 13:00 in Sydney (AEDT): 13 hours of today so far.
NOW = datetime(2026, 11, 17, 2, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 16, 13, 0, tzinfo=UTC)


def _endpoint(env: str, vertex_id: str) -> dict[str, Any]:
    return {"environment": env, "model": "gemma", "vertex_id": vertex_id, "max_replicas": 4}


RAW: dict[str, Any] = {
    "platform": "vertex",
    "timezone": "Australia/Sydney",
    "environments": {
        "prod": {"project": PROD, "region": "australia-southeast1"},
        "staging": {"project": STG, "region": "australia-southeast1"},
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
        "alerts": {"label": "priority"},
    },
}


@pytest.fixture
def config() -> Config:
    return parse_config(RAW)


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


@pytest.fixture
def monitoring(config: Config, metrics: FakeMonitoring, http: FakeGoogleHTTP) -> CloudMonitoring:
    settings = dataclasses.replace(parse_vertex_settings(config), monitoring_url=http.url)
    client = monitoring_v3.MetricServiceClient(
        transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(metrics.address))
    )
    return CloudMonitoring(
        config,
        settings,
        client,
        session=AuthorizedSession(AnonymousCredentials()),
        retry=read_retry(timeout=2.0).with_delay(initial=0.01, maximum=0.05),
        clock=lambda: NOW,
    )


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[int(0.95 * len(ordered)) - 1]


def _seed(metrics: FakeMonitoring) -> dict[str, list[float]]:
    """An hour of traffic on 111 (stable 501 + slow canary 502) and 112; nothing on 113."""
    rng = random.Random(7)
    samples = {
        "501": [rng.uniform(400, 900) for _ in range(900)],
        "502": [rng.uniform(2500, 3500) for _ in range(100)],
        "601": [rng.uniform(100, 300) for _ in range(500)],
    }
    minute = timedelta(minutes=1)
    for ep, dm in (("111", "501"), ("111", "502"), ("112", "601")):
        # the same samples, spread over three points inside the window
        chunks = [samples[dm][i::3] for i in range(3)]
        metrics.add(
            PROD,
            LATENCY,
            ep,
            dm,
            [(NOW - (10 + 10 * i) * minute, distribution(c)) for i, c in enumerate(chunks)],
            latency_type="total",
        )
        # model-only latency is a different series and must not be counted
        metrics.add(
            PROD, LATENCY, ep, dm, [(NOW - minute, distribution([1.0] * 50))], latency_type="model"
        )
    metrics.add(PROD, RESPONSES, "111", "501", [(NOW - 5 * minute, 890)], response_code="200")
    metrics.add(PROD, RESPONSES, "111", "501", [(NOW - 5 * minute, 10)], response_code="503")
    metrics.add(PROD, RESPONSES, "111", "502", [(NOW - 5 * minute, 96)], response_code="200")
    metrics.add(PROD, RESPONSES, "111", "502", [(NOW - 5 * minute, 4)], response_code="500")
    metrics.add(PROD, RESPONSES, "112", "601", [(NOW - 5 * minute, 495)], response_code="200")
    metrics.add(PROD, RESPONSES, "112", "601", [(NOW - 5 * minute, 5)], response_code="429")
    metrics.add(PROD, RESPONSES, "112", "601", [(NOW - 5 * minute, 7)], response_code="404")
    # replicas every minute since 10:00 local yesterday: 2 for 501 all day, 1 for 502 since
    # 12:00 local today; the old model 499 was undeployed at 09:00 local
    step = timedelta(minutes=1)
    t, points_501, points_502, points_499 = MIDNIGHT - 3 * 60 * step, [], [], []
    while t <= NOW - 3 * step:  # Monitoring lags a few minutes behind
        points_501.append((t, 2))
        if t > NOW - 60 * step:
            points_502.append((t, 1))
        if t < MIDNIGHT + 9 * 60 * step:
            points_499.append((t, 1))
        t += step
    metrics.add(PROD, REPLICAS, "111", "501", points_501)
    metrics.add(PROD, REPLICAS, "111", "502", points_502)
    metrics.add(PROD, REPLICAS, "111", "499", points_499)
    metrics.add(PROD, DUTY_CYCLE, "111", "501", [(NOW - 5 * minute, 0.6)])
    metrics.add(PROD, DUTY_CYCLE, "111", "502", [(NOW - 5 * minute, 0.2)])
    metrics.add(STG, RESPONSES, "221", "701", [(NOW - 5 * minute, 20)], response_code="200")
    return samples


def test_health_of_many_endpoints_takes_one_query_per_metric_and_project(
    monitoring: CloudMonitoring, metrics: FakeMonitoring, config: Config
) -> None:
    _seed(metrics)
    health = monitoring.health(list(config.endpoints.values()), timedelta(hours=1))
    assert set(health) == set(config.endpoints)
    # two projects, four metrics: eight calls, never one per endpoint
    assert {m: metrics.calls[m] for m in METRICS} == {m: 2 for m in METRICS}
    prod = [r for r in metrics.requests if r.name == f"projects/{PROD}"]
    assert all('one_of("111", "112", "113")' in r.filter for r in prod)
    latency = next(r for r in prod if LATENCY in r.filter)
    assert list(latency.aggregation.group_by_fields) == [
        "resource.label.endpoint_id",
        "metric.label.deployed_model_id",
    ]


def test_health_figures_per_endpoint_and_per_model(
    monitoring: CloudMonitoring, metrics: FakeMonitoring, config: Config
) -> None:
    samples = _seed(metrics)
    health = monitoring.health(list(config.endpoints.values()), timedelta(hours=1))
    loan = health["loan-assessor"]

    # P95 from merged histograms (buckets grow by 20 %): per model and for the endpoint
    assert loan.by_model["501"].p95_latency_ms == pytest.approx(_p95(samples["501"]), rel=0.1)
    assert loan.by_model["502"].p95_latency_ms == pytest.approx(_p95(samples["502"]), rel=0.1)
    both = samples["501"] + samples["502"]
    assert loan.p95_latency_ms == pytest.approx(_p95(both), rel=0.1)

    assert loan.request_count == 1000
    assert loan.error_rate == pytest.approx(0.014)
    assert loan.by_model["502"].error_rate == pytest.approx(0.04)
    assert health["card-assessor"].error_rate == pytest.approx(
        5 / 507, abs=1e-5
    )  # 429 counts, 404 not

    assert loan.replicas == 3  # 501 and the canary 502 now; 499 is gone
    assert loan.max_replicas == 8
    assert loan.duty_cycle == pytest.approx(0.4)
    # replica-hours since local midnight × (0.85 + 0.70) USD, an estimate good to one
    # 5-minute step per model (the newest, partly filled step counts in full)
    hours = 2 * (13 - 3 / 60) + 1 * (1 - 3 / 60) + 9
    assert loan.cost_today_usd == pytest.approx(hours * 1.55, abs=3 * 5 / 60 * 1.55)
    assert loan.cost_is_estimate and loan.drift is None

    idle = health["fraud-triage"]
    assert (idle.request_count, idle.p95_latency_ms, idle.error_rate, idle.replicas) == (
        0,
        None,
        None,
        0,
    )
    assert health["loan-assessor-stg"].request_count == 20


def test_health_retries_unavailable_and_names_permission_faults(
    monitoring: CloudMonitoring, metrics: FakeMonitoring, config: Config
) -> None:
    _seed(metrics)
    metrics.fail_next.append(grpc.StatusCode.UNAVAILABLE)
    monitoring.health([config.endpoints["loan-assessor"]])
    assert metrics.calls[LATENCY] == 2  # the first read was retried

    metrics.fail_next.append(grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(PlatformError) as err:
        monitoring.health([config.endpoints["loan-assessor"]])
    assert err.value.kind == "permission" and "roles/monitoring.viewer" in str(err.value)


# -- alerts ----------------------------------------------------------------------------


def _alert(n: int, state: str, opened: datetime, **policy: Any) -> dict[str, Any]:
    return {
        "name": f"projects/{PROD}/alerts/{n}",
        "state": state,
        "openTime": opened.strftime("%Y-%m-%dT%H:%M:%S.123456789Z"),
        **(
            {"closeTime": (opened + timedelta(minutes=30)).isoformat()} if state == "CLOSED" else {}
        ),
        "resource": {
            "type": "aiplatform.googleapis.com/Endpoint",
            "labels": {"endpoint_id": "111", "location": "australia-southeast1"},
        },
        "metric": {"type": "aiplatform.googleapis.com/prediction/online/error_count"},
        "policy": {"name": f"projects/{PROD}/alertPolicies/{n}", **policy},
    }


def test_alerts_open_now_or_opened_since(monitoring: CloudMonitoring, http: FakeGoogleHTTP) -> None:
    http.alerts[PROD] = [
        _alert(
            1, "OPEN", NOW - timedelta(days=2), displayName="Error rate > 1 %", severity="CRITICAL"
        ),
        _alert(2, "CLOSED", NOW - timedelta(hours=1), displayName="P95 > 2 s", severity="ERROR"),
        _alert(3, "CLOSED", NOW - timedelta(days=3), displayName="Old", severity="CRITICAL"),
        _alert(
            4,
            "OPEN",
            NOW - timedelta(minutes=5),
            displayName="Drift",
            severity="CRITICAL",
            userLabels={"priority": "p3"},
        ),
        _alert(5, "CLOSED", NOW - timedelta(hours=2), displayName="Replicas at max"),
    ]
    found = monitoring.alerts(NOW - timedelta(hours=12))
    assert [(a.policy, a.severity, a.state) for a in found] == [
        ("Error rate > 1 %", "P1", "open"),
        ("P95 > 2 s", "P2", "closed"),
        ("Drift", "P3", "open"),  # the policy's priority label wins over its severity
        ("Replicas at max", "P3", "closed"),
    ]
    first = found[0]
    assert first.endpoint == "loan-assessor"
    assert first.opened_at == datetime(2026, 11, 15, 2, 0, 0, 123456, tzinfo=UTC)
    assert first.closed_at is None and found[1].closed_at is not None
    assert "error_count" in first.summary and "loan-assessor" in first.summary
    gets = [r for r in http.requests if r.path == f"/v3/projects/{PROD}/alerts"]
    assert any(r.query.get("filter") == ['state = "OPEN"'] for r in gets)
    assert any("pageToken" in r.query for r in gets)  # pages were followed
    assert all(r.headers.get("Authorization") is None for r in gets)  # anonymous in tests


def test_alerts_retry_unavailable_and_name_permission_faults(
    monitoring: CloudMonitoring, http: FakeGoogleHTTP
) -> None:
    http.fail("alerts", 503)
    assert monitoring.alerts(NOW - timedelta(hours=1)) == []
    http.fail("alerts", 403)
    with pytest.raises(PlatformError) as err:
        monitoring.alerts(NOW - timedelta(hours=1))
    assert err.value.kind == "permission" and "alerts" in str(err.value)


# -- histogram arithmetic ------------------------------------------------------------------


def test_percentiles_from_linear_and_explicit_buckets() -> None:
    linear = distribution_pb2.Distribution(count=100, bucket_counts=[0, 50, 40, 10])
    linear.bucket_options.linear_buckets.num_finite_buckets = 2
    linear.bucket_options.linear_buckets.width = 100
    linear.bucket_options.linear_buckets.offset = 0
    h = Histogram.from_distribution(linear)
    assert h is not None
    assert h.percentile(0.5) == pytest.approx(100)
    assert h.percentile(0.95) == pytest.approx(200)  # in the overflow bucket: its lower bound

    explicit = distribution_pb2.Distribution(count=10, bucket_counts=[0, 10])
    explicit.bucket_options.explicit_buckets.bounds.extend([0, 1000])
    e = Histogram.from_distribution(explicit)
    assert e is not None and e.percentile(0.95) == pytest.approx(950)
    assert h.merge(e) is None  # different layouts do not merge
    assert Histogram.from_distribution(distribution_pb2.Distribution()) is None


def test_health_that_stays_unavailable_is_a_retryable_platform_error(
    monitoring: CloudMonitoring, metrics: FakeMonitoring, config: Config
) -> None:
    monitoring.retry = read_retry(timeout=0.2).with_delay(initial=0.01, maximum=0.02)
    metrics.fail_next.extend([grpc.StatusCode.UNAVAILABLE] * 1000)
    with pytest.raises(PlatformError) as err:
        monitoring.health([config.endpoints["loan-assessor"]])
    assert err.value.kind == "unavailable" and err.value.retryable
    assert "prediction_latencies" in str(err.value)


def test_canary_window_reads_distributions_per_deployed_model(
    monitoring: CloudMonitoring, metrics: FakeMonitoring, config: Config
) -> None:
    """The canary analysis' window: `prediction_latencies` as bucket bounds and counts per
    deployed model (not a percentile), requests and errors from `response_count`, over the
    real gRPC transport; a window Monitoring has not finished (now − lag) is not read."""
    from commands.canary import stats

    samples = _seed(metrics)
    ep = config.endpoints["loan-assessor"]
    end = NOW - timedelta(minutes=5)  # now − `metrics_lag_seconds`
    window = monitoring.canary_window(ep, "502", "501", end - timedelta(hours=1), end)
    assert window is not None
    assert metrics.calls[LATENCY] == 1 and metrics.calls[RESPONSES] == 1
    canary, stable = window.canary, window.stable
    assert (canary.requests, canary.errors, stable.requests, stable.errors) == (100, 4, 900, 10)
    # the distribution as Monitoring holds it: 70 finite buckets growing by 20 % from 1 ms,
    # only `latency_type = "total"` (the model-only series' 50 samples are not in it)
    assert len(canary.latency_bounds_ms) == 71 and len(canary.latency_counts) == 72
    assert canary.latency_bounds_ms[1] == pytest.approx(1.2)
    assert sum(canary.latency_counts) == 100 and sum(stable.latency_counts) == 900
    request = next(r for r in metrics.requests if LATENCY in r.filter)
    assert request.aggregation.alignment_period == timedelta(hours=1)
    assert list(request.aggregation.group_by_fields) == [
        "resource.label.endpoint_id",
        "metric.label.deployed_model_id",
    ]
    # the judge reads it as it is: the canary's P95 is ~4× the stable one's
    j = stats.judge(stats.JudgeSettings(), stats.Evidence(), [window])
    assert j.verdict is stats.Verdict.REGRESSION
    assert j.figures.canary_p95_ms == pytest.approx(_p95(samples["502"]), rel=0.1)

    # a model with no traffic in the window: zero requests, no buckets
    empty = monitoring.canary_window(ep, "503", "501", end - timedelta(hours=1), end)
    assert empty is not None and empty.canary.requests == 0 and not empty.canary.has_latency
    # not complete yet in Monitoring: nothing is read
    calls = sum(metrics.calls.values())
    assert monitoring.canary_window(ep, "502", "501", end - timedelta(minutes=4), NOW) is None
    assert sum(metrics.calls.values()) == calls
