"""Endpoint health from Cloud Monitoring, open alerts from its alerts API, and a cost
estimate from replica-hours, for the Vertex AI platform.

Health asks ONE `list_time_series` per metric for all endpoints of a project, grouped
by endpoint and deployed model, never one query per endpoint:

- latency: `prediction_latencies` (a DELTA distribution in ms), ALIGN_DELTA + REDUCE_SUM
  per (endpoint, deployed model). Monitoring merges the histograms; the P95 of each model
  and of the whole endpoint are read from the merged buckets here, because one query must
  give both and a percentile of per-model percentiles is not the endpoint's percentile.
- errors and requests: `response_count` by `response_code`; 5xx and 429 count as errors.
- replicas: `replicas`, ALIGN_MEAN in 5-minute steps since local midnight (or the window,
  if longer): the newest step is "replicas now", the steps since midnight × the
  configured price per replica-hour are today's cost *estimate* (labelled as such). When
  `[vertex] billing_export_table` is set, the platform replaces it with yesterday's billed
  cost from the BigQuery export (`billing.py`).
- accelerator duty cycle: `accelerator/duty_cycle`, ALIGN_MEAN / REDUCE_MEAN, a 0–1 fraction.

Lag: Vertex AI's metrics arrive 2–6 minutes late, so every window ends at
now − `[vertex] metrics_lag_seconds` (default 300), not at now. A window ending at now
would hold a partly filled tail that reads as a drop in traffic and, for the canary
analysis (which compares the canary with the stable model over one window), too few
requests. The canary's checks therefore judge the interval that ended 5 minutes ago.

`canary_window` (the canary analysis) asks two `list_time_series` for one endpoint and one
closed window, aligned to the window's length: `prediction_latencies` as a distribution per
deployed model (bucket bounds and counts, passed on unchanged for the sequential judge) and
`response_count` per deployed model and response code. A window that ends after now − lag is
not complete yet: it is not read.

`health_series` (the digest's chart) asks two `list_time_series` (latency, responses) for
all endpoints of a project, aligned in the requested step (15 minutes for the digest).

`deployed_model_costs` (the digest's idle capacity) asks two (replicas, responses) per
project for yesterday, per deployed model: replica-hours × the configured price.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import monitoring_v3

from commands.canary.stats import CanaryWindow, WindowSample
from commands.config import Config, Endpoint
from commands.model import EndpointHealth, ModelHealth
from commands.ports import Alert, DeployedModelCost, PlatformError, SeriesPoint

from .vertex_settings import VertexSettings

PREFIX = "aiplatform.googleapis.com/prediction/online/"
RESOURCE_TYPE = "aiplatform.googleapis.com/Endpoint"
LATENCY = PREFIX + "prediction_latencies"
RESPONSES = PREFIX + "response_count"
REPLICAS = PREFIX + "replicas"
DUTY_CYCLE = PREFIX + "accelerator/duty_cycle"
METRICS = (LATENCY, RESPONSES, REPLICAS, DUTY_CYCLE)

_REPLICA_STEP = timedelta(minutes=5)
_GROUP = ("resource.label.endpoint_id", "metric.label.deployed_model_id")
Clock = Callable[[], datetime]
Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


_TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.GatewayTimeout)


def read_retry(timeout: float = 30.0) -> Retry:
    """Reads back off and retry on UNAVAILABLE and DEADLINE_EXCEEDED only."""
    return Retry(
        predicate=if_exception_type(*_TRANSIENT),
        initial=0.25,
        maximum=4.0,
        multiplier=2.0,
        timeout=timeout,
    )


# -- faults ------------------------------------------------------------------------------

# The REST transport raises the HTTP classes (Forbidden, GatewayTimeout…), gRPC the others.
_PERMISSION = (gexc.PermissionDenied, gexc.Unauthenticated, gexc.Forbidden, gexc.Unauthorized)
_PRECONDITION = (gexc.FailedPrecondition, gexc.Conflict, gexc.Aborted, gexc.PreconditionFailed)


def fetch_json(
    session: Any, retry: Retry, method: str, url: str, *, timeout: float, **kwargs: Any
) -> dict[str, Any]:
    """One Google REST call through an authorised session, retried; an HTTP error status
    becomes google.api_core's exception for it (which `platform_error` explains)."""

    def fetch() -> dict[str, Any]:
        response = session.request(method, url, timeout=timeout, **kwargs)
        if response.status_code >= 400:
            raise gexc.from_http_response(response)  # type: ignore[no-untyped-call]
        return cast(dict[str, Any], response.json())

    result: dict[str, Any] = retry(fetch)()
    return result


