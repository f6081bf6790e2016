"""Daily cost per endpoint from the Cloud Billing detailed (resource-level) export in
BigQuery, read with ONE parameterised query for all endpoints through google-cloud-bigquery
(`Client.query_and_wait`: `jobs.query`, then the library's own polling and paging of
`getQueryResults` when the query takes longer or the result spans pages).

The table is `[vertex] billing_export_table` (`project.dataset.gcp_billing_export_resource_v1_…`).
Rows are Vertex AI's (`service.description = "Vertex AI"`) in the config's projects
(`project.id`), summed per (project, endpoint, local day of `usage_start_time`) as
`cost` plus the (negative) `credits.amount`s, i.e. the net cost.

Which column names the endpoint: Google's list of services with resource-level rows does
not (yet) name Vertex AI, so the key is, in order:
1. the endpoint id after `/endpoints/` in `resource.global_name`
   (`//aiplatform.googleapis.com/projects/…/locations/…/endpoints/123`);
2. the same in `resource.name`;
3. the value of the label `[vertex] billing_label` (default `aiops_endpoint`) on the row,
   for endpoints labelled with their Vertex AI id or the bot's slug (the Terraform sets it).
Rows with none of these are not attributed to any endpoint.

Everything variable in the SQL is a query parameter (projects, ids, dates, zone, label,
service). The table name cannot be a parameter; it comes from the config, is checked
against BigQuery's id syntax when the config is parsed, and is back-quoted.

`_PARTITIONTIME` (export time) bounds the scan from below: a day's usage is exported on
that day or later, never before. Results are cached for `billing_cache_seconds` (default
an hour): health checks, status cards and digests share one query.

The client runs over the bot's authorised session (its credentials and connection pool)
and `[vertex] bigquery_url`; requests retry with the platform's read retry (UNAVAILABLE,
DEADLINE_EXCEEDED), and the library's request id makes a retried query the same query.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry

from commands.config import Config, Endpoint
from commands.ports import PlatformError

from .monitoring import platform_error
from .vertex_settings import VertexSettings

log = logging.getLogger(__name__)

SERVICE = "Vertex AI"
MIN_DAYS = 8  # what the morning digest asks for: a query serves it and health alike
Clock = Callable[[], datetime]

_SQL = """
SELECT
  project.id AS project_id,
  COALESCE(
    REGEXP_EXTRACT(resource.global_name, r'/endpoints/([^/]+)$'),
    REGEXP_EXTRACT(resource.name, r'endpoints/([^/]+)$'),
    (SELECT l.value FROM UNNEST(labels) AS l WHERE l.key = @label LIMIT 1)
  ) AS endpoint,
  DATE(usage_start_time, @tz) AS day,
  SUM(cost) + SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS net_cost
FROM `{table}`
WHERE service.description = @service
  AND project.id IN UNNEST(@projects)
  AND usage_start_time >= @start AND usage_start_time < @end
  AND _PARTITIONTIME >= TIMESTAMP_TRUNC(@start, DAY)
