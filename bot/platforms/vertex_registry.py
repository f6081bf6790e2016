"""The Vertex AI Model Registry behind the model-registry port (`commands/models/ports.py`),
through `ModelService` on the platform's own regional clients and fault handling
(`VertexPlatform`: reads retry on UNAVAILABLE / DEADLINE_EXCEEDED, writes are sent once).

Where each thing comes from:
- versions: `list_model_versions` on the model (every page); a version counts when one of
  its `version_aliases` names a semantic version (`v1-2-1` → `1.2.1`);
- card: `version_description` (else the model's `description`); intended use and
  limitations from the version's `metadata` keys `intended_use` / `limitations`, else from
  lines of the description that start `Intended use:` / `Limitations:`;
- lineage: the version's `pipeline_job` (else `training_pipeline`, else `metadata`
  `pipeline_run`) and the `metadata` key `dataset` (else the label `dataset`); "unknown"
  where none is set (ML Metadata's lineage graph is not read);
- evaluation: the newest of `list_model_evaluations(parent=<model>@<version id>)`, its
  numeric metrics (nested ones as `a.b`); a version whose evaluations cannot be read shows
  none (logged), it does not fail the listing;
- validation: the labels `validation` (`approved` | `pending` | `rejected`; absent or
  anything else: pending), `validated_by` and `validated_at` (`2026-11-20`, or epoch
  seconds: labels hold no colons);
- the serving alias: `merge_version_aliases(name=<model>@<version id>,
  version_aliases=[alias])`, which moves an alias held by another version (aliases are
  unique within a model). A lost answer is decided by reading the versions again.

Training runs (`/aiops retrain`) are `PipelineService` pipeline jobs in the retrain
environment's project and region (`parent = projects/P/locations/R`):
- submitted with `create_pipeline_job`: an Artifact Registry template goes as
  `template_uri` (Vertex AI fetches it: the only registry `template_uri` takes); a compiled
  spec on Cloud Storage (`gs://…json`) is read with google-cloud-storage and sent as
  `pipeline_spec`. Runtime parameters go as `runtime_config.parameter_values` (KFP v2
  specs), artifacts to `runtime_config.gcs_output_directory` when a pipeline root is set;
  the job runs as `[vertex] pipeline_service_account` when set. Sent once;
- found again by its labels with `list_pipeline_jobs(filter='labels.k="v" AND …')`,
  newest first;
- polled with `get_pipeline_job`; once it succeeded, the version it registered is the
  model version whose `pipeline_job` names it (the registry's own lineage field), read with
  `list_model_versions` of the model's registry for that environment.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import aiplatform_v1 as v1

from commands.config import Endpoint, Environment
from commands.models.model import (
    Card,
    Evaluation,
    Lineage,
    ParameterValue,
    PipelineRun,
    PipelineState,
    RegistryVersion,
    Validation,
    ValidationStatus,
    moment,
)
from commands.ports import PlatformError

from .monitoring import platform_error
from .vertex_settings import alias_version

if TYPE_CHECKING:
    from .vertex import VertexPlatform

log = logging.getLogger(__name__)

_MAX_METRICS = 20
# Vertex AI's PipelineState, as the bot's words (`PipelineState` in commands/models/model.py)
_PIPELINE_STATES = {
    "PIPELINE_STATE_QUEUED": PipelineState.QUEUED,
    "PIPELINE_STATE_PENDING": PipelineState.QUEUED,
    "PIPELINE_STATE_RUNNING": PipelineState.RUNNING,
    "PIPELINE_STATE_CANCELLING": PipelineState.RUNNING,
    "PIPELINE_STATE_PAUSED": PipelineState.RUNNING,
    "PIPELINE_STATE_SUCCEEDED": PipelineState.SUCCEEDED,
    "PIPELINE_STATE_FAILED": PipelineState.FAILED,
    "PIPELINE_STATE_CANCELLED": PipelineState.CANCELLED,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _plain(value: Any) -> Any:
    """proto-plus' Struct views (MapComposite / RepeatedComposite) as plain Python."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str | bytes):
        return value
    if hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    return value


