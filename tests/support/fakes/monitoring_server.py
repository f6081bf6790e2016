"""A fake Cloud Monitoring MetricService (ListTimeSeries only) on loopback gRPC.

It holds raw Vertex AI series (per endpoint and deployed model), and answers a query
the way Monitoring does: it selects by the filter, aligns each series into periods that
end at the interval's end, then reduces across series grouped by the requested fields.
It counts calls per metric type so tests can assert "one query per metric".
"""

from __future__ import annotations

import re
import threading
from collections import Counter, defaultdict
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.api import distribution_pb2
from google.cloud import monitoring_v3

_SERVICE = "google.monitoring.v3.MetricService"
RESOURCE_TYPE = "aiplatform.googleapis.com/Endpoint"
Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer

# Latency buckets like Vertex AI's: exponential from 1 ms, growth 1.2.
GROWTH, SCALE, BUCKETS = 1.2, 1.0, 70


def distribution(values_ms: list[float]) -> distribution_pb2.Distribution:
    """A latency histogram of the given samples."""
    counts = [0] * (BUCKETS + 2)
    for v in values_ms:
        if v < SCALE:
            counts[0] += 1
            continue
        i = 1
        while i <= BUCKETS and v >= SCALE * GROWTH**i:
            i += 1
        counts[i] += 1
    dist = distribution_pb2.Distribution(
        count=len(values_ms),
        mean=sum(values_ms) / len(values_ms) if values_ms else 0.0,
        bucket_counts=counts,
    )
    dist.bucket_options.exponential_buckets.num_finite_buckets = BUCKETS
    dist.bucket_options.exponential_buckets.growth_factor = GROWTH
    dist.bucket_options.exponential_buckets.scale = SCALE
    return dist


Value = float | int | distribution_pb2.Distribution


@dataclass
class Series:
    project: str
    metric: str
    endpoint_id: str
    deployed_model_id: str
    points: list[tuple[datetime, Value]]
    labels: dict[str, str] = field(default_factory=dict)  # further metric labels


def _add(a: Value, b: Value) -> Value:
    if isinstance(a, distribution_pb2.Distribution) and isinstance(
        b, distribution_pb2.Distribution
    ):
        out = distribution_pb2.Distribution()
        out.CopyFrom(a)
        n = a.count + b.count
        out.count = n
        out.mean = (a.mean * a.count + b.mean * b.count) / n if n else 0.0
        del out.bucket_counts[:]
        width = max(len(a.bucket_counts), len(b.bucket_counts))
        ac = list(a.bucket_counts) + [0] * (width - len(a.bucket_counts))
        bc = list(b.bucket_counts) + [0] * (width - len(b.bucket_counts))
        out.bucket_counts.extend(x + y for x, y in zip(ac, bc, strict=True))
        return out
    assert not isinstance(a, distribution_pb2.Distribution)
    assert not isinstance(b, distribution_pb2.Distribution)
    return a + b


def _typed(value: Value) -> dict[str, Any]:
    if isinstance(value, distribution_pb2.Distribution):
        return {"distribution_value": value}
    if isinstance(value, int):
        return {"int64_value": value}
    return {"double_value": float(value)}


_EQ = re.compile(r'(\S+)\s*=\s*"([^"]*)"')
_ONE_OF = re.compile(r"(\S+)\s*=\s*one_of\(([^)]*)\)")


