"""What trained the version an endpoint serves: the lineage a drift alert and the digest's
drift line name, with the retrain they offer (`/aiops retrain <model>`).

Drift means the requests an endpoint sees no longer look like the data its model was
trained on; the useful next step is to know which training run (and dataset) that was and
to run the training pipeline again on fresh data. The version is the one taking the
largest share of the endpoint's traffic (the newest on a tie); its lineage comes from the
model registry, "unknown" where the registry does not say (or cannot be read)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from commands.config import Endpoint
from commands.model import EndpointState, model_key
from commands.models.model import UNKNOWN, Lineage
from commands.ports import PlatformError
from commands.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingLineage:
    """An endpoint's serving version and where it came from.

    `version`: the semantic version taking the largest share (None when nothing serves or
    the endpoint could not be read). `retrainable`: the model has a training pipeline
    (`[models.X] retrain_template`). `retraining`: the id of the model's retrain that is
    open now (one at a time per model), None without one."""

    endpoint: str
    model: str
    version: str | None = None
    lineage: Lineage = field(default_factory=Lineage)
    retrainable: bool = False
    retraining: str | None = None

    @property
    def pipeline_text(self) -> str:
        """`pipeline run X (dataset Y)`, or `pipeline run unknown`."""
        run = self.lineage.pipeline_run or UNKNOWN
        data = f" (dataset {self.lineage.dataset})" if self.lineage.dataset else ""
        return f"training pipeline run {run}{data}"


def serving_version(state: EndpointState) -> str | None:
    """The version with the largest share of `state`'s traffic; the newest deployed wins a
    tie (deployed models are listed oldest first)."""
    best: tuple[int, int, str] | None = None
    for i, dm in enumerate(state.deployed):
        share = state.traffic.get(dm.id, 0)
        if share > 0 and (best is None or (share, i) > best[:2]):
            best = (share, i, dm.version.version)
    return best[2] if best else None


def serving_lineage(
    rt: Runtime, ep: Endpoint, state: EndpointState | None = None
) -> ServingLineage:
    """`ep`'s serving version and its lineage; never raises (what cannot be read is
    unknown, logged)."""
    model = rt.config.models.get(ep.model)
    holder = rt.store.open_change(model_key(ep.model))
    found = ServingLineage(
        ep.slug,
        ep.model,
        retrainable=bool(model and model.retrain_template),
        retraining=holder.id if holder is not None else None,
    )
    try:
        state = state or rt.platform.endpoint_state(ep)
    except PlatformError as exc:
        log.warning("%s: serving version unknown: %s", ep.slug, exc)
        return found
    version = serving_version(state)
    if version is None or rt.registry is None:
        return replace(found, version=version)
    try:
        registered = rt.registry.version(ep.model, version, ep)
    except PlatformError as exc:
        log.warning("%s: lineage of %s unknown: %s", ep.slug, version, exc)
        registered = None
    lineage = registered.lineage if registered is not None else Lineage()
    return replace(found, version=version, lineage=lineage)


def retrain_command(model: str, reason: str | None = None) -> str:
    """The typed request: `/aiops retrain <model>` with `reason="…"` when given (prod asks
    for one; the quotes in `reason` are taken out so the value stays one option)."""
    line = f"/aiops retrain {model}"
    if reason:
        line += ' reason="' + reason.replace('"', "'") + '"'
    return line