def _numbers(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric metrics, nested ones flattened as `a.b` (lists, like curves, left out)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[name] = float(value)
        elif isinstance(value, dict):
            out |= _numbers(value, f"{name}.")
        if len(out) >= _MAX_METRICS:
            break
    return dict(list(out.items())[:_MAX_METRICS])


def _from_description(text: str, label: str) -> str:
    for line in text.splitlines():
        head, sep, rest = line.partition(":")
        if sep and head.strip().lower() == label:
            return rest.strip()
    return ""


def _summary(text: str) -> str:
    """The description without its `Intended use:` / `Limitations:` lines."""
    labels = ("intended use", "limitations")
    kept = [ln for ln in text.splitlines() if ln.partition(":")[0].strip().lower() not in labels]
    return " ".join(" ".join(kept).split())


class VertexRegistry:
    def __init__(self, platform: VertexPlatform) -> None:
        self.platform = platform
        self.serving_alias = platform.settings.serving_alias

    def _listed(self, model: str, endpoint: Endpoint | None) -> tuple[str, str, str, list[Any]]:
        """(region, project, registry model name, every version listed)."""
        region, registry = self.platform._registry(model, endpoint)
        project = registry.split("/")[1]
        doing = f"list the versions of `{model}` in the Model Registry"
        pager = self.platform._read(
            self.platform._for(region).models.list_model_versions, doing, project, name=registry
        )
        try:
            return region, project, registry, list(pager)
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise platform_error(exc, doing, project=project) from exc

    @staticmethod
    def _semver(item: Any) -> str | None:
        return next((v for v in map(alias_version, item.version_aliases) if v is not None), None)

    def _evaluation(self, region: str, project: str, name: str) -> Evaluation | None:
        doing = f"list the evaluations of `{name}`"
        try:
            pager = self.platform._read(
                self.platform._for(region).models.list_model_evaluations,
                doing,
                project,
                parent=name,
            )
            found = list(pager)
        except (PlatformError, gexc.GoogleAPICallError, gexc.RetryError) as exc:
            log.warning("no evaluation shown for %s: %s", name, exc)
            return None
        if not found:
            return None
        newest = max(found, key=lambda e: moment(e.create_time) or _EPOCH)
        metrics = _plain(newest.metrics) if newest.metrics is not None else {}
        return Evaluation(
            _numbers(metrics if isinstance(metrics, dict) else {}),
            moment(newest.create_time),
            str(newest.name) or None,
        )

    def _version(self, model: str, semver: str, item: Any, evaluation: Evaluation | None) -> Any:
        tz = self.platform.config.timezone
        meta = _plain(item.metadata) if item.metadata is not None else {}
        meta = meta if isinstance(meta, dict) else {}
        labels = dict(item.labels)
        text = str(item.version_description or item.description or "")
        status = labels.get("validation", "pending").lower()
        return RegistryVersion(
            model=model,
            version=semver,
            aliases=tuple(item.version_aliases),
            card=Card(
                description=_summary(text),
                intended_use=str(
                    meta.get("intended_use") or _from_description(text, "intended use")
                ),
                limitations=str(meta.get("limitations") or _from_description(text, "limitations")),
            ),
            lineage=Lineage(
                pipeline_run=str(
                    item.pipeline_job or item.training_pipeline or meta.get("pipeline_run") or ""
                )
                or None,
                dataset=str(meta.get("dataset") or labels.get("dataset") or "") or None,
            ),
            evaluation=evaluation,
            validation=Validation(
                ValidationStatus(status)
                if status in ValidationStatus.__members__.values()
                else ValidationStatus.PENDING,
                labels.get("validated_by") or None,
                moment(labels.get("validated_at"), tz),
            ),
            registry_id=str(item.version_id),
            created_at=moment(item.version_create_time),
        )

    def versions(self, model: str, endpoint: Endpoint | None = None) -> list[RegistryVersion]:
        return self._read_versions(model, endpoint, None)

    def version(
        self, model: str, version: str, endpoint: Endpoint | None = None
    ) -> RegistryVersion | None:
        found = self._read_versions(model, endpoint, version)
        return found[0] if found else None

    def _read_versions(
        self, model: str, endpoint: Endpoint | None, only: str | None
    ) -> list[RegistryVersion]:
        """Every version (or `only` that one), oldest first; evaluations are read for the
        versions returned only."""
        try:
            region, project, registry, listed = self._listed(model, endpoint)
        except PlatformError as exc:
            if exc.kind == "not_found":
                return []
            raise
        out: list[tuple[int, RegistryVersion]] = []
        for item in listed:
            semver = self._semver(item)
            if semver is None or (only is not None and semver != only):
                continue  # not asked for, or not deployable by the bot (no version alias)
            evaluation = self._evaluation(region, project, f"{registry}@{item.version_id}")
            vid = str(item.version_id)
            out.append(
                (int(vid) if vid.isdigit() else 0, self._version(model, semver, item, evaluation))
            )
        return [v for _, v in sorted(out, key=lambda pair: pair[0])]

    def move_alias(
        self, model: str, version: str, alias: str, endpoint: Endpoint | None = None
    ) -> str | None:
        region, project, registry, listed = self._listed(model, endpoint)
        target = next((i for i in listed if self._semver(i) == version), None)
        if target is None:
            raise PlatformError(
                f"`{model}@{version}` is not in the Model Registry", kind="not_found"
            )
        holder = next((i for i in listed if alias in i.version_aliases), None)
        previous = self._semver(holder) if holder is not None else None
        if holder is not None and str(holder.version_id) == str(target.version_id):
            return version
        doing = f"move alias `{alias}` of `{model}` to {version}"
        try:
            self.platform._write(
                self.platform._for(region).models.merge_version_aliases,
                doing,
                project,
                name=f"{registry}@{target.version_id}",
                version_aliases=[alias],
            )
        except PlatformError as exc:
            if exc.kind != "unavailable":
                raise
            # The answer was lost: read again and decide (a merge is safe to send twice,
            # but the caller counts attempts, so say what happened).
            _, _, _, now = self._listed(model, endpoint)
            if any(alias in i.version_aliases and self._semver(i) == version for i in now):
                log.warning("%s: answer lost but the registry shows the move", doing)
                return previous
            raise
        log.info(
            "Model Registry: alias %s of %s now names %s (was %s)", alias, model, version, previous
        )
        return previous

    def validation_source(self, model: str, version: str) -> str:
        return (
            f"the Model Registry labels of `{model}@{version}`: `validation=approved`,"
            " `validated_by`, `validated_at`"
        )

    # -- training runs (PipelineService) ------------------------------------------------

    def _pipelines(self, environment: Environment) -> tuple[Any, str]:
        """(the region's PipelineService client, `projects/P/locations/R`)."""
        client = self.platform._for(environment.region).pipelines
        if client is None:
            raise PlatformError(
                "no Vertex AI PipelineService client is configured: pipelines cannot run",
                kind="precondition",
            )
        return client, f"projects/{environment.project}/locations/{environment.region}"

    def _spec(self, template: str, project: str) -> dict[str, Any]:
        """A compiled pipeline spec (JSON) read from Cloud Storage."""
        import json

        bucket, _, path = template.removeprefix("gs://").partition("/")
        client = self.platform.storage_client
        try:
            if client is None:
                from google.cloud import storage  # type: ignore[attr-defined]

                client = self.platform.storage_client = storage.Client(project=project)
            data = client.bucket(bucket).blob(path).download_as_bytes()
        except gexc.NotFound as exc:
            raise PlatformError(
                f"the pipeline spec `{template}` does not exist (or the bot may not read it)",
                kind="not_found",
            ) from exc
        except gexc.GoogleAPICallError as exc:
            raise platform_error(
                exc, f"read the pipeline spec `{template}`", project=project
            ) from exc
        try:
            spec = json.loads(data)
        except ValueError as exc:
            raise PlatformError(
                f"the pipeline spec `{template}` is not JSON (compile it to a .json file)",
                kind="precondition",
            ) from exc
        if not isinstance(spec, dict):
            raise PlatformError(
                f"the pipeline spec `{template}` is not a JSON object", kind="precondition"
            )
        # KFP's compiler writes the spec itself, or (as a pipeline job) under `pipelineSpec`
        inner = spec.get("pipelineSpec")
        return inner if isinstance(inner, dict) else spec

    def begin_pipeline(
        self,
        model: str,
        template: str,
        parameters: dict[str, ParameterValue],
        labels: dict[str, str],
        environment: Environment,
        *,
        display_name: str,
        pipeline_root: str | None = None,
    ) -> str:
        client, parent = self._pipelines(environment)
        job = v1.PipelineJob(
            display_name=display_name[:128],
            labels=labels,
            runtime_config=v1.PipelineJob.RuntimeConfig(
                parameter_values=dict(parameters), gcs_output_directory=pipeline_root or ""
            ),
            service_account=self.platform.settings.pipeline_service_account or "",
        )
        if template.startswith("gs://"):
            job.pipeline_spec = self._spec(template, environment.project)
        else:
            job.template_uri = template
        created = self.platform._write(
            client.create_pipeline_job,
            f"submit the training pipeline of `{model}`",
            environment.project,
            parent=parent,
            pipeline_job=job,
        )
        log.info("pipeline job %s of %s submitted", created.name, model)
        return str(created.name)

    def find_pipeline(
        self, model: str, labels: dict[str, str], environment: Environment
    ) -> str | None:
        client, parent = self._pipelines(environment)
        wanted = " AND ".join(f'labels.{k}="{v}"' for k, v in sorted(labels.items()))
        doing = f"look for the pipeline jobs of `{model}`"
        pager = self.platform._read(
            client.list_pipeline_jobs,
            doing,
            environment.project,
            request={"parent": parent, "filter": wanted, "order_by": "create_time desc"},
        )
        try:
            for job in pager:  # the filter is the service's; the labels are checked here too
                if all(job.labels.get(k) == v for k, v in labels.items()):
                    return str(job.name)
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise platform_error(exc, doing, project=environment.project) from exc
        return None

    def pipeline_status(self, name: str, model: str, environment: Environment) -> PipelineRun:
        client, _ = self._pipelines(environment)
        job = self.platform._read(
            client.get_pipeline_job,
            f"read pipeline job `{name}`",
            environment.project,
            name=name,
        )
        state = _PIPELINE_STATES.get(v1.PipelineState(job.state).name, PipelineState.QUEUED)
        if state in (PipelineState.FAILED, PipelineState.CANCELLED):
            error = str(job.error.message) if job.error and job.error.message else None
            return PipelineRun(name, state, error=error or f"the job is {state.value}")
        if state is not PipelineState.SUCCEEDED:
            return PipelineRun(name, state)
        endpoint = next(
            (
                e
                for e in self.platform.config.endpoints.values()
                if e.model == model and e.environment == environment.name
            ),
            None,
        )
        _, _, _, listed = self._listed(model, endpoint)
        tail = name.split("/")[2:]  # answers may name the project by number
        produced = [i for i in listed if str(i.pipeline_job).split("/")[2:] == tail]
        if not produced:
            return PipelineRun(name, state)
        newest = max(
            produced, key=lambda i: int(i.version_id) if str(i.version_id).isdigit() else 0
        )
        return PipelineRun(
            name,
            state,
            registered_version=self._semver(newest),
            registered_id=str(newest.version_id),
        )
