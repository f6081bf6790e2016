"""The platform port: what the domain needs from a model-serving platform.

Two implementations live in `bot/platforms/`: the embedded sandbox (the default) and
Vertex AI with Cloud Monitoring. Both speak in the domain's types only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from commands.config import Endpoint
from commands.model import EndpointHealth, EndpointState, ModelVersion, TrafficSplit


class PlatformError(Exception):
    """A fault from the platform, already turned into words a person can act on."""

    def __init__(self, message: str, *, kind: str = "error", retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind  # quota | permission | not_found | precondition | operation | unavailable
        self.retryable = retryable


class UnknownVersion(PlatformError):
    def __init__(self, version: ModelVersion, known: Sequence[str]) -> None:
        super().__init__(
            f"`{version}` is not in the model registry; known versions of `{version.model}`:"
            f" {', '.join(known) or 'none'}",
            kind="not_found",
        )
        self.known = tuple(known)


@dataclass(frozen=True)
class OperationStatus:
    name: str
    done: bool
    progress: int = 0  # percent, best effort
    error: str | None = None
    deployed_model_id: str | None = None  # a finished deploy's new deployed-model id


@dataclass(frozen=True)
class Alert:
    policy: str
    severity: str  # P1 | P2 | P3
    state: str  # open | closed
    opened_at: datetime
    closed_at: datetime | None
    endpoint: str | None
    summary: str


class Platform(Protocol):
    name: str

    def endpoint_state(self, endpoint: Endpoint) -> EndpointState:
        """What the endpoint serves now (deployed models and traffic split)."""
        ...

    def model_versions(self, model: str) -> list[str]:
        """The versions the registry holds for a model."""
        ...

    def begin_deploy(
        self, endpoint: Endpoint, version: ModelVersion, traffic_split: TrafficSplit
    ) -> str:
        """Start deploying a version; `traffic_split` uses "0" for the new model.

        Returns the long-running operation's name.
        """
        ...

    def begin_undeploy(
        self, endpoint: Endpoint, deployed_model_id: str, traffic_split: TrafficSplit
    ) -> str:
        """Start undeploying a model that has 0 % in `traffic_split` (the split after)."""
        ...

    def operation(self, name: str) -> OperationStatus:
        """Poll a long-running operation (also after a restart, by its stored name)."""
        ...

    def set_traffic(self, endpoint: Endpoint, traffic_split: TrafficSplit) -> None:
        """Replace the traffic split; it must sum to 100."""
        ...

    def health(
        self, endpoints: Sequence[Endpoint], window: timedelta = timedelta(hours=1)
    ) -> dict[str, EndpointHealth]:
        """Health of many endpoints at once: one query per metric, never one per endpoint."""
        ...

    def alerts(self, since: datetime) -> list[Alert]:
        """Alerts open now or opened since `since`."""
        ...
