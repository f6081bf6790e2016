"""Drift scores from Vertex AI model monitoring (v1 JobService), for `EndpointHealth.drift`.

Per (project, region) of the endpoints asked about:

1. ONE `ListModelDeploymentMonitoringJobs` (paged) for `projects/P/locations/R`. The list
   filter supports no `endpoint` field, so jobs are matched to endpoints here, by the
   endpoint id at the end of `ModelDeploymentMonitoringJob.endpoint` (Vertex AI may answer
   with the project *number*; the id is what is compared). Several jobs on one endpoint:
   a RUNNING one wins, then the most recently updated.
2. For each deployed model of that job whose objective config has a
   `prediction_drift_detection_config`: one `SearchModelDeploymentMonitoringStatsAnomalies`
   with objective RAW_FEATURE_DRIFT over the last `drift_lookback_hours` (the API is per
   job and deployed model; there is no batch form).

The figure read is `FeatureStatsAnomaly.distribution_deviation` of the newest (by
`end_time`) entry of each feature's `prediction_stats`: the distance of the serving
distribution from the baseline (Jensen–Shannon divergence for numerical features,
L-infinity for categorical ones), i.e. the number Vertex AI compares with the job's drift
threshold. `FeatureStatsAnomaly.score` is NOT read: it is a feature-attribution score,
set only for the FEATURE_ATTRIBUTION_* objectives; `anomaly_uri` / `stats_uri` point at
TFDV protos in Cloud Storage and are not fetched. An endpoint's drift is the maximum over
its features and deployed models.

Not monitored → None: no job on the endpoint, a job without a drift objective, or no
stats within the lookback (a job that has not run yet). A JobService fault is logged as
a warning and reads "not monitored" too: drift never fails `health()`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import aiplatform_v1 as v1

from commands.config import Endpoint

log = logging.getLogger(__name__)

Where = Callable[[Endpoint], tuple[str, str]]  # endpoint → (project, region)
JobsFor = Callable[[str], Any]  # region → aiplatform_v1.JobServiceClient (or None)

_DRIFT = v1.ModelDeploymentMonitoringObjectiveType.RAW_FEATURE_DRIFT
_RUNNING = v1.JobState.JOB_STATE_RUNNING


def _tail(name: str) -> str:
    return str(name).rstrip("/").rsplit("/", 1)[-1]


def _when(value: Any) -> float:
    """A proto-plus timestamp field (DatetimeWithNanoseconds or None) as epoch seconds."""
    return float(value.timestamp()) if value else 0.0


def _drift_models(job: Any) -> list[str]:
    """Deployed models of a job that have a drift objective configured."""
    out = []
    for cfg in job.model_deployment_monitoring_objective_configs:
        objective = v1.ModelMonitoringObjectiveConfig.pb(cfg.objective_config)
        if objective.HasField("prediction_drift_detection_config"):
            out.append(str(cfg.deployed_model_id))
    return out


class ModelMonitoringDrift:
    def __init__(
        self,
        jobs_for: JobsFor,
        *,
        retry: Retry,
        timeout: float,
        lookback: timedelta = timedelta(hours=48),
    ) -> None:
        self.jobs_for = jobs_for
        self.retry = retry
        self.timeout = timeout
        self.lookback = lookback

    def drift(
        self, endpoints: Sequence[Endpoint], where: Where, now: datetime
    ) -> dict[str, float | None]:
        """Drift per endpoint slug; None where not monitored (or not readable)."""
        out: dict[str, float | None] = {ep.slug: None for ep in endpoints}
        groups: dict[tuple[str, str], list[Endpoint]] = defaultdict(list)
        for ep in endpoints:
            groups[where(ep)].append(ep)
        for (project, region), group in groups.items():
            client = self.jobs_for(region)
            if client is None:
                continue
            jobs = self._jobs(client, project, region)
            if jobs is None:
                continue
            for ep in group:
                job = jobs.get(_tail(str(ep.vertex_id)))
                if job is not None:
                    out[ep.slug] = self._endpoint_drift(client, ep, job, now)
        return out

    def _jobs(self, client: Any, project: str, region: str) -> dict[str, Any] | None:
        """endpoint id → its monitoring job; None (logged) when the list cannot be read."""
        parent = f"projects/{project}/locations/{region}"
        try:
            listed = list(
                client.list_model_deployment_monitoring_jobs(
                    request={"parent": parent}, retry=self.retry, timeout=self.timeout
                )
            )
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            log.warning(
                "drift not read for %s: listing model monitoring jobs failed (%s); the"
                " endpoints there read 'not monitored'",
                parent,
                getattr(exc, "message", None) or exc,
            )
            return None
        best: dict[str, Any] = {}
        for job in listed:
            key = _tail(job.endpoint)
            old = best.get(key)
            rank = (job.state == _RUNNING, _when(job.update_time))
            if old is None or rank > (old.state == _RUNNING, _when(old.update_time)):
                best[key] = job
        return best

    def _endpoint_drift(self, client: Any, ep: Endpoint, job: Any, now: datetime) -> float | None:
        scores: list[float] = []
        for dm_id in _drift_models(job):
            request = v1.SearchModelDeploymentMonitoringStatsAnomaliesRequest(
                model_deployment_monitoring_job=job.name,
                deployed_model_id=dm_id,
                objectives=[{"type_": _DRIFT}],
                start_time=now - self.lookback,
                end_time=now,
            )
            try:
                pages = list(
                    client.search_model_deployment_monitoring_stats_anomalies(
                        request=request, retry=self.retry, timeout=self.timeout
                    )
                )
            except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
                log.warning(
                    "drift of `%s` (deployed model %s) not read from %s: %s",
                    ep.slug,
                    dm_id,
                    job.name,
                    getattr(exc, "message", None) or exc,
                )
                continue
            score = _latest_max(pages)
            if score is not None:
                scores.append(score)
        return round(max(scores), 4) if scores else None


def _latest_max(stats: list[Any]) -> float | None:
    """Max over features of the newest prediction window's `distribution_deviation`."""
    newest: dict[str, tuple[float, float]] = {}  # feature → (end_time, deviation)
    for entry in stats:
        if entry.objective != _DRIFT:
            continue
        for feature in entry.feature_stats:
            for window in feature.prediction_stats:
                at = _when(window.end_time)
                old = newest.get(feature.feature_display_name)
                if old is None or at > old[0]:
                    newest[feature.feature_display_name] = (
                        at,
                        float(window.distribution_deviation),
                    )
    return max((dev for _, dev in newest.values()), default=None)
