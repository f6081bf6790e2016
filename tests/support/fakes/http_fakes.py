"""A small threaded HTTP server on loopback for Google's REST APIs the bot uses:

- Cloud Monitoring's alerts list, `GET /v3/projects/P/alerts` (paged, filter on state);
- Cloud Logging's `POST /v2/entries:write`, whose bodies are recorded, and
  `POST /v2/entries:list` over what was written (the filter's `logName="…"`,
  `jsonPayload.K="…"` and `timestamp>="…"` terms, newest first on `timestamp desc`, paged);
- BigQuery's `POST /bigquery/v2/projects/P/queries` (jobs.query) and
  `GET …/queries/JOB` (getQueryResults) over rows of a billing export table
  (`billing_rows`): the bot's cost query is evaluated here in Python from the request's
  named parameters, and answered as BigQuery does (schema + `f`/`v` rows, paged, and
  optionally "not complete yet" first), plus `GET …/jobs/JOB` (jobs.get, the job done), as
  google-cloud-bigquery's `query_and_wait` calls them. Routes are "queries",
  "getQueryResults" and "getJob";
- Cloud Storage's `GET /download/storage/v1/b/B/o/O?alt=media` (an object's bytes, as
  google-cloud-storage's `download_as_bytes` reads them) over `objects`, and
  `GET /storage/v1/b/B` (the bucket's metadata). Routes are "objects.get" and "buckets.get".

Any route can be told to answer with an error status for its next calls.
"""

from __future__ import annotations