GROUP BY project_id, endpoint, day
HAVING endpoint IN UNNEST(@keys)
"""


class BillingExport:
    def __init__(
        self,
        config: Config,
        settings: VertexSettings,
        session: Any,
        *,
        retry: Retry,
        clock: Clock,
        where: Callable[[Endpoint], tuple[str, str]],
    ) -> None:
        if not settings.billing_export_table:
            raise ValueError("[vertex] billing_export_table is not set")
        self.config = config
        self.settings = settings
        self.table: str = settings.billing_export_table
        self.session = session
        self.retry = retry
        self.clock = clock
        self.where = where
        self.queries = 0  # queries started (tests, and a cheap sanity check)
        self._client: Any = None
        self._cache: tuple[float, date, int, dict[str, list[float]]] | None = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        """google-cloud-bigquery's client over the authorised session (made once)."""
        if self._client is None:
            from google.cloud import bigquery

            self._client = bigquery.Client(
                project=self.query_project,
                credentials=getattr(self.session, "credentials", None),
                _http=self.session,
                client_options={"api_endpoint": self.settings.bigquery_url},
            )
        return self._client

    @property
    def query_project(self) -> str:
        return self.settings.billing_query_project or self.table.split(".", 1)[0]

    def daily_costs(self, endpoints: Sequence[Endpoint], days: int) -> dict[str, list[float]]:
        """USD per endpoint for each of the last `days` whole local days, oldest first (the
        last is yesterday); endpoints the export has no rows for are absent. Raises
        PlatformError when BigQuery cannot be read."""
        now = self.clock()
        today = now.astimezone(self.config.timezone).date()
        with self._lock:
            cached = self._cache
            fresh = (
                cached is not None
                and cached[1] == today
                and cached[2] >= days
                and now.timestamp() - cached[0] < self.settings.billing_cache_seconds
            )
            if not fresh:
                span = max(days, MIN_DAYS)
                all_costs = self._query(today, span)
                cached = (now.timestamp(), today, span, all_costs)
                self._cache = cached
        assert cached is not None
        _, _, span, costs = cached
        # An endpoint with no attributable row in the whole span is left out (not 0 USD):
        # its cost is unknown here, and health keeps the labelled estimate for it.
        return {ep.slug: costs[ep.slug][span - days :] for ep in endpoints if ep.slug in costs}

    def _query(self, today: date, days: int) -> dict[str, list[float]]:
        vertex = [ep for ep in self.config.endpoints.values() if ep.vertex_id]
        by_key: dict[tuple[str, str], str] = {}
        for ep in vertex:
            project = self.where(ep)[0]
            by_key[(project, str(ep.vertex_id).rsplit("/", 1)[-1])] = ep.slug
            by_key[(project, ep.slug)] = ep.slug
        from google.cloud import bigquery

        tz = self.config.timezone
        first = today - timedelta(days=days)
        start = datetime.combine(first, dtime(0), tz).astimezone(UTC)
        end = datetime.combine(today, dtime(0), tz).astimezone(UTC)
        job_config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("service", "STRING", SERVICE),
                bigquery.ScalarQueryParameter("label", "STRING", self.settings.billing_label),
                bigquery.ScalarQueryParameter("tz", "STRING", str(getattr(tz, "key", tz))),
                bigquery.ScalarQueryParameter("start", "TIMESTAMP", start),
                bigquery.ScalarQueryParameter("end", "TIMESTAMP", end),
                bigquery.ArrayQueryParameter("projects", "STRING", sorted({p for p, _ in by_key})),
                bigquery.ArrayQueryParameter("keys", "STRING", sorted({k for _, k in by_key})),
            ],
            use_legacy_sql=False,
            labels={"app": "aiops-bot"},
        )
        timeout = self.settings.read_timeout_s
        self.queries += 1
        try:
            rows = list(
                self.client().query_and_wait(
                    _SQL.format(table=self.table),
                    job_config=job_config,
                    project=self.query_project,
                    api_timeout=timeout + 10,
                    wait_timeout=timeout,
                    retry=self.retry,
                    job_retry=None,  # a failed query is reported, not run again
                    max_results=10000,
                )
            )
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise self._error(exc) from exc
        except concurrent.futures.TimeoutError as exc:
            raise PlatformError(
                f"Could not read costs from BigQuery: the query did not finish within {timeout:g} s",
                kind="unavailable",
                retryable=True,
            ) from exc

        out: dict[str, list[float]] = {}
        for row in rows:
            project, key, day, cost = (
                row["project_id"],
                row["endpoint"],
                row["day"],
                row["net_cost"],
            )
            slug = by_key.get((str(project), str(key)))
            if slug is None or day is None:
                continue
            day = day if isinstance(day, date) else date.fromisoformat(str(day))
            back = (today - day).days
            if not 1 <= back <= days:
                continue
            values = out.setdefault(slug, [0.0] * days)
            values[days - back] += float(cost or 0.0)
        return {slug: [round(v, 2) for v in values] for slug, values in out.items()}

    def _error(self, exc: Exception) -> PlatformError:
        error = platform_error(
            exc, "read costs from the BigQuery billing export", project=self.query_project
        )
        if error.kind == "permission":
            error = PlatformError(
                str(error).replace(
                    "roles/aiplatform.user and roles/monitoring.viewer on the project",
                    "roles/bigquery.jobUser on the query project and"
                    " roles/bigquery.dataViewer on the billing dataset",
                ),
                kind="permission",
            )
        return error
