"""The `[vertex]` table of the bot's config: what the Vertex AI platform needs beyond
environments and endpoints.

```toml
[vertex]
registry_project = "lender-aiops-prod"      # where bare registry ids live when no endpoint
registry_region = "australia-southeast1"    #   of the model says (optional)
deploy_service_account = ""                 # the serving container's identity (optional)
read_timeout_s = 30                         # total budget of a read, retries included
write_timeout_s = 120                       # one attempt of a write; writes never retry
monitoring_url = "https://monitoring.googleapis.com"  # the alerts REST API's base URL
metrics_lag_seconds = 300                   # health windows end this long before now
drift_lookback_hours = 48                   # newest drift stats no older than this
# yesterday's cost per endpoint from the Cloud Billing *detailed* (resource-level) export;
# without it, cost is the replica-hour estimate below (always labelled an estimate)
billing_export_table = "finops-prj.billing.gcp_billing_export_resource_v1_XXXXXX_XXXXXX_XXXXXX"
billing_query_project = ""                  # runs the query (default: the table's project)
billing_label = "aiops_endpoint"            # endpoint label used when a row has no resource name
billing_cache_seconds = 3600                # the export changes a few times a day
bigquery_url = "https://bigquery.googleapis.com"
serving_alias = "prod"                      # the registry alias naming what prod serves

[vertex.models]                 # model name → Model Registry model; default: the name itself
"gemma-3-1b-it" = "gemma-3-1b-it"             # a user-chosen model id in each environment,
# or "projects/P/locations/L/models/123", or { prod = "123", staging = "456" } per environment

[vertex.prices.machine]         # USD per node-hour, for the cost *estimate*
"g2-standard-8" = 0.8536
[vertex.prices.accelerator]     # USD per accelerator-hour
NVIDIA_L4 = 0.7

[vertex.alerts]
severity = { CRITICAL = "P1", ERROR = "P2", WARNING = "P3" }  # policy severity → P-level
label = "priority"              # a policy user label (p1 / P2 …) that overrides it
default = "P3"
```

Model versions live in the Model Registry as versions of one model; each carries the
alias `v` + the semantic version with dots as hyphens (`1.2.1` → `v1-2-1`, `1.3.0-rc1` →
`v1-3-0-rc1`), because aliases may not contain dots. Pre-release tags therefore use no
dots (`rc1`, not `rc.1`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from commands.config import Config, ConfigError, Endpoint

_ALIAS_RE = re.compile(r"^v(\d+)-(\d+)-(\d+)(?:-([0-9A-Za-z-]+))?$")
_SEVERITIES = ("P1", "P2", "P3")
# project.dataset.table: BigQuery ids, so the table name can be quoted into SQL safely
_TABLE_RE = re.compile(
    r"^[a-z][a-z0-9-]{4,61}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_$-]{1,1024}$"
)
_LABEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# Model Registry aliases (ModelService.MergeVersionAliases); not all digits, so never a version id
_REGISTRY_ALIAS_RE = re.compile(r"^[a-z][a-z0-9-]{0,126}[a-z0-9]$")


def version_alias(version: str) -> str:
    """`1.3.0-rc1` → `v1-3-0-rc1`: the registry alias that names a semantic version."""
    return "v" + version.replace(".", "-")


def alias_version(alias: str) -> str | None:
    """`v1-3-0-rc1` → `1.3.0-rc1`; None for aliases that follow no version convention."""
    match = _ALIAS_RE.match(alias)
    if not match:
        return None
    core = ".".join(match.group(1, 2, 3))
    return f"{core}-{match[4]}" if match[4] else core


@dataclass(frozen=True)
class Prices:
    machine: dict[str, float] = field(default_factory=dict)
    accelerator: dict[str, float] = field(default_factory=dict)

    def replica_hour(self, endpoint: Endpoint) -> float | None:
        """USD for one replica-hour of an endpoint's machine; None when not priced."""
        machine = self.machine.get(endpoint.machine_type)
        if machine is None:
            return None
        if not endpoint.accelerator_type or endpoint.accelerator_count <= 0:
            return machine
        accelerator = self.accelerator.get(endpoint.accelerator_type)
        if accelerator is None:
            return None
        return machine + accelerator * endpoint.accelerator_count


@dataclass(frozen=True)
class AlertSettings:
    severity: dict[str, str] = field(
        default_factory=lambda: {"CRITICAL": "P1", "ERROR": "P2", "WARNING": "P3"}
    )
    label: str = "priority"
    default: str = "P3"


@dataclass(frozen=True)
class VertexSettings:
    # model name → registry reference: "" (use the name), an id or a full resource name,
    # optionally per environment
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    registry_project: str | None = None
    registry_region: str | None = None
    deploy_service_account: str | None = None
    pipeline_service_account: str | None = None  # what `/aiops retrain`'s jobs run as
    read_timeout_s: float = 30.0
    write_timeout_s: float = 120.0
    monitoring_url: str = "https://monitoring.googleapis.com"
    metrics_lag_seconds: float = 300.0
    drift_lookback_hours: float = 48.0
    billing_export_table: str | None = None
    billing_query_project: str | None = None
    billing_label: str = "aiops_endpoint"
    billing_cache_seconds: float = 3600.0
    bigquery_url: str = "https://bigquery.googleapis.com"
    prices: Prices = field(default_factory=Prices)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    serving_alias: str = "prod"  # the registry alias that names what prod serves

    def registry_ref(self, model: str, environment: str | None) -> str:
        """The configured reference for a model in an environment (default: its name)."""
        refs = self.models.get(model, {})
        if environment is not None and environment in refs:
            return refs[environment]
        return refs.get("*", model)