import json
import re
import threading
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGoogleHTTP:
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # project → alerts
    requests: list[Recorded] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # "GET alerts" / "POST entries:write"
    page_size: int = 2  # small pages, so that clients must follow nextPageToken
    # billing export rows: {project, service, resource_name, global_name, labels, start,
    # cost, credits}; `start` is an aware datetime
    billing_rows: list[dict[str, Any]] = field(default_factory=list)
    queries_incomplete: int = 0  # answer this many jobs.query calls with jobComplete: false
    objects: dict[str, bytes] = field(default_factory=dict)  # "bucket/object" → its bytes
    _results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _failures: dict[str, list[int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def fail(self, route: str, status: int, times: int = 1) -> None:
        """Answer the next `times` calls of a route ("alerts" or "entries:write") with `status`."""
        with self._lock:
            self._failures.setdefault(route, []).extend([status] * times)

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Every log entry written, across all entries:write calls."""
        with self._lock:
            return [
                {**entry, **{k: v for k, v in r.body.items() if k != "entries" and k not in entry}}
                for r in self.requests
                if r.path.endswith("entries:write")
                for entry in r.body.get("entries", [])
            ]

    def serve(self) -> FakeGoogleHTTP:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                route = url.path.rsplit("/", 1)[-1]
                if url.path.startswith("/download/storage/v1/b/"):
                    route = "objects.get"
                elif url.path.startswith("/storage/v1/b/"):
                    route = "buckets.get"
                if "/bigquery/v2/" in url.path and method == "GET":
                    route = "getJob" if "/jobs/" in url.path else "getQueryResults"
                with fake._lock:
                    fake.requests.append(
                        Recorded(method, url.path, parse_qs(url.query), dict(self.headers), body)
                    )
                    fake.calls[f"{method} {route}"] += 1
                    failures = fake._failures.get(route)
                    status = failures.pop(0) if failures else None
                if status is not None:
                    self._reply(
                        status,
                        {
                            "error": {
                                "code": status,
                                "message": f"injected {status}",
                                "status": _STATUS.get(status, "UNKNOWN"),
                            }
                        },
                    )
                    return
                if method == "GET" and route == "objects.get":
                    bucket, _, name = url.path.removeprefix("/download/storage/v1/b/").partition(
                        "/o/"
                    )
                    data = fake.objects.get(f"{bucket}/{unquote(name)}")
                    if data is not None:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/octet-stream")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    self._reply(
                        404,
                        {
                            "error": {
                                "code": 404,
                                "message": "No such object",
                                "status": "NOT_FOUND",
                            }
                        },
                    )
                elif method == "GET" and route == "buckets.get":
                    self._reply(200, {"name": url.path.split("/")[4], "kind": "storage#bucket"})
                elif method == "GET" and route == "alerts":
                    self._reply(200, fake._alerts_page(url.path, parse_qs(url.query)))
                elif method == "POST" and route == "entries:write":
                    self._reply(200, {})
                elif method == "POST" and route == "entries:list":
                    self._reply(200, fake._list_entries(body or {}))
                elif method == "POST" and route == "queries":
                    self._reply(200, fake._query(body))
                elif route == "getQueryResults":
                    self._reply(200, fake._results_page(url.path, parse_qs(url.query)))
                elif route == "getJob":
                    self._reply(200, fake._job(url.path))
                else:
                    self._reply(
                        404,
                        {
                            "error": {
                                "code": 404,
                                "message": f"no route {url.path}",
                                "status": "NOT_FOUND",
                            }
                        },
                    )

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # a short poll interval keeps shutdown (test teardown) quick
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def _alerts_page(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        project = path.split("/")[3]
        items = list(self.alerts.get(project, []))
        if 'state = "OPEN"' in query.get("filter", [""])[0]:
            items = [a for a in items if a.get("state") == "OPEN"]
        items.sort(key=lambda a: a.get("openTime", ""), reverse=True)  # the API's default order
        size = min(int(query.get("pageSize", ["50"])[0]), self.page_size)
        start = int(query.get("pageToken", ["0"])[0])
        page = items[start : start + size]
        body: dict[str, Any] = {"alerts": page}
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return body

    def _list_entries(self, body: dict[str, Any]) -> dict[str, Any]:
        query = body.get("filter", "")
        items = self.entries
        for key, value in re.findall(r'([\w.]+)\s*=\s*"([^"]*)"', query):
            if key == "logName":
                items = [e for e in items if e.get("logName") == value]
            elif key.startswith("jsonPayload."):
                field_name = key.removeprefix("jsonPayload.")
                items = [e for e in items if str(e.get("jsonPayload", {}).get(field_name)) == value]
        since = re.search(r'timestamp\s*>=\s*"([^"]+)"', query)
        if since:
            floor = datetime.fromisoformat(since.group(1).replace("Z", "+00:00"))
            items = [
                e
                for e in items
                if datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) >= floor
            ]
        items.sort(key=lambda e: e["timestamp"], reverse="desc" in body.get("orderBy", ""))
        size = int(body.get("pageSize") or 50)
        start = int(body.get("pageToken") or 0)
        page: dict[str, Any] = {"entries": items[start : start + size]}
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    # -- BigQuery ----------------------------------------------------------------------

    _SCHEMA: ClassVar[dict[str, Any]] = {
        "fields": [
            {"name": "project_id", "type": "STRING", "mode": "NULLABLE"},
            {"name": "endpoint", "type": "STRING", "mode": "NULLABLE"},
            {"name": "day", "type": "DATE", "mode": "NULLABLE"},
            {"name": "net_cost", "type": "FLOAT", "mode": "NULLABLE"},
        ]
    }

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        """Evaluate the bot's cost query (its WHERE / GROUP BY) over `billing_rows`."""
        sql = body["query"]
        assert body.get("useLegacySql") is False and body.get("parameterMode") == "NAMED"
        params: dict[str, Any] = {}
        for p in body.get("queryParameters", []):
            value = p["parameterValue"]
            if "arrayValues" in value:
                params[p["name"]] = [v["value"] for v in value["arrayValues"]]
            else:
                params[p["name"]] = value["value"]
        for name in re.findall(r"@(\w+)", sql):
            assert name in params, f"unbound parameter @{name}"
        tz = zoneinfo.ZoneInfo(params["tz"])
        start = datetime.fromisoformat(params["start"])
        end = datetime.fromisoformat(params["end"])
        sums: dict[tuple[str, str, str], float] = {}
        for row in self.billing_rows:
            if row.get("service") != params["service"] or row["project"] not in params["projects"]:
                continue
            if not start <= row["start"] < end:
                continue
            key = None
            for text in (row.get("global_name"), row.get("resource_name")):
                found = re.search(r"endpoints/([^/]+)$", text or "")
                if found:
                    key = found[1]
                    break
            if key is None:
                key = (row.get("labels") or {}).get(params["label"])
            if key is None or key not in params["keys"]:
                continue
            day = row["start"].astimezone(tz).date().isoformat()
            net = row["cost"] + sum(row.get("credits", []))
            group = (row["project"], key, day)
            sums[group] = sums.get(group, 0.0) + net
        rows = [
            {"f": [{"v": p}, {"v": k}, {"v": d}, {"v": repr(c)}]}
            for (p, k, d), c in sorted(sums.items())
        ]
        job_id = f"job_{len(self._results) + 1}"
        self._results[job_id] = rows
        reference = {"projectId": "q", "jobId": job_id, "location": "US"}
        if self.queries_incomplete > 0:
            self.queries_incomplete -= 1
            return {
                "kind": "bigquery#queryResponse",
                "jobReference": reference,
                "jobComplete": False,
            }
        return self._page(job_id, 0)

    def _page(self, job_id: str, start: int) -> dict[str, Any]:
        rows = self._results[job_id]
        page = rows[start : start + self.page_size]
        body: dict[str, Any] = {
            "kind": "bigquery#queryResponse",
            "schema": self._SCHEMA,
            "jobReference": {"projectId": "q", "jobId": job_id, "location": "US"},
            "totalRows": str(len(rows)),
            "jobComplete": True,
        }
        if page:
            body["rows"] = page
        if start + self.page_size < len(rows):
            body["pageToken"] = str(start + self.page_size)
        return body

    def _job(self, path: str) -> dict[str, Any]:
        """jobs.get of a query job: done (the fake evaluates queries at once)."""
        job_id = path.rsplit("/", 1)[-1]
        reference = {"projectId": "q", "jobId": job_id, "location": "US"}
        return {
            "kind": "bigquery#job",
            "id": f"q:US.{job_id}",
            "jobReference": reference,
            "status": {"state": "DONE"},
            "configuration": {"query": {"query": "…", "useLegacySql": False}},
            "statistics": {"query": {"schema": self._SCHEMA}},
        }

    def _results_page(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        job_id = path.rsplit("/", 1)[-1]
        assert query.get("location") == ["US"], "getQueryResults needs the job's location"
        return self._page(job_id, int(query.get("pageToken", ["0"])[0]))

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