def platform_error(exc: Exception, doing: str, *, project: str | None = None) -> PlatformError:
    """A Google API error as a PlatformError that says what failed and what to do."""
    detail = str(getattr(exc, "message", None) or exc)
    where = f" in project `{project}`" if project else ""
    if isinstance(exc, gexc.ResourceExhausted | gexc.TooManyRequests):
        return PlatformError(
            f"Could not {doing}: Vertex AI quota is exhausted{where} ({detail}). Ask for more"
            " quota for the machine / accelerator in that region, or use fewer replicas.",
            kind="quota",
        )
    if isinstance(exc, _PERMISSION):
        return PlatformError(
            f"Could not {doing}: the bot's service account is not allowed to{where} ({detail})."
            " It needs roles/aiplatform.user and roles/monitoring.viewer on the project.",
            kind="permission",
        )
    if isinstance(exc, gexc.NotFound):
        return PlatformError(
            f"Could not {doing}: not found{where} ({detail}). Check the endpoint's `vertex_id`"
            " and region, and the model's registry id under [vertex.models].",
            kind="not_found",
        )
    if isinstance(exc, _PRECONDITION):
        return PlatformError(
            f"Could not {doing}: Vertex AI refused it in the endpoint's current state ({detail})."
            " Check `status` for what the endpoint serves now before trying again.",
            kind="precondition",
        )
    if isinstance(exc, gexc.InvalidArgument | gexc.BadRequest):
        return PlatformError(
            f"Could not {doing}: Vertex AI rejected the request as invalid ({detail}).",
            kind="precondition",
        )
    if isinstance(exc, (*_TRANSIENT, gexc.RetryError)):
        return PlatformError(
            f"Could not {doing}: Google Cloud did not answer in time ({detail}). Try again shortly.",
            kind="unavailable",
            retryable=True,
        )
    return PlatformError(f"Could not {doing}: {detail}", kind="error")


# -- distributions -----------------------------------------------------------------------


@dataclass
class Histogram:
    """A latency distribution's buckets, mergeable across series with the same layout."""

    edges: tuple[float, ...]  # finite bucket boundaries; bucket i spans edges[i-1]..edges[i]
    counts: list[int]
    count: int = 0

    @classmethod
    def from_distribution(cls, dist: Any) -> Histogram | None:
        options = dist.bucket_options
        kind = options.WhichOneof("options")
        if kind == "linear_buckets":
            lin = options.linear_buckets
            edges = tuple(lin.offset + lin.width * k for k in range(lin.num_finite_buckets + 1))
        elif kind == "exponential_buckets":
            exp = options.exponential_buckets
            edges = tuple(
                exp.scale * exp.growth_factor**k for k in range(exp.num_finite_buckets + 1)
            )
        elif kind == "explicit_buckets":
            edges = tuple(options.explicit_buckets.bounds)
        else:
            return None
        counts = [int(c) for c in dist.bucket_counts]
        counts += [0] * (len(edges) + 1 - len(counts))  # trailing zero buckets may be omitted
        return cls(edges, counts, int(dist.count))

    def merge(self, other: Histogram) -> Histogram | None:
        if other.edges != self.edges:
            return None
        counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        return Histogram(self.edges, counts, self.count + other.count)

    def percentile(self, q: float) -> float | None:
        """The q-quantile, interpolated linearly inside its bucket."""
        total = sum(self.counts)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= rank:
                if i == 0:
                    return self.edges[0]
                if i > len(self.edges) - 1:
                    return self.edges[-1]  # overflow: the best bound we have
                lo, hi = self.edges[i - 1], self.edges[i]
                return lo + (hi - lo) * (rank - seen) / n
            seen += n
        return self.edges[-1]


def _merge_all(histograms: Iterable[Histogram]) -> Histogram | None:
    merged: Histogram | None = None
    for h in histograms:
        merged = h if merged is None else merged.merge(h)
        if merged is None:
            return None
    return merged


