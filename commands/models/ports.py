"""The model-registry port. Implementations: `bot/platforms/sandbox_registry.py` (the
config's `[models.X.cards."V"]` tables, aliases kept in the sandbox's tables) and
`bot/platforms/vertex_registry.py` (the Vertex AI Model Registry: `ModelService`)."""

from __future__ import annotations

from typing import Protocol

from commands.config import Endpoint
from commands.models.model import RegistryVersion


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
