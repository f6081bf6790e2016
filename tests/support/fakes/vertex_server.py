"""A fake Vertex AI (v1) gRPC server on loopback: EndpointService (MutateDeployedModel
included), ModelService (the Model Registry's versions, aliases and evaluations), the
JobService's model-monitoring reads, the PipelineService's pipeline jobs (create, get,
list by labels; a run that succeeds registers a model version whose `pipeline_job` names
it) and google.longrunning Operations on one server, so the real v1 clients talk to it
over their real gRPC transport.

No servicer classes ship for Vertex AI, so the methods are registered with
`grpc.method_handlers_generic_handler` and the v1 message classes' `serialize` /
`deserialize`. It validates requests the way the real service does where the bot can
tell (splits sum to 100, "0" stands for the model being deployed, a model with traffic
cannot be undeployed) and can be told to fail any call or operation.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import any_pb2, empty_pb2, timestamp_pb2
from google.rpc import status_pb2

_ENDPOINT_SERVICE = "google.cloud.aiplatform.v1.EndpointService"
_MODEL_SERVICE = "google.cloud.aiplatform.v1.ModelService"
_JOB_SERVICE = "google.cloud.aiplatform.v1.JobService"
_PIPELINE_SERVICE = "google.cloud.aiplatform.v1.PipelineService"
# A label key or value as the service takes them: lowercase letters, digits, `_`, `-`
_LABEL = re.compile(r"^[a-z0-9_-]{0,63}$")
# The one filter shape the fake understands: `labels.k="v"` terms joined by AND
_LABEL_TERM = re.compile(r'^labels\.([a-z0-9_-]+)\s*=\s*"([^"]*)"$')
# MergeVersionAliasesRequest.version_aliases: an alias, or `-alias` to remove one
_ALIAS = re.compile(r"^-?[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")

# The stages a held deploy walks through, one per poll, as the real service reports them.
_STAGES = (
    "STARTING_DEPLOYMENT",
    "PREPARING_MODEL",
    "CREATING_SERVING_CLUSTER",
    "ADDING_NODES_TO_CLUSTER",
    "GETTING_CONTAINER_IMAGE",
    "STARTING_MODEL_SERVER",
    "FINISHING_UP",
)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Fault:
    code: grpc.StatusCode
    message: str
    after_apply: bool = False  # the call takes effect, then the response is lost


@dataclass
class _Op:
    proto: operations_pb2.Operation
    method: str
    apply: Callable[[], Any]  # makes the change; returns the response message
    response_type: Any
    fault: Fault | None = None
    stage: int = 0
    polls: int = 0
    chosen_id: str = ""  # a deploy's caller-chosen DeployedModel id
    cancelled: bool = False


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    return ts


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(type(message).pb(message))
    return packed


@dataclass
class FakeVertex:
    """The fake's state and knobs; `serve()` starts it on 127.0.0.1."""

    endpoints: dict[str, v1.Endpoint] = field(default_factory=dict)
    models: dict[str, list[v1.Model]] = field(default_factory=dict)  # registry name → versions
    operations: dict[str, _Op] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    hold_operations: bool = False  # operations stay "not done" until `release()`
    # endpoints whose deployments were made with the Scale To Zero preview: only there may
    # a mutate set min_replica_count 0, as on the real service
    scale_to_zero: set[str] = field(default_factory=set)
    # project id → number: like the real service, answers name projects by number
    project_numbers: dict[str, str] = field(default_factory=dict)
    monitoring_jobs: dict[str, v1.ModelDeploymentMonitoringJob] = field(default_factory=dict)
    # (job name, deployed model id) → feature → [(window end, distribution_deviation)]
    drift_stats: dict[tuple[str, str], dict[str, list[tuple[datetime, float]]]] = field(
        default_factory=dict
    )
    # "<registry model>@<version id>" → its evaluations, oldest first
    evaluations: dict[str, list[v1.ModelEvaluation]] = field(default_factory=dict)
    # pipeline jobs by name, oldest first; a job runs for `pipeline_polls` reads of it
    # (GetPipelineJob), then succeeds (registering `pipeline_registers`: registry model
    # name and semantic version, when set) or fails (`fail_pipeline`)
    pipeline_jobs: dict[str, v1.PipelineJob] = field(default_factory=dict)
    pipeline_polls: int = 2
    pipeline_registers: tuple[str, str] | None = None
    _pipeline_faults: deque[str] = field(default_factory=deque)
    _pipeline_reads: Counter[str] = field(default_factory=Counter)
    _pipeline_fails: dict[str, str] = field(default_factory=dict)
    _faults: dict[str, deque[Fault]] = field(default_factory=dict)
    _op_faults: dict[str, deque[Fault]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7000))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _server: grpc.Server | None = None
    port: int = 0

    # -- setting up --------------------------------------------------------------------

    def add_model(self, name: str, versions: list[str]) -> str:
        """A registry model whose version N carries the alias for the N-th semantic version."""
        with self._lock:
            self.models[name] = [
                v1.Model(
                    name=name,
                    version_id=str(i),
                    version_aliases=["v" + version.replace(".", "-")]
                    + (["default"] if i == len(versions) else []),
                    display_name=name.rsplit("/", 1)[-1],
                )
                for i, version in enumerate(versions, start=1)
            ]
        return name

    def describe_version(
        self,
        name: str,
        version_id: str,
        *,
        labels: dict[str, str] | None = None,
        version_description: str | None = None,
        metadata: dict[str, Any] | None = None,
        pipeline_job: str | None = None,
        training_pipeline: str | None = None,
    ) -> None:
        """Set what the registry holds for one version (labels, description, metadata
        and the pipeline that produced it)."""
        with self._lock:
            model = self._resolve_model(f"{name}@{version_id}")
            if labels is not None:
                model.labels = labels
            if version_description is not None:
                model.version_description = version_description
            if metadata is not None:
                model.metadata = metadata
            if pipeline_job is not None:
                model.pipeline_job = pipeline_job
            if training_pipeline is not None:
                model.training_pipeline = training_pipeline

    def add_evaluation(
        self, name: str, version_id: str, metrics: dict[str, Any], at: datetime
    ) -> str:
        """A ModelEvaluation of one version, created at `at`."""
        with self._lock:
            key = f"{name}@{version_id}"
            found = self.evaluations.setdefault(key, [])
            evaluation_name = f"{self._numbered(name)}/evaluations/{next(self._ids)}"
            created = timestamp_pb2.Timestamp()
            created.FromDatetime(at)
            found.append(
                v1.ModelEvaluation(
                    name=evaluation_name,
                    display_name=f"evaluation {len(found) + 1}",
                    metrics=metrics,
                    create_time=created,
                )
            )
            return evaluation_name

    def aliases(self, name: str) -> dict[str, str]:
        """alias → version id, for every alias of a registry model."""
        with self._lock:
            return {a: m.version_id for m in self.models[name] for a in m.version_aliases}

    def add_endpoint(
        self, name: str, deployed: list[tuple[str, str, str]], traffic: dict[str, int]
    ) -> str:
        """An endpoint serving (deployed-model id, registry model name, version id) triples."""
        with self._lock:
            self.endpoints[name] = v1.Endpoint(
                name=name,
                display_name=name.rsplit("/", 1)[-1],
                deployed_models=[
                    v1.DeployedModel(
                        id=dm_id,
                        model=model,
                        model_version_id=version_id,
                        display_name=f"{model.rsplit('/', 1)[-1]}",
                        dedicated_resources=v1.DedicatedResources(
                            machine_spec=v1.MachineSpec(machine_type="g2-standard-8"),
                            min_replica_count=1,
                            max_replica_count=2,
                        ),
                    )
                    for dm_id, model, version_id in deployed
                ],
                traffic_split=traffic,
            )
        return name

    def add_monitoring_job(
        self,
        parent: str,
        endpoint: str,
        stats: dict[str, dict[str, list[tuple[datetime, float]]]],
        *,
        drift_models: list[str] | None = None,
        state: str = "JOB_STATE_RUNNING",
    ) -> str:
        """A ModelDeploymentMonitoringJob on `endpoint` (in `parent`, projects/P/locations/R)
        with drift stats per deployed model → feature → [(window end, deviation)]. Models in
        `stats` but not in `drift_models` (default: all) are monitored for skew only."""
        with self._lock:
            name = f"{parent}/modelDeploymentMonitoringJobs/{next(self._ids)}"
            drift = set(stats if drift_models is None else drift_models)
            configs = []
            for dm_id in stats:
                objective = v1.ModelMonitoringObjectiveConfig(
                    training_prediction_skew_detection_config={
                        "default_skew_threshold": {"value": 0.3}
                    }
                )
                if dm_id in drift:
                    objective.prediction_drift_detection_config = (
                        v1.ModelMonitoringObjectiveConfig.PredictionDriftDetectionConfig(
                            default_drift_threshold=v1.ThresholdConfig(value=0.1)
                        )
                    )
                configs.append(
                    v1.ModelDeploymentMonitoringObjectiveConfig(
                        deployed_model_id=dm_id, objective_config=objective
                    )
                )
            self.monitoring_jobs[name] = v1.ModelDeploymentMonitoringJob(
                name=self._numbered(name),
                display_name=f"monitor-{endpoint.rsplit('/', 1)[-1]}",
                endpoint=self._numbered(endpoint),
                state=state,
                model_deployment_monitoring_objective_configs=configs,
                update_time=_now(),
            )
            for dm_id, features in stats.items():
                self.drift_stats[(self._numbered(name), dm_id)] = features
        return self._numbered(name)

    def _numbered(self, name: str) -> str:
        parts = name.split("/")
        if len(parts) > 1 and parts[0] == "projects":
            parts[1] = self.project_numbers.get(parts[1], parts[1])
        return "/".join(parts)

    def traffic(self, endpoint: str) -> dict[str, int]:
        with self._lock:
            return dict(self.endpoints[endpoint].traffic_split)

    def deployed_ids(self, endpoint: str) -> list[str]:
        with self._lock:
            return [d.id for d in self.endpoints[endpoint].deployed_models]

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        message: str = "injected fault",
        *,
        times: int = 1,
        after_apply: bool = False,
    ) -> None:
        """Make the next `times` calls of `method` (e.g. "DeployModel") fail with `code`."""
        with self._lock:
            queue = self._faults.setdefault(method, deque())
            queue.extend(Fault(code, message, after_apply) for _ in range(times))

    def fail_operation(self, method: str, code: grpc.StatusCode, message: str) -> None:
        """Make the next operation started by `method` end with an error and change nothing."""
        with self._lock:
            self._op_faults.setdefault(method, deque()).append(Fault(code, message))

    def fail_pipeline(self, message: str) -> None:
        """Make the next pipeline job created end FAILED with `message`, registering nothing."""
        with self._lock:
            self._pipeline_faults.append(message)

    def release(self, name: str | None = None) -> None:
        """Let held operations (one, or all) finish."""
        with self._lock:
            for op_name, op in list(self.operations.items()):
                if (name is None or op_name == name) and not op.proto.done:
                    self._finish(op)

    # -- serving -----------------------------------------------------------------------

    def serve(self) -> FakeVertex:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {
            _ENDPOINT_SERVICE: {
                "GetEndpoint": (self._get_endpoint, v1.GetEndpointRequest, v1.Endpoint),
                "UpdateEndpoint": (self._update_endpoint, v1.UpdateEndpointRequest, v1.Endpoint),
                "DeployModel": (self._deploy_model, v1.DeployModelRequest, None),
                "UndeployModel": (self._undeploy_model, v1.UndeployModelRequest, None),
                "MutateDeployedModel": (
                    self._mutate_deployed_model,
                    v1.MutateDeployedModelRequest,
                    None,
                ),
            },
            _MODEL_SERVICE: {
                "GetModel": (self._get_model, v1.GetModelRequest, v1.Model),
                "ListModelVersions": (
                    self._list_model_versions,
                    v1.ListModelVersionsRequest,
                    v1.ListModelVersionsResponse,
                ),
                "MergeVersionAliases": (
                    self._merge_version_aliases,
                    v1.MergeVersionAliasesRequest,
                    v1.Model,
                ),
                "ListModelEvaluations": (
                    self._list_model_evaluations,
                    v1.ListModelEvaluationsRequest,
                    v1.ListModelEvaluationsResponse,
                ),
            },
            _PIPELINE_SERVICE: {
                "CreatePipelineJob": (
                    self._create_pipeline_job,
                    v1.CreatePipelineJobRequest,
                    v1.PipelineJob,
                ),
                "GetPipelineJob": (
                    self._get_pipeline_job,
                    v1.GetPipelineJobRequest,
                    v1.PipelineJob,
                ),
                "ListPipelineJobs": (
                    self._list_pipeline_jobs,
                    v1.ListPipelineJobsRequest,
                    v1.ListPipelineJobsResponse,
                ),
            },
            _JOB_SERVICE: {
                "ListModelDeploymentMonitoringJobs": (
                    self._list_monitoring_jobs,
                    v1.ListModelDeploymentMonitoringJobsRequest,
                    v1.ListModelDeploymentMonitoringJobsResponse,
                ),
                "SearchModelDeploymentMonitoringStatsAnomalies": (
                    self._search_stats_anomalies,
                    v1.SearchModelDeploymentMonitoringStatsAnomaliesRequest,
                    v1.SearchModelDeploymentMonitoringStatsAnomaliesResponse,
                ),
            },
        }
        for service, methods in handlers.items():
            server.add_generic_rpc_handlers(
                (
                    grpc.method_handlers_generic_handler(
                        service,
                        {
                            method: grpc.unary_unary_rpc_method_handler(
                                self._wrap(method, fn),
                                request_deserializer=request.deserialize,
                                response_serializer=(
                                    response.serialize
                                    if response is not None
                                    else operations_pb2.Operation.SerializeToString
                                ),
                            )
                            for method, (fn, request, response) in methods.items()
                        },
                    ),
                )
            )
        operations_pb2_grpc.add_OperationsServicer_to_server(_Operations(self), server)
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
            self._server = None

    def _wrap(
        self, method: str, fn: Callable[[Any], tuple[Any, Callable[[], None] | None]]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls[method] += 1
                fault = self._next_fault(method)
                try:
                    if fault is not None and not fault.after_apply:
                        raise _Abort(fault.code, fault.message)
                    response = fn(request)
                except _Abort as exc:
                    context.abort(exc.code, exc.message)
                if fault is not None:
                    context.abort(fault.code, fault.message)
                return response

        return handler

    def _next_fault(self, method: str) -> Fault | None:
        queue = self._faults.get(method)
        return queue.popleft() if queue else None

    # -- EndpointService ---------------------------------------------------------------

    def _endpoint(self, name: str) -> v1.Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Endpoint `{name}` not found.")
        return endpoint

    def _get_endpoint(self, request: v1.GetEndpointRequest) -> v1.Endpoint:
        return v1.Endpoint.deserialize(v1.Endpoint.serialize(self._endpoint(request.name)))

    @staticmethod
    def _check_split(split: dict[str, int], allowed: set[str], *, may_be_empty: bool) -> None:
        if not split and may_be_empty:
            return
        unknown = set(split) - allowed
        if unknown:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Traffic split references unknown DeployedModel ids {sorted(unknown)}.",
            )
        if sum(split.values()) != 100:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Traffic split must sum to 100, got {sum(split.values())}.",
            )

    def _update_endpoint(self, request: v1.UpdateEndpointRequest) -> v1.Endpoint:
        endpoint = self._endpoint(request.endpoint.name)
        paths = list(request.update_mask.paths)
        if not paths:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "update_mask is required.")
        if "traffic_split" in paths:
            split = dict(request.endpoint.traffic_split)
            ids = {d.id for d in endpoint.deployed_models}
            self._check_split(split, ids, may_be_empty=not ids)
            endpoint.traffic_split = split
        return self._get_endpoint(v1.GetEndpointRequest(name=endpoint.name))

    def _resolve_model(self, reference: str) -> v1.Model:
        name, _, version = reference.partition("@")
        versions = self.models.get(name)
        if versions is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Model `{name}` not found.")
        version = version or "default"
        for model in versions:
            if version == model.version_id or version in model.version_aliases:
                return model
        raise _Abort(grpc.StatusCode.NOT_FOUND, f"Model `{reference}` not found.")

    def _start(
        self,
        method: str,
        endpoint: v1.Endpoint,
        metadata: Any,
        apply: Callable[[], Any],
        response_type: Any,
    ) -> operations_pb2.Operation:
        name = self._numbered(f"{endpoint.name}/operations/{next(self._ids)}")
        proto = operations_pb2.Operation(name=name, done=False, metadata=_pack(metadata))
        faults = self._op_faults.get(method)
        op = _Op(proto, method, apply, response_type, faults.popleft() if faults else None)
        self.operations[name] = op
        return operations_pb2.Operation.FromString(proto.SerializeToString())

    def _deploy_model(self, request: v1.DeployModelRequest) -> operations_pb2.Operation:
        endpoint = self._endpoint(request.endpoint)
        wanted = request.deployed_model
        model = self._resolve_model(wanted.model)
        resources = wanted.dedicated_resources
        if not resources.machine_spec.machine_type:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "machine_spec.machine_type is required.")
        if (
            resources.min_replica_count < 1
            or resources.max_replica_count < resources.min_replica_count
        ):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "min_replica_count must be ≥ 1 and ≤ max_replica_count.",
            )
        split = dict(request.traffic_split)
        self._check_split(
            split, {d.id for d in endpoint.deployed_models} | {"0"}, may_be_empty=True
        )
        chosen = wanted.id
        if chosen:
            # As the real service: a chosen id is 1–10 digits, unique on the endpoint
            # among deployed models and deploys still running.
            if not (chosen.isdigit() and len(chosen) <= 10):
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"DeployedModel id `{chosen}` must be 1 to 10 digits.",
                )
            running = [
                op
                for op in self.operations.values()
                if op.method == "DeployModel" and not op.proto.done and op.chosen_id == chosen
            ]
            if chosen in {d.id for d in endpoint.deployed_models} or running:
                raise _Abort(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"DeployedModel with ID {chosen} already exists in {endpoint.name}.",
                )

        def apply() -> v1.DeployModelResponse:
            dm = v1.DeployedModel(
                id=chosen or str(next(self._ids)),
                model=self._numbered(model.name),
                model_version_id=model.version_id,
                display_name=wanted.display_name,
                dedicated_resources=resources,
                service_account=wanted.service_account,
            )
            endpoint.deployed_models.append(dm)
            if split:
                endpoint.traffic_split = {(dm.id if k == "0" else k): v for k, v in split.items()}
            return v1.DeployModelResponse(deployed_model=dm)

        metadata = v1.DeployModelOperationMetadata(
            generic_metadata=v1.GenericOperationMetadata(create_time=_now()),
            deployment_stage=_STAGES[0],
        )
        started = self._start("DeployModel", endpoint, metadata, apply, v1.DeployModelResponse)
        self.operations[started.name].chosen_id = chosen
        return started

    def _undeploy_model(self, request: v1.UndeployModelRequest) -> operations_pb2.Operation:
        endpoint = self._endpoint(request.endpoint)
        ids = [d.id for d in endpoint.deployed_models]
        if request.deployed_model_id not in ids:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND,
                f"DeployedModel {request.deployed_model_id} not found on {endpoint.name}.",
            )
        split = dict(request.traffic_split) or dict(endpoint.traffic_split)
        if split.get(request.deployed_model_id, 0) > 0:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"DeployedModel {request.deployed_model_id} has traffic assigned; it can only be"
                " undeployed after its traffic is moved elsewhere.",
            )
        remaining = set(ids) - {request.deployed_model_id}
        split = {k: v for k, v in split.items() if k in remaining or v}
        self._check_split(split, remaining, may_be_empty=not remaining)

        def apply() -> v1.UndeployModelResponse:
            kept = [d for d in endpoint.deployed_models if d.id != request.deployed_model_id]
            endpoint.deployed_models = kept
            endpoint.traffic_split = split if kept else {}
            return v1.UndeployModelResponse()

        metadata = v1.UndeployModelOperationMetadata(
            generic_metadata=v1.GenericOperationMetadata(create_time=_now())
        )
        return self._start("UndeployModel", endpoint, metadata, apply, v1.UndeployModelResponse)

    # The fields MutateDeployedModel may change in v1 (its reference page), as mask paths.
    _MUTABLE = frozenset(
        {
            "dedicated_resources.min_replica_count",
            "dedicated_resources.max_replica_count",
            "dedicated_resources.required_replica_count",
            "dedicated_resources.autoscaling_metric_specs",
            "disable_container_logging",
        }
    )

    def replicas(self, endpoint: str, deployed_model_id: str) -> tuple[int, int]:
        with self._lock:
            dm = next(
                d for d in self.endpoints[endpoint].deployed_models if d.id == deployed_model_id
            )
            resources = dm.dedicated_resources
            return resources.min_replica_count, resources.max_replica_count

    def _mutate_deployed_model(
        self, request: v1.MutateDeployedModelRequest
    ) -> operations_pb2.Operation:
        endpoint = self._endpoint(request.endpoint)
        wanted = request.deployed_model
        found = next((d for d in endpoint.deployed_models if d.id == wanted.id), None)
        if found is None:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND,
                f"DeployedModel {wanted.id} not found on {endpoint.name}.",
            )
        paths = list(request.update_mask.paths)
        if not paths:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "update_mask is required.")
        immutable = sorted(set(paths) - self._MUTABLE)
        if immutable:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Fields {immutable} of a DeployedModel cannot be mutated.",
            )
        resources = found.dedicated_resources
        low = (
            wanted.dedicated_resources.min_replica_count
            if "dedicated_resources.min_replica_count" in paths
            else resources.min_replica_count
        )
        high = (
            wanted.dedicated_resources.max_replica_count
            if "dedicated_resources.max_replica_count" in paths
            else resources.max_replica_count
        )
        floor = 0 if endpoint.name in self.scale_to_zero else 1
        if low < floor or high < max(low, 1):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"min_replica_count must be ≥ {floor} and ≤ max_replica_count.",
            )
        running = [
            op
            for op in self.operations.values()
            if op.method == "MutateDeployedModel"
            and not op.proto.done
            and op.chosen_id == wanted.id
        ]
        if running:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"DeployedModel {wanted.id} has an operation in progress.",
            )

        def apply() -> v1.MutateDeployedModelResponse:
            resources.min_replica_count = low  # the endpoint's own message, changed in place
            resources.max_replica_count = high
            return v1.MutateDeployedModelResponse(deployed_model=found)

        metadata = v1.MutateDeployedModelOperationMetadata(
            generic_metadata=v1.GenericOperationMetadata(create_time=_now())
        )
        started = self._start(
            "MutateDeployedModel", endpoint, metadata, apply, v1.MutateDeployedModelResponse
        )
        self.operations[started.name].chosen_id = wanted.id
        return started

    # -- ModelService ------------------------------------------------------------------

    def _get_model(self, request: v1.GetModelRequest) -> v1.Model:
        return self._resolve_model(request.name)

    def _list_model_versions(
        self, request: v1.ListModelVersionsRequest
    ) -> v1.ListModelVersionsResponse:
        versions = self.models.get(request.name)
        if versions is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Model `{request.name}` not found.")
        start = int(request.page_token or 0)
        size = request.page_size or 2  # small pages, so that clients must follow the token
        page = versions[start : start + size]
        more = start + size < len(versions)
        return v1.ListModelVersionsResponse(
            models=page, next_page_token=str(start + size) if more else ""
        )

    def _merge_version_aliases(self, request: v1.MergeVersionAliasesRequest) -> v1.Model:
        """As the real service: the name carries an explicit version id; `-alias` removes
        an alias from it; an alias another version holds moves here (aliases are unique
        within a model); `default` cannot be removed, only moved."""
        name, _, version_id = request.name.partition("@")
        if not version_id.isdigit():
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "The name of the model version must include an explicit version ID.",
            )
        model = self._resolve_model(request.name)
        if not request.version_aliases:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "version_aliases is required.")
        for alias in request.version_aliases:
            if not _ALIAS.match(alias) or alias.lstrip("-").isdigit():
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid alias `{alias}`.")
        for alias in request.version_aliases:
            if alias.startswith("-"):
                if alias == "-default":
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "The default alias cannot be removed."
                    )
                model.version_aliases = [a for a in model.version_aliases if a != alias[1:]]
                continue
            for other in self.models[name]:
                if other is not model and alias in other.version_aliases:
                    other.version_aliases = [a for a in other.version_aliases if a != alias]
            if alias not in model.version_aliases:
                model.version_aliases = [*model.version_aliases, alias]
        return v1.Model.deserialize(v1.Model.serialize(model))

    def _list_model_evaluations(
        self, request: v1.ListModelEvaluationsRequest
    ) -> v1.ListModelEvaluationsResponse:
        model = self._resolve_model(request.parent)
        name = request.parent.partition("@")[0]
        found = self.evaluations.get(f"{name}@{model.version_id}", [])
        start = int(request.page_token or 0)
        size = request.page_size or 2  # small pages, so that clients must follow the token
        more = start + size < len(found)
        return v1.ListModelEvaluationsResponse(
            model_evaluations=found[start : start + size],
            next_page_token=str(start + size) if more else "",
        )

    # -- PipelineService (pipeline jobs) ------------------------------------------------

    @staticmethod
    def _parent(parent: str) -> None:
        parts = parent.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "locations":
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "parent must be projects/P/locations/L")

    def _create_pipeline_job(self, request: v1.CreatePipelineJobRequest) -> v1.PipelineJob:
        """As the real service: a spec or a template is required, labels must be valid,
        the job starts PENDING under `parent` (its project named by number)."""
        self._parent(request.parent)
        job = v1.PipelineJob.deserialize(v1.PipelineJob.serialize(request.pipeline_job))
        if not job.template_uri and not job.pipeline_spec:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Either pipeline_spec or template_uri must be specified.",
            )
        if job.template_uri and not re.match(
            r"^https://[a-z0-9-]+-kfp\.pkg\.dev/", job.template_uri
        ):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "template_uri must be an Artifact Registry (kfp.pkg.dev) template.",
            )
        for key, value in job.labels.items():
            if not key or not _LABEL.match(key) or not _LABEL.match(value):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid label `{key}`.")
        job_id = request.pipeline_job_id or f"pipeline-{next(self._ids)}"
        name = self._numbered(f"{request.parent}/pipelineJobs/{job_id}")
        if name in self.pipeline_jobs:
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f"PipelineJob `{name}` already exists.")
        job.name = name
        job.state = v1.PipelineState.PIPELINE_STATE_PENDING
        job.create_time = _now()
        self.pipeline_jobs[name] = job
        if self._pipeline_faults:
            self._pipeline_fails[name] = self._pipeline_faults.popleft()
        return v1.PipelineJob.deserialize(v1.PipelineJob.serialize(job))

    def _get_pipeline_job(self, request: v1.GetPipelineJobRequest) -> v1.PipelineJob:
        job = self.pipeline_jobs.get(self._numbered(request.name))
        if job is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"PipelineJob `{request.name}` not found.")
        self._pipeline_reads[job.name] += 1
        if job.state == v1.PipelineState.PIPELINE_STATE_PENDING:
            job.state = v1.PipelineState.PIPELINE_STATE_RUNNING
            job.start_time = _now()
        elif (
            job.state == v1.PipelineState.PIPELINE_STATE_RUNNING
            and not self.hold_operations
            and self._pipeline_reads[job.name] > self.pipeline_polls
        ):
            self._end_pipeline(job)
        return v1.PipelineJob.deserialize(v1.PipelineJob.serialize(job))

    def _end_pipeline(self, job: v1.PipelineJob) -> None:
        job.end_time = _now()
        failure = self._pipeline_fails.get(job.name)
        if failure is not None:
            job.state = v1.PipelineState.PIPELINE_STATE_FAILED
            job.error = status_pb2.Status(code=grpc.StatusCode.INTERNAL.value[0], message=failure)
            return
        job.state = v1.PipelineState.PIPELINE_STATE_SUCCEEDED
        if self.pipeline_registers is not None:
            registry, semver = self.pipeline_registers
            versions = self.models[registry]
            versions.append(
                v1.Model(
                    name=registry,
                    version_id=str(len(versions) + 1),
                    version_aliases=["v" + semver.replace(".", "-")],
                    display_name=registry.rsplit("/", 1)[-1],
                    pipeline_job=job.name,
                    metadata={
                        "dataset": str(job.runtime_config.parameter_values.get("dataset", ""))
                    },
                )
            )

    def _list_pipeline_jobs(
        self, request: v1.ListPipelineJobsRequest
    ) -> v1.ListPipelineJobsResponse:
        """Jobs under `parent` matching the filter (`labels.k="v"` terms joined by AND, the
        only shape understood: anything else is refused), newest first on `create_time
        desc`, in small pages; the list view leaves out `job_detail`, as the service does."""
        self._parent(request.parent)
        terms: list[tuple[str, str]] = []
        for part in filter(None, (p.strip() for p in re.split(r"\s+AND\s+", request.filter))):
            match = _LABEL_TERM.match(part)
            if match is None:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported filter `{part}`.")
            terms.append((match[1], match[2]))
        parent = self._numbered(request.parent)
        jobs = [
            j
            for j in self.pipeline_jobs.values()
            if j.name.startswith(parent + "/") and all(j.labels.get(k) == v for k, v in terms)
        ]
        if request.order_by not in ("", "create_time desc"):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported order `{request.order_by}`."
            )
        if request.order_by == "create_time desc":
            jobs.reverse()
        start = int(request.page_token or 0)
        size = request.page_size or 2  # small pages, so that clients must follow the token
        page = [
            v1.PipelineJob.deserialize(v1.PipelineJob.serialize(j))
            for j in jobs[start : start + size]
        ]
        for j in page:
            j.job_detail = None
        more = start + size < len(jobs)
        return v1.ListPipelineJobsResponse(
            pipeline_jobs=page, next_page_token=str(start + size) if more else ""
        )

    # -- JobService (model monitoring reads) -------------------------------------------

    def _list_monitoring_jobs(
        self, request: v1.ListModelDeploymentMonitoringJobsRequest
    ) -> v1.ListModelDeploymentMonitoringJobsResponse:
        if not request.parent.startswith("projects/") or "/locations/" not in request.parent:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "parent must be projects/P/locations/L")
        parent = self._numbered(request.parent)
        jobs = [
            job
            for name, job in sorted(self.monitoring_jobs.items())
            if self._numbered(name).startswith(parent + "/")
        ]
        start = int(request.page_token or 0)
        size = request.page_size or 2  # small pages, so that clients must follow the token
        more = start + size < len(jobs)
        return v1.ListModelDeploymentMonitoringJobsResponse(
            model_deployment_monitoring_jobs=jobs[start : start + size],
            next_page_token=str(start + size) if more else "",
        )

    def _search_stats_anomalies(
        self, request: v1.SearchModelDeploymentMonitoringStatsAnomaliesRequest
    ) -> v1.SearchModelDeploymentMonitoringStatsAnomaliesResponse:
        job = request.model_deployment_monitoring_job
        if job not in {j.name for j in self.monitoring_jobs.values()}:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND, f"ModelDeploymentMonitoringJob `{job}` not found."
            )
        if not request.deployed_model_id or not request.objectives:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, "deployed_model_id and objectives are required."
            )
        features = self.drift_stats.get((job, request.deployed_model_id), {})
        wanted = {o.type_ for o in request.objectives}
        drift = v1.ModelDeploymentMonitoringObjectiveType.RAW_FEATURE_DRIFT
        if drift not in wanted:
            return v1.SearchModelDeploymentMonitoringStatsAnomaliesResponse()
        start = request.start_time or None
        end = request.end_time or None
        feature_stats = []
        for feature, windows in features.items():
            kept = [
                v1.FeatureStatsAnomaly(
                    distribution_deviation=deviation,
                    anomaly_detection_threshold=0.1,
                    # `score` is attribution-only: set to something else to catch misuse
                    score=0.0,
                    end_time=at,
                    anomaly_uri=f"gs://monitoring/{feature}/anomalies",
                )
                for at, deviation in windows
                if (start is None or at >= start) and (end is None or at <= end)
            ]
            if kept:
                feature_stats.append(
                    v1.ModelMonitoringStatsAnomalies.FeatureHistoricStatsAnomalies(
                        feature_display_name=feature,
                        threshold=v1.ThresholdConfig(value=0.1),
                        prediction_stats=kept,
                    )
                )
        # one feature per page, so that clients must follow the token
        page = int(request.page_token or 0)
        more = page + 1 < len(feature_stats)
        return v1.SearchModelDeploymentMonitoringStatsAnomaliesResponse(
            monitoring_stats=[
                v1.ModelMonitoringStatsAnomalies(
                    objective=drift,
                    deployed_model_id=request.deployed_model_id,
                    anomaly_count=sum(
                        1
                        for s in feature_stats[page].prediction_stats
                        if s.distribution_deviation > 0.1
                    ),
                    feature_stats=feature_stats[page : page + 1],
                )
            ]
            if feature_stats
            else [],
            next_page_token=str(page + 1) if more else "",
        )

    # -- operations --------------------------------------------------------------------

    def _finish(self, op: _Op) -> None:
        proto = op.proto
        if op.fault is not None:
            proto.error.CopyFrom(
                status_pb2.Status(code=op.fault.code.value[0], message=op.fault.message)
            )
        else:
            proto.response.CopyFrom(_pack(op.apply()))
        if proto.metadata.Is(v1.DeployModelOperationMetadata.pb().DESCRIPTOR):
            meta = v1.DeployModelOperationMetadata.deserialize(proto.metadata.value)
            meta.deployment_stage = "FAILED_TO_DEPLOY" if op.fault else "SUCCESSFULLY_DEPLOYED"
            proto.metadata.CopyFrom(_pack(meta))
        proto.done = True

    def cancel_operation(self, name: str) -> None:
        """As the real service: a running operation ends with CANCELLED and applies
        nothing; a finished one is left as it is."""
        with self._lock:
            self.calls["CancelOperation"] += 1
            fault = self._next_fault("CancelOperation")
            if fault is not None:
                raise _Abort(fault.code, fault.message)
            op = self.operations.get(name)
            if op is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"Operation `{name}` not found.")
            if not op.proto.done:
                op.cancelled = True
                op.fault = Fault(grpc.StatusCode.CANCELLED, "Operation was cancelled.")
                self._finish(op)

    def get_operation(self, name: str) -> operations_pb2.Operation:
        with self._lock:
            self.calls["GetOperation"] += 1
            fault = self._next_fault("GetOperation")
            if fault is not None:
                raise _Abort(fault.code, fault.message)
            op = self.operations.get(name)
            if op is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"Operation `{name}` not found.")
            op.polls += 1
            if not op.proto.done:
                if self.hold_operations:
                    self._advance(op)
                else:
                    self._finish(op)
            return operations_pb2.Operation.FromString(op.proto.SerializeToString())

    def _advance(self, op: _Op) -> None:
        """A held deploy moves one stage per poll, so progress can be watched."""
        if not op.proto.metadata.Is(v1.DeployModelOperationMetadata.pb().DESCRIPTOR):
            return
        meta = v1.DeployModelOperationMetadata.deserialize(op.proto.metadata.value)
        op.stage = min(op.stage + 1, len(_STAGES) - 1)
        meta.deployment_stage = _STAGES[op.stage]
        op.proto.metadata.CopyFrom(_pack(meta))


class _Operations(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, fake: FakeVertex) -> None:
        self.fake = fake

    def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: grpc.ServicerContext
    ) -> operations_pb2.Operation:
        try:
            return self.fake.get_operation(request.name)
        except _Abort as exc:
            context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises

    def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        try:
            self.fake.cancel_operation(request.name)
        except _Abort as exc:
            context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises
        return empty_pb2.Empty()