# -- time series ---------------------------------------------------------------------------


@dataclass
class _Figures:
    latency: dict[str, Histogram] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    replica_points: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    duty: dict[str, float] = field(default_factory=dict)


def _is_error(response_code: str) -> bool:
    """A response that counts as an error: 5xx, and 429 (a throttled caller was not served)."""
    return response_code.startswith("5") or response_code == "429"


def _number(value: Any) -> float:
    pb = type(value).pb(value)
    kind = pb.WhichOneof("value")
    if kind == "int64_value":
        return float(pb.int64_value)
    if kind == "double_value":
        return float(pb.double_value)
    return 0.0


def _endpoint_label(vertex_id: str) -> str:
    return vertex_id.rsplit("/", 1)[-1]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class CloudMonitoring:
    """Health, alerts and cost estimates for the endpoints of a Config."""

    def __init__(
        self,
        config: Config,
        settings: VertexSettings,
        metric_client: Any,
        *,
        session: Any = None,
        retry: Retry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.client = metric_client
        self.session = session  # an authorised requests session for the alerts REST API
        self.retry = retry or read_retry(settings.read_timeout_s)
        self.clock: Clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def from_config(cls, config: Config, settings: VertexSettings) -> CloudMonitoring:
        """Application Default Credentials for both the gRPC client and the REST session."""
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/monitoring.read"]
        )
        return cls(
            config,
            settings,
            monitoring_v3.MetricServiceClient(credentials=credentials),
            session=AuthorizedSession(credentials),  # type: ignore[no-untyped-call]
        )

    # -- health ------------------------------------------------------------------------

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        now = self.now()
        window = max(window, timedelta(minutes=1))  # Monitoring's shortest alignment period
        by_project: dict[str, list[Endpoint]] = defaultdict(list)
        for ep in endpoints:
            by_project[self.config.environment_of(ep).project].append(ep)
        out: dict[str, EndpointHealth] = {}
        for project, group in by_project.items():
            ids = {_endpoint_label(self._vertex_id(ep)): ep for ep in group}
            figures = self._query_project(project, sorted(ids), now, window)
            for endpoint_id, ep in ids.items():
                out[ep.slug] = self._health_of(ep, figures.get(endpoint_id, _Figures()), now)
        return out

    def now(self) -> datetime:
        """The end of every health window: now − the metrics' lag."""
        return _utc(self.clock()) - timedelta(seconds=self.settings.metrics_lag_seconds)

    def health_series(
        self, endpoints: Sequence[Endpoint], since: datetime, until: datetime, step: timedelta
    ) -> dict[str, list[SeriesPoint]]:
        """P95 latency and error rate per endpoint in `step` periods from `since` to
        `until` (capped at now − lag): two queries per project, never one per endpoint."""
        step = max(step, timedelta(minutes=1))
        end = min(_utc(until), self.now())
        start = _utc(since)
        by_project: dict[str, list[Endpoint]] = defaultdict(list)
        for ep in endpoints:
            by_project[self.config.environment_of(ep).project].append(ep)
        out: dict[str, list[SeriesPoint]] = {}
        if end <= start:
            return {ep.slug: [] for ep in endpoints}
        by_endpoint = ("resource.label.endpoint_id",)
        for project, group in by_project.items():
            ids = {_endpoint_label(self._vertex_id(ep)): ep for ep in group}
            hist: dict[str, dict[datetime, Histogram]] = defaultdict(dict)
            for series in self._list(
                project,
                LATENCY,
                sorted(ids),
                start,
                end,
                step,
                Aligner.ALIGN_DELTA,
                Reducer.REDUCE_SUM,
                group_by=by_endpoint,
                extra=' AND metric.labels.latency_type = "total"',
            ):
                ep_id = str(series.resource.labels.get("endpoint_id", ""))
                for point in series.points:
                    h = Histogram.from_distribution(point.value.distribution_value)
                    if h is not None:
                        hist[ep_id][_utc(point.interval.end_time)] = h
            counts: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
            errors: dict[str, dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
            for series in self._list(
                project,
                RESPONSES,
                sorted(ids),
                start,
                end,
                step,
                Aligner.ALIGN_DELTA,
                Reducer.REDUCE_SUM,
                group_by=(*by_endpoint, "metric.label.response_code"),
            ):
                ep_id = str(series.resource.labels.get("endpoint_id", ""))
                code = str(series.metric.labels.get("response_code", ""))
                for point in series.points:
                    at, n = _utc(point.interval.end_time), int(_number(point.value))
                    counts[ep_id][at] += n
                    if _is_error(code):
                        errors[ep_id][at] += n
            for ep_id, ep in ids.items():
                times = sorted(set(hist.get(ep_id, {})) | set(counts.get(ep_id, {})))
                out[ep.slug] = [
                    SeriesPoint(
                        at=at,
                        p95_latency_ms=_round(
                            hist[ep_id][at].percentile(0.95) if at in hist.get(ep_id, {}) else None
                        ),
                        error_rate=(
                            round(errors[ep_id][at] / counts[ep_id][at], 5)
                            if counts.get(ep_id, {}).get(at)
                            else None
                        ),
                    )
                    for at in times
                ]
        return out

    def deployed_model_costs(
        self, endpoints: Sequence[Endpoint]
    ) -> dict[str, list[DeployedModelCost]]:
        """Yesterday (the last whole day in the config's zone) per deployed model: two
        queries per project. Replica-hours are `replicas` (ALIGN_MEAN in 5-minute steps,
        summed per deployed model) × the step; requests are `response_count` (every
        response code) in hourly steps, summed (hours, not one day-long period: a day is
        23 or 25 hours when the clocks change); the cost is the replica-hours × the
        endpoint's replica-hour price (`[vertex.prices]`), None where it has none. An
        endpoint without any series is absent."""
        tz = self.config.timezone
        today = _utc(self.clock()).astimezone(tz).date()
        start = datetime.combine(today - timedelta(days=1), time(0), tz).astimezone(UTC)
        end = datetime.combine(today, time(0), tz).astimezone(UTC)
        by_project: dict[str, list[Endpoint]] = defaultdict(list)
        for ep in endpoints:
            by_project[self.config.environment_of(ep).project].append(ep)
        step_hours = _REPLICA_STEP.total_seconds() / 3600
        out: dict[str, list[DeployedModelCost]] = {}
        for project, group in by_project.items():
            ids = {_endpoint_label(self._vertex_id(ep)): ep for ep in group}
            hours: dict[tuple[str, str], float] = defaultdict(float)
            for series in self._list(
                project,
                REPLICAS,
                sorted(ids),
                start,
                end,
                _REPLICA_STEP,
                Aligner.ALIGN_MEAN,
                Reducer.REDUCE_SUM,
            ):
                key = self._keys(series)
                hours[key] += sum(_number(p.value) for p in series.points) * step_hours
            request_counts: dict[tuple[str, str], int] = defaultdict(int)
            for ep_id, dm_id, n, _ in self._responses(
                project, sorted(ids), start, end, timedelta(hours=1)
            ):
                request_counts[(ep_id, dm_id)] += n
            for ep_id, ep in ids.items():
                dm_ids = sorted({dm for e, dm in (*hours, *request_counts) if e == ep_id and dm})
                if not dm_ids:
                    continue
                price = self.settings.prices.replica_hour(ep)
                out[ep.slug] = [
                    DeployedModelCost(
                        deployed_model_id=dm,
                        requests=request_counts.get((ep_id, dm), 0),
                        replica_hours=round(hours.get((ep_id, dm), 0.0), 2),
                        cost_usd=(
                            round(hours.get((ep_id, dm), 0.0) * price, 2)
                            if price is not None
                            else None
                        ),
                    )
                    for dm in dm_ids
                ]
        return out

    def canary_window(
        self, endpoint: Endpoint, canary_id: str, stable_id: str, start: datetime, end: datetime
    ) -> CanaryWindow | None:
        """Requests, errors and the latency distribution of two deployed models over one
        closed window [start, end); None while it ends after now − lag."""
        start, end = _utc(start), _utc(end)
        if end > self.now() or end <= start:
            return None
        project = self.config.environment_of(endpoint).project
        ep_id = _endpoint_label(self._vertex_id(endpoint))
        period = end - start
        latency: dict[str, Histogram] = {}
        mixed: set[str] = set()
        for _, dm_id, hists in self._latencies(project, [ep_id], start, end, period):
            for hist in hists:
                old = latency.get(dm_id)
                merged = hist if old is None else old.merge(hist)
                if merged is None:
                    mixed.add(dm_id)  # two layouts in one window: its latency is not used
                else:
                    latency[dm_id] = merged
        request_counts: dict[str, int] = defaultdict(int)
        errors: dict[str, int] = defaultdict(int)
        for _, dm_id, n, is_error in self._responses(project, [ep_id], start, end, period):
            request_counts[dm_id] += n
            if is_error:
                errors[dm_id] += n

        def sample(dm_id: str) -> WindowSample:
            hist = None if dm_id in mixed else latency.get(dm_id)
            if hist is not None and len(hist.counts) != len(hist.edges) + 1:
                hist = None  # more counts than the layout has buckets: not a distribution
            n = request_counts.get(dm_id, 0)
            return WindowSample(
                start=start,
                end=end,
                requests=n,
                errors=min(errors.get(dm_id, 0), n),
                latency_bounds_ms=hist.edges if hist else (),
                latency_counts=tuple(hist.counts) if hist else (),
            )

        return CanaryWindow(canary=sample(canary_id), stable=sample(stable_id))

    def _vertex_id(self, endpoint: Endpoint) -> str:
        if not endpoint.vertex_id:
            raise PlatformError(
                f"endpoint `{endpoint.slug}` has no `vertex_id` in the config", kind="not_found"
            )
        return endpoint.vertex_id

    def _list(
        self,
        project: str,
        metric: str,
        endpoint_ids: Sequence[str],
        start: datetime,
        end: datetime,
        period: timedelta,
        aligner: Any,
        reducer: Any,
        group_by: Sequence[str] = _GROUP,
        extra: str = "",
    ) -> list[Any]:
        ids = ", ".join(f'"{i}"' for i in endpoint_ids)
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{project}",
            filter=(
                f'metric.type = "{metric}" AND resource.type = "{RESOURCE_TYPE}"'
                f" AND resource.labels.endpoint_id = one_of({ids}){extra}"
            ),
            interval=monitoring_v3.TimeInterval(start_time=start, end_time=end),
            aggregation=monitoring_v3.Aggregation(
                alignment_period=period,
                per_series_aligner=aligner,
                cross_series_reducer=reducer,
                group_by_fields=list(group_by),
            ),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
        )
        short = metric.removeprefix(PREFIX)
        try:
            # Iterating the pager fetches further pages, with the same retry.
            return list(
                self.client.list_time_series(
                    request=request, retry=self.retry, timeout=self.settings.read_timeout_s
                )
            )
        except gexc.GoogleAPICallError as exc:
            raise platform_error(
                exc, f"read `{short}` from Cloud Monitoring", project=project
            ) from exc
        except gexc.RetryError as exc:
            raise platform_error(
                exc, f"read `{short}` from Cloud Monitoring", project=project
            ) from exc

    def _query_project(
        self, project: str, endpoint_ids: Sequence[str], now: datetime, window: timedelta
    ) -> dict[str, _Figures]:
        figures: dict[str, _Figures] = defaultdict(_Figures)
        start = now - window

        for ep_id, dm_id, hists in self._latencies(project, endpoint_ids, start, now, window):
            for hist in hists[:1]:  # one period: the window
                old = figures[ep_id].latency.get(dm_id)
                merged = hist if old is None else old.merge(hist)
                if merged is not None:
                    figures[ep_id].latency[dm_id] = merged

        for ep_id, dm_id, n, is_error in self._responses(project, endpoint_ids, start, now, window):
            figures[ep_id].requests[dm_id] += n
            if is_error:
                figures[ep_id].errors[dm_id] += n

        midnight = now.astimezone(self.config.timezone).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        replica_start = min(start, _utc(midnight))
        for series in self._list(
            project,
            REPLICAS,
            endpoint_ids,
            replica_start,
            now,
            _REPLICA_STEP,
            Aligner.ALIGN_MEAN,
            Reducer.REDUCE_SUM,
        ):
            ep_id, dm_id = self._keys(series)
            points = [(_utc(p.interval.end_time), _number(p.value)) for p in series.points]
            figures[ep_id].replica_points[dm_id] = points

        for series in self._list(
            project,
            DUTY_CYCLE,
            endpoint_ids,
            start,
            now,
            window,
            Aligner.ALIGN_MEAN,
            Reducer.REDUCE_MEAN,
        ):
            ep_id, dm_id = self._keys(series)
            if series.points:
                figures[ep_id].duty[dm_id] = _number(series.points[0].value)
        return figures

    def _latencies(
        self,
        project: str,
        endpoint_ids: Sequence[str],
        start: datetime,
        end: datetime,
        period: timedelta,
    ) -> Iterator[tuple[str, str, list[Histogram]]]:
        """Per series of `prediction_latencies` (total latency, summed per deployed model):
        (endpoint id, deployed model id, the histogram of each point that has one)."""
        for series in self._list(
            project,
            LATENCY,
            endpoint_ids,
            start,
            end,
            period,
            Aligner.ALIGN_DELTA,
            Reducer.REDUCE_SUM,
            extra=' AND metric.labels.latency_type = "total"',
        ):
            ep_id, dm_id = self._keys(series)
            hists = [Histogram.from_distribution(p.value.distribution_value) for p in series.points]
            yield ep_id, dm_id, [h for h in hists if h is not None]

    def _responses(
        self,
        project: str,
        endpoint_ids: Sequence[str],
        start: datetime,
        end: datetime,
        period: timedelta,
    ) -> Iterator[tuple[str, str, int, bool]]:
        """Per series of `response_count` by response code: (endpoint id, deployed model id,
        responses, whether they count as errors: `_is_error`)."""
        for series in self._list(
            project,
            RESPONSES,
            endpoint_ids,
            start,
            end,
            period,
            Aligner.ALIGN_DELTA,
            Reducer.REDUCE_SUM,
            group_by=(*_GROUP, "metric.label.response_code"),
        ):
            ep_id, dm_id = self._keys(series)
            code = str(series.metric.labels.get("response_code", ""))
            n = int(sum(_number(p.value) for p in series.points))
            yield ep_id, dm_id, n, _is_error(code)

    @staticmethod
    def _keys(series: Any) -> tuple[str, str]:
        return (
            str(series.resource.labels.get("endpoint_id", "")),
            str(series.metric.labels.get("deployed_model_id", "")),
        )

    def _health_of(self, ep: Endpoint, f: _Figures, now: datetime) -> EndpointHealth:
        dm_ids = set(f.latency) | set(f.requests) | set(f.replica_points)
        by_model: dict[str, ModelHealth] = {}
        for dm_id in sorted(dm_ids):
            hist = f.latency.get(dm_id)
            n_requests = f.requests.get(dm_id, 0)
            by_model[dm_id] = ModelHealth(
                p95_latency_ms=_round(hist.percentile(0.95) if hist else None),
                error_rate=round(f.errors.get(dm_id, 0) / n_requests, 5) if n_requests else None,
                request_count=n_requests,
            )
        total = sum(f.requests.values())
        merged = _merge_all(f.latency.values())
        p95 = merged.percentile(0.95) if merged else None
        if merged is None and f.latency:  # differing bucket layouts: the worst model's P95
            p95 = max((m.p95_latency_ms or 0.0) for m in by_model.values()) or None

        # Replicas now: the models that have a point at the newest step Monitoring holds.
        newest = max((pts[0][0] for pts in f.replica_points.values() if pts), default=None)
        current = {
            dm: pts[0][1] for dm, pts in f.replica_points.items() if pts and pts[0][0] == newest
        }
        replicas = round(sum(current.values()))
        midnight = _utc(
            now.astimezone(self.config.timezone).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        step_hours = _REPLICA_STEP.total_seconds() / 3600
        replica_hours = sum(
            value * step_hours
            for pts in f.replica_points.values()
            for at, value in pts
            if at > midnight
        )
        price = self.settings.prices.replica_hour(ep)
        duty = [v for v in f.duty.values() if not math.isnan(v)]
        return EndpointHealth(
            slug=ep.slug,
            p95_latency_ms=_round(p95),
            error_rate=round(sum(f.errors.values()) / total, 5) if total else None,
            request_count=total,
            replicas=replicas,
            max_replicas=ep.max_replicas * max(1, len(current)),
            duty_cycle=round(sum(duty) / len(duty), 3) if duty else None,
            drift=None,  # filled in by the platform where a monitoring job exists
            cost_today_usd=round(replica_hours * price, 2) if price is not None else None,
            cost_is_estimate=True,
            by_model=by_model,
        )

    # -- alerts ------------------------------------------------------------------------

    def alerts(self, since: datetime) -> list[Alert]:
        """Alerts open now (whenever they opened) and any opened since `since`."""
        since = _utc(since)
        found: dict[str, Alert] = {}
        for project in sorted({env.project for env in self.config.environments.values()}):
            vertex_ids = {
                _endpoint_label(ep.vertex_id): ep.slug
                for ep in self.config.endpoints.values()
                if ep.vertex_id and self.config.environment_of(ep).project == project
            }
            raw = self._list_alerts(project, {"filter": 'state = "OPEN"'}, stop_before=None)
            raw += self._list_alerts(project, {"orderBy": "openTime desc"}, stop_before=since)
            for item in raw:
                alert = self._parse_alert(item, vertex_ids)
                if alert is None or (alert.state != "open" and alert.opened_at < since):
                    continue  # the server's filter is a convenience; this is the rule
                found[str(item.get("name"))] = alert
        return sorted(found.values(), key=lambda a: (a.severity, -a.opened_at.timestamp()))

    def _list_alerts(
        self, project: str, params: dict[str, str], stop_before: datetime | None
    ) -> list[dict[str, Any]]:
        if self.session is None:
            raise PlatformError(
                "no authorised HTTP session for Cloud Monitoring's alerts API", kind="permission"
            )
        url = f"{self.settings.monitoring_url}/v3/projects/{project}/alerts"
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = {**params, "pageSize": "200", **({"pageToken": token} if token else {})}
            body = self._get_json(url, query, project)
            page = [a for a in body.get("alerts", []) if isinstance(a, dict)]
            items += page
            token = str(body.get("nextPageToken", ""))
            if not token:
                return items
            if stop_before is not None and page:
                oldest = _parse_time(page[-1].get("openTime"))
                if oldest is not None and oldest < stop_before:
                    return items  # newest first: the rest opened before `since`

    def _get_json(self, url: str, query: dict[str, str], project: str) -> dict[str, Any]:
        try:
            return fetch_json(
                self.session,
                self.retry,
                "GET",
                url,
                timeout=self.settings.read_timeout_s,
                params=query,
            )
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise platform_error(exc, "list alerts from Cloud Monitoring", project=project) from exc

    def _parse_alert(self, item: dict[str, Any], vertex_ids: dict[str, str]) -> Alert | None:
        opened = _parse_time(item.get("openTime"))
        if opened is None:
            return None
        policy = item.get("policy") or {}
        labels = {str(k).lower(): str(v) for k, v in (policy.get("userLabels") or {}).items()}
        sev_map = self.settings.alerts.severity
        severity = labels.get(self.settings.alerts.label.lower(), "").upper()
        if severity not in ("P1", "P2", "P3"):
            severity = sev_map.get(
                str(policy.get("severity", "")).upper(), self.settings.alerts.default
            )
        resource_labels = (item.get("resource") or {}).get("labels") or {}
        endpoint = vertex_ids.get(str(resource_labels.get("endpoint_id", "")))
        metric = str((item.get("metric") or {}).get("type", ""))
        name = str(policy.get("displayName") or item.get("name", "alert"))
        target = (
            f"`{endpoint}`"
            if endpoint
            else ", ".join(f"{k}={v}" for k, v in sorted(resource_labels.items()))
        )
        summary = " ".join(
            part
            for part in (metric.removeprefix(PREFIX) or None, f"on {target}" if target else None)
            if part
        )
        return Alert(
            policy=name,
            severity=severity,
            state="open" if str(item.get("state", "")).upper() == "OPEN" else "closed",
            opened_at=opened,
            closed_at=_parse_time(item.get("closeTime")),
            endpoint=endpoint,
            summary=summary or name,
        )


_FRACTION = re.compile(r"\.(\d+)")


def _parse_time(value: Any) -> datetime | None:
    """RFC 3339 as Google writes it (Z, up to nanoseconds) → an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(lambda m: "." + m[1][:6].ljust(6, "0"), value.replace("Z", "+00:00"), 1)
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
