"""The Vertex AI platform: deploy, shift traffic and undeploy model versions with the
v1 clients of google-cloud-aiplatform; health, alerts and the cost estimate from Cloud
Monitoring (`monitoring.py`), drift from model monitoring jobs (`drift.py`), billed cost
from the BigQuery billing export when configured (`billing.py`).

Import this module only when the config says `platform = "vertex"`: it loads
`google.cloud.aiplatform_v1` (about 0.6 s; the high-level `aiplatform` module, never
used here, costs about 2 s).

Conventions (see `vertex_settings` for the `[vertex]` table):
- an endpoint's `vertex_id` is the Vertex AI endpoint id (or its full resource name),
  in the environment's project and the endpoint's (or environment's) region;
- a model version `gemma-3-1b-it@1.2.1` is the registry version of the model carrying
  the alias `v1-2-1`; unknown versions are refused with the versions that exist.

Faults: reads retry with google-api-core's `Retry` on UNAVAILABLE / DEADLINE_EXCEEDED.
Writes are sent once; if the answer is lost the endpoint is re-read to decide what
happened. Every other error becomes a `PlatformError` with a specific message and kind.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import operation as ga_operation
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.cloud import aiplatform_v1 as v1
from google.protobuf import field_mask_pb2

from commands.canary.stats import CanaryWindow
from commands.config import Config, ConfigError, Endpoint
from commands.model import (
    DeployedModel,
    EndpointHealth,
    EndpointState,
    InvalidModelVersion,
    InvalidSplit,
    ModelVersion,
    TrafficSplit,
    change_deployed_model_id,
    check_split,
)
from commands.ports import (
    Alert,
    DeployedModelCost,
    OperationStatus,
    PlatformError,
    ScaleLimits,
    SeriesPoint,
    UnknownVersion,
)

from .billing import BillingExport
from .drift import ModelMonitoringDrift
from .monitoring import CloudMonitoring, platform_error, read_retry
from .vertex_settings import VertexSettings, alias_version, parse_vertex_settings, version_alias

log = logging.getLogger(__name__)

_OP_NAME = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/")
_DEPLOY_META = "google.cloud.aiplatform.v1.DeployModelOperationMetadata"
_UNDEPLOY_META = "google.cloud.aiplatform.v1.UndeployModelOperationMetadata"
_MUTATE_META = "google.cloud.aiplatform.v1.MutateDeployedModelOperationMetadata"
# Replicas a deployed model may have: Vertex AI publishes no ceiling for a request's max
# (quota decides); the config's schema caps an endpoint's `max_replicas` at this too.
_MAX_REPLICAS = 1000
# Why min 0 is refused where the config does not declare scale-to-zero. Source: "you must
# set dedicatedResources.minReplicaCount to at least 1 … Alternatively, if you accept
# using the Scale To Zero feature (Preview), … minReplicaCount can be set to 0"
# (cloud.google.com/vertex-ai/docs/predictions/autoscaling); scaleToZeroSpec is
# v1beta1-only in MutateDeployedModel (…/reference/rest/v1/projects.locations.endpoints/
# mutateDeployedModel), and the bot deploys with v1, so it never makes such a deployment.
_NO_SCALE_TO_ZERO = (
    "Vertex AI keeps at least one replica of a deployed model (minReplicaCount ≥ 1) unless"
    " the deployment uses its Scale To Zero preview, which the bot's v1 deploys do not;"
    " set `scale_to_zero = true` under [endpoints.{slug}] only for an endpoint whose"
    " deployments were made with it"
)
_DEPLOY_RESPONSE = "google.cloud.aiplatform.v1.DeployModelResponse"

# Best-effort progress of a deploy from the stage Vertex AI reports.
_STAGE_PROGRESS = {
    "STARTING_DEPLOYMENT": 5,
    "PREPARING_MODEL": 15,
    "CREATING_SERVING_CLUSTER": 30,
    "ADDING_NODES_TO_CLUSTER": 45,
    "GETTING_CONTAINER_IMAGE": 60,
    "STARTING_MODEL_SERVER": 75,
    "FINISHING_UP": 90,
    "SUCCESSFULLY_DEPLOYED": 100,
}

# gRPC status codes (google.rpc.Code) as they appear in a failed operation.
_OP_CODES: dict[int, type[gexc.GoogleAPICallError]] = {
    3: gexc.InvalidArgument,
    4: gexc.DeadlineExceeded,
    5: gexc.NotFound,
    7: gexc.PermissionDenied,
    8: gexc.ResourceExhausted,
    9: gexc.FailedPrecondition,
    10: gexc.Aborted,
    14: gexc.ServiceUnavailable,
    16: gexc.Unauthenticated,
}


@dataclass(frozen=True)
class VertexClients:
    """The v1 clients for one region."""

    endpoints: Any  # aiplatform_v1.EndpointServiceClient
    models: Any  # aiplatform_v1.ModelServiceClient
    jobs: Any = None  # aiplatform_v1.JobServiceClient (model monitoring); None: no drift
    pipelines: Any = None  # aiplatform_v1.PipelineServiceClient (`/aiops retrain`)


ClientFactory = Callable[[str], VertexClients]


def regional_clients(region: str) -> VertexClients:
    """Clients for `{region}-aiplatform.googleapis.com`, with Application Default Credentials."""
    options = ClientOptions(api_endpoint=f"{region}-aiplatform.googleapis.com")
    return VertexClients(
        endpoints=v1.EndpointServiceClient(client_options=options),
        models=v1.ModelServiceClient(client_options=options),
        jobs=v1.JobServiceClient(client_options=options),
        pipelines=v1.PipelineServiceClient(client_options=options),
    )


def _type_name(packed: Any) -> str:
    return str(packed.type_url).rsplit("/", 1)[-1]


class VertexPlatform:
    name = "vertex"

    def __init__(
        self,
        config: Config,
        *,
        clients: ClientFactory | None = None,
        endpoint_client: Any = None,
        model_client: Any = None,
        job_client: Any = None,
        pipeline_client: Any = None,
        storage_client: Any = None,
        monitoring: CloudMonitoring | None = None,
        billing_session: Any = None,
        clock: Callable[[], datetime] | None = None,
        settings: VertexSettings | None = None,
        retry: Retry | None = None,
        polling: Retry | None = None,
    ) -> None:
        """Either `clients` (a factory of per-region clients) or one `endpoint_client` and
        `model_client` (and optionally `job_client`, for drift, and `pipeline_client`, for
        retraining) used for every region (tests build them on an insecure channel).
        `storage_client` (google-cloud-storage) reads a retrain's compiled pipeline spec
        from `gs://` (default: one with Application Default Credentials, made when first
        needed). `billing_session` is an authorised requests session for BigQuery, used
        when `[vertex] billing_export_table` is set."""
        self.config = config
        self.settings = settings or parse_vertex_settings(config)
        for slug, ep in config.endpoints.items():
            if not ep.vertex_id:
                raise ConfigError(
                    f'endpoints.{slug}.vertex_id: required when platform = "vertex"'
                    " (the Vertex AI endpoint id)"
                )
        if clients is None:
            if endpoint_client is None or model_client is None:
                raise ValueError("pass `clients`, or both `endpoint_client` and `model_client`")
            shared = VertexClients(endpoint_client, model_client, job_client, pipeline_client)
            clients = lambda _region: shared  # noqa: E731 - one set for every region
        self._factory = clients
        self.storage_client = storage_client
        self._clients: dict[str, VertexClients] = {}
        self._lock = threading.Lock()
        self.retry = retry or read_retry(self.settings.read_timeout_s)
        self.polling = polling  # for `wait`; None: google-api-core's default polling
        self.monitoring = monitoring
        self.clock: Callable[[], datetime] = clock or (
            monitoring.clock if monitoring is not None else (lambda: datetime.now(UTC))
        )
        self.drift_reader = ModelMonitoringDrift(
            lambda region: self._for(region).jobs,
            retry=self.retry,
            timeout=self.settings.read_timeout_s,
            lookback=timedelta(hours=self.settings.drift_lookback_hours),
        )
        self.billing: BillingExport | None = None
        if self.settings.billing_export_table and billing_session is not None:
            self.billing = BillingExport(
                config,
                self.settings,
                billing_session,
                retry=self.retry,
                clock=self.clock,
                where=self._where,
            )

    @classmethod
    def from_config(cls, config: Config) -> VertexPlatform:
        """Regional clients and Monitoring with Application Default Credentials."""
        settings = parse_vertex_settings(config)
        session = None
        if settings.billing_export_table:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/bigquery.readonly"]
            )
            session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        return cls(
            config,
            clients=regional_clients,
            settings=settings,
            monitoring=CloudMonitoring.from_config(config, settings),
            billing_session=session,
        )

    # -- naming ------------------------------------------------------------------------

    def _for(self, region: str) -> VertexClients:
        with self._lock:
            if region not in self._clients:
                self._clients[region] = self._factory(region)
            return self._clients[region]

    def _where(self, endpoint: Endpoint) -> tuple[str, str]:
        """(project, region) of an endpoint; a full resource name as `vertex_id` wins."""
        match = _OP_NAME.match(str(endpoint.vertex_id))
        if match:
            return match["project"], match["region"]
        env = self.config.environment_of(endpoint)
        return env.project, endpoint.region or env.region

    def _endpoint_name(self, endpoint: Endpoint) -> str:
        vertex_id = str(endpoint.vertex_id)
        if vertex_id.startswith("projects/"):
            return vertex_id
        project, region = self._where(endpoint)
        return f"projects/{project}/locations/{region}/endpoints/{vertex_id}"

    def _registry(self, model: str, endpoint: Endpoint | None) -> tuple[str, str]:
        """(region, registry model resource name) for a model, for an endpoint if given."""
        if endpoint is None:
            endpoint = next((e for e in self.config.endpoints.values() if e.model == model), None)
        env = endpoint.environment if endpoint else None
        ref = self.settings.registry_ref(model, env)
        if ref.startswith("projects/"):
            match = _OP_NAME.match(ref)
            return (match["region"] if match else ""), ref
        if endpoint is not None:
            project, region = self._where(endpoint)
        elif self.settings.registry_project and self.settings.registry_region:
            project, region = self.settings.registry_project, self.settings.registry_region
        else:
            raise PlatformError(
                f"no endpoint serves `{model}` and [vertex] sets no registry_project /"
                " registry_region, so its Model Registry is unknown",
                kind="not_found",
            )
        return region, f"projects/{project}/locations/{region}/models/{ref}"

    # -- reads -------------------------------------------------------------------------

    def _read(self, call: Callable[..., Any], doing: str, project: str, **kwargs: Any) -> Any:
        try:
            return call(retry=self.retry, timeout=self.settings.read_timeout_s, **kwargs)
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise platform_error(exc, doing, project=project) from exc

    def _get_endpoint(self, endpoint: Endpoint) -> Any:
        project, region = self._where(endpoint)
        return self._read(
            self._for(region).endpoints.get_endpoint,
            f"read endpoint `{endpoint.slug}`",
            project,
            name=self._endpoint_name(endpoint),
        )

    def _versions(self, model: str, endpoint: Endpoint | None) -> list[tuple[str, str | None]]:
        """(version id, semantic version or None) of every registry version, oldest first."""
        region, registry = self._registry(model, endpoint)
        project = registry.split("/")[1]
        pager = self._read(
            self._for(region).models.list_model_versions,
            f"list the versions of `{model}` in the Model Registry",
            project,
            name=registry,
        )
        try:
            listed = list(pager)  # further pages are fetched here, with the same retry
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise platform_error(exc, f"list the versions of `{model}`", project=project) from exc
        out: list[tuple[str, str | None]] = []
        for item in listed:
            semver = next(
                (v for v in map(alias_version, item.version_aliases) if v is not None), None
            )
            out.append((str(item.version_id), semver))
        out.sort(key=lambda pair: int(pair[0]) if pair[0].isdigit() else 0)
        return out

    def model_versions(self, model: str) -> list[str]:
        try:
            return [semver for _, semver in self._versions(model, None) if semver]
        except PlatformError as exc:
            if exc.kind == "not_found":
                return []  # not in the registry: it has no versions, as the sandbox says
            raise

    def endpoint_state(self, endpoint: Endpoint) -> EndpointState:
        found = self._get_endpoint(endpoint)
        _, registry = self._registry(endpoint.model, endpoint)
        try:
            by_id = {vid: semver for vid, semver in self._versions(endpoint.model, endpoint)}
        except PlatformError as exc:
            if exc.kind != "not_found":
                raise
            by_id = {}  # a missing registry still lets us show what serves
        deployed = tuple(
            DeployedModel(
                id=str(dm.id),
                version=self._version_of(dm, endpoint.model, registry, by_id),
                replicas=self._replicas(dm)[0],
                max_replicas=self._replicas(dm)[1],
            )
            for dm in found.deployed_models
        )
        traffic = {str(k): int(v) for k, v in found.traffic_split.items() if v}
        return EndpointState(slug=endpoint.slug, deployed=deployed, traffic=traffic)

    @staticmethod
    def _replicas(dm: Any) -> tuple[int, int | None]:
        """A deployed model's (min, max) replicas from its dedicated resources (what the
        bot deploys with) or automatic ones; (1, None) when it has neither (a shared
        deployment resource pool)."""
        for field in ("dedicated_resources", "automatic_resources"):
            if field in dm:
                resources = getattr(dm, field)
                return int(resources.min_replica_count), int(resources.max_replica_count) or None
        return 1, None

    @staticmethod
    def _version_of(
        dm: Any, model: str, registry: str, by_id: dict[str, str | None]
    ) -> ModelVersion:
        base, _, suffix = str(dm.model).partition("@")
        version_id = str(dm.model_version_id or suffix)
        # Vertex AI answers with the project *number* in resource names; compare the rest.
        if base.split("/")[2:] == registry.split("/")[2:]:
            semver = by_id.get(version_id) or alias_version(suffix)
            if semver:
                return ModelVersion(model, semver)
        try:  # deployed by hand or from another registry: trust a `model@x.y.z` name
            # (the bot's own deploys add the change's id after it)
            return ModelVersion.parse((str(dm.display_name).split() or [""])[0])
        except InvalidModelVersion:
            return ModelVersion(base.rsplit("/", 1)[-1] or model, f"version-{version_id or '?'}")

    # -- writes ------------------------------------------------------------------------

    def _checked(self, split: TrafficSplit, endpoint: Endpoint) -> TrafficSplit:
        try:
            return check_split(dict(split))
        except InvalidSplit as exc:
            raise PlatformError(
                f"refused to send traffic split for `{endpoint.slug}`: {exc}", kind="precondition"
            ) from exc

    def _write(self, call: Callable[..., Any], doing: str, project: str, **kwargs: Any) -> Any:
        try:
            # retry=None: a write is sent once; a lost answer is decided by re-reading.
            return call(retry=None, timeout=self.settings.write_timeout_s, **kwargs)
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded) as exc:
            raise PlatformError(
                f"Could not {doing}: Vertex AI did not answer ({exc.message}); the request may"
                " or may not have been applied. Check `status` before trying again.",
                kind="unavailable",
            ) from exc
        except gexc.GoogleAPICallError as exc:
            raise platform_error(exc, doing, project=project) from exc

    def _machine_spec(self, endpoint: Endpoint) -> Any:
        spec = v1.MachineSpec(machine_type=endpoint.machine_type)
        if endpoint.accelerator_type and endpoint.accelerator_count > 0:
            if endpoint.accelerator_type not in v1.AcceleratorType.__members__:
                raise PlatformError(
                    f"endpoints.{endpoint.slug}.accelerator_type `{endpoint.accelerator_type}` is"
                    " not a Vertex AI accelerator type (e.g. NVIDIA_L4, NVIDIA_TESLA_T4)",
                    kind="precondition",
                )
            spec.accelerator_type = getattr(v1.AcceleratorType, endpoint.accelerator_type)
            spec.accelerator_count = endpoint.accelerator_count
        return spec

    def begin_deploy(
        self,
        endpoint: Endpoint,
        version: ModelVersion,
        traffic_split: TrafficSplit,
        change_id: str | None = None,
    ) -> str:
        split = self._checked(traffic_split, endpoint)
        if version.model != endpoint.model:
            raise PlatformError(
                f"`{endpoint.slug}` serves `{endpoint.model}`, not `{version.model}`",
                kind="precondition",
            )
        _, registry = self._registry(version.model, endpoint)
        known = self._versions(version.model, endpoint)
        alias = version_alias(version.version)
        version_id = next((vid for vid, semver in known if semver == version.version), None)
        if version_id is None:
            raise UnknownVersion(version, [s for _, s in known if s])
        # A change's deploy carries an id derived from the change (≤ 10 digits: Vertex AI
        # takes a chosen id that short, and its own are longer) and names the change, so
        # whoever takes the change over finds it on the endpoint instead of deploying again.
        dm_id = change_deployed_model_id(change_id) if change_id else None
        deployed_model = v1.DeployedModel(
            id=dm_id or "",
            model=f"{registry}@{version_id}",
            display_name=(f"{version} {change_id}" if dm_id else str(version))[:128],
            dedicated_resources=v1.DedicatedResources(
                machine_spec=self._machine_spec(endpoint),
                min_replica_count=endpoint.min_replicas,
                max_replica_count=endpoint.max_replicas,
            ),
            service_account=self.settings.deploy_service_account or "",
        )
        project, region = self._where(endpoint)
        log.info(
            "deploying %s (alias %s) to %s with split %s", version, alias, endpoint.slug, split
        )
        doing = f"deploy `{version}` to `{endpoint.slug}`"
        try:
            future = self._write(
                self._for(region).endpoints.deploy_model,
                doing,
                project,
                endpoint=self._endpoint_name(endpoint),
                deployed_model=deployed_model,
                traffic_split=split,
            )
        except PlatformError as exc:
            cause = exc.__cause__
            taken = isinstance(cause, gexc.AlreadyExists) or (
                isinstance(cause, gexc.InvalidArgument | gexc.FailedPrecondition)
                and "already exist" in str(cause.message).lower()
            )
            if dm_id and taken:
                raise PlatformError(
                    f"Could not {doing}: deployed model {dm_id} already exists on the endpoint"
                    f" or is being deployed ({exc.__cause__})",
                    kind="already_exists",
                ) from cause
            raise
        return str(future.operation.name)

    def begin_undeploy(
        self, endpoint: Endpoint, deployed_model_id: str, traffic_split: TrafficSplit
    ) -> str:
        split = self._checked(traffic_split, endpoint)
        if split.get(deployed_model_id, 0):
            raise PlatformError(
                f"refused to undeploy {deployed_model_id} from `{endpoint.slug}`: the split after"
                f" still gives it {split[deployed_model_id]} %",
                kind="precondition",
            )
        project, region = self._where(endpoint)
        future = self._write(
            self._for(region).endpoints.undeploy_model,
            f"undeploy {deployed_model_id} from `{endpoint.slug}`",
            project,
            endpoint=self._endpoint_name(endpoint),
            deployed_model_id=deployed_model_id,
            traffic_split=split,
        )
        return str(future.operation.name)

    def scale_limits(self, endpoint: Endpoint) -> ScaleLimits:
        if endpoint.scale_to_zero:
            return ScaleLimits(0, _MAX_REPLICAS)
        return ScaleLimits(1, _MAX_REPLICAS, _NO_SCALE_TO_ZERO.format(slug=endpoint.slug))

    def replica_hour_usd(self, endpoint: Endpoint) -> float | None:
        """`[vertex.prices]`: the machine's price plus its accelerators', per hour."""
        return self.settings.prices.replica_hour(endpoint)

    def begin_mutate(
        self, endpoint: Endpoint, deployed_model_id: str, min_replicas: int, max_replicas: int
    ) -> str:
        """MutateDeployedModel with the update mask `dedicated_resources.min_replica_count`
        and `.max_replica_count` (the fields v1 lets a mutate change). The deployed model's
        own resources are sent back with the two counts changed, so nothing else moves."""
        limits = self.scale_limits(endpoint)
        if not limits.lowest_min <= min_replicas <= max_replicas <= limits.highest_max:
            raise PlatformError(
                f"refused to scale {deployed_model_id} on `{endpoint.slug}` to min"
                f" {min_replicas} · max {max_replicas}"
                + (f": {limits.zero_refused}" if min_replicas == 0 else ""),
                kind="precondition",
            )
        found = next(
            (
                dm
                for dm in self._get_endpoint(endpoint).deployed_models
                if str(dm.id) == deployed_model_id
            ),
            None,
        )
        if found is None:
            raise PlatformError(
                f"deployed model {deployed_model_id} is not on `{endpoint.slug}`",
                kind="not_found",
            )
        resources = v1.DedicatedResources(found.dedicated_resources)
        if not resources.machine_spec.machine_type:  # not one of the bot's deploys
            resources.machine_spec = self._machine_spec(endpoint)
        resources.min_replica_count = min_replicas
        resources.max_replica_count = max_replicas
        project, region = self._where(endpoint)
        future = self._write(
            self._for(region).endpoints.mutate_deployed_model,
            f"scale {deployed_model_id} on `{endpoint.slug}`",
            project,
            endpoint=self._endpoint_name(endpoint),
            deployed_model=v1.DeployedModel(id=deployed_model_id, dedicated_resources=resources),
            update_mask=field_mask_pb2.FieldMask(
                paths=[
                    "dedicated_resources.min_replica_count",
                    "dedicated_resources.max_replica_count",
                ]
            ),
        )
        return str(future.operation.name)

    def set_traffic(self, endpoint: Endpoint, traffic_split: TrafficSplit) -> None:
        split = self._checked(traffic_split, endpoint)
        project, region = self._where(endpoint)
        doing = f"set traffic on `{endpoint.slug}`"
        try:
            self._write(
                self._for(region).endpoints.update_endpoint,
                doing,
                project,
                endpoint=v1.Endpoint(name=self._endpoint_name(endpoint), traffic_split=split),
                update_mask=field_mask_pb2.FieldMask(paths=["traffic_split"]),
            )
        except PlatformError as exc:
            if exc.kind != "unavailable":
                raise
            # The answer was lost: re-read (reads may retry) and decide instead of resending.
            now = self.endpoint_state(endpoint)
            if now.traffic == split:
                log.warning("%s: answer lost but the endpoint shows the new split", doing)
                return
            raise PlatformError(
                f"Could not {doing}: Vertex AI did not answer and the endpoint still shows"
                f" {now.traffic}; nothing changed, so it is safe to try again.",
                kind="unavailable",
                retryable=True,
            ) from exc

    # -- operations --------------------------------------------------------------------

    def _op_clients(self, name: str) -> tuple[str, VertexClients]:
        match = _OP_NAME.match(name)
        if not match:
            raise PlatformError(f"`{name}` is not a Vertex AI operation name", kind="not_found")
        return match["project"], self._for(match["region"])

    def _describe(self, name: str) -> str:
        """`the deploy on loan-assessor` from an operation's name, for messages."""
        slug = next(
            (
                e.slug
                for e in self.config.endpoints.values()
                if f"/endpoints/{str(e.vertex_id).rsplit('/', 1)[-1]}/" in name
            ),
            None,
        )
        return f"`{slug}`" if slug else f"`{name}`"

    def operation(self, name: str) -> OperationStatus:
        project, clients = self._op_clients(name)
        op = self._read(
            clients.endpoints.get_operation,
            f"read operation `{name}`",
            project,
            request={"name": name},
        )
        meta_type = _type_name(op.metadata) if op.HasField("metadata") else ""
        progress = 100 if op.done else 0
        if meta_type == _DEPLOY_META:
            meta = v1.DeployModelOperationMetadata.deserialize(op.metadata.value)
            stage = v1.DeploymentStage(meta.deployment_stage).name
            progress = 100 if op.done else min(_STAGE_PROGRESS.get(stage, 0), 99)
        error: str | None = None
        deployed_model_id: str | None = None
        if op.done and op.HasField("error"):
            error = str(self._operation_error(name, meta_type, op.error.code, op.error.message))
        elif op.done and op.HasField("response") and _type_name(op.response) == _DEPLOY_RESPONSE:
            response = v1.DeployModelResponse.deserialize(op.response.value)
            deployed_model_id = str(response.deployed_model.id) or None
        return OperationStatus(
            name=name,
            done=bool(op.done),
            progress=progress,
            error=error,
            deployed_model_id=deployed_model_id,
        )

    def cancel_operation(self, name: str) -> None:
        """Vertex AI's CancelOperation: best effort; the operation then ends with an error
        (CANCELLED) unless it finished first. Sent once, like every write."""
        project, clients = self._op_clients(name)
        self._write(
            clients.endpoints.cancel_operation,
            f"cancel operation `{name}`",
            project,
            request={"name": name},
        )

    def _operation_error(self, name: str, meta_type: str, code: int, message: str) -> PlatformError:
        what = {_DEPLOY_META: "deploy", _UNDEPLOY_META: "undeploy", _MUTATE_META: "scale"}.get(
            meta_type, "operation"
        )
        cause = _OP_CODES.get(code, gexc.GoogleAPICallError)(message)
        project = _OP_NAME.match(name)
        described = platform_error(
            cause,
            f"finish the {what} on {self._describe(name)}",
            project=project["project"] if project else None,
        )
        return PlatformError(str(described), kind="operation", retryable=described.retryable)

    def wait(self, name: str, timeout: float | None = None) -> OperationStatus:
        """Block until an operation ends, with google-api-core's polling; a failed operation
        raises PlatformError(kind="operation") with the reason in words."""
        project, clients = self._op_clients(name)
        op = self._read(
            clients.endpoints.get_operation,
            f"read operation `{name}`",
            project,
            request={"name": name},
        )
        meta_type = _type_name(op.metadata) if op.HasField("metadata") else ""
        result_type = {
            _DEPLOY_META: v1.DeployModelResponse,
            _MUTATE_META: v1.MutateDeployedModelResponse,
        }.get(meta_type, v1.UndeployModelResponse)
        future = ga_operation.from_gapic(  # type: ignore[no-untyped-call]
            op, clients.endpoints.transport.operations_client, result_type
        )
        try:
            if timeout is None:
                future.result(retry=self.retry, polling=self.polling)
            else:
                future.result(timeout=timeout, retry=self.retry, polling=self.polling)
        except concurrent.futures.TimeoutError as exc:
            raise PlatformError(
                f"operation {self._describe(name)} is still running after {timeout} s",
                kind="unavailable",
                retryable=True,
            ) from exc
        except gexc.GoogleAPICallError as exc:
            code = exc.grpc_status_code.value[0] if exc.grpc_status_code else 2
            raise self._operation_error(name, meta_type, code, str(exc.message)) from exc
        return self.operation(name)

    # -- health ------------------------------------------------------------------------

    def _require_monitoring(self) -> CloudMonitoring:
        if self.monitoring is None:
            raise PlatformError("Cloud Monitoring is not configured for this platform")
        return self.monitoring

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        """Monitoring's figures (window ending at now − metrics lag), then drift from
        model monitoring and, when the export is configured, yesterday's billed cost.
        Neither drift nor billing ever fails health: a fault is logged and the figure reads
        "not monitored" / stays the replica-hour estimate."""
        monitoring = self._require_monitoring()
        health = monitoring.health(endpoints, window)
        drift = self.drift_reader.drift(endpoints, self._where, monitoring.now())
        billed: dict[str, list[float]] = {}
        if self.billing is not None and endpoints:
            try:
                billed = self.billing.daily_costs(endpoints, 1)
            except PlatformError as exc:
                log.warning("cost is the replica-hour estimate: %s", exc)
        out = {}
        for slug, h in health.items():
            changes: dict[str, Any] = {"drift": drift.get(slug)}
            if billed.get(slug):
                # yesterday's billed cost (the export lags by hours, so today's is partial)
                changes |= {"cost_today_usd": billed[slug][-1], "cost_is_estimate": False}
            out[slug] = dataclasses.replace(h, **changes)
        return out

    def daily_costs(self, endpoints: Sequence[Endpoint], days: int) -> dict[str, list[float]]:
        """The digest's CostHistory: billed cost per day from the export; {} without one
        (the digest then shows today's estimate from health)."""
        if self.billing is None:
            return {}
        return self.billing.daily_costs(endpoints, days)

    def deployed_model_costs(
        self, endpoints: Sequence[Endpoint]
    ) -> dict[str, list[DeployedModelCost]]:
        """The digest's per-deployed-model figures for yesterday, from Cloud Monitoring
        (replica-hours × `[vertex.prices]`, an estimate: the billing export has no deployed
        model in its rows)."""
        return self._require_monitoring().deployed_model_costs(endpoints)

    def canary_window(
        self, endpoint: Endpoint, canary_id: str, stable_id: str, start: datetime, end: datetime
    ) -> CanaryWindow | None:
        return self._require_monitoring().canary_window(endpoint, canary_id, stable_id, start, end)

    def health_series(
        self, endpoints: Sequence[Endpoint], since: datetime, until: datetime, step: timedelta
    ) -> dict[str, list[SeriesPoint]]:
        """The digest's MetricHistory, from Cloud Monitoring (two queries per project)."""
        return self._require_monitoring().health_series(endpoints, since, until, step)

    def alerts(self, since: datetime) -> list[Alert]:
        return self._require_monitoring().alerts(since)