def _table(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key} must be a table")
    return value


def _prices(data: dict[str, Any], where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, price in data.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise ConfigError(f"{where}.{name}: `{price}` is not a price in USD per hour")
        out[str(name)] = float(price)
    return out


def _positive(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"vertex.{key}: `{value}` must be a positive number")
    return float(value)


def _seconds(data: Mapping[str, Any], key: str, default: float) -> float:
    """A number ≥ 0 (0 allowed, unlike `_positive`)."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"vertex.{key}: `{value}` must be a number ≥ 0")
    return float(value)


def _url(data: Mapping[str, Any], key: str, default: str) -> str:
    url = str(data.get(key, default)).rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"vertex.{key}: `{url}` is not an http(s) URL")
    return url


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"vertex.{key}: `{value}` must be a string")
    return value


def parse_vertex_settings(config: Config) -> VertexSettings:
    """Read `config.raw["vertex"]`; any mistake is a ConfigError naming the key."""
    data = config.raw.get("vertex", {})
    if not isinstance(data, dict):
        raise ConfigError("`vertex` must be a table")

    models: dict[str, dict[str, str]] = {}
    for name, ref in _table(data, "models", "vertex").items():
        if isinstance(ref, str):
            models[name] = {"*": ref}
        elif isinstance(ref, dict) and all(isinstance(v, str) for v in ref.values()):
            unknown = set(ref) - set(config.environments)
            if unknown:
                raise ConfigError(f"vertex.models.{name}: unknown environments {sorted(unknown)}")
            models[name] = {str(k): str(v) for k, v in ref.items()}
        else:
            raise ConfigError(
                f"vertex.models.{name} must be a registry model id or resource name, or a table"
                " of them per environment"
            )

    prices = _table(data, "prices", "vertex")
    alerts = _table(data, "alerts", "vertex")
    severity = {
        str(k).upper(): str(v).upper()
        for k, v in _table(alerts, "severity", "vertex.alerts").items()
    }
    for key, level in severity.items():
        if level not in _SEVERITIES:
            raise ConfigError(f"vertex.alerts.severity.{key}: `{level}` must be P1, P2 or P3")
    default = str(alerts.get("default", "P3")).upper()
    if default not in _SEVERITIES:
        raise ConfigError(f"vertex.alerts.default: `{default}` must be P1, P2 or P3")

    table = _optional_str(data, "billing_export_table")
    if table is not None and not _TABLE_RE.match(table):
        raise ConfigError(
            f"vertex.billing_export_table: `{table}` is not `project.dataset.table` (the"
            " detailed export, gcp_billing_export_resource_v1_…)"
        )
    label = str(data.get("billing_label", "aiops_endpoint"))
    if not _LABEL_RE.match(label):
        raise ConfigError(f"vertex.billing_label: `{label}` is not a label key")

    serving_alias = str(data.get("serving_alias", "prod"))
    if not _REGISTRY_ALIAS_RE.match(serving_alias):
        raise ConfigError(f"vertex.serving_alias: `{serving_alias}` is not a Model Registry alias")

    return VertexSettings(
        models=models,
        registry_project=_optional_str(data, "registry_project"),
        registry_region=_optional_str(data, "registry_region"),
        deploy_service_account=_optional_str(data, "deploy_service_account"),
        pipeline_service_account=_optional_str(data, "pipeline_service_account"),
        read_timeout_s=_positive(data, "read_timeout_s", 30.0),
        write_timeout_s=_positive(data, "write_timeout_s", 120.0),
        monitoring_url=_url(data, "monitoring_url", "https://monitoring.googleapis.com"),
        metrics_lag_seconds=_seconds(data, "metrics_lag_seconds", 300.0),
        drift_lookback_hours=_positive(data, "drift_lookback_hours", 48.0),
        billing_export_table=table,
        billing_query_project=_optional_str(data, "billing_query_project"),
        billing_label=label,
        billing_cache_seconds=_seconds(data, "billing_cache_seconds", 3600.0),
        bigquery_url=_url(data, "bigquery_url", "https://bigquery.googleapis.com"),
        prices=Prices(
            machine=_prices(_table(prices, "machine", "vertex.prices"), "vertex.prices.machine"),
            accelerator=_prices(
                _table(prices, "accelerator", "vertex.prices"), "vertex.prices.accelerator"
            ),
        ),
        alerts=AlertSettings(
            severity=severity or AlertSettings().severity,
            label=str(alerts.get("label", "priority")),
            default=default,
        ),
        serving_alias=serving_alias,
    )