@dataclass
class FakeMonitoring:
    series: list[Series] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # metric type → ListTimeSeries calls
    requests: list[monitoring_v3.ListTimeSeriesRequest] = field(default_factory=list)
    fail_next: list[grpc.StatusCode] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: grpc.Server | None = None
    port: int = 0

    def add(
        self,
        project: str,
        metric: str,
        endpoint_id: str,
        deployed_model_id: str,
        points: list[tuple[datetime, Value]],
        **labels: str,
    ) -> None:
        self.series.append(Series(project, metric, endpoint_id, deployed_model_id, points, labels))

    def serve(self) -> FakeMonitoring:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    _SERVICE,
                    {
                        "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                            self._list_time_series,
                            request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
                            response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize,
                        )
                    },
                ),
            )
        )
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)

    # -- the query ---------------------------------------------------------------------

    def _list_time_series(
        self, request: monitoring_v3.ListTimeSeriesRequest, context: grpc.ServicerContext
    ) -> monitoring_v3.ListTimeSeriesResponse:
        with self._lock:
            self.requests.append(request)
            wanted = dict(_EQ.findall(request.filter))
            metric = wanted.get("metric.type", "")
            self.calls[metric] += 1
            if self.fail_next:
                context.abort(self.fail_next.pop(0), "injected fault")
            if "metric.type" not in wanted:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "exactly one metric.type is required"
                )
            one_of = {
                k: {v.strip().strip('"') for v in vs.split(",")}
                for k, vs in _ONE_OF.findall(request.filter)
            }
            project = request.name.removeprefix("projects/")
            selected = [
                s
                for s in self.series
                if s.project == project
                and s.metric == metric
                and wanted.get("resource.type", RESOURCE_TYPE) == RESOURCE_TYPE
                and s.endpoint_id in one_of.get("resource.labels.endpoint_id", {s.endpoint_id})
                and all(
                    s.labels.get(k.removeprefix("metric.labels."), "") == v
                    for k, v in wanted.items()
                    if k.startswith("metric.labels.") and k != "metric.labels.deployed_model_id"
                )
            ]
            return monitoring_v3.ListTimeSeriesResponse(
                time_series=self._aggregate(request, selected)
            )

    def _aggregate(
        self, request: monitoring_v3.ListTimeSeriesRequest, selected: list[Series]
    ) -> list[monitoring_v3.TimeSeries]:
        start = request.interval.start_time.astimezone(UTC)
        end = request.interval.end_time.astimezone(UTC)
        agg = request.aggregation
        period = agg.alignment_period or timedelta(seconds=60)
        aligner = agg.per_series_aligner

        def align(points: list[tuple[datetime, Value]]) -> dict[datetime, Value]:
            out: dict[datetime, Value] = {}
            buckets: dict[datetime, list[Value]] = defaultdict(list)
            for at, value in points:
                if not start < at <= end:
                    continue
                k = (end - at) // period
                buckets[end - k * period].append(value)
            for period_end, values in buckets.items():
                if aligner == Aligner.ALIGN_MEAN:
                    out[period_end] = sum(float(v) for v in values) / len(values)  # type: ignore[arg-type]
                else:  # ALIGN_DELTA / ALIGN_SUM: what happened in the period
                    total = values[0]
                    for v in values[1:]:
                        total = _add(total, v)
                    out[period_end] = total
            return out

        def key_of(s: Series) -> tuple[tuple[str, str], ...]:
            fields = []
            for f in agg.group_by_fields:
                name = f.split(".")[-1]
                if f.startswith("resource."):
                    fields.append((f, s.endpoint_id if name == "endpoint_id" else ""))
                elif name == "deployed_model_id":
                    fields.append((f, s.deployed_model_id))
                else:
                    fields.append((f, s.labels.get(name, "")))
            return tuple(fields)

        groups: dict[tuple[tuple[str, str], ...], list[dict[datetime, Value]]] = defaultdict(list)
        for s in selected:
            groups[key_of(s)].append(align(s.points))

        result = []
        for key, aligned in groups.items():
            times = sorted({t for a in aligned for t in a}, reverse=True)  # newest first
            points = []
            for t in times:
                values = [a[t] for a in aligned if t in a]
                if agg.cross_series_reducer == Reducer.REDUCE_MEAN:
                    value: Value = sum(float(v) for v in values) / len(values)  # type: ignore[arg-type]
                else:
                    value = values[0]
                    for v in values[1:]:
                        value = _add(value, v)
                points.append(
                    monitoring_v3.Point(
                        interval=monitoring_v3.TimeInterval(start_time=t - period, end_time=t),
                        value=monitoring_v3.TypedValue(**_typed(value)),
                    )
                )
            resource = {f.split(".")[-1]: v for f, v in key if f.startswith("resource.")}
            metric_labels = {f.split(".")[-1]: v for f, v in key if f.startswith("metric.")}
            result.append(
                monitoring_v3.TimeSeries(
                    metric={
                        "type": dict(_EQ.findall(request.filter))["metric.type"],
                        "labels": metric_labels,
                    },
                    resource={"type": RESOURCE_TYPE, "labels": resource},
                    points=points,
                )
            )
        return result
