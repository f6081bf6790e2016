"""The model-registry port. Implementations: `bot/platforms/sandbox_registry.py` (the
config's `[models.X.cards."V"]` tables, aliases and simulated training runs kept in the
sandbox's tables) and `bot/platforms/vertex_registry.py` (the Vertex AI Model Registry:
`ModelService`; training runs: `PipelineService`'s pipeline jobs)."""

from __future__ import annotations

from typing import Protocol

from commands.config import Endpoint, Environment
from commands.models.model import ParameterValue, PipelineRun, RegistryVersion


class ModelRegistry(Protocol):
    """Where model versions, their aliases, cards, lineage, evaluations and validation live.

    `endpoint` names whose registry to read when a model lives in one registry per
    environment (Vertex AI: `[vertex.models]` per environment); None: the model's first
    endpoint's, as `Platform.model_versions` reads it. Every method raises
    `commands.ports.PlatformError` (worded for people) when the registry cannot be read or
    refuses a write."""

    # The alias that names "what prod serves" (`[vertex] serving_alias`, default `prod`).
    serving_alias: str

    def versions(self, model: str, endpoint: Endpoint | None = None) -> list[RegistryVersion]:
        """Every version the registry holds for `model` under a semantic version, oldest
        first, each with its aliases, card summary, lineage, latest evaluation and
        validation. An unknown model has none ([])."""
        ...

    def version(
        self, model: str, version: str, endpoint: Endpoint | None = None
    ) -> RegistryVersion | None:
        """One version, as `versions` gives it (reading only its own evaluations); None when
        the registry does not hold it."""
        ...

    def move_alias(
        self, model: str, version: str, alias: str, endpoint: Endpoint | None = None
    ) -> str | None:
        """Point `alias` at `version`, taking it from whichever version held it (aliases are
        unique within a model). Returns the version it named before (None: none); when it
        already names `version`, nothing is written and `version` is returned. An unknown
        version raises `PlatformError` of kind `not_found`."""
        ...

    def validation_source(self, model: str, version: str) -> str:
        """Where a version's validation is recorded, in words, for the people who must
        record it (a refusal's hint)."""
        ...

    # Training pipelines (`/aiops retrain`, commands/models/retrain.py): a run registers
    # the version it trains in this registry, so the registry is where runs are started.

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
        """Submit one run of the training pipeline `template` (a compiled pipeline spec:
        `gs://…json`, or an Artifact Registry template `https://<region>-kfp.pkg.dev/…`)
        with its runtime `parameters`, in `environment`'s project and region, carrying
        `labels`. Returns the run's name (Vertex AI: the PipelineJob's resource name),
        which `pipeline_status` polls, after a restart too. Sent once: an answer lost in
        transit raises `PlatformError` of kind `unavailable`, and `find_pipeline` then
        says whether it was created. A template the platform cannot read raises kind
        `not_found` or `precondition`."""
        ...

    def find_pipeline(
        self, model: str, labels: dict[str, str], environment: Environment
    ) -> str | None:
        """The newest run in `environment` carrying every one of `labels` (its name), None
        when there is none: how a change taken over finds the run its dead worker
        submitted before it could store the name, instead of submitting another."""
        ...

    def pipeline_status(self, name: str, model: str, environment: Environment) -> PipelineRun:
        """Where the run `name` stands; once it succeeded, the version of `model` it
        registered in the registry `environment` reads (by lineage: the version produced
        by this run). An unknown run raises `PlatformError` of kind `not_found`."""
        ...
